"""``hive store verify``: is the store whole, and does it still match its sources?

* every segment the index names exists and is long enough (``missing_segment``,
  ``truncated_segment``); with ``checksums`` every chunk's samples match their CRC-32
  (``checksum_mismatch``);
* with the corpora: every source file the store was built from is still there, unchanged
  (``missing_source``, ``changed_source``: size or mtime differ, so renders mark its chunks
  ``store_stale``), and a seeded sample of chunks re-decoded from the sources equals the stored
  samples within ``atol`` (``decode_mismatch``; ``undecodable_source``).
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..corpora import DatasetPaths
from ..errors import HiveError
from ..source_chunk import resampled_chunk
from .reader import SourceStore

DEFAULT_SAMPLE = 32
DEFAULT_ATOL = 1e-6


@dataclass
class StoreVerifyReport:
    root: str
    chunks: int = 0
    segments_checked: int = 0
    chunks_checksummed: int = 0
    files_checked: int = 0
    chunks_redecoded: int = 0
    max_abs_diff: float = 0.0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(p["problem"] for p in self.problems)

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "chunks": self.chunks, "segments_checked": self.segments_checked,
                "chunks_checksummed": self.chunks_checksummed, "files_checked": self.files_checked,
                "chunks_redecoded": self.chunks_redecoded, "max_abs_diff": self.max_abs_diff,
                "problems_by_kind": dict(sorted(self.counts.items())), "problems": self.problems}

    def format(self, limit: int = 20) -> str:
        lines = [f"source store {self.root}: {self.chunks} chunks; {self.segments_checked} segment(s) checked, "
                 f"{self.chunks_checksummed} chunk checksum(s), {self.files_checked} source file(s) checked, "
                 f"{self.chunks_redecoded} chunk(s) re-decoded (max |diff| {self.max_abs_diff:.3g})"]
        if self.clean:
            lines.append("  clean")
        else:
            lines.append("  problems: " + ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items())))
            for p in self.problems[:limit]:
                lines.append(f"  {p['problem']}: {p['message']}")
            if len(self.problems) > limit:
                lines.append(f"  ... {len(self.problems) - limit} more (see the JSON report)")
        return "\n".join(lines)


def verify_store(root: str | os.PathLike, dataset_paths: DatasetPaths | str | dict | None = None, *,
                 sample: int = DEFAULT_SAMPLE, seed: int = 0, checksums: bool = False,
                 atol: float = DEFAULT_ATOL) -> StoreVerifyReport:
    if sample < 0:
        raise HiveError(f"sample is {sample}; expected a number of chunks >= 0")
    store = SourceStore(root)
    idx = store.index
    rep = StoreVerifyReport(str(store.root), idx.num_chunks)
    bad_segments: set[int] = set()
    for seg in range(len(idx.segments)):
        rep.segments_checked += 1
        path = store.segment_path(seg)
        need = store.needed_bytes(seg)
        if not path.is_file():
            bad_segments.add(seg)
            rep.problems.append({"problem": "missing_segment", "segment": path.name,
                                 "message": f"segment {path} is missing ({int((idx.segment_id == seg).sum())} chunks)"})
        elif path.stat().st_size < need:
            bad_segments.add(seg)
            rep.problems.append({"problem": "truncated_segment", "segment": path.name,
                                 "message": f"segment {path} has {path.stat().st_size} bytes, its index needs {need}"})
    if checksums:
        for row in range(idx.num_chunks):
            if int(idx.segment_id[row]) in bad_segments:
                continue
            data = store.read(row)
            rep.chunks_checksummed += 1
            if zlib.crc32(memoryview(data).cast("B")) != int(idx.crc32[row]):
                rep.problems.append({"problem": "checksum_mismatch", "row": row,
                                     "segment": idx.segments[int(idx.segment_id[row])],
                                     "message": f"chunk {row} in {idx.segments[int(idx.segment_id[row])]} does not "
                                                "match its CRC-32: the segment is damaged"})
    if dataset_paths is None:
        return rep
    paths = DatasetPaths.coerce(dataset_paths)
    current: dict[str, tuple[int, int] | None] = {}
    for path, versions in sorted(idx.files.items()):
        rep.files_checked += 1
        try:
            local = paths.resolve(path)
            st = os.stat(local)
            current[path] = (st.st_size, st.st_mtime_ns)
        except (HiveError, OSError) as exc:
            current[path] = None
            rep.problems.append({"problem": "missing_source", "path": path,
                                 "message": f"{path}: {' '.join(str(exc).split())[:300]}"})
            continue
        if not any((v.size, v.mtime_ns) == current[path] for v in versions):
            rep.problems.append({"problem": "changed_source", "path": path,
                                 "message": f"{local} is now {st.st_size} B / mtime {st.st_mtime_ns}; the store was "
                                            f"built from {[(v.size, v.mtime_ns) for v in versions]}: renders mark its "
                                            "chunks store_stale; run `hive store build` again"})
    rng = np.random.default_rng(seed)
    rows = rng.permutation(idx.num_chunks)[: min(sample, idx.num_chunks)]
    for row in sorted(int(r) for r in rows):
        if int(idx.segment_id[row]) in bad_segments:
            continue
        path = _row_path(idx, row)
        version = next(v for v in idx.files[path] if v.lo <= row < v.hi)
        if current.get(path) != (version.size, version.mtime_ns):
            continue  # reported above; the stored samples cannot be compared with another file
        try:
            fresh = resampled_chunk(str(paths.resolve(path)), int(idx.start[row]), int(idx.stop[row]),
                                    store.sample_rate)
        except (HiveError, OSError, ValueError, RuntimeError) as exc:
            rep.problems.append({"problem": "undecodable_source", "path": path, "row": row,
                                 "message": f"{path}: {' '.join(str(exc).split())[:300]}"})
            continue
        stored = store.read(row)
        rep.chunks_redecoded += 1
        if fresh.shape != stored.shape:
            diff = float("inf")
        else:
            diff = float(np.max(np.abs(fresh.astype(np.float64) - stored))) if stored.size else 0.0
        rep.max_abs_diff = max(rep.max_abs_diff, diff)
        if not diff <= atol:
            rep.problems.append({"problem": "decode_mismatch", "path": path, "row": row,
                                 "message": f"chunk [{int(idx.start[row])}, {int(idx.stop[row])}) of {path}: stored "
                                            f"samples differ from a fresh decode by {diff:.3g} (> {atol:g})"})
    return rep


def _row_path(idx: Any, row: int) -> str:
    return idx.table.column("path")[row].as_py()
