"""The synthesis workers: index ranges of a split synthesized in parallel (spawned processes) and
merged in index order, so the output is the same for any number of workers."""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import sys
import time
from collections import Counter
from typing import Any, Iterator, Mapping

from ..corpora import DatasetPaths
from ..metadata import MixtureRecord
from ..workers import process_pool

logger = logging.getLogger(__name__)
from .job import ChunkResult, SynthesisResult, Synthesizer

# ---- workers ----------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(synth: Synthesizer, paths: DatasetPaths | None) -> None:
    _WORKER["synth"] = synth
    _WORKER["paths"] = paths


def _work(span: tuple[int, int]) -> ChunkResult:
    synth: Synthesizer = _WORKER["synth"]
    paths = _WORKER["paths"]
    if paths is None:
        reasons: Counter = Counter()
        return ChunkResult(synth.sample_parameters(span[0], span[1], reasons), reasons, [])
    return synth.synthesize_range(span[0], span[1], paths)


def _spans(n: int, workers: int, max_chunk: int = 500) -> list[tuple[int, int]]:
    size = max(1, min(max_chunk, math.ceil(n / (workers * 4)) if workers > 1 else max_chunk))
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def synthesize_chunks(synth: Synthesizer, paths: DatasetPaths | None, *, num_workers: int | None = None,
                      progress: bool | None = None) -> Iterator[ChunkResult]:
    """Results of consecutive index ranges, in index order (bounded memory: a consumer that
    writes them out holds only a few ranges at a time)."""
    cfg = synth.config
    workers = max(1, num_workers or cfg.num_workers)
    spans = _spans(cfg.num_mixtures, workers)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.num_mixtures, unit="mix", desc=f"synthesize[{cfg.split}]",
               disable=not (sys.stderr.isatty() if progress is None else progress))
    try:
        if workers == 1 or len(spans) <= 1:
            _init_worker(synth, paths)
            try:
                for span in spans:
                    yield _work(span)
                    bar.update(span[1] - span[0])
            finally:
                _WORKER.clear()
        else:
            ctx = multiprocessing.get_context("spawn")
            with process_pool(workers, mp_context=ctx, initializer=_init_worker, initargs=(synth, paths)) as ex:
                pending: list[tuple[tuple[int, int], Any]] = []
                todo = iter(spans)
                for span in itertools.islice(todo, 2 * workers):
                    pending.append((span, ex.submit(_work, span)))
                while pending:  # in order; at most 2 x workers ranges in flight
                    span, fut = pending.pop(0)
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append((nxt, ex.submit(_work, nxt)))
                    yield fut.result()
                    bar.update(span[1] - span[0])
    finally:
        bar.close()


def checked_paths(synth: Synthesizer, dataset_paths) -> DatasetPaths | None:
    """``dataset_paths`` as a DatasetPaths (None: unlevelled drafts), its prefixes checked against the pool."""
    paths = None if dataset_paths is None else DatasetPaths.coerce(dataset_paths)
    if paths is not None:
        synth.check_prefixes(paths)
    return paths


def synthesize(synth: Synthesizer, dataset_paths: DatasetPaths | Mapping | str | None, *,
               num_workers: int | None = None, progress: bool | None = None) -> SynthesisResult:
    """All ``config.num_mixtures`` mixtures in memory (levels measured unless ``dataset_paths`` is
    None, in which case the records are unlevelled drafts). Identical output for any
    ``num_workers``. :func:`run_synthesis` streams them to disk instead."""
    paths = checked_paths(synth, dataset_paths)
    t0 = time.perf_counter()
    records: list[MixtureRecord] = []
    reasons: Counter = Counter()
    failures: list[dict[str, Any]] = []
    for r in synthesize_chunks(synth, paths, num_workers=num_workers, progress=progress):
        records.extend(r.records)
        reasons.update(r.reasons)
        failures.extend(r.failures)
    if synth.skipped_clips:
        reasons["skipped_clips_unknown_label"] = synth.skipped_clips
    return SynthesisResult(synth.config, records, reasons, failures, time.perf_counter() - t0)
