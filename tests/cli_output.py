"""What a refused ``hive`` command printed, as the tests read it."""

from __future__ import annotations


def one_error_line(capsys, command: str) -> str:
    """The single stderr line of a refused command (and nothing that looks like a traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hive {command}: error: "), err
    return lines[0]
