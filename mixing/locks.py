"""Per-rank locks of an output folder, shared by every command that splits work across ranks
(render, store build, mine, curate: taken by :class:`mixing.ranks.RankRun`).

One process per rank and folder: rank ``r`` holds an exclusive ``flock`` on
``<folder>/_locks/rank-{r:05d}.lock`` for its whole run. The kernel drops the lock when the
process dies, even by ``kill -9``, so a stale file never blocks a rerun. A second process for
the same rank is refused with :class:`FolderLockedError`; so is a live peer (another rank) whose
run is incompatible: another world size, or other ``identity`` fields (e.g. the plan a store
build works on), since their work assignments would overlap.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import HiveError


class FolderLockedError(HiveError):
    """Another live process works on the same rank of the folder, or an incompatible run does."""


class RankLock:
    """Exclusive per-rank lock of an output folder. Holder details (pid, host, rank, world size,
    start time and ``identity``) are written into the lock file for the refusal message.

    ``activity`` names the work in messages ("rendered", "built"); ``error`` is the exception
    class raised on refusal (a :class:`FolderLockedError` subclass)."""

    activity = "used"
    error: type[FolderLockedError] = FolderLockedError

    def __init__(self, output: str | os.PathLike, rank: int, world_size: int, *,
                 identity: dict[str, Any] | None = None, activity: str | None = None,
                 error: type[FolderLockedError] | None = None):
        if activity is not None:
            self.activity = activity
        if error is not None:
            self.error = error
        self.folder = Path(output) / "_locks"
        self.path = self.folder / f"rank-{rank:05d}.lock"
        self.rank, self.world_size = rank, world_size
        self.identity = dict(identity or {})
        self._fd: int | None = None

    @staticmethod
    def _holder(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _describe(h: dict[str, Any]) -> str:
        if not h:
            return "another process"
        return (f"process {h.get('pid')} on {h.get('host')} (rank {h.get('rank')} of "
                f"{h.get('world_size')}, since {h.get('started')})")

    def acquire(self) -> "RankLock":
        for _ in range(100):  # the file may be unlinked by a holder releasing it: open it again
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder was removed by a releasing peer
                continue
            for _attempt in range(5):  # a peer's compatibility probe may hold it for microseconds
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.05)
            else:
                holder = self._holder(self.path)
                os.close(fd)
                raise self.error(
                    f"{self.folder.parent} is being {self.activity} by {self._describe(holder)}; this run is "
                    f"rank {self.rank} of {self.world_size}. Two runs of one rank on one folder "
                    "would delete each other's temporary files: wait for it to finish (or stop it), "
                    "or use another --output folder")
            try:
                linked = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                linked = False
            if linked:
                break
            os.close(fd)  # locked a file its holder had just unlinked: take the new one
        else:  # pragma: no cover - a hundred releases in a row
            raise self.error(f"could not lock {self.path}: it keeps being replaced")
        info = {"pid": os.getpid(), "host": os.uname().nodename, "rank": self.rank,
                "world_size": self.world_size, "identity": self.identity,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        try:
            self._check_peers()
        except BaseException:
            self.release()
            raise
        return self

    def _check_peers(self) -> None:
        """Refuse when a live peer (another rank) runs with another world size or identity."""
        for other in sorted(self.folder.glob("rank-*.lock")):
            if other == self.path:
                continue
            try:
                fd = os.open(other, os.O_RDONLY)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # held: a live peer
                    h = self._holder(other)
                    if h.get("world_size") not in (None, self.world_size):
                        raise self.error(
                            f"{self.folder.parent} is being {self.activity} by {self._describe(h)}; this run "
                            f"is rank {self.rank} of {self.world_size}. Ranks of different world sizes "
                            "would do the same work: use the same --world-size, or another "
                            "--output folder") from None
                    theirs = h.get("identity")
                    if isinstance(theirs, dict) and theirs != self.identity:
                        raise self.error(
                            f"{self.folder.parent} is being {self.activity} by {self._describe(h)} with "
                            f"{theirs}; this run (rank {self.rank} of {self.world_size}) has {self.identity}. "
                            "Two different runs on one folder would overlap: wait for it to finish, "
                            "or run the same command on every rank") from None
                else:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def release(self) -> None:
        """Unlink the lock file (while still holding it, so the output holds no trace of a
        finished run), then drop the lock; a killed holder leaves a stale, unlocked file."""
        if self._fd is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            os.close(self._fd)  # closing drops the flock
            self._fd = None
            try:
                self.folder.rmdir()
            except OSError:  # other ranks' locks are still there
                pass

    def __enter__(self) -> "RankLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
