"""``hive store build``: decode and resample every distinct source chunk once, into the store.

* Work: the plan's units (:mod:`mixing.store.plan`); rank ``r`` of ``w`` builds the units with
  ``unit % w == r``, over ``num_workers`` processes. Unit contents never depend on the number of
  workers or ranks, so a store is the same however it was built.
* A unit is written as ``segments/{plan}-{unit:05d}.f32`` (temporary name, then renamed), then
  its index part ``index/{plan}-{unit:05d}.parquet`` (the same way). A part exists only for a
  whole segment, so a build killed at any point (``kill -9``, a full disk) leaves nothing
  half-registered, and the rerun writes exactly the units without a part.
* When every unit of the plan has its part, the rank that notices merges all parts into
  ``index.parquet`` and rewrites ``_failures.jsonl``. Building later for more metadata extends
  the store: a new plan holds only the chunks the store lacks.
* Ranks, the per-rank lock and the merge are the rank executor's (:class:`mixing.ranks.RankRun`):
  ``_locks/rank-{r:05d}.lock``; a second build of the same rank, or a peer working on another
  plan or world size, is refused. The index parts are the completion markers.
* A chunk whose file is missing, unreadable, refused, too short, or changed while it was being
  read is left out with a named reason (``_failures.jsonl``); the build then exits 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow.parquet as pq

from .. import __version__, numbers
from ..audio import AudioInfo
from ..corpora import DatasetPaths
from ..errors import HiveError, StoreStaleError
from ..locks import FolderLockedError, RankLock
from ..ranks import RankRun, Ranks, RankSummary, failure_record, write_manifest
from ..source_chunk import resampled_chunk
from ..resume import AtomicFile, atomic_write_json, discard_tmp, remove_stale_tmp
from ..workers import map_unordered
from .index import INDEX_SCHEMA, ChunkIndex, concat, read_table, rows_table
from .layout import (
    FAILURES, INDEX, INDEX_PARTS, PLANS, SEGMENT_SUFFIX, SEGMENTS, create_or_check, manifest_path, read_manifest,
)
from .plan import DEFAULT_SEGMENT_BYTES, ChunkRef, Plan, PlannedChunk, make_plan
from .reader import PARTS_KEY, index_part_names, merged_part_names

log = logging.getLogger(__name__)
FAILURES_KEY = b"hive_failures"


class StoreLockedError(FolderLockedError):
    """Another live build works on the same rank of the store, or on another plan."""


#: what the store build's per-rank lock calls its work, and its refusal
LOCK_KINDS = {"activity": "built", "error": StoreLockedError}


def StoreLock(output: str | Path, rank: int, world_size: int, *,  # reads as a lock class
              identity: dict[str, Any] | None = None) -> RankLock:
    """The store build's exclusive per-rank lock of ``output`` (:class:`mixing.locks.RankLock`)."""
    return RankLock(output, rank, world_size, identity=identity, **LOCK_KINDS)


@dataclass(frozen=True)
class StoreBuildConfig:
    """How to build: where, at which rate, with how many processes and ranks."""

    output: str
    sample_rate: int | None = None
    num_workers: int = 1
    rank: int = 0
    world_size: int = 1
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    probe_jobs: int = 8

    def __post_init__(self) -> None:
        ranks = Ranks.of(self.rank, self.world_size)
        object.__setattr__(self, "rank", ranks.rank)
        object.__setattr__(self, "world_size", ranks.world_size)
        numbers.check_fields(self, {"num_workers": numbers.WORKERS, "probe_jobs": numbers.WORKERS},
                             where="store build setting")
        if self.segment_bytes < 1 << 20:
            raise HiveError(f"segment_bytes is {self.segment_bytes}; expected at least 1 MiB")

    @property
    def ranks(self) -> Ranks:
        return Ranks(self.rank, self.world_size)


@dataclass
class StoreBuildSummary(RankSummary):
    plan_id: str = ""
    sample_rate: int = 0
    chunks_wanted: int = 0
    chunks_in_store: int = 0
    units_total: int = 0
    units_skipped: int = 0
    units_built: int = 0
    chunks_added: int = 0
    bytes_added: int = 0
    seconds_added: float = 0.0
    elapsed_s: float = 0.0

    def describe(self) -> str:
        fails = (", failures: " + ", ".join(f"{k}={v}" for k, v in sorted(self.failures.items()))
                 if self.failures else "")
        state = "complete" if self.complete else "this rank done; other ranks still building"
        return (f"{self.chunks_wanted} chunks wanted, {self.chunks_in_store} already in the store; "
                f"{self.units_built} unit(s) built ({self.chunks_added} chunks, {self.seconds_added / 3600:.3f} h, "
                f"{self.bytes_added / 1e6:.1f} MB at {self.sample_rate} Hz), {self.units_skipped} already built; "
                f"{self.elapsed_s:.1f} s; {state}{fails}")


def unit_name(plan_id: str, unit: int) -> str:
    return f"{plan_id}-{unit:05d}"


# ---- one unit --------------------------------------------------------------------------------
def build_unit(root: str, plan_id: str, unit: int, chunks: list[PlannedChunk], sample_rate: int) -> dict[str, Any]:
    """Decode, resample and append every chunk of ``unit``; write its segment, then its index
    part. Returns ``{unit, chunks, samples, failures}``."""
    root_p = Path(root)
    name = unit_name(plan_id, unit)
    seg_path = root_p / SEGMENTS / f"{name}{SEGMENT_SUFFIX}"
    part_path = root_p / INDEX_PARTS / f"{name}.parquet"
    discard_tmp(seg_path)  # left by a killed run of this rank (it holds the lock)
    discard_tmp(part_path)
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    offset = 0
    with AtomicFile(seg_path) as af:
        fh = af.open("wb")
        for c in chunks:
            f = c.file
            try:
                info = AudioInfo(f.native_rate, f.frames, f.channels, f.audio_format, f.subtype) \
                    if f.subtype else None  # the plan probed the file: no second header read per chunk
                y = resampled_chunk(f.local, c.start, c.stop, sample_rate, info)
                st = os.stat(f.local)
                if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
                    raise StoreStaleError(f"{f.local} changed while the store was being built (size/mtime "
                                          f"{f.size}/{f.mtime_ns} -> {st.st_size}/{st.st_mtime_ns}); build again")
                if len(y) != c.length:  # pragma: no cover - resample() guarantees the length
                    raise HiveError(f"{f.local}: chunk [{c.start}, {c.stop}) resampled to {len(y)} samples, "
                                    f"expected {c.length}")
            except (HiveError, OSError, ValueError, RuntimeError) as exc:
                failures.append(failure_record(exc, path=f.path, chunks=1, start=c.start, stop=c.stop))
                continue
            data = memoryview(y).cast("B")
            fh.write(data)
            rows.append({"path": f.path, "size": f.size, "mtime_ns": f.mtime_ns, "native_rate": f.native_rate,
                         "file_frames": f.frames, "channels": f.channels,
                         "audio_format": f"{f.audio_format}/{f.subtype}" if f.audio_format else "",
                         "start": c.start, "stop": c.stop, "segment": seg_path.name, "offset": offset,
                         "length": len(y), "crc32": zlib.crc32(data)})
            offset += len(y)
    table = rows_table(rows).replace_schema_metadata({FAILURES_KEY: json.dumps(failures).encode()})
    with AtomicFile(part_path) as af:
        pq.write_table(table, af.tmp, compression="zstd")
    return {"unit": unit, "chunks": len(rows), "samples": offset, "failures": failures}


def unit_done(root: Path, plan_id: str, unit: int) -> dict[str, Any] | None:
    """The finished unit's summary from its index part, or None when it is not finished (no part,
    a damaged part, or its segment is missing/short)."""
    name = unit_name(plan_id, unit)
    part = root / INDEX_PARTS / f"{name}.parquet"
    seg = root / SEGMENTS / f"{name}{SEGMENT_SUFFIX}"
    if not part.is_file():
        return None
    try:
        table = read_table(part)
        meta = pq.read_schema(part).metadata or {}
        failures = json.loads(meta.get(FAILURES_KEY, b"[]"))
    except (HiveError, ValueError, OSError):
        return None
    samples = sum(table.column("length").to_pylist())
    if samples and (not seg.is_file() or seg.stat().st_size < samples * 4):
        return None
    return {"unit": unit, "chunks": table.num_rows, "samples": samples, "failures": failures}


def _build_in_worker(args: tuple) -> dict[str, Any]:
    return build_unit(*args)


# ---- merge -----------------------------------------------------------------------------------
def damaged_segments(root: Path, index: ChunkIndex) -> set[str]:
    """Segments the index names that are missing or shorter than their chunks need."""
    ends = np.zeros(len(index.segments), dtype=np.int64)
    if index.num_chunks:
        np.maximum.at(ends, index.segment_id, (index.offset + index.length) * 4)
    bad = set()
    for name, size in zip(index.segments, ends.tolist()):
        path = root / SEGMENTS / name
        try:
            if path.stat().st_size < size:
                bad.add(name)
        except FileNotFoundError:
            bad.add(name)
    return bad


def drop_segments(table, names: set[str]):
    """``table`` without the rows stored in the segments ``names``."""
    if not names or table.num_rows == 0:
        return table
    import pyarrow as pa
    import pyarrow.compute as pc

    return table.filter(pc.invert(pc.is_in(table.column("segment"), value_set=pa.array(sorted(names)))))


def units_done(root: Path, plan: Plan) -> list[dict[str, Any]] | None:
    """Every unit's summary (:func:`unit_done`), or None while some unit of ``plan`` is not built."""
    done = [unit_done(root, plan.plan_id, u) for u in range(len(plan.units))]
    return None if any(d is None for d in done) else done


def merge_index(root: Path, plan: Plan, probe_failures: list[dict[str, Any]],
                done: list[dict[str, Any]] | None = None) -> bool:
    """When every unit of ``plan`` is done (``done``: :func:`units_done`, read here when not
    given): merge every index part into ``index.parquet`` and rewrite ``_failures.jsonl``
    (idempotent; a concurrent merge by another rank writes the same bytes). Returns whether the
    plan was complete."""
    done = units_done(root, plan) if done is None else done
    if done is None:
        return False
    names = index_part_names(root)
    index_path = root / INDEX
    tables = [read_table(root / INDEX_PARTS / n) for n in names]
    table = concat(tables)
    damaged = damaged_segments(root, ChunkIndex(table))
    fresh = not (index_path.is_file() and merged_part_names(index_path) == names)
    if fresh or damaged:  # else: nothing new since the last merge
        table = drop_segments(table, damaged).replace_schema_metadata({PARTS_KEY: json.dumps(names).encode()})
        with AtomicFile(index_path) as af:
            pq.write_table(table.cast(INDEX_SCHEMA.with_metadata(table.schema.metadata)), af.tmp,
                           compression="zstd")
    write_manifest(root / FAILURES, list(probe_failures) + [f for d in done for f in d["failures"]])
    return True


# ---- driver ----------------------------------------------------------------------------------
def _other_parts_keys(root: Path, merged: set[str]) -> dict[str, set]:
    """plan id -> content keys of its index parts that the merged index does not hold yet."""
    out: dict[str, set] = {}
    for name in index_part_names(root):
        if name in merged:
            continue
        pid = name.rsplit("-", 1)[0]
        try:
            t = read_table(root / INDEX_PARTS / name)
        except HiveError:
            continue  # a damaged part: its unit is rebuilt when its plan runs again
        keys = out.setdefault(pid, set())
        cols = [t.column(c).to_pylist() for c in ("path", "size", "mtime_ns", "start", "stop")]
        keys.update(zip(*cols))
    return out


def _records_rate(refs_rates: set[int], asked: int | None, existing: int | None) -> int:
    if asked is not None:
        return int(asked)
    if len(refs_rates) == 1:
        return next(iter(refs_rates))
    if len(refs_rates) > 1:
        raise HiveError(f"the records ask for several sample rates {sorted(refs_rates)}; a store holds one: "
                        "pass --sample-rate")
    if existing is not None:
        return existing
    raise HiveError("the inputs name no sample rate (a pool has none); pass --sample-rate, e.g. 44100")


def build_store(records: Iterable[Any], dataset_paths: DatasetPaths | str | dict, cfg: StoreBuildConfig, *,
                progress: bool | None = None) -> StoreBuildSummary:
    """Build (or extend) the store ``cfg.output`` with every source chunk of ``records`` (mixture
    records or pool entries)."""
    t0 = time.perf_counter()
    paths = DatasetPaths.coerce(dataset_paths)
    root = Path(cfg.output)
    refs: list[ChunkRef] = []
    rates: set[int] = set()
    for rec in records:
        if hasattr(rec, "sources"):
            rates.add(int(rec.sample_rate))
            refs.extend((s.path, float(s.chunk_start_second), float(s.chunk_end_second)) for s in rec.sources)
        else:
            refs.append((rec.path, float(rec.chunk_start_second), float(rec.chunk_end_second)))
    if not refs:
        raise HiveError("the inputs hold no source chunk (no valid record selected); check --metadata, "
                        "--split and --num-sources")
    existing = read_manifest(root)["sample_rate"] if manifest_path(root).is_file() else None
    rate = _records_rate(rates, cfg.sample_rate, existing)
    create_or_check(root, rate, __version__)
    remove_stale_tmp(root / PLANS, recursive=False)

    index_path = root / INDEX
    merged_names = set(merged_part_names(index_path)) if index_path.is_file() else set()
    merged = ChunkIndex(read_table(index_path) if index_path.is_file() else INDEX_SCHEMA.empty_table())
    damaged = damaged_segments(root, merged)
    if damaged:  # their chunks are built again, into new segments; the merge drops the old rows
        log.warning("source store %s: %d segment(s) missing or truncated (%s); their chunks are built again",
                    root, len(damaged), ", ".join(sorted(damaged)[:3]))
        merged = ChunkIndex(drop_segments(merged.table, damaged))
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm.auto import tqdm

    ranks = cfg.ranks
    with tqdm(total=len({r[0] for r in refs}), unit="file", desc=f"store probe[{ranks.rank}]", disable=not show) as bar:
        plan = make_plan(refs, paths, rate, merged_keys=merged.keys(),
                         other_parts_keys=_other_parts_keys(root, merged_names), known=merged.files,
                         segment_bytes=cfg.segment_bytes, jobs=cfg.probe_jobs, progress=bar)
    summary = StoreBuildSummary(plan.plan_id, rate, plan.wanted, plan.in_store, len(plan.units))
    summary.failures.update(f["reason"] for f in plan.failures for _ in range(f.get("chunks", 1)))
    atomic_write_json(root / PLANS / f"{plan.plan_id}.json",
                      {"plan": plan.plan_id, "sample_rate": rate, "units": len(plan.units),
                       "chunks": plan.num_chunks, "bytes": plan.num_bytes})
    with RankRun(root, ranks, identity={"plan": plan.plan_id}, clean_tmp=False, **LOCK_KINDS) as run:
        mine = []
        for u in ranks.indices(len(plan.units)):
            built = unit_done(root, plan.plan_id, u)
            if built is not None:
                summary.units_skipped += 1
                summary.failures.update(f["reason"] for f in built["failures"])
            else:
                mine.append(u)
        bar = tqdm(total=sum(len(plan.units[u]) for u in mine), unit="chunk", desc=f"store build[{ranks.rank}]",
                   disable=not show)
        jobs = [(str(root), plan.plan_id, u, plan.units[u], rate) for u in mine]
        for res in map_unordered(_build_in_worker, jobs, cfg.num_workers):  # workers die with this process
            summary.units_built += 1
            summary.chunks_added += res["chunks"]
            summary.bytes_added += res["samples"] * 4
            summary.seconds_added += res["samples"] / rate
            summary.failures.update(f["reason"] for f in res["failures"])
            bar.update(res["chunks"] + len(res["failures"]))
        bar.close()
        done = units_done(root, plan)  # the index parts are the markers: every unit of the plan has one
        summary.complete = run.merge_once(lambda: merge_index(root, plan, plan.failures, done),
                                          ready=lambda: done is not None).merged
    summary.elapsed_s = time.perf_counter() - t0
    return summary
