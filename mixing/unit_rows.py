"""Pieces of work units (:class:`Piece`: a row range of one metadata file) and reading their rows.

A Parquet piece reads only the row groups its row range needs; a process keeps the last few row
groups it decoded (consecutive units of one file then decode each row group once). Local paths
and fsspec URLs (``hf://datasets/...``, read with range requests) alike.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import MetadataSourceError
from .metadata_io import filter_batch, iter_raw_rows
from .metadata_source import MetadataFile
from .per_thread import per_thread_cache

_BATCH = 1024


def _is_local(location: str) -> bool:
    return "://" not in location


def open_parquet_location(location: str) -> tuple[pq.ParquetFile, Any]:
    """A ParquetFile for a local path or an fsspec URL (``hf://datasets/...``), and its handle."""
    try:
        if _is_local(location):
            return pq.ParquetFile(location), None
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(location)
        handle = fs.open(path, "rb")
        return pq.ParquetFile(handle), handle
    except (OSError, pa.ArrowInvalid) as exc:
        raise MetadataSourceError(f"{location}: not a readable Parquet file ({exc}); re-download it") from exc


@dataclass(frozen=True)
class Piece:
    """Rows ``[start:stop:step]`` of one metadata file (Parquet: file rows; others: raw rows)."""

    file: MetadataFile
    start: int = 0
    stop: int | None = None
    step: int = 1


def parquet_num_rows(location: str) -> int:
    """The number of rows of a local or remote Parquet metadata file (its footer only)."""
    pf, handle = open_parquet_location(location)
    try:
        return pf.metadata.num_rows
    finally:
        if handle is not None:
            handle.close()



class _RowGroupCache:
    """The last few row groups this process decoded (work units cut a file's row groups into
    row ranges, and one process often renders consecutive units of one file: each row group is
    then decoded once, not once per unit). Local files only; keyed by path, size and mtime.
    One per thread (:func:`_row_groups`): a Parquet reader must not be shared between threads
    (``datasets`` reads several units at once from threads; a shared reader fails or crashes)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._tables: dict[tuple, pa.Table] = {}
        self._files: dict[tuple, pq.ParquetFile] = {}

    def _key(self, location: str) -> tuple:
        st = os.stat(location)
        return (location, st.st_size, st.st_mtime_ns, os.getpid())

    def file(self, location: str) -> pq.ParquetFile:
        key = self._key(location)
        pf = self._files.get(key)
        if pf is None:
            pf, _ = open_parquet_location(location)
            if len(self._files) >= 16:
                self._files.pop(next(iter(self._files)))
            self._files[key] = pf
        return pf

    def row_group(self, location: str, g: int, split: str | None,
                  num_sources: int | None) -> tuple[pa.Table, np.ndarray]:
        """Row group ``g`` pre-filtered like :func:`~mixing.metadata_io.filter_batch`, and the
        positions (within the row group) of the rows kept."""
        key = (*self._key(location), g, split, num_sources)
        entry = self._tables.pop(key, None)
        if entry is None:
            try:
                table = self.file(location).read_row_group(g)
            except (OSError, pa.ArrowInvalid) as exc:
                raise MetadataSourceError(f"{location}: row group {g} is not readable ({exc}); re-download it") from exc
            table = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
            batch = table.combine_chunks().to_batches()
            kept = pa.Table.from_batches([filter_batch(b, split, num_sources) for b in batch], schema=table.schema) \
                if batch else table
            entry = (kept.drop_columns(["__row"]), kept.column("__row").to_numpy())
        self._tables[key] = entry  # most recent last
        while len(self._tables) > self.size:
            self._tables.pop(next(iter(self._tables)))
        return entry


@per_thread_cache(maxsize=1)
def _row_groups() -> _RowGroupCache:
    """This thread's row-group cache."""
    return _RowGroupCache()


def _iter_parquet_range(location: str, start: int, stop: int | None, split: str | None,
                        num_sources: int | None) -> Iterator[Any]:
    """Raw rows of file rows ``[start, stop)``, pre-filtered like :mod:`mixing.metadata_io`
    (split aliases, number of sources; null values kept for validation to report)."""
    if stop is not None and stop <= start:
        return
    if _is_local(location):
        yield from _iter_local_parquet_range(location, start, stop, split, num_sources)
        return
    pf, handle = open_parquet_location(location)
    try:
        md = pf.metadata
        stop = md.num_rows if stop is None else min(stop, md.num_rows)
        offset = 0
        for g in range(md.num_row_groups):
            size = md.row_group(g).num_rows
            if offset + size <= start:
                offset += size
                continue
            if offset >= stop:
                break
            for batch in pf.iter_batches(batch_size=_BATCH, row_groups=[g]):
                lo, hi = max(start - offset, 0), min(stop - offset, batch.num_rows)
                offset += batch.num_rows
                if hi <= lo:
                    continue
                batch = filter_batch(batch.slice(lo, hi - lo), split, num_sources)
                yield from batch.to_pylist()
                if offset >= stop:
                    return
    finally:
        if handle is not None:
            handle.close()


def _iter_local_parquet_range(location: str, start: int, stop: int | None, split: str | None,
                              num_sources: int | None) -> Iterator[Any]:
    md = _row_groups().file(location).metadata
    stop = md.num_rows if stop is None else min(stop, md.num_rows)
    offset = 0
    for g in range(md.num_row_groups):
        size = md.row_group(g).num_rows
        lo, hi = max(start - offset, 0), min(stop - offset, size)
        offset += size
        if hi <= lo:
            if offset >= stop:
                return
            continue
        table, rows = _row_groups().row_group(location, g, split, num_sources)
        i0, i1 = int(np.searchsorted(rows, lo)), int(np.searchsorted(rows, hi))
        for first in range(i0, i1, _BATCH):
            yield from table.slice(first, min(_BATCH, i1 - first)).to_pylist()
        if offset >= stop:
            return


def iter_piece_rows(piece: Piece, split: str | None, num_sources: int | None) -> Iterator[Any]:
    """The raw rows of one piece of a work unit, pre-filtered by split and number of sources."""
    file = piece.file
    if file.kind == "memory" and piece.step == 1:
        from .metadata_io import _iter_memory_rows

        return _iter_memory_rows(file, split, num_sources, piece.start, piece.stop)
    if file.kind == "parquet" and piece.step == 1:
        return _iter_parquet_range(file.location, piece.start, piece.stop, split, num_sources)
    if file.kind == "parquet":
        rows: Iterable[Any] = _iter_parquet_range(file.location, 0, None, split, num_sources)
    else:
        rows = iter_raw_rows(file, split, num_sources)
    return itertools.islice(rows, piece.start, piece.stop, piece.step)
