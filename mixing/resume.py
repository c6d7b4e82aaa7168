"""The resume protocol shared by render, mine, curate and synthesis: atomic writes, completion
markers, file hashes and the cleanup of temporary files left by killed runs.

* **Atomic writes.** A file is written under ``.<name>.tmp-<PID>`` in its own folder (same file
  system, so the rename is atomic; the PID keeps concurrent writers apart), optionally fsynced,
  then ``os.replace``-d onto its name. On any error the temporary file is removed and the old
  file, if any, is left as it was: a reader sees the old bytes or the new ones, never a mix.
  :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_write_json` for whole
  contents; :func:`atomic_open` for streamed writers; :class:`AtomicFile` when the writer is an
  object that lives across calls (a shard writer) or needs a path (``pyarrow``).
* **Completion markers** are small JSON files written last, atomically. :func:`read_marker`
  treats a missing, partial, corrupt or mismatching marker as *not done* (``None``), never as an
  error: the work is then redone. :class:`RankMarkers` names one marker per rank of a run and
  says which ranks are not done yet.
* :func:`file_sha256` hashes a file in 1 MiB blocks.
* :func:`remove_stale_tmp` deletes the ``.<name>.tmp-<PID>`` files of dead processes only, so a
  concurrent writer's file (alive PID) is never touched (every command calls it on the folder it
  owns when it starts, or :func:`remove_stale_tmp_of` on the files it writes elsewhere); :func:`discard_tmp` deletes every
  temporary file of one target, for a caller that holds that target's lock.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = [
    "AtomicFile", "RankMarkers", "atomic_open", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
    "discard_tmp", "file_sha256", "is_tmp_name", "json_text", "pid_alive", "read_marker", "remove_stale_tmp",
    "remove_stale_tmp_of", "tmp_path", "write_marker",
]

_TMP = re.compile(r"^\..+\.tmp-(\d+)$")


# ---- atomic writes ----------------------------------------------------------------------------
def tmp_path(path: str | os.PathLike) -> Path:
    """The temporary name this process writes ``path`` under: ``.<name>.tmp-<PID>``, same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - a file system that cannot sync folders
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """One atomic replacement of ``path``: write :attr:`tmp` (through :meth:`open`, or by path
    with another library), then :meth:`commit`; :meth:`abort` (or an error in ``commit``) removes
    the temporary file. ``abort`` after ``commit`` does nothing, so ``try: … commit() finally:
    abort()`` is the whole protocol."""

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False, mkdir: bool = True):
        self.path = Path(path)
        self.tmp = tmp_path(self.path)
        self.fsync = fsync
        self.committed = False
        self._fh: IO[Any] | None = None
        if mkdir:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def open(self, mode: str = "wb", encoding: str | None = None) -> IO[Any]:
        """Open the temporary file for writing (``"w"`` modes default to UTF-8)."""
        if "b" not in mode and encoding is None:
            encoding = "utf-8"
        try:
            self._fh = open(self.tmp, mode, encoding=encoding)
        except OSError as exc:  # name the file the user asked for, not our temporary name
            if exc.errno is None:
                raise
            raise type(exc)(exc.errno, exc.strerror, str(self.path)) from exc
        return self._fh

    def commit(self) -> None:
        """Close, optionally fsync, and rename the temporary file onto :attr:`path`."""
        try:
            if self._fh is not None and not self._fh.closed:
                self._fh.flush()
                if self.fsync:
                    os.fsync(self._fh.fileno())
                self._fh.close()
            elif self.fsync:
                fd = os.open(self.tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(self.tmp, self.path)
            self.committed = True
            if self.fsync:
                _fsync_dir(self.path.parent)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Close and delete the temporary file (nothing after :meth:`commit`)."""
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if not self.committed:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None and not self.committed:
            self.commit()
        else:
            self.abort()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = None,
                fsync: bool = False) -> Iterator[IO[Any]]:
    """``with atomic_open(path) as fh: fh.write(...)``: ``path`` gets the new contents when the
    block ends normally; an exception in the block leaves the old file and no temporary file."""
    if not mode.startswith(("w", "x")):
        raise ValueError(f"atomic_open mode is {mode!r}; expected a write mode such as 'w' or 'wb'")
    f = AtomicFile(path, fsync=fsync)
    try:
        yield f.open(mode, encoding)
        f.commit()
    finally:
        f.abort()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> None:
    """Write ``text`` as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def json_text(obj: Any, *, indent: int | None = 1, sort_keys: bool = True, ensure_ascii: bool = False) -> str:
    """``json.dumps`` with the project's defaults for JSON files, plus a final newline."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, sort_keys: bool = True,
                      ensure_ascii: bool = False, fsync: bool = False) -> None:
    """Write ``obj`` as JSON (see :func:`json_text`) atomically."""
    atomic_write_text(path, json_text(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii),
                      fsync=fsync)


# ---- completion markers -----------------------------------------------------------------------
def write_marker(path: str | os.PathLike, info: dict[str, Any], *, ensure_ascii: bool = False,
                 fsync: bool = False) -> None:
    """Write a completion marker (a JSON object) atomically; write it after the work it marks."""
    if not isinstance(info, dict):
        raise TypeError(f"a completion marker is a dict; got {type(info).__name__}")
    atomic_write_json(path, info, ensure_ascii=ensure_ascii, fsync=fsync)


def read_marker(path: str | os.PathLike, expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The marker at ``path``, or ``None`` (not done) when it is missing, unreadable, partial, not
    a JSON object, or when one of its ``expect`` fields has another value."""
    try:
        info = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    if expect and any(info.get(k) != v for k, v in expect.items()):
        return None
    return info


class RankMarkers:
    """One completion marker per rank of a run: ``folder / pattern.format(rank=, world=)``."""

    def __init__(self, folder: str | os.PathLike, pattern: str, world_size: int, *, ensure_ascii: bool = False):
        self.folder = Path(folder)
        self.pattern = pattern
        self.world_size = world_size
        self.ensure_ascii = ensure_ascii

    def path(self, rank: int) -> Path:
        return self.folder / self.pattern.format(rank=rank, world=self.world_size)

    def write(self, rank: int, info: dict[str, Any]) -> None:
        write_marker(self.path(rank), info, ensure_ascii=self.ensure_ascii)

    def read(self, rank: int, expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
        return read_marker(self.path(rank), expect)

    def clear(self, rank: int) -> None:
        self.path(rank).unlink(missing_ok=True)

    def missing(self, expect: dict[str, Any] | None = None) -> list[int]:
        """The ranks whose marker is absent, unreadable or does not match ``expect``."""
        return [r for r in range(self.world_size) if self.read(r, expect) is None]


# ---- hashes -----------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- temporary files of killed runs ----------------------------------------------------------
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


def is_tmp_name(name: str) -> bool:
    """Whether ``name`` is a temporary name of this protocol: ``.<name>.tmp-<PID>``."""
    return _TMP.match(name) is not None


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


def remove_stale_tmp_of(*paths: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of these targets (``.<name>.tmp-<PID>`` beside each, a file or a
    folder written under a temporary name) whose PID is dead; return them. For a command that
    writes a few files (or a folder) into a place it does not own: only what it wrote is touched."""
    import shutil

    removed = []
    for target in paths:
        target = Path(target)
        if not target.parent.is_dir():
            continue
        for p in sorted(target.parent.glob(f".{glob.escape(target.name)}.tmp-*")):
            m = _TMP.match(p.name)
            if not m or pid_alive(int(m.group(1))) or p.is_symlink():
                continue
            try:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.is_file():
                    p.unlink()
                else:
                    continue
            except FileNotFoundError:  # removed meanwhile by another cleaner
                continue
            removed.append(p)
    return removed


def discard_tmp(path: str | os.PathLike) -> list[Path]:
    """Delete every temporary file of ``path`` (``.<name>.tmp-*``, any PID); return them. Only for
    a caller that holds ``path``'s lock: no other process may be writing it."""
    path = Path(path)
    removed = []
    for p in sorted(path.parent.glob(f".{glob.escape(path.name)}.tmp-*")):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed

