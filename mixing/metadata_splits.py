"""The metadata files of each split (:func:`resolve_metadata`), found by
:mod:`mixing.metadata_source` (the one place that knows metadata locations).

A Hub id is resolved the way ``datasets`` resolves it (``load_dataset_builder(...).config.data_files``,
so Parquet files on the Hub are read with range requests); a local folder in the Hub layout whose
``README.md`` declares YAML ``configs`` by its README, with the same config choice; other folders
and files by their layout; files whose split is not in their path are scanned for it.
"""

from __future__ import annotations

import os
from typing import Mapping

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import MetadataSourceError
from .metadata import SPLITS, normalise_split
from .metadata_io import MetadataSource, iter_raw_rows, open_metadata
from .metadata_memory import is_in_memory, memory_batches
from .metadata_source import MetadataFile, classify_location, hub_split_files


def _scan_splits(file: MetadataFile) -> set[str]:
    if file.kind == "memory":
        found = set()
        for batch in memory_batches(file, columns=["split"]):
            if "split" not in batch.schema.names:
                raise MetadataSourceError(f"{file.location} has no 'split' column; expected Hive's metadata "
                                          "columns (mix_id, split, sources, ...)")
            found |= {normalise_split(x) for x in pc.unique(batch.column("split")).to_pylist() if isinstance(x, str)}
        return found
    if file.kind == "parquet":
        table = pq.read_table(file.location, columns=["split"])
        return {normalise_split(s) for s in pc.unique(table.column("split")).to_pylist() if isinstance(s, str)}
    found = set()
    for raw in iter_raw_rows(file):
        if isinstance(raw, Mapping):
            s = raw.get("split")
            if s is None and isinstance(raw.get("dataset_info"), Mapping):
                s = raw["dataset_info"].get("split")
            if isinstance(s, str):
                found.add(normalise_split(s))
    return found


def resolve_metadata(metadata: str | os.PathLike | MetadataSource, *, revision: str | None = None,
                     config: str | None = None, num_sources: int | None = None) -> dict[str, list[MetadataFile]]:
    """``{split: [metadata files]}`` in split order train, validation, test (then others).

    ``config`` names a YAML config of a Hub id / Hub-layout folder; by default the ``{n}mix`` config
    when ``num_sources`` is given and the repository has it, else its declared default, else
    ``all``, else the first (:func:`mixing.metadata_source.choose_config`).
    """
    if is_in_memory(metadata):
        metadata = open_metadata(metadata)
    loc = None if isinstance(metadata, MetadataSource) else classify_location(metadata)
    if isinstance(metadata, MetadataSource) and metadata.kind == "hub":
        location = metadata.location
        first = metadata.files()[0] if metadata.files() else None
        revision = revision or (first.revision if first else None)
        config = config or (first.config if first else None)
        out = hub_split_files(location, revision=revision, config=config, num_sources=num_sources)
    elif loc is not None and loc.kind == "hub":
        out = hub_split_files(loc.location, revision=revision, config=config, num_sources=num_sources)
    else:
        source = metadata if isinstance(metadata, MetadataSource) else open_metadata(
            loc, revision=revision, config=config, num_sources=num_sources)
        out = {}
        unknown = [s for s in source.files() if s.split is None]
        names = set(source.splits())
        for s in unknown:
            names |= _scan_splits(s)
        for split in names:
            out[split] = source.files(split)
    order = {s: i for i, s in enumerate(SPLITS)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
