"""The store's index: content key -> (segment, offset, length), as Parquet on disk and as sorted
numpy arrays in memory.

The content key of a chunk is ``(path, size, mtime_ns, start, stop)`` plus the store's rate:
``path`` is the metadata's ``<corpus prefix>/<relative path>``, ``size``/``mtime_ns`` identify
the version of the source file the chunk was decoded from, ``start``/``stop`` are the chunk's
frames at the file's native rate (after the reference's clamping), and the store rate is the
manifest's. A file that changed since the build has another ``(size, mtime_ns)``, so its old
chunks are never mistaken for the new file's.

In memory (:class:`ChunkIndex`) the rows are sorted by key; a dict maps each path to its file
versions, and each version to its row range, so a lookup is a dict access plus a binary search
over a few rows. A release-sized index (~10^6 chunks) takes ~40 MB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import StoreFormatError

INDEX_SCHEMA = pa.schema([
    pa.field("path", pa.string()),
    pa.field("size", pa.int64()),
    pa.field("mtime_ns", pa.int64()),
    pa.field("native_rate", pa.int32()),
    pa.field("file_frames", pa.int64()),
    pa.field("channels", pa.int32()),
    pa.field("audio_format", pa.string()),
    pa.field("start", pa.int64()),
    pa.field("stop", pa.int64()),
    pa.field("segment", pa.string()),
    pa.field("offset", pa.int64()),
    pa.field("length", pa.int64()),
    pa.field("crc32", pa.int64()),
])
_KEY_ORDER = [("path", "ascending"), ("size", "ascending"), ("mtime_ns", "ascending"),
              ("start", "ascending"), ("stop", "ascending")]


@dataclass(frozen=True)
class FileVersion:
    """One version of a source file in the store and its rows ``[lo, hi)`` in the index."""

    path: str
    size: int
    mtime_ns: int
    native_rate: int
    frames: int
    channels: int
    lo: int
    hi: int


def read_table(path: str | os.PathLike) -> pa.Table:
    """An index file (a part or the merged index) with the index schema; a damaged or foreign
    file is a :class:`StoreFormatError` naming it."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise StoreFormatError(f"store index file {path} cannot be read ({exc}); it is damaged: run "
                               "`hive store build` again (it rewrites missing or damaged index parts)") from exc
    missing = [f.name for f in INDEX_SCHEMA if f.name not in table.column_names]
    if missing:
        raise StoreFormatError(f"store index file {path} lacks the columns {missing}; it is not a store index")
    try:
        return table.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
    except (pa.ArrowException, ValueError) as exc:
        raise StoreFormatError(f"store index file {path} has columns of the wrong type ({exc})") from exc


def concat(tables: Iterable[pa.Table]) -> pa.Table:
    tables = list(tables)
    if not tables:
        return INDEX_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def dedupe_sorted(table: pa.Table) -> pa.Table:
    """Rows sorted by key, one row per key (the first, in the given order, of duplicates)."""
    if table.num_rows == 0:
        return table
    table = table.append_column("_order", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    table = table.sort_by(_KEY_ORDER + [("_order", "ascending")])
    cols = [table.column(c).to_numpy() for c in ("size", "mtime_ns", "start", "stop")]
    paths = table.column("path")
    same = np.ones(table.num_rows, dtype=bool)
    same[0] = False
    for c in cols:
        same[1:] &= c[1:] == c[:-1]
    same[1:] &= pc.equal(paths.slice(1), paths.slice(0, table.num_rows - 1)).to_numpy(zero_copy_only=False)
    return table.filter(pa.array(~same)).drop_columns(["_order"])


class ChunkIndex:
    """Sorted, deduplicated index rows with fast lookup by content key."""

    def __init__(self, table: pa.Table):
        table = dedupe_sorted(table)
        self.table = table
        n = table.num_rows
        self.num_chunks = n
        self.start = table.column("start").to_numpy()
        self.stop = table.column("stop").to_numpy()
        self.offset = table.column("offset").to_numpy()
        self.length = table.column("length").to_numpy()
        self.crc32 = table.column("crc32").to_numpy()
        seg = pc.dictionary_encode(table.column("segment")).combine_chunks() if n else None
        self.segments: list[str] = seg.dictionary.to_pylist() if n else []
        self.segment_id = seg.indices.to_numpy().astype(np.int32) if n else np.zeros(0, np.int32)
        self.files: dict[str, list[FileVersion]] = {}
        if n:
            self._group_files(table)

    def _group_files(self, table: pa.Table) -> None:
        paths = table.column("path").to_pylist()
        size = table.column("size").to_numpy()
        mtime = table.column("mtime_ns").to_numpy()
        rate = table.column("native_rate").to_numpy()
        frames = table.column("file_frames").to_numpy()
        chans = table.column("channels").to_numpy()
        n = len(paths)
        change = np.ones(n, dtype=bool)
        change[1:] = (size[1:] != size[:-1]) | (mtime[1:] != mtime[:-1])
        path_change = [True] + [paths[i] != paths[i - 1] for i in range(1, n)]
        starts = [i for i in range(n) if change[i] or path_change[i]]
        bounds = starts + [n]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            p = paths[lo]
            self.files.setdefault(p, []).append(FileVersion(
                p, int(size[lo]), int(mtime[lo]), int(rate[lo]), int(frames[lo]), int(chans[lo]), lo, hi))

    # ---- lookups -----------------------------------------------------------------------------
    def versions(self, path: str) -> Sequence[FileVersion]:
        return self.files.get(path, ())

    def version(self, path: str, size: int, mtime_ns: int) -> FileVersion | None:
        for v in self.files.get(path, ()):
            if v.size == size and v.mtime_ns == mtime_ns:
                return v
        return None

    def latest(self, path: str) -> FileVersion | None:
        """The newest version (largest mtime) of ``path``, for a store used without its corpora."""
        vs = self.files.get(path)
        return max(vs, key=lambda v: v.mtime_ns) if vs else None

    def find(self, version: FileVersion, start: int, stop: int) -> int:
        """The row of chunk ``[start, stop)`` of ``version``, or -1."""
        lo, hi = version.lo, version.hi
        if hi - lo <= 8:
            for i in range(lo, hi):
                if self.start[i] == start and self.stop[i] == stop:
                    return i
            return -1
        i = lo + int(np.searchsorted(self.start[lo:hi], start))
        while i < hi and self.start[i] == start:
            if self.stop[i] == stop:
                return i
            i += 1
        return -1

    def keys(self) -> set[tuple[str, int, int, int, int]]:
        """Every content key ``(path, size, mtime_ns, start, stop)`` (for planning builds)."""
        out = set()
        for vs in self.files.values():
            for v in vs:
                for i in range(v.lo, v.hi):
                    out.add((v.path, v.size, v.mtime_ns, int(self.start[i]), int(self.stop[i])))
        return out


def rows_table(rows: list[dict]) -> pa.Table:
    """The Arrow table of index ``rows`` (dicts with the index schema's fields)."""
    return pa.Table.from_pylist(rows, schema=INDEX_SCHEMA)
