"""Planning a store build: which chunks the inputs need, which of them the store lacks, and how
they are packed into units (one segment file each).

The plan is a pure function of the inputs, the source files' states and the store's merged
index, so every rank of a build computes the same plan on its own (no barrier), and a build
killed at any point computes it again on the rerun and skips the units already written:

* ``wanted``: every distinct chunk of the inputs whose file could be probed, as a content key;
* ``candidates`` = wanted minus the merged index; the plan id is a hash of the candidates (and
  the store rate), so it changes only when the merged index or the inputs change;
* ``pending`` = candidates minus the chunks of index parts that belong to *other* plans (an
  earlier build that stopped before its merge: its segments are complete and readable);
* pending chunks, sorted by key, are packed into units of about ``unit_bytes`` each.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..audio import chunk_frames, probe, resampled_length
from ..corpora import DatasetPaths
from ..errors import HiveError, MissingSourceAudioError
from ..ranks import failure_record

#: smallest and largest unit (segment) sizes; a build aims at >= TARGET_UNITS units so that
#: every worker of a small build has work
MIN_UNIT_BYTES = 4 << 20
DEFAULT_SEGMENT_BYTES = 256 << 20
TARGET_UNITS = 64
_ITEM = 4

ChunkRef = tuple[str, float, float]  # (metadata path, chunk_start_second, chunk_end_second)
Key = tuple[str, int, int, int, int]  # (path, size, mtime_ns, start, stop)


@dataclass(frozen=True)
class FileState:
    """A probed source file: where it is, which version it is, what it holds."""

    path: str
    local: str
    size: int
    mtime_ns: int
    native_rate: int
    frames: int
    channels: int
    audio_format: str
    subtype: str


@dataclass(frozen=True)
class PlannedChunk:
    file: FileState
    start: int
    stop: int
    length: int  # samples at the store rate

    @property
    def key(self) -> Key:
        return (self.file.path, self.file.size, self.file.mtime_ns, self.start, self.stop)


@dataclass
class Plan:
    plan_id: str
    sample_rate: int
    wanted: int
    in_store: int
    units: list[list[PlannedChunk]]
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_chunks(self) -> int:
        return sum(len(u) for u in self.units)

    @property
    def num_bytes(self) -> int:
        return sum(c.length for u in self.units for c in u) * _ITEM


def _failure(path: str, exc: BaseException, chunks: int) -> dict[str, Any]:
    return failure_record(exc, path=path, chunks=chunks)


def probe_files(paths: Iterable[str], dataset_paths: DatasetPaths, known: Mapping[str, Any] | None = None,
                jobs: int = 8, progress: Any = None) -> tuple[dict[str, FileState], dict[str, BaseException]]:
    """Probe each distinct file once (threads): ``({path: FileState}, {path: error})``. A file whose
    ``(size, mtime_ns)`` the store already knows (``known[path]`` lists index versions) is not
    opened: its rate and length come from the index."""
    known = known or {}

    def one(path: str) -> tuple[str, FileState | BaseException]:
        try:
            local = str(dataset_paths.resolve(path))
            try:
                st = os.stat(local)
            except FileNotFoundError:
                raise MissingSourceAudioError(f"audio file {local} does not exist") from None
            for v in known.get(path, ()):
                if v.size == st.st_size and v.mtime_ns == st.st_mtime_ns:
                    return path, FileState(path, local, v.size, v.mtime_ns, v.native_rate, v.frames, v.channels,
                                           "", "")
            info = probe(local)
            return path, FileState(path, local, st.st_size, st.st_mtime_ns, info.samplerate, info.frames,
                                   info.channels, info.format, info.subtype)
        except (HiveError, OSError, ValueError, RuntimeError) as exc:
            return path, exc

    ok: dict[str, FileState] = {}
    bad: dict[str, BaseException] = {}
    paths = sorted(set(paths))
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for path, res in pool.map(one, paths):
            if isinstance(res, FileState):
                ok[path] = res
            else:
                bad[path] = res
            if progress is not None:
                progress.update(1)
    return ok, bad


def wanted_chunks(refs: Iterable[ChunkRef], files: Mapping[str, FileState], bad: Mapping[str, BaseException],
                  sample_rate: int) -> tuple[dict[Key, PlannedChunk], list[dict[str, Any]]]:
    """Content keys of the distinct chunks, and the failures (per file, per chunk)."""
    out: dict[Key, PlannedChunk] = {}
    failures: list[dict[str, Any]] = []
    bad_counts: dict[str, int] = {}
    seen: set[ChunkRef] = set()
    for ref in refs:
        if ref in seen:
            continue
        seen.add(ref)
        path, cs, ce = ref
        f = files.get(path)
        if f is None:
            bad_counts[path] = bad_counts.get(path, 0) + 1
            continue
        try:
            start, stop = chunk_frames(cs, ce, f.native_rate, f.frames, f.local)
        except HiveError as exc:
            failures.append({**_failure(path, exc, 1), "chunk_start_second": cs, "chunk_end_second": ce})
            continue
        n = stop - start
        length = n if f.native_rate == sample_rate else resampled_length(n, f.native_rate, sample_rate)
        c = PlannedChunk(f, start, stop, length)
        out.setdefault(c.key, c)
    failures.extend(_failure(path, bad[path], n) for path, n in sorted(bad_counts.items()))
    return out, failures


def plan_id(candidates: Iterable[Key], sample_rate: int) -> str:
    h = hashlib.sha256(f"hive-store-plan v1 {sample_rate}\n".encode())
    for k in sorted(candidates):
        h.update(repr(k).encode())
        h.update(b"\n")
    return h.hexdigest()[:12]


def pack_units(chunks: list[PlannedChunk], segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> list[list[PlannedChunk]]:
    """Consecutive chunks (in key order) grouped into units of about ``unit_bytes``: the total
    over :data:`TARGET_UNITS`, within [:data:`MIN_UNIT_BYTES`, ``segment_bytes``]. Depends only on
    the chunks, never on the number of workers or ranks."""
    chunks = sorted(chunks, key=lambda c: c.key)
    total = sum(c.length for c in chunks) * _ITEM
    unit_bytes = max(1, min(segment_bytes, max(MIN_UNIT_BYTES, math.ceil(total / TARGET_UNITS))))
    units: list[list[PlannedChunk]] = []
    cur: list[PlannedChunk] = []
    size = 0
    for c in chunks:
        cur.append(c)
        size += c.length * _ITEM
        if size >= unit_bytes:
            units.append(cur)
            cur, size = [], 0
    if cur:
        units.append(cur)
    return units


def make_plan(refs: Iterable[ChunkRef], dataset_paths: DatasetPaths, sample_rate: int, *, merged_keys: set[Key],
              other_parts_keys: Mapping[str, set[Key]], known: Mapping[str, Any] | None = None,
              segment_bytes: int = DEFAULT_SEGMENT_BYTES, jobs: int = 8, progress: Any = None) -> Plan:
    """The plan of a build (see the module docstring). ``other_parts_keys``: plan id -> keys of
    that plan's unmerged index parts."""
    refs = list(refs)
    files, bad = probe_files((r[0] for r in refs), dataset_paths, known, jobs, progress)
    wanted, failures = wanted_chunks(refs, files, bad, sample_rate)
    candidates = [k for k in wanted if k not in merged_keys]
    pid = plan_id(candidates, sample_rate)
    elsewhere: set[Key] = set()
    for other, keys in other_parts_keys.items():
        if other != pid:
            elsewhere |= keys
    pending = [wanted[k] for k in candidates if k not in elsewhere]
    return Plan(pid, sample_rate, len(wanted), len(wanted) - len(pending), pack_units(pending, segment_bytes),
                failures)
