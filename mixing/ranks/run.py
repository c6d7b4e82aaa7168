"""One rank's run of a job that splits its work across ranks: the rank executor of render, store
build, mine and curate.

``with RankRun(output, ranks, ...) as run:`` holds this rank's lock on the output folder for the
whole run (:class:`mixing.locks.RankLock`: a second run of the same rank, or a live peer with
another world size or identity, is refused), creates the folder and, when this is the only rank,
removes the temporary files killed earlier runs left (dead PIDs only). Inside:

* :meth:`RankRun.share` / :meth:`RankRun.owns`: this rank's items of the sorted work;
* :meth:`RankRun.mark_done`: this rank's completion marker (:class:`mixing.resume.RankMarkers`),
  written last, after everything it marks; :meth:`RankRun.clear_done` at the start of a rerun;
* :meth:`RankRun.merge_once`: the merge, run once every rank is done, by one rank:

  - when the ranks share a barrier (``torch.distributed``, as ``accelerate launch`` sets up, or
    one the caller passes): every rank meets at it, then rank 0 merges;
  - ``wait=`` (mining): rank 0 waits (polling, with a timeout) until every rank is done, merges;
  - otherwise: whichever rank finds every rank done merges (two ranks finishing at the same
    moment may both merge: merges are idempotent and write the same bytes).

  "Done" is read from the markers (optionally those matching ``expect``, e.g. this run's config
  hash) or from ``ready``, a job's own test (the store: every unit has its index part).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Sequence, TypeVar

from ..errors import HiveError
from ..locks import FolderLockedError, RankLock
from ..resume import RankMarkers, remove_stale_tmp
from .world import Ranks

T = TypeVar("T")
#: ``barrier=AUTO``: the torch.distributed barrier when the launcher set up a group of the ranks
AUTO = "auto"


class RanksNotDoneError(HiveError):
    """The merge was due but some ranks have not finished (their markers are missing)."""


@dataclass(kw_only=True)
class RankSummary:
    """What one rank's run of a job reports (a job's summary adds its own counts): the failures of
    this rank's work by reason, and whether this rank ran the merge (``complete``)."""

    failures: Counter = field(default_factory=Counter)
    complete: bool = False

    @property
    def num_failures(self) -> int:
        return sum(self.failures.values())


@dataclass(frozen=True)
class Merge(Generic[T]):
    """What :meth:`RankRun.merge_once` did: ``merged`` (this rank ran the merge) and its ``result``."""

    merged: bool = False
    result: T | None = None


@dataclass(frozen=True)
class Wait:
    """Rank 0 waits until every rank is done: at most ``timeout`` seconds (None: for ever),
    looking every ``poll`` seconds; then ``error`` (a :class:`HiveError` class) ends ``hint``."""

    timeout: float | None = None
    poll: float = 0.5
    hint: str = "rerun them (finished work is kept)"
    error: type[Exception] = RanksNotDoneError


def group_barrier(world_size: int) -> Callable[[], None] | None:
    """``torch.distributed.barrier`` when the launcher set up a group of ``world_size`` ranks, else
    None (torch is never imported here: only a group someone else started counts)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist.barrier if dist.get_world_size() == world_size else None


class RankRun:
    """Rank ``ranks`` of a job writing into ``output`` (see the module).

    ``activity`` and ``error`` name the work and the refusal in the lock's messages ("rendered",
    :class:`FolderLockedError` subclass); ``identity`` is what every rank of one run shares (a
    peer with another one is refused); ``markers`` are the ranks' completion markers (None: the job
    tells "done" otherwise, through ``ready``); ``clean_tmp``: remove dead processes' temporary
    files under ``output`` when this is the only rank."""

    def __init__(self, output: str | os.PathLike, ranks: Ranks, *, activity: str = "used",
                 error: type[FolderLockedError] = FolderLockedError, identity: dict[str, Any] | None = None,
                 markers: RankMarkers | None = None, clean_tmp: bool = True):
        self.output = Path(output)
        self.ranks = ranks
        self.markers = markers
        self.clean_tmp = clean_tmp
        self.lock = RankLock(self.output, ranks.rank, ranks.world_size, identity=identity, activity=activity,
                             error=error)

    # ---- the run's span: the lock, the folder, stale temporaries ----------------------------------
    def __enter__(self) -> "RankRun":
        self.lock.acquire()
        try:
            self.output.mkdir(parents=True, exist_ok=True)
            if self.clean_tmp and self.ranks.single:  # temporaries of killed earlier runs (dead PIDs)
                remove_stale_tmp(self.output)
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()

    # ---- this rank's work -------------------------------------------------------------------------
    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items of the sorted ``items``."""
        return self.ranks.share(items)

    def owns(self, index: int) -> bool:
        """Whether work item number ``index`` is this rank's."""
        return self.ranks.owns(index)

    # ---- completion markers -----------------------------------------------------------------------
    def _markers(self) -> RankMarkers:
        if self.markers is None:
            raise TypeError("this run has no completion markers; pass markers= to RankRun")
        return self.markers

    def done(self, expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """This rank's marker (matching ``expect``), or None when it is not done."""
        return self._markers().read(self.ranks.rank, expect)

    def clear_done(self) -> None:
        """Remove this rank's marker: a rerun is not done until it writes a new one."""
        self._markers().clear(self.ranks.rank)

    def mark_done(self, info: dict[str, Any]) -> None:
        """Write this rank's completion marker; call it last, after everything it marks."""
        self._markers().write(self.ranks.rank, info)

    def missing(self, expect: dict[str, Any] | None = None) -> list[int]:
        """The ranks not done (no marker matching ``expect``)."""
        return self._markers().missing(expect)

    # ---- the merge ---------------------------------------------------------------------------------
    def merge_once(self, merge: Callable[[], T], *, expect: dict[str, Any] | None = None,
                   ready: Callable[[], bool] | None = None,
                   barrier: Callable[[], None] | str | None = None, wait: Wait | None = None) -> Merge[T]:
        """Run ``merge`` when every rank is done, on the one rank that should (see the module).
        ``barrier``: a callable every rank calls, :data:`AUTO` (:func:`group_barrier`) or None."""
        is_done = ready if ready is not None else (lambda: not self.missing(expect))
        if barrier == AUTO:
            barrier = group_barrier(self.ranks.world_size)
        synced = callable(barrier) and not self.ranks.single
        if synced:
            barrier()  # type: ignore[operator]
        if (synced or wait is not None) and not self.ranks.main:
            return Merge()
        if wait is not None:
            self._wait(is_done, wait, expect)
        elif not is_done():
            if synced:  # every rank passed the barrier, yet one left no marker
                raise RanksNotDoneError(f"{self.output}: ranks {self._missing_text(expect)} met at the barrier "
                                        "without finishing; rerun the same command")
            return Merge()
        return Merge(True, merge())

    def _missing_text(self, expect: dict[str, Any] | None) -> str:
        if self.markers is None:
            return "of this run"
        return f"{self.missing(expect)[:20]} of {self.ranks.world_size}"

    def _wait(self, is_done: Callable[[], bool], wait: Wait, expect: dict[str, Any] | None) -> None:
        start = time.monotonic()
        while not is_done():
            if wait.timeout is not None and time.monotonic() - start > wait.timeout:
                raise wait.error(f"{self.output}: ranks {self._missing_text(expect)} have not finished after "
                                 f"{wait.timeout:.0f} s; {wait.hint}")
            time.sleep(wait.poll)
