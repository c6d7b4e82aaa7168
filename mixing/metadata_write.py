"""Writers of mixture metadata: Parquet with the Hub schema, the Hub folder layout, the legacy
JSON layout and JSON Lines (all streaming and atomic). :mod:`mixing.metadata_io` re-exports them."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq

from .metadata import (
    HUB_ARROW_SCHEMA,
    LEGACY_SPLIT_DIR,
    MixtureRecord,
    records_to_arrow,
)
from .resume import AtomicFile, atomic_open


def write_parquet(records: Iterable[MixtureRecord], path: str | os.PathLike, *,
                  row_group_size: int = 10_000) -> int:
    """Write records with the exact Hub schema (streaming, atomic). Returns the row count."""
    target = AtomicFile(path)
    n = 0
    try:
        with pq.ParquetWriter(target.tmp, HUB_ARROW_SCHEMA, compression="zstd") as writer:
            buf: list[MixtureRecord] = []
            for rec in records:
                buf.append(rec)
                if len(buf) >= row_group_size:
                    writer.write_table(records_to_arrow(buf), row_group_size=row_group_size)
                    n += len(buf)
                    buf = []
            if buf or n == 0:
                writer.write_table(records_to_arrow(buf), row_group_size=row_group_size)
                n += len(buf)
        target.commit()
    finally:
        target.abort()
    return n


def write_hub_folder(records: Iterable[MixtureRecord], folder: str | os.PathLike, *,
                     rows_per_file: int = 100_000) -> dict[str, int]:
    """Write ``folder/data/{split}-{i:05d}-of-{n:05d}.parquet`` (the layout ``load_dataset``
    infers splits from). Records of one split must be contiguous or not; memory is bounded by
    ``rows_per_file`` per split. Returns rows per split."""
    folder = Path(folder)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    buffers: dict[str, list[MixtureRecord]] = defaultdict(list)
    parts: dict[str, list[Path]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)

    def flush(split: str) -> None:
        part = data / f".{split}-part{len(parts[split]):05d}.parquet"
        write_parquet(buffers[split], part)
        parts[split].append(part)
        counts[split] += len(buffers[split])
        buffers[split] = []

    for rec in records:
        buffers[rec.split].append(rec)
        if len(buffers[rec.split]) >= rows_per_file:
            flush(rec.split)
    for split in list(buffers):
        if buffers[split]:
            flush(split)
    for split, files in parts.items():
        for old in data.glob(f"{split}-*-of-*.parquet"):
            old.unlink()
        for i, part in enumerate(files):
            os.replace(part, data / f"{split}-{i:05d}-of-{len(files):05d}.parquet")
    return dict(counts)


def write_legacy_json(records: Iterable[MixtureRecord], folder: str | os.PathLike, *,
                      records_per_file: int = 1000) -> dict[str, int]:
    """Write the reference layout ``folder/{train,val,test}/{n}mix/{split}_{n}mix_metadata_tarNNNN.json``.

    Memory is bounded by ``records_per_file`` per (split, n) group. Returns files per group.
    """
    folder = Path(folder)
    buffers: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    files: dict[tuple[str, int], int] = defaultdict(int)

    def flush(group: tuple[str, int]) -> None:
        split, n = group
        legacy = LEGACY_SPLIT_DIR.get(split, split)
        files[group] += 1
        out = folder / legacy / f"{n}mix" / f"{legacy}_{n}mix_metadata_tar{files[group]:04d}.json"
        with atomic_open(out, "w") as fh:
            json.dump(buffers[group], fh, ensure_ascii=False, indent=1)
        buffers[group] = []

    for rec in records:
        group = (rec.split, rec.num_sources)
        buffers[group].append(rec.to_legacy_dict())
        if len(buffers[group]) >= records_per_file:
            flush(group)
    for group in list(buffers):
        if buffers[group]:
            flush(group)
    return {f"{s}/{n}mix": c for (s, n), c in files.items()}


def write_jsonl(records: Iterable[MixtureRecord], path: str | os.PathLike) -> int:
    n = 0
    with atomic_open(path, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_flat_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n
