"""Temporary files of killed runs: ``.<name>.tmp-<PID>`` left behind when a writer died between
writing and renaming. Only files of that exact pattern whose PID is no longer alive are removed,
so a concurrent writer's file (alive PID) is never touched."""

from __future__ import annotations

import os
import re
from pathlib import Path

_TMP = re.compile(r"^\..+\.tmp-(\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    if pid <= 0:
        return True  # never a writer of ours: keep its file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def remove_stale_tmp(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Delete the ``.<name>.tmp-<PID>`` files under ``folder`` whose PID is dead; return them."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found = root.rglob(".*.tmp-*") if recursive else root.glob(".*.tmp-*")
    removed = []
    for path in sorted(found):
        m = _TMP.match(path.name)
        if not m or not path.is_file() or pid_alive(int(m.group(1))):
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # removed meanwhile by another cleaner
            continue
        removed.append(path)
    return removed
