"""Numbers the docs state (docs/eval.md, docs/setup.md; linked from the README) come from a run:
the oracle rows of `hive eval` on the toy corpus's
validation split, and what `hive demo` writes (checked in tests/test_cli.py, which runs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mixing import api

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SETUP = (ROOT / "docs" / "setup.md").read_text(encoding="utf-8")
EVAL = (ROOT / "docs" / "eval.md").read_text(encoding="utf-8")


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def readme_demo_sizes() -> dict[str, float]:
    """The demo's sizes docs/setup.md states, in MB: ``audio`` (the toy corpus), ``total``, ``render``,
    ``mined``, ``synthesized``."""
    m = re.search(r"offsets, (\d+) MB of audio\)", SETUP)
    n = re.search(r"All it writes\s+takes (\d+) MB of disk, mostly audio as 32-bit float WAV: the render of the 80 "
                  r"toy mixtures\s+\((\d+) MB\), the clips of `hive mine superres` \((\d+) MB\) and the render of "
                  r"the synthesized mixtures\s+\((\d+) MB\)", SETUP)
    assert m and n, "the demo paragraph of docs/setup.md changed; update this parser"
    return {"audio": float(m.group(1)), "total": float(n.group(1)), "render": float(n.group(2)),
            "mined": float(n.group(3)), "synthesized": float(n.group(4))}


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def test_readme_eval_oracle_rows_are_what_hive_eval_gives(toy_render, tmp_path):
    m = re.search(r"On the toy corpus's validation split \((\d+) mixtures, (\d+) sources\), SI-SDR / SI-SDRi means "
                  r"in dB:\s+`mixture` (\S+) / (\S+), `irm` (\S+) / (\S+)", EVAL)
    assert m, "the eval paragraph of docs/eval.md changed; update this parser"
    mixtures, sources = int(m.group(1)), int(m.group(2))
    stated = {("mixture", "si_sdr"): m.group(3), ("mixture", "si_sdri"): m.group(4),
              ("irm", "si_sdr"): m.group(5), ("irm", "si_sdri"): m.group(6)}
    result = api.evaluate(toy_render(), tmp_path / "eval", split="validation",
                          options=api.EvalOptions(with_sdr=False, plot=False, progress=False))
    assert (result.mixtures, result.sources) == (mixtures, sources)
    got = {key: f"{result.summary.mean(*key):.2f}" for key in stated}
    assert {k: f"{_number(v):.2f}" for k, v in stated.items()} == got
