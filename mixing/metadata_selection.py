"""What a ``--split`` / ``--num-sources`` selection of metadata matches: counted before any work, so
a selection of nothing is refused with a message that lists what the metadata holds."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from .errors import EmptySelectionError, MetadataSourceError
from .input_files import iter_parquet_batches, open_parquet
from .metadata import (
    SPLITS,
    normalise_split,
)
from .metadata_io import (
    _PARQUET_BATCH,
    MetadataSource,
    _iter_memory_rows,
    _iter_parquet_rows,
    iter_raw_rows,
    open_metadata,
)


def _raw_split_count(row: Any, default_split: str | None) -> tuple[Any, Any]:
    if not isinstance(row, dict):
        return None, None
    info = row.get("dataset_info") if isinstance(row.get("dataset_info"), dict) else {}
    split = row.get("split", info.get("split", default_split))
    n = row.get("num_sources")
    if n is None and isinstance(row.get("sources"), (list, dict)):
        sources = row["sources"]
        n = len(sources) if isinstance(sources, list) else len(next(iter(sources.values()), []))
    return split, n


def selection_counts(source: str | os.PathLike | MetadataSource, *, revision: str | None = None,
                     config: str | None = None) -> Counter | None:
    """``Counter[(split, num_sources)]`` of the raw rows of a local source (cheap for Parquet: two
    columns are read); None for a Hub id, whose rows are not counted without streaming them all."""
    src = source if isinstance(source, MetadataSource) else open_metadata(source, revision=revision, config=config)
    if src.kind == "hub":
        return None
    counts: Counter = Counter()
    for file in src.files():
        if file.kind == "memory":
            from .metadata_memory import memory_batches

            for batch in memory_batches(file, columns=["split", "num_sources"]):
                if "split" in batch.schema.names and "num_sources" in batch.schema.names:
                    counts.update(zip((normalise_split(x) if isinstance(x, str) else x
                                       for x in batch.column("split").to_pylist()),
                                      batch.column("num_sources").to_pylist()))
                else:
                    for r in _iter_memory_rows(file, None, None):
                        sp, n = _raw_split_count(r, None)
                        counts[(normalise_split(sp) if isinstance(sp, str) else sp, n)] += 1
                    break
            continue
        if file.kind == "parquet":
            pf = open_parquet(file.location, "metadata file", MetadataSourceError)
            names = pf.schema_arrow.names
            cols = [c for c in ("split", "num_sources") if c in names]
            if len(cols) < 2:  # an unusual layout: count the rows themselves
                rows = ((_raw_split_count(r, file.split)) for r in _iter_parquet_rows(file.location, None, None))
                counts.update((normalise_split(sp) if isinstance(sp, str) else sp, n) for sp, n in rows)
                continue
            for batch in iter_parquet_batches(pf, f"metadata file {file.location}", MetadataSourceError,
                                              batch_size=_PARQUET_BATCH, columns=cols):
                counts.update(zip((normalise_split(x) if isinstance(x, str) else x
                                   for x in batch.column("split").to_pylist()),
                                  batch.column("num_sources").to_pylist()))
        else:
            for row in iter_raw_rows(file):
                sp, n = _raw_split_count(row, file.split)
                counts[(normalise_split(sp) if isinstance(sp, str) else sp, n)] += 1
    return counts


def _describe(counter: Counter, what: str) -> str:
    order = {s: i for i, s in enumerate(SPLITS)}
    keys = sorted(counter, key=lambda k: (0, order.get(k, len(order)), str(k)) if isinstance(k, str)
                  else (1, k if isinstance(k, int) else 0, str(k)))
    return ", ".join(f"{what.format(k)} ({counter[k]})" for k in keys) or "no rows at all"


def _where(source: Any) -> str:
    if isinstance(source, MetadataSource):
        return source.location
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<in-memory {type(source).__name__}>"


def check_selection(source: str | os.PathLike | MetadataSource, split: str | None = None,
                    num_sources: int | None = None, *, revision: str | None = None,
                    config: str | None = None) -> int | None:
    """Raise :class:`EmptySelectionError` when ``split`` / ``num_sources`` match no row of a local
    source, listing what the metadata has; else return the number of rows matched (None: a Hub id,
    not counted)."""
    if split is None and num_sources is None:
        return None
    counts = selection_counts(source, revision=revision, config=config)
    if counts is None:
        return None
    want = normalise_split(split) if split is not None else None
    by_split: Counter = Counter()
    for (sp, _), c in counts.items():
        by_split[sp] += c
    if want is not None and by_split[want] == 0:
        raise EmptySelectionError(
            f"{_where(source)}: no mixtures "
            f"with split {split!r}; the metadata has {_describe(by_split, '{}')}; pass one of these to --split")
    by_n: Counter = Counter()
    for (sp, n), c in counts.items():
        if want is None or sp == want:
            by_n[n] += c
    if num_sources is not None and by_n[num_sources] == 0:
        where = f" in split {want!r}" if want is not None else ""
        raise EmptySelectionError(
            f"{_where(source)}: no mixtures "
            f"with {num_sources} sources{where}; the metadata{where} has {_describe(by_n, '{} sources')}; "
            "pass one of these counts to --num-sources")
    return by_n[num_sources] if num_sources is not None else by_split[want]
