"""Metadata held in memory: a ``datasets.Dataset``, a ``pyarrow.Table`` or a pandas ``DataFrame``.

``load_dataset("ShandaAI/Hive", split="train").filter(...)`` is the natural way to choose mixtures;
every reader of metadata accepts such an object wherever it accepts a file or a Hub id. It becomes
one :class:`~mixing.metadata_source.MetadataFile` of kind ``"memory"`` whose ``data`` is

* a ``datasets.Dataset`` in the ``"arrow"`` format (it pickles as its cache files plus an
  indices mapping, so a filtered dataset travels cheaply into DataLoader workers), or
* a ``pyarrow.Table`` (a DataFrame is converted once; large string/list types are narrowed to the
  Hub schema's types so the column-wise fast paths apply).

Rows are read in slices (:func:`memory_batches`); nothing here copies the whole table.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, Iterator

import pyarrow as pa

from .errors import MetadataSourceError
from .metadata_source import MetadataFile

KIND = "memory"
_BATCH = 8192


def is_in_memory(obj: Any) -> bool:
    """Whether ``obj`` is in-memory metadata (checked without importing datasets or pandas)."""
    if isinstance(obj, (pa.Table, pa.RecordBatch)):
        return True
    ds = sys.modules.get("datasets")
    if ds is not None and isinstance(obj, (ds.Dataset, ds.DatasetDict, ds.IterableDataset)):
        return True
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _narrow(table: pa.Table) -> pa.Table:
    """Large string/list types (pandas, some ``datasets`` tables) as their plain Hub-schema types."""
    def narrow_type(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t):
            return pa.string()
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(narrow_type(t.value_type))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, narrow_type(f.type)) for f in t])
        return t

    schema = pa.schema([pa.field(f.name, narrow_type(f.type)) for f in table.schema])
    return table if schema.equals(table.schema) else table.cast(schema)


def memory_file(obj: Any) -> MetadataFile:
    """``obj`` as a file of kind ``"memory"`` (raises for the in-memory forms that are not rows)."""
    ds = sys.modules.get("datasets")
    if ds is not None and isinstance(obj, ds.DatasetDict):
        raise MetadataSourceError(f"metadata is a DatasetDict with splits {list(obj)}; pass one split "
                                  "(e.g. dd['train'])")
    if ds is not None and isinstance(obj, ds.IterableDataset):
        raise MetadataSourceError("metadata is a streaming datasets.IterableDataset; pass a datasets.Dataset "
                                  "(load_dataset(..., streaming=False)), a pyarrow.Table, a DataFrame, a file or "
                                  "a Hub id")
    if ds is not None and isinstance(obj, ds.Dataset):
        data: Any = obj.with_format("arrow")
        where = f"<in-memory datasets.Dataset, {len(obj)} rows>"
    elif isinstance(obj, pa.RecordBatch):
        data = _narrow(pa.Table.from_batches([obj]))
        where = f"<in-memory pyarrow.RecordBatch, {obj.num_rows} rows>"
    elif isinstance(obj, pa.Table):
        data = _narrow(obj)
        where = f"<in-memory pyarrow.Table, {obj.num_rows} rows>"
    else:  # a pandas DataFrame
        try:
            data = _narrow(pa.Table.from_pandas(obj, preserve_index=False))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise MetadataSourceError(f"metadata DataFrame cannot be read as Hive rows ({exc}); expected the "
                                      "columns of the Hub's metadata (mix_id, split, sources, ...)") from exc
        where = f"<in-memory pandas.DataFrame, {len(obj)} rows>"
    return MetadataFile(KIND, where, None, data=data)


def num_rows(file: MetadataFile) -> int:
    data = file.data
    return data.num_rows if isinstance(data, pa.Table) else len(data)


def memory_table(file: MetadataFile, start: int = 0, stop: int | None = None) -> pa.Table:
    """Rows ``[start, stop)`` of the file as an Arrow table."""
    n = num_rows(file)
    stop = n if stop is None else min(stop, n)
    start = min(max(0, start), stop)
    data = file.data
    if isinstance(data, pa.Table):
        return data.slice(start, stop - start)
    return _narrow(data[start:stop])


def memory_batches(file: MetadataFile, start: int = 0, stop: int | None = None,
                   columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Rows ``[start, stop)`` in record batches of at most 8192 rows."""
    n = num_rows(file)
    stop = n if stop is None else min(stop, n)
    for a in range(start, stop, _BATCH):
        table = memory_table(file, a, min(stop, a + _BATCH))
        if columns is not None:
            table = table.select([c for c in columns if c in table.schema.names])
        yield from table.combine_chunks().to_batches()


def fingerprint(obj: Any) -> str:
    """A content key of in-memory metadata (a Dataset's own fingerprint, else a hash of its Arrow data)."""
    fp = getattr(obj, "_fingerprint", None)
    if isinstance(fp, str):
        return f"dataset:{fp}"
    table = memory_file(obj).data
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return "arrow:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:32]
