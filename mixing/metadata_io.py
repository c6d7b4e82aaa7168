"""Streaming readers and writers of mixture metadata.

Sources, recognised by :func:`open_metadata` (the rules live in :mod:`mixing.metadata_source`):

* a Hub dataset id (``ORG/NAME``), read with ``datasets.load_dataset(..., streaming=True)``;
* a local Parquet file or folder (the Hub layout; ``datasets.load_dataset(folder)`` reads it),
  where a ``README.md`` YAML ``configs`` header chooses the files of one config;
* the legacy JSON layout ``metadata/{train,val,test}/{2..5}mix/*.json`` (each file a list of
  records), a single ``.json`` file, or JSON Lines (``.jsonl``).

Readers never load a split into memory: Parquet is read batch by batch, JSON file by file.
Every raw row goes through :func:`mixing.validation.parse_mixture`; the caller chooses to raise
on the first bad record or to skip and report.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InvalidRecordError, MetadataSourceError
from .input_files import (
    BadLine,
    iter_jsonl,
    iter_parquet_batches,
    load_json_file,
    open_parquet,
)
from .metadata import (
    HUB_ARROW_SCHEMA,
    SOURCES_ARROW_TYPE,
    SPLIT_ALIASES,
    SPLITS,
    MixtureRecord,
    normalise_split,
    records_to_arrow,
)
from .metadata_source import Location, MetadataFile, classify_location, local_files

# the writers live in metadata_write; this module is the one place callers read and write metadata from
from .metadata_write import (  # noqa: F401
    write_hub_folder,
    write_jsonl,
    write_legacy_json,
    write_parquet,
)
from .validation import (
    MAX_SOURCES,
    RecordWarning,
    ValidationReport,
    fast_valid_mask,
    parse_mixture,
)

OnError = Literal["raise", "skip"]
_PARQUET_BATCH = 8192
#: rows converted to Python objects at a time: a few hundred keeps the live containers few (the
#: cyclic GC then stays cheap) and the data in cache; whole 8192-row batches run ~1.7x slower
_PYLIST_ROWS = 512


class MetadataSource:
    """A recognised metadata source: a list of files per split, and a way to read each."""

    def __init__(self, kind: str, location: str, files: list[MetadataFile]):
        self.kind = kind
        self.location = location
        self._files = files

    def __repr__(self) -> str:
        return f"MetadataSource({self.kind!r}, {self.location!r}, {len(self._files)} files)"

    def files(self, split: str | None = None) -> list[MetadataFile]:
        """The metadata files that may hold rows of ``split`` (all when None), in a deterministic order."""
        if split is None:
            return list(self._files)
        split = normalise_split(split)
        if self.kind == "hub":
            return [MetadataFile("hub", s.location, split, s.revision, s.config) for s in self._files]
        return [f for f in self._files if f.split in (None, split)]

    #: the name before issue 20 ("shard" now means only an output shard of ``hive render``)
    shards = files

    def splits(self) -> list[str]:
        known = {s.split for s in self._files if s.split}
        return [s for s in SPLITS if s in known] + sorted(known - set(SPLITS))

    def records(self, split: str | None = None, num_sources: int | None = None, *,
                on_error: OnError = "raise", report: ValidationReport | None = None,
                max_sources: int = MAX_SOURCES) -> Iterator[MixtureRecord]:
        for file in self.files(split):
            yield from read_metadata_file(file, split=split, num_sources=num_sources, on_error=on_error,
                                  report=report, max_sources=max_sources)

    def arrow_batches(self, split: str | None = None, num_sources: int | None = None, *,
                      on_error: OnError = "raise", report: ValidationReport | None = None,
                      max_sources: int = MAX_SOURCES) -> Iterator[pa.RecordBatch]:
        """What :meth:`records` yields, as Arrow batches of the Hub schema (see :func:`read_metadata_file_arrow`)."""
        for file in self.files(split):
            yield from read_metadata_file_arrow(file, split=split, num_sources=num_sources, on_error=on_error,
                                        report=report, max_sources=max_sources)


# ---- recognising a source --------------------------------------------------------------------
def open_metadata(source: str | os.PathLike | Location, *, revision: str | None = None,
                  config: str | None = None, num_sources: int | None = None) -> MetadataSource:
    """Recognise ``source`` (Hub id, Parquet file/folder, Hub-layout folder with README configs,
    legacy JSON file/folder, JSONL); see :mod:`mixing.metadata_source` for the rules. A Hub id is
    not contacted here (its rows are streamed when read); ``config`` / ``num_sources`` choose the
    README config of a local Hub-layout folder (:func:`~mixing.metadata_source.choose_config`)."""
    from .metadata_memory import is_in_memory, memory_file

    if is_in_memory(source):
        file = memory_file(source)
        return MetadataSource("memory", file.location, [file])
    loc = source if isinstance(source, Location) else classify_location(source)
    if loc.kind == "hub":
        return MetadataSource("hub", loc.location, [MetadataFile("hub", loc.location, None, revision, config)])
    files = local_files(loc, config=config, num_sources=num_sources)
    return MetadataSource("parquet" if loc.kind == "configs" else loc.kind, loc.location, files)


# ---- reading ---------------------------------------------------------------------------------
def _split_values(split: str) -> list[str]:
    return sorted({k for k, v in SPLIT_ALIASES.items() if v == split} | {split})


def _iter_parquet_batches(path: str, split: str | None, num_sources: int | None) -> Iterator[pa.RecordBatch]:
    """Arrow batches of a Parquet file, pre-filtered by split / count where the column allows."""
    pf = open_parquet(path, "metadata file", MetadataSourceError)
    for batch in iter_parquet_batches(pf, f"metadata file {path}", MetadataSourceError, batch_size=_PARQUET_BATCH):
        yield filter_batch(batch, split, num_sources)


def filter_batch(batch: pa.RecordBatch, split: str | None, num_sources: int | None) -> pa.RecordBatch:
    """Keep the rows of ``split`` / ``num_sources`` where the columns allow it (rows whose
    value is null or of another type stay, so that validation reports them)."""
    names = batch.schema.names
    mask = None
    if split is not None and "split" in names and pa.types.is_string(batch.schema.field("split").type):
        mask = pc.is_in(batch.column("split"), value_set=pa.array(_split_values(split)))
    if num_sources is not None and "num_sources" in names and pa.types.is_integer(
            batch.schema.field("num_sources").type):
        m2 = pc.equal(batch.column("num_sources"), num_sources)
        mask = m2 if mask is None else pc.and_(mask, m2)
    return batch if mask is None else batch.filter(pc.fill_null(mask, True))


def _batch_rows(batch: pa.RecordBatch) -> Iterator[Any]:
    for start in range(0, batch.num_rows, _PYLIST_ROWS):
        yield from batch.slice(start, _PYLIST_ROWS).to_pylist()


def _iter_parquet_rows(path: str, split: str | None, num_sources: int | None) -> Iterator[Any]:
    for batch in _iter_parquet_batches(path, split, num_sources):
        yield from _batch_rows(batch)


def _iter_json_rows(path: str) -> Iterator[Any]:
    data = load_json_file(path, "metadata file", "a list of mixture records", MetadataSourceError)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise MetadataSourceError(f"{path}: top-level JSON is {type(data).__name__}; expected a list of mixture records")
    yield from data


def _iter_jsonl_rows(path: str) -> Iterator[Any]:
    for _, row in iter_jsonl(path, "metadata file", MetadataSourceError):
        yield {"mix_id": None, "__bad_json__": row.message} if isinstance(row, BadLine) else row


def _load_hub(file: MetadataFile, split: str | None):
    """``datasets.load_dataset(..., streaming=True)`` with the Hub's failures turned into one
    clear error (no network, unknown repository or revision, unknown split or config)."""
    import datasets

    where = file.location + (f" (revision {file.revision})" if file.revision else "")
    try:
        return datasets.load_dataset(file.location, file.config, split=split, streaming=True,
                                     revision=file.revision)
    except ValueError as exc:
        raise MetadataSourceError(f"{where}: cannot stream split {split!r}: {exc}") from exc
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise MetadataSourceError(
            f"{where}: the Hub dataset cannot be read ({exc}). Check the id and revision, your network "
            "and `hf auth login` for gated or private repositories; or download the metadata once "
            "(`hf download --repo-type dataset ORG/NAME --local-dir DIR`) and pass the local folder") from exc


def _iter_hub_rows(file: MetadataFile, split: str | None) -> Iterator[Any]:
    if split:
        yield from _load_hub(file, split)
        return
    # every split the repository has (not all of SPLITS need exist), in the order of SPLITS
    dsd = _load_hub(file, None)
    names = [s for s in SPLITS if s in dsd] + sorted(set(dsd) - set(SPLITS))
    for s in names:
        yield from dsd[s]


def _memory_batches(file: MetadataFile, split: str | None, num_sources: int | None,
                    start: int = 0, stop: int | None = None) -> Iterator[pa.RecordBatch]:
    from .metadata_memory import memory_batches

    for batch in memory_batches(file, start, stop):
        yield filter_batch(batch, split, num_sources)


def _iter_memory_rows(file: MetadataFile, split: str | None, num_sources: int | None,
                      start: int = 0, stop: int | None = None) -> Iterator[Any]:
    for batch in _memory_batches(file, split, num_sources, start, stop):
        yield from _batch_rows(batch)


def iter_raw_rows(file: MetadataFile, split: str | None = None,
                  num_sources: int | None = None) -> Iterator[Any]:
    """Raw rows of one file (pre-filtered by split / count where the storage allows)."""
    if file.kind == "parquet":
        return _iter_parquet_rows(file.location, split, num_sources)
    if file.kind == "json":
        return _iter_json_rows(file.location)
    if file.kind == "jsonl":
        return _iter_jsonl_rows(file.location)
    if file.kind == "hub":
        return _iter_hub_rows(file, split)
    if file.kind == "memory":
        return _iter_memory_rows(file, split, num_sources)
    raise MetadataSourceError(f"unknown file kind {file.kind!r}")


def _validated(raws: Iterable[Any], split: str | None, num_sources: int | None, on_error: OnError,
               report: ValidationReport | None, max_sources: int) -> Iterator[tuple[int, MixtureRecord]]:
    """(position, record) of the raw rows that validate and match the filters; the rest reported."""
    want_warnings = report is not None
    for i, raw in enumerate(raws):
        warnings: list[RecordWarning] | None = [] if want_warnings else None
        try:
            if isinstance(raw, dict) and "__bad_json__" in raw:
                raise InvalidRecordError(None, "<json>", raw["__bad_json__"], "one JSON object per line")
            rec = parse_mixture(raw, max_sources=max_sources, warnings=warnings)
        except InvalidRecordError as err:
            if on_error == "raise":
                raise
            if report is not None:
                report.add_error(err)
            continue
        if split is not None and rec.split != split:
            continue
        if num_sources is not None and rec.num_sources != num_sources:
            continue
        if report is not None:
            report.valid += 1
            if warnings:
                report.add_warnings(warnings)
        yield i, rec


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error is {on_error!r}; expected 'raise' or 'skip'")


def read_metadata_file(file: MetadataFile, *, split: str | None = None, num_sources: int | None = None,
               on_error: OnError = "raise", report: ValidationReport | None = None,
               max_sources: int = MAX_SOURCES) -> Iterator[MixtureRecord]:
    """Validated records of one file, filtered by split and number of sources."""
    _check_on_error(on_error)
    split = normalise_split(split) if split else None
    for _, rec in _validated(iter_raw_rows(file, split, num_sources), split, num_sources, on_error,
                             report, max_sources):
        yield rec


def _to_hub_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch that passed :func:`fast_valid_mask`, cast to exactly :data:`HUB_ARROW_SCHEMA`."""
    sources = batch.column("sources")
    children = dict(zip([f.name for f in sources.type], sources.flatten()))
    arrays = []
    for f in HUB_ARROW_SCHEMA:
        if f.name == "sources":
            arrays.append(pa.StructArray.from_arrays(
                [children[c.name].cast(c.type) for c in SOURCES_ARROW_TYPE], fields=list(SOURCES_ARROW_TYPE)))
        elif f.name == "num_sources" and "num_sources" not in batch.schema.names:
            arrays.append(pc.list_value_length(children["path"]).cast(f.type))
        else:
            arrays.append(batch.column(f.name).cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=HUB_ARROW_SCHEMA)


def _parquet_arrow_batches(file: MetadataFile, split: str | None, num_sources: int | None,
                           on_error: OnError, report: ValidationReport | None,
                           max_sources: int) -> Iterator[pa.RecordBatch]:
    batches = _memory_batches(file, split, num_sources) if file.kind == "memory" else \
        _iter_parquet_batches(file.location, split, num_sources)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        mask = fast_valid_mask(batch, max_sources)
        if mask is None:
            mask = np.zeros(batch.num_rows, dtype=bool)
        fast_rows = np.flatnonzero(mask)
        keep = mask.copy()
        if split is not None and len(fast_rows):  # fast rows carry canonical split names
            keep &= np.asarray(pc.fill_null(pc.equal(batch.column("split"), split), False), dtype=bool)
        if num_sources is not None and len(fast_rows):
            n = pc.list_value_length(batch.column("sources").field("path"))
            keep &= np.asarray(pc.fill_null(pc.equal(n, num_sources), False), dtype=bool)
        slow_rows = np.flatnonzero(~mask)
        slow: list[tuple[int, MixtureRecord]] = []
        if len(slow_rows):
            raws = _batch_rows(batch.take(pa.array(slow_rows)))
            slow = [(int(slow_rows[i]), rec) for i, rec in
                    _validated(raws, split, num_sources, on_error, report, max_sources)]
        kept = np.flatnonzero(keep)
        if report is not None:
            report.valid += len(kept)
        if not slow:
            if len(kept):
                yield _to_hub_batch(batch.take(pa.array(kept)) if len(kept) < batch.num_rows else batch)
            continue
        parts = [pa.Table.from_batches([_to_hub_batch(batch.take(pa.array(kept)))])] if len(kept) else []
        parts.append(records_to_arrow([rec for _, rec in slow]))
        order = np.argsort(np.concatenate([kept, np.array([i for i, _ in slow])]), kind="stable")
        table = pa.concat_tables(parts).take(pa.array(order)).combine_chunks()
        yield from table.to_batches()


def read_metadata_file_arrow(file: MetadataFile, *, split: str | None = None, num_sources: int | None = None,
                     on_error: OnError = "raise", report: ValidationReport | None = None,
                     max_sources: int = MAX_SOURCES, batch_rows: int = _PARQUET_BATCH) -> Iterator[pa.RecordBatch]:
    """The rows :func:`read_metadata_file` yields, as Arrow batches of exactly :data:`HUB_ARROW_SCHEMA`.

    Same rules, filters, order, errors and report; only faster. For Parquet most rows never
    become Python objects: :func:`~mixing.validation.fast_valid_mask` accepts them column-wise,
    and only the rows it is not sure of go through :func:`~mixing.validation.parse_mixture`
    (with ``on_error="raise"`` the first bad row of a batch raises before the batch is yielded).
    Other sources are read record by record and converted in chunks of ``batch_rows``.
    """
    _check_on_error(on_error)
    split = normalise_split(split) if split else None
    if file.kind in ("parquet", "memory"):
        yield from _parquet_arrow_batches(file, split, num_sources, on_error, report, max_sources)
        return
    buf: list[MixtureRecord] = []
    for rec in read_metadata_file(file, split=split, num_sources=num_sources, on_error=on_error,
                          report=report, max_sources=max_sources):
        buf.append(rec)
        if len(buf) >= batch_rows:
            yield from records_to_arrow(buf).to_batches()
            buf = []
    if buf:
        yield from records_to_arrow(buf).to_batches()


def iter_records(source: str | os.PathLike | MetadataSource, *, split: str | None = None,
                 num_sources: int | None = None, on_error: OnError = "raise",
                 report: ValidationReport | None = None, revision: str | None = None,
                 config: str | None = None, max_sources: int = MAX_SOURCES) -> Iterator[MixtureRecord]:
    """Stream validated records from any supported source."""
    src = source if isinstance(source, MetadataSource) else open_metadata(source, revision=revision, config=config)
    return src.records(split, num_sources, on_error=on_error, report=report, max_sources=max_sources)


#: the names before issue 20 ("shard" now means only an output shard of ``hive render``)
read_shard = read_metadata_file
read_shard_arrow = read_metadata_file_arrow
