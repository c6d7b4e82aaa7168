"""``hive check``: before a long render, tell the user what is missing.

One pass over the metadata, then one look at each referenced file, then arithmetic:

1. **metadata pass** — validated rows arrive as Arrow batches (:meth:`MetadataSource.arrow_batches`,
   invalid rows counted by field in a :class:`ValidationReport`); each source path is interned to
   an integer id (``dict`` str -> int, one entry per unique file) and appended to compact arrays:
   file ids, chunk starts and ends and crop starts per source, number of sources, rate and split
   code per mixture. Memory grows with the number of sources (28 bytes each) and of unique paths,
   nothing else;
2. **probe** — every unique file is examined once (resolved strictly inside its corpus root, then
   its header read with :func:`mixing.audio.probe` and its last frames decoded with
   :func:`mixing.audio.decode_tail`: a truncated FLAC or MP3 keeps a header that claims the full
   length, so only decoding its end finds it), optionally by a small thread pool (network
   filesystems are I/O bound). A FIFO, device or directory is unreadable and never opened;
3. **renderable counts** — with numpy: a source is fine when its file is present and readable and
   its chunk ends at most :data:`~mixing.audio.EOF_TOLERANCE_FRAMES` frames past the end of the
   file and its crop starts inside the chunk (resampled to the record's rate, as the renderer
   computes it: :func:`mixing.audio.crop_beyond_chunk`); a mixture is renderable when all its sources are (``np.logical_and.reduceat`` over the
   per-mixture spans), counted per split x number of sources.

Every file problem has a named reason, the names every command uses (:mod:`mixing.failures`):
``missing_file``, ``unreadable_audio``, ``unknown_prefix`` (the prefix is not a key of
``dataset_paths.json``), ``unsafe_path`` (resolves outside its root), and per source reference
``chunk_beyond_end`` and ``crop_beyond_chunk`` (the crop starts at or after the end of its chunk
resampled to the record's rate, so the stem would be all zeros); a fine file is ``present``. Metadata paths that are unsafe on their face never
reach the file check: their records are invalid and counted under ``sources[*].path``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .audio import EOF_TOLERANCE_FRAMES, crop_beyond_chunk, decode_tail, probe
from .check_report import FILE_REASONS, INDEXED_FIELD, CheckReport, PrefixReport
from .corpora import DatasetPaths
from .errors import (
    InvalidRecordError,
    MissingSourceAudioError,
    PathEscapesRootError,
    UnknownPrefixError,
    UnreadableAudioError,
)
from .failures import (
    CHUNK_BEYOND_END,
    CROP_BEYOND_CHUNK,
)
from .metadata import SPLITS
from .metadata_io import MetadataSource, open_metadata
from .moved_arguments import moved
from .validation import MAX_SOURCES, ValidationReport

logger = logging.getLogger(__name__)

#: file status codes (index into FILE_REASONS)
PRESENT, MISSING, UNREADABLE, UNKNOWN, UNSAFE = range(len(FILE_REASONS))
#: mixtures examined per numpy block in the renderable pass (bounds the temporaries)
_BLOCK_MIXTURES = 1 << 20
#: files handed to the thread pool at a time (bounds the pending futures)
_PROBE_BLOCK = 2048


# ---- 1. metadata pass -----------------------------------------------------------------------------
class _Index:
    """Interned paths and compact per-source / per-mixture arrays."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.paths: list[str] = []
        self.file_ids = array("i")  # per source
        self.chunk_end = array("d")  # per source
        self.chunk_start = array("d")  # per source
        self.crop_start = array("d")  # per source
        self.sample_rate = array("I")  # per mixture (the record's output rate)
        self.num_sources = array("B")  # per mixture
        self.split_code = array("H")  # per mixture
        self.split_names: list[str] = []
        self._split_ids: dict[str, int] = {}

    @property
    def mixtures(self) -> int:
        return len(self.num_sources)

    def _intern(self, strings: list[str], table: dict[str, int], names: list[str]) -> np.ndarray:
        out = np.empty(len(strings), dtype=np.int64)
        for i, s in enumerate(strings):
            code = table.get(s)
            if code is None:
                code = table[s] = len(names)
                names.append(s)
            out[i] = code
        return out

    def add(self, batch: pa.RecordBatch) -> None:
        """Append one validated Hub-schema batch."""
        if batch.num_rows == 0:
            return
        children = dict(zip([f.name for f in batch.schema.field("sources").type],
                            batch.column("sources").flatten()))
        paths = children["path"]
        counts = pc.list_value_length(paths).to_numpy(zero_copy_only=False)
        enc = pc.dictionary_encode(paths.flatten())
        ids = self._intern(enc.dictionary.to_pylist(), self.ids, self.paths)[
            enc.indices.to_numpy(zero_copy_only=False)]
        self.file_ids.frombytes(ids.astype(np.int32).tobytes())
        ends = children["chunk_end_second"].flatten().to_numpy(zero_copy_only=False)
        self.chunk_end.frombytes(np.ascontiguousarray(ends, dtype=np.float64).tobytes())
        for name, arr in (("chunk_start_second", self.chunk_start), ("crop_start_second", self.crop_start)):
            values = children[name].flatten().to_numpy(zero_copy_only=False)
            arr.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        rates = batch.column("sample_rate").to_numpy(zero_copy_only=False)
        self.sample_rate.frombytes(np.ascontiguousarray(rates, dtype=np.uint32).tobytes())
        self.num_sources.frombytes(counts.astype(np.uint8).tobytes())
        split = pc.dictionary_encode(batch.column("split"))
        codes = self._intern(split.dictionary.to_pylist(), self._split_ids, self.split_names)[
            split.indices.to_numpy(zero_copy_only=False)]
        self.split_code.frombytes(codes.astype(np.uint16).tobytes())


def _progress(progress: bool, **kw):
    from tqdm.auto import tqdm

    # disable=None: tqdm turns itself off when stderr is not a terminal
    return tqdm(disable=None if progress else True, file=sys.stderr, **kw)


# ---- 2. probe -----------------------------------------------------------------------------------
class _Prober:
    """Status, frames and rate of each unique file; one look per file (header, then the last
    frames decoded when ``decode``)."""

    def __init__(self, paths: DatasetPaths, decode: bool = True) -> None:
        self.paths = paths
        self.decode = decode

    def __call__(self, meta_path: str) -> tuple[int, int, int]:
        prefix = meta_path.split("/", 1)[0]
        if prefix not in self.paths.roots:
            return UNKNOWN, 0, 0
        try:
            local = self.paths.resolve(meta_path)
        except PathEscapesRootError:
            return UNSAFE, 0, 0
        except UnknownPrefixError:  # pragma: no cover - checked above
            return UNKNOWN, 0, 0
        try:
            info = probe(local)
            if info.samplerate <= 0:
                return UNREADABLE, 0, 0
            if self.decode:
                decode_tail(local, info)
        except MissingSourceAudioError:
            return MISSING, 0, 0
        except UnreadableAudioError:
            return UNREADABLE, 0, 0
        return PRESENT, info.frames, info.samplerate


def _probe_all(file_paths: list[str], paths: DatasetPaths, jobs: int, progress: bool, decode: bool = True):
    n = len(file_paths)
    status = np.zeros(n, dtype=np.int8)
    frames = np.zeros(n, dtype=np.int64)
    rates = np.zeros(n, dtype=np.int64)
    prober = _Prober(paths, decode)
    bar = _progress(progress, total=n, unit="file", desc="probing files")
    try:
        if jobs <= 1:
            for i, p in enumerate(file_paths):
                status[i], frames[i], rates[i] = prober(p)
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hive-check") as pool:
                for start in range(0, n, _PROBE_BLOCK):
                    block = file_paths[start:start + _PROBE_BLOCK]
                    for j, res in enumerate(pool.map(prober, block)):
                        status[start + j], frames[start + j], rates[start + j] = res
                    bar.update(len(block))
    finally:
        bar.close()
    return status, frames, rates


# ---- the check ----------------------------------------------------------------------------------
@moved(revision="source=open_metadata(location, revision=...)", config="source=open_metadata(location, config=...)")
def check_corpora(source: str | os.PathLike | MetadataSource,
                  dataset_paths: DatasetPaths | Mapping[str, str] | str | os.PathLike,
                  split: str | None = None, num_sources: int | None = None, *,
                  progress: bool = True, jobs: int = 8, examples: int = 5,
                  max_sources: int = MAX_SOURCES, decode_tail: bool = True) -> CheckReport:
    """Check that every file the metadata references is present, readable and long enough.

    ``decode_tail``: also decode the last frames of each file (finds truncated FLAC/MP3 whose
    header still claims the full length; a seek and a few frames per file).

    ``source``: anything :func:`~mixing.metadata_io.open_metadata` accepts, or what it returns
    (``open_metadata(location, revision=..., config=...)`` for a Hub revision or README config); ``dataset_paths``: a
    :class:`DatasetPaths`, a mapping or the path of ``dataset_paths.json``. ``examples`` example
    paths are kept per prefix and reason. Never raises for bad records or files: they are counted.
    """
    if not 1 <= max_sources <= 255:
        raise ValueError(f"max_sources is {max_sources}; expected 1..255")
    if jobs < 1:
        raise ValueError(f"jobs is {jobs}; expected >= 1")
    if examples < 0:
        raise ValueError(f"examples is {examples}; expected >= 0")
    dp_label = str(dataset_paths) if isinstance(dataset_paths, (str, os.PathLike)) else "<mapping>"
    paths = DatasetPaths.coerce(dataset_paths)
    src = source if isinstance(source, MetadataSource) else open_metadata(source)
    timings: dict[str, float] = {}

    # 1. metadata pass
    refused: list[Any] = []
    refused_count = 0

    def on_invalid(err: InvalidRecordError) -> None:
        nonlocal refused_count
        if INDEXED_FIELD.sub("[*]", err.field) == "sources[*].path":
            refused_count += 1
            if len(refused) < examples:
                refused.append({"mix_id": err.to_dict()["mix_id"], "path": err.to_dict()["value"]})

    report = ValidationReport(listener=on_invalid)
    index = _Index()
    t0, c0 = time.perf_counter(), time.process_time()
    bar = _progress(progress, unit="row", desc="reading metadata")
    try:
        for batch in src.arrow_batches(split, num_sources, on_error="skip", report=report,
                                       max_sources=max_sources):
            index.add(batch)
            bar.update(batch.num_rows)
    finally:
        bar.close()
    timings["metadata_s"] = time.perf_counter() - t0
    timings["metadata_cpu_s"] = time.process_time() - c0
    rows_seen = report.valid + report.invalid
    timings["metadata_rows_per_s"] = rows_seen / timings["metadata_s"] if timings["metadata_s"] > 0 else 0.0
    logger.info("metadata: %d valid, %d invalid rows, %d unique files in %.1f s",
                report.valid, report.invalid, len(index.paths), timings["metadata_s"])

    # 2. probe every unique file once
    t1 = time.perf_counter()
    status, frames, rates = _probe_all(index.paths, paths, jobs, progress, decode_tail)
    timings["probe_s"] = time.perf_counter() - t1

    # per-prefix file counts and examples (examples in first-referenced order: deterministic)
    prefix_names: list[str] = []
    prefix_ids: dict[str, int] = {}
    file_prefix = np.empty(len(index.paths), dtype=np.int32)
    for i, p in enumerate(index.paths):
        pre = p.split("/", 1)[0]
        code = prefix_ids.get(pre)
        if code is None:
            code = prefix_ids[pre] = len(prefix_names)
            prefix_names.append(pre)
        file_prefix[i] = code
    prefixes: dict[str, PrefixReport] = {}
    order = sorted(prefix_names, key=lambda p: (p not in paths.roots, p))
    for pre in order:
        known = pre in paths.roots
        prefixes[pre] = PrefixReport(pre, known, str(paths.roots[pre]) if known else None)
    n_pre = len(prefix_names)
    for code, reason in enumerate(FILE_REASONS):
        counts = np.bincount(file_prefix[status == code], minlength=n_pre)
        for j, pre in enumerate(prefix_names):
            setattr(prefixes[pre], reason, int(counts[j]))
    for j, pre in enumerate(prefix_names):
        prefixes[pre].referenced = sum(getattr(prefixes[pre], r) for r in FILE_REASONS)
    if examples:
        bad = np.flatnonzero(status != PRESENT)
        for i in bad:
            rep = prefixes[prefix_names[file_prefix[i]]]
            exs = rep.examples.setdefault(FILE_REASONS[status[i]], [])
            if len(exs) < examples:
                exs.append(index.paths[i])

    # 3. renderable mixtures, per split x number of sources
    t2 = time.perf_counter()
    mixtures, beyond_counts, crop_counts = _renderable(index, status, frames, rates, file_prefix, n_pre, prefixes,
                                                       prefix_names, examples, max_sources)
    for j, pre in enumerate(prefix_names):
        prefixes[pre].chunk_beyond_end = int(beyond_counts[j])
        prefixes[pre].crop_beyond_chunk = int(crop_counts[j])
    timings["renderable_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    timings["total_cpu_s"] = time.process_time() - c0
    return CheckReport(
        metadata=src.location, dataset_paths=dp_label, split=split, num_sources=num_sources,
        known_prefixes=paths.prefixes, prefixes=prefixes, mixtures=mixtures, validation=report,
        refused_metadata_paths=refused_count, refused_metadata_examples=refused,
        source_references=len(index.file_ids), timings=timings)


def _renderable(index: _Index, status, frames, rates, file_prefix, n_pre, prefixes, prefix_names,
                examples: int, max_sources: int):
    n_mix = index.mixtures
    width = max_sources + 1
    n_groups = max(1, len(index.split_names)) * width
    total = np.zeros(n_groups, dtype=np.int64)
    renderable = np.zeros(n_groups, dtype=np.int64)
    beyond_counts = np.zeros(max(n_pre, 1), dtype=np.int64)
    crop_counts = np.zeros(max(n_pre, 1), dtype=np.int64)
    if n_mix:
        file_ids = np.frombuffer(index.file_ids, dtype=np.int32)
        chunk_end = np.frombuffer(index.chunk_end, dtype=np.float64)
        chunk_start = np.frombuffer(index.chunk_start, dtype=np.float64)
        crop_start = np.frombuffer(index.crop_start, dtype=np.float64)
        counts = np.frombuffer(index.num_sources, dtype=np.uint8)
        out_rates = np.frombuffer(index.sample_rate, dtype=np.uint32)
        groups = np.frombuffer(index.split_code, dtype=np.uint16).astype(np.int64) * width + counts
        total += np.bincount(groups, minlength=n_groups)
        offsets = np.zeros(n_mix + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        file_ok = status == PRESENT
        for m0 in range(0, n_mix, _BLOCK_MIXTURES):
            m1 = min(m0 + _BLOCK_MIXTURES, n_mix)
            s0, s1 = offsets[m0], offsets[m1]
            ids = file_ids[s0:s1]
            ok = file_ok[ids]
            # int(chunk_end * sr) - frames > TOL  <=>  chunk_end * sr >= frames + TOL + 1 (chunk_end >= 0)
            with np.errstate(over="ignore", invalid="ignore"):
                beyond = ok & (chunk_end[s0:s1] * rates[ids] >= frames[ids] + (EOF_TOLERANCE_FRAMES + 1))
            if beyond.any():
                where = np.flatnonzero(beyond)
                beyond_counts += np.bincount(file_prefix[ids[where]], minlength=len(beyond_counts))
                if examples:
                    for k in where:
                        i = int(ids[k])
                        rep = prefixes[prefix_names[file_prefix[i]]]
                        exs = rep.examples.setdefault(CHUNK_BEYOND_END, [])
                        end = chunk_end[s0 + k]
                        if len(exs) < examples and not any(
                                e["path"] == index.paths[i] and e["chunk_end_second"] == end for e in exs):
                            exs.append({"path": index.paths[i], "chunk_end_second": float(end),
                                        "end_frame": int(end * int(rates[i])), "frames": int(frames[i]),
                                        "samplerate": int(rates[i])})
                ok &= ~beyond
            # a crop that starts at or after the end of its resampled chunk renders all zeros
            src_rates = np.repeat(out_rates[m0:m1].astype(np.int64), counts[m0:m1])
            crop = ok & crop_beyond_chunk(crop_start[s0:s1], chunk_start[s0:s1], chunk_end[s0:s1], rates[ids],
                                          frames[ids], src_rates)
            if crop.any():
                where = np.flatnonzero(crop)
                crop_counts += np.bincount(file_prefix[ids[where]], minlength=len(crop_counts))
                if examples:
                    for k in where:
                        i = int(ids[k])
                        exs = prefixes[prefix_names[file_prefix[i]]].examples.setdefault(CROP_BEYOND_CHUNK, [])
                        if len(exs) < examples:
                            start, stop = chunk_start[s0 + k], chunk_end[s0 + k]
                            held = (min(int(stop * int(rates[i])), int(frames[i]))
                                    - min(int(start * int(rates[i])), int(frames[i]))) / int(rates[i])
                            exs.append({"path": index.paths[i], "crop_start_second": float(crop_start[s0 + k]),
                                        "chunk_start_second": float(start), "chunk_end_second": float(stop),
                                        "chunk_seconds": max(0.0, held)})
                ok &= ~crop
            mix_ok = np.logical_and.reduceat(ok, offsets[m0:m1] - s0)
            renderable += np.bincount(groups[m0:m1][mix_ok], minlength=n_groups)
    mixtures: dict[str, dict[str, dict[str, int]]] = {}
    split_order = sorted(range(len(index.split_names)), key=lambda c: (
        SPLITS.index(index.split_names[c]) if index.split_names[c] in SPLITS else len(SPLITS),
        index.split_names[c]))
    for c in split_order:
        by_n = {}
        for n in range(1, width):
            g = c * width + n
            if total[g]:
                by_n[f"{n}mix"] = {"total": int(total[g]), "renderable": int(renderable[g])}
        if by_n:
            mixtures[index.split_names[c]] = by_n
    return mixtures, beyond_counts, crop_counts
