"""Work units: how the stream and the ``datasets`` builder cut the metadata files of a split.

A :class:`WorkUnit` is a tuple of :class:`~mixing.unit_rows.Piece` objects: a contiguous row range of a Parquet file
(only the row groups it needs are read) or every ``step``-th row of another file. Units are what
goes into the *list* in ``gen_kwargs`` (key ``units``), so ``num_proc``, ``split_dataset_by_node``
and DataLoader workers divide the work by unit, and each unit is rendered by exactly one process.

Three words, three things: a *metadata file* (:class:`~mixing.metadata_source.MetadataFile`) is
what is read, a *work unit* is what one process renders, an *output shard* is a tar or Parquet
file that ``hive render`` writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .metadata import normalise_split
from .metadata_memory import num_rows as memory_num_rows
from .metadata_source import MetadataFile
from .unit_rows import Piece, parquet_num_rows

__all__ = ["AUTO_UNIT_MULTIPLE", "Piece", "WorkUnit", "auto_num_units", "plan_units"]

#: default number of work units per split is a multiple of this (divisible by 1-6, 8, 10, 12,
#: 15, 16, 20, 24, 30, 40, 48, 60, 80, 120, 240 nodes x workers), so ``split_dataset_by_node``
#: can give whole units to each node instead of skipping examples
AUTO_UNIT_MULTIPLE = 240


@dataclass(frozen=True)
class WorkUnit:
    """One element of the ``gen_kwargs`` list ``units``: the pieces of metadata one process renders
    (``datasets`` calls these list elements its shards; here a shard is only an output shard)."""

    index: int
    split: str
    pieces: tuple[Piece, ...]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}"


def auto_num_units(num_files: int) -> int:
    """The default number of units of a split with ``num_files`` metadata files."""
    return AUTO_UNIT_MULTIPLE * max(1, math.ceil(num_files / AUTO_UNIT_MULTIPLE))


def plan_units(files: Sequence[MetadataFile], split: str, num_units: int | None = None) -> list[WorkUnit]:
    """Cut the metadata files of ``split`` into exactly ``num_units`` units (default
    :func:`auto_num_units`), in metadata order: concatenating the units' rows in index order
    gives every row of the split once.

    Fewer units than files: consecutive files are grouped. More: each file is cut into parts, a
    Parquet file into contiguous row ranges (only those row groups are read), another file into
    interleaved rows (each part re-reads the file but parses only its own rows).
    """
    files = list(files)
    if not files:
        return []
    n = auto_num_units(len(files)) if num_units is None else int(num_units)
    if n < 1:
        raise ValueError(f"num_units is {num_units!r}; expected a positive number of work units")
    split = normalise_split(split)
    f = len(files)
    if n <= f:
        return [WorkUnit(u, split, tuple(Piece(s) for s in files[f * u // n: f * (u + 1) // n])) for u in range(n)]
    units: list[WorkUnit] = []
    for i, file in enumerate(files):
        parts = n // f + (1 if i < n % f else 0)
        if file.kind in ("parquet", "memory"):
            rows = parquet_num_rows(file.location) if file.kind == "parquet" else memory_num_rows(file)
            pieces = [Piece(file, rows * p // parts, rows * (p + 1) // parts) for p in range(parts)]
        else:
            pieces = [Piece(file, p, None, parts) for p in range(parts)]
        units.extend(WorkUnit(len(units), split, (piece,)) for piece in pieces)
    return units
