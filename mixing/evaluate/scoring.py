"""The metric rows of one mixture, alone or in worker processes (``hive eval --num-workers``).

:func:`mixture_rows` computes the oracle rows (``mixture``, ``irm``) and the evaluated system's rows
for the chosen sources of one mixture; :class:`Scorer` runs it inline or in a process pool and
hands the rows back in mixture order (at most ``2 × workers`` mixtures in flight, so memory stays
bounded). BSS-eval SDR (torchmetrics) is the slow part, and it parallelises per mixture.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..workers import process_pool
from .metrics import irm_estimates, sdr, si_sdr


@dataclass
class ScoreTask:
    """One mixture to score: its sample, which sources, and the system's estimates (``[k, T]`` for
    ``estimated`` source indices, or None)."""

    sample: Any
    indices: list[int]
    system: str | None = None
    estimates: np.ndarray | None = None
    estimated: list[int] | None = None
    with_sdr: bool = True


def _rows(system: str, sample: Any, estimates: Any, indices: list[int], si_mix: dict[int, float],
          sdr_mix: dict[int, float] | None, with_sdr: bool) -> list[dict[str, Any]]:
    """Metric rows of ``estimates[j]`` against the reference of source ``indices[j]`` (0-based),
    one source at a time (no array of every reference or estimate is copied)."""
    rows = []
    for j, i in enumerate(indices):
        ref = sample.stems[i]
        s = si_sdr(estimates[j], ref)
        d = float(sdr(estimates[j][None], ref[None])[0]) if with_sdr else float("nan")
        row = {"system": system, "split": sample.split, "mix_id": sample.mix_id,
               "num_sources": sample.num_sources, "source_index": i + 1, "label": sample.labels[i],
               "si_sdr": s, "si_sdr_mix": si_mix[i], "si_sdri": s - si_mix[i],
               "sdr": d, "sdr_mix": float("nan"), "sdri": float("nan")}
        if sdr_mix is not None:
            row["sdr_mix"] = sdr_mix[i]
            row["sdri"] = d - sdr_mix[i]
        rows.append(row)
    return rows


def mixture_rows(task: ScoreTask) -> list[dict[str, Any]]:
    """The ``mixture`` and ``irm`` oracle rows and the system's rows of one mixture."""
    sample, idx = task.sample, task.indices
    refs = sample.stems  # float32 [n, T]; each metric converts one row at a time
    mix = sample.mix.astype(np.float64)
    si_mix = {i: si_sdr(mix, refs[i]) for i in idx}
    mixes = np.broadcast_to(mix, (len(idx), mix.shape[0]))  # the mixture as every source's estimate: a view
    chosen = refs if len(idx) == len(refs) else refs[idx]
    sdr_mix = dict(zip(idx, sdr(mixes, chosen).tolist())) if task.with_sdr else None
    rows = _rows("mixture", sample, mixes, idx, si_mix, sdr_mix, task.with_sdr)
    irm = irm_estimates(mix, refs)  # the mask needs every reference
    rows += _rows("irm", sample, [irm[i] for i in idx], idx, si_mix, sdr_mix, task.with_sdr)
    del irm
    if task.system is not None and task.estimated:
        rows += _rows(task.system, sample, task.estimates, task.estimated, si_mix, sdr_mix, task.with_sdr)
    return rows


class Scorer:
    """Scores mixtures inline (``workers`` 1) or in a spawned process pool, rows in submission order."""

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[Future] = deque()
        self._ready: deque[list[dict[str, Any]]] = deque()

    def __enter__(self) -> "Scorer":
        if self.workers > 1:
            self._pool = process_pool(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            for f in self._pending:
                f.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, task: ScoreTask) -> Iterator[list[dict[str, Any]]]:
        """Queue one mixture; yields the rows of the mixtures that are done, in order."""
        if self._pool is None:
            yield mixture_rows(task)
            return
        self._pending.append(self._pool.submit(mixture_rows, task))
        while len(self._pending) > 2 * self.workers or (self._pending and self._pending[0].done()):
            yield self._pending.popleft().result()

    def drain(self) -> Iterator[list[dict[str, Any]]]:
        while self._pending:
            yield self._pending.popleft().result()
