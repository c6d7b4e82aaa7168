"""What a label filter selects in some metadata, counted before any audio is rendered.

:func:`check_label_selection` reads only the ``split``, ``num_sources`` and source-label columns of
local Parquet files and in-memory tables (column-wise: millions of rows in seconds; other local
formats are read record by record) and raises the filter's one-line
:class:`~mixing.errors.EmptySelectionError` (mixtures per label) when it keeps no mixture. A Hub
id is not read here (its rows are not counted without streaming them all): the stream then simply
yields nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import MetadataSourceError
from .input_files import iter_parquet_batches, open_parquet
from .label_filter import LabelFilter
from .metadata import normalise_split
from .metadata_io import filter_batch, read_metadata_file_arrow
from .metadata_source import MetadataFile

_COLUMNS = ["split", "num_sources", "sources.label"]


def _label_batches(file: MetadataFile, split: str | None, num_sources: int | None) -> Iterator[pa.Array]:
    """The source-label lists of the mixtures of ``split`` / ``num_sources`` in one file."""
    if file.kind == "parquet" and "://" not in file.location:
        pf = open_parquet(file.location, "metadata file", MetadataSourceError)  # the one safe reader
        names = pf.schema_arrow.names
        typ = pf.schema_arrow.field("sources").type if "sources" in names else None
        if {"split", "num_sources"} <= set(names) and typ is not None and pa.types.is_struct(typ) \
                and typ.get_field_index("label") >= 0:
            for batch in iter_parquet_batches(pf, f"metadata file {file.location}", MetadataSourceError,
                                              batch_size=65536, columns=_COLUMNS):
                batch = filter_batch(batch, split, num_sources)
                yield batch.column("sources").field("label")
            return
    if file.kind == "hub" or "://" in file.location:
        return
    for batch in read_metadata_file_arrow(file, split=split, num_sources=num_sources, on_error="skip"):
        yield batch.column("sources").field("label")


def label_selection_counts(files: Sequence[MetadataFile], split: str | None, num_sources: int | None,
                     labels: LabelFilter) -> tuple[int, int, Counter] | None:
    """``(mixtures, kept, Counter[label -> mixtures])`` of the local files; None when a file is
    remote (not counted)."""
    if any(s.kind == "hub" or "://" in s.location for s in files):
        return None
    split = normalise_split(split) if split else None
    total = kept = 0
    per_label: Counter = Counter()
    for file in files:
        for lists in _label_batches(file, split, num_sources):
            if len(lists) == 0:
                continue
            total += len(lists)
            kept += int(labels.keep_mask(lists).sum())
            flat = pc.fill_null(lists.flatten(), "")
            parents = np.asarray(pc.list_parent_indices(lists))
            enc = flat.dictionary_encode()
            names = enc.dictionary.to_pylist()
            pairs = np.unique(parents.astype(np.int64) * len(names) + np.asarray(enc.indices))
            per_label.update(dict(zip(names, np.bincount(pairs % len(names), minlength=len(names)).tolist())))
    return total, kept, +per_label


def check_label_selection(files: Sequence[MetadataFile], split: str | None, num_sources: int | None,
                          labels: LabelFilter | None, where: str) -> int | None:
    """Raise when ``labels`` keeps none of the mixtures (see the module docstring); else the number
    kept (None: not counted)."""
    if labels is None:
        return None
    counted = label_selection_counts(files, split, num_sources, labels)
    if counted is None:
        return None
    total, kept, per_label = counted
    if kept == 0:
        raise labels.nothing_selected(per_label, total, where)
    return kept
