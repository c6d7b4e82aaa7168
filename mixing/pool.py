"""The single-event pool: typed clip records, validation, and JSONL / Parquet readers and writers.

A pool entry is one *virtual* chunk of one original file (offsets into the file; no segment
file is needed) carrying exactly one label::

    clip_id, path (<corpus prefix>/<relative path>), chunk_start_second, chunk_end_second,
    label, label_id, native_sample_rate, num_channels, split [, provenance]

``provenance`` is free-form (tagger top-k with scores, judge answers, model ids, prompt hashes);
it is kept as a JSON object in JSONL and as a JSON string column in Parquet. A provenance key
``original_path`` names the original file when ``path`` points at a written segment file; the
split rules group clips by that original file (see :mod:`mixing.synthesis.splits`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import MISSING, HiveError, InputFileError, InvalidRecordError, short_repr
from .input_files import (
    BadLine, check_regular_file, iter_jsonl, iter_parquet_batches, load_json_file, open_parquet,
)
from .metadata import Seconds, normalise_split
from .resume import AtomicFile
from .validation import check_metadata_path, check_mix_id

POOL_FIELDS = ("clip_id", "path", "chunk_start_second", "chunk_end_second", "label", "label_id",
               "native_sample_rate", "num_channels", "split")
POOL_ARROW_SCHEMA = pa.schema([
    pa.field("clip_id", pa.string()),
    pa.field("path", pa.string()),
    pa.field("chunk_start_second", pa.float64()),
    pa.field("chunk_end_second", pa.float64()),
    pa.field("label", pa.string()),
    pa.field("label_id", pa.string()),
    pa.field("native_sample_rate", pa.int32()),
    pa.field("num_channels", pa.int32()),
    pa.field("split", pa.string()),
    pa.field("provenance", pa.string()),  # JSON object, "" when none
])
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

OnError = Literal["raise", "skip"]


class InvalidPoolEntryError(HiveError, ValueError):
    """A pool entry breaks the pool format."""

    def __init__(self, where: str, field_name: str, value: Any, expected: str):
        self.where = where
        self.field = field_name
        self.value = value
        self.expected = expected
        super().__init__(f"pool entry {where}: field {field_name!r} is {short_repr(value)}; expected {expected}")

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "field": self.field, "value": short_repr(self.value, 200),
                "expected": self.expected, "reason": "invalid_pool_entry"}


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One labelled single-event chunk of one original file."""

    clip_id: str
    path: str
    chunk_start_second: Seconds
    chunk_end_second: Seconds
    label: str
    label_id: str
    native_sample_rate: int
    num_channels: int
    split: str
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def duration(self) -> Seconds:
        return self.chunk_end_second - self.chunk_start_second

    @property
    def prefix(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def original_file(self) -> str:
        """The original file this chunk was cut from (the unit the split rules keep together)."""
        orig = self.provenance.get("original_path") if self.provenance else None
        return orig if isinstance(orig, str) and orig else self.path

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in POOL_FIELDS}
        if self.provenance:
            out["provenance"] = dict(self.provenance)
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str = "<entry>") -> "PoolEntry":
        return validate_pool_entry(raw, where)


# ---- validation ------------------------------------------------------------------------------
def _str_field(raw: Mapping[str, Any], name: str, where: str, allow_empty: bool = False) -> str:
    if name not in raw:
        raise InvalidPoolEntryError(where, name, MISSING, "a required field")
    v = raw[name]
    if not isinstance(v, str) or (not v and not allow_empty) or _CONTROL.search(v):
        raise InvalidPoolEntryError(where, name, v, "a non-empty string without control characters"
                                    if not allow_empty else "a string without control characters")
    return v


def _num_field(raw: Mapping[str, Any], name: str, where: str) -> float:
    if name not in raw:
        raise InvalidPoolEntryError(where, name, MISSING, "a required field")
    v = raw[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InvalidPoolEntryError(where, name, v, "a finite number of seconds")
    return float(v)


def _int_field(raw: Mapping[str, Any], name: str, where: str, hi: int) -> int:
    if name not in raw:
        raise InvalidPoolEntryError(where, name, MISSING, "a required field")
    v = raw[name]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= hi:
        raise InvalidPoolEntryError(where, name, v, f"an integer in 1..{hi}")
    return v


def validate_pool_entry(raw: Any, where: str = "<entry>") -> PoolEntry:
    """Check one raw pool row (dict) and return a :class:`PoolEntry`.

    Raises :class:`InvalidPoolEntryError` (and nothing else) on bad input.
    """
    if isinstance(raw, PoolEntry):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise InvalidPoolEntryError(where, "<entry>", raw, "a JSON object per pool entry")
    clip_id = _str_field(raw, "clip_id", where)
    try:
        check_mix_id(clip_id)
    except InvalidRecordError:
        raise InvalidPoolEntryError(where, "clip_id", clip_id, "a key without '.', '/', '\\' or "
                                    "whitespace, at most 255 characters") from None
    where = f"{where} ({clip_id})"
    path = _str_field(raw, "path", where)
    try:
        check_metadata_path(path)
    except InvalidRecordError as exc:
        raise InvalidPoolEntryError(where, "path", path, exc.expected) from None
    cs = _num_field(raw, "chunk_start_second", where)
    ce = _num_field(raw, "chunk_end_second", where)
    if not 0 <= cs < ce:
        raise InvalidPoolEntryError(where, "chunk", (cs, ce), "0 <= chunk_start_second < chunk_end_second")
    label = _str_field(raw, "label", where)
    label_id = _str_field(raw, "label_id", where, allow_empty=True) if raw.get("label_id") is not None else ""
    sr = _int_field(raw, "native_sample_rate", where, 1_000_000)
    ch = _int_field(raw, "num_channels", where, 1024)
    split = normalise_split(_str_field(raw, "split", where))
    if not _SPLIT_NAME.fullmatch(split):
        raise InvalidPoolEntryError(where, "split", split, "a split name of letters, digits, '_' or '-'")
    prov = raw.get("provenance") or {}
    if isinstance(prov, str):
        try:
            prov = json.loads(prov)
        except json.JSONDecodeError:
            raise InvalidPoolEntryError(where, "provenance", prov, "a JSON object") from None
    if not isinstance(prov, Mapping):
        raise InvalidPoolEntryError(where, "provenance", prov, "an object (or nothing)")
    return PoolEntry(clip_id, path, cs, ce, label, label_id, sr, ch, split, dict(prov))


@dataclass
class PoolReport:
    """What :func:`read_pool` skipped, by field (complete counts, capped examples)."""

    valid: int = 0
    invalid: int = 0
    by_field: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, err: InvalidPoolEntryError) -> None:
        self.invalid += 1
        self.by_field[err.field] = self.by_field.get(err.field, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(err.to_dict())


# ---- reading -----------------------------------------------------------------------------------
def _pool_files(path: Path) -> list[Path]:
    if os.path.exists(path) and not path.is_dir():
        check_regular_file(path, "pool file", InputFileError)  # a FIFO or device: refused unopened
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".jsonl", ".parquet")
                       and not p.name.startswith(("_", ".")))
        if files:
            return files
        raise HiveError(f"pool folder {path} holds no .jsonl or .parquet file; expected a pool written "
                        "by write_pool or by the mining stages")
    raise HiveError(f"pool {path} does not exist; pass a .jsonl or .parquet pool file (or a folder of them)")


def _raw_rows(path: Path) -> Iterator[tuple[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        pf = open_parquet(path, "pool file", InputFileError)
        i = 0
        for batch in iter_parquet_batches(pf, f"pool file {path}", InputFileError, batch_size=8192):
            for row in batch.to_pylist():
                yield f"{path.name}[{i}]", row
                i += 1
    elif suffix == ".json":
        data = load_json_file(path, "pool file", "a JSON list of pool entries", InputFileError)
        if not isinstance(data, list):
            raise HiveError(f"pool file {path} holds a JSON {type(data).__name__}; expected a list of entries")
        for i, row in enumerate(data):
            yield f"{path.name}[{i}]", row
    elif suffix == ".jsonl":
        for lineno, row in iter_jsonl(path, "pool file", InputFileError):
            if isinstance(row, BadLine):
                bad = InvalidPoolEntryError(f"{path.name}:{lineno}", "<line>", MISSING, "one JSON object per line")
                bad.args = (row.message,)  # names the file, line and byte offset
                row = bad
            yield f"{path.name}:{lineno}", row
    else:
        raise HiveError(f"pool file {path} has suffix {suffix!r}; expected .jsonl, .json or .parquet")


def iter_pool(path: str | os.PathLike, *, on_error: OnError = "raise",
              report: PoolReport | None = None) -> Iterator[PoolEntry]:
    """Validated entries of a pool file (or folder of files, sorted), in file order."""
    for file in _pool_files(Path(path)):
        for where, raw in _raw_rows(file):
            try:
                if isinstance(raw, InvalidPoolEntryError):
                    raise raw
                entry = validate_pool_entry(raw, where)
            except InvalidPoolEntryError as err:
                if on_error == "raise":
                    raise
                if report is not None:
                    report.add(err)
                continue
            if report is not None:
                report.valid += 1
            yield entry


def read_pool(path: str | os.PathLike, *, on_error: OnError = "raise",
              report: PoolReport | None = None, unique_ids: bool = True) -> list[PoolEntry]:
    """All entries of a pool; clip ids must be unique (a duplicate raises)."""
    entries = list(iter_pool(path, on_error=on_error, report=report))
    if unique_ids:
        check_unique_clip_ids(entries)
    return entries


def check_unique_clip_ids(entries: Iterable[PoolEntry]) -> None:
    seen: set[str] = set()
    for e in entries:
        if e.clip_id in seen:
            raise InvalidPoolEntryError(e.clip_id, "clip_id", e.clip_id, "a clip id used by one entry only")
        seen.add(e.clip_id)


# ---- writing -----------------------------------------------------------------------------------
def pool_to_arrow(entries: list[PoolEntry]) -> pa.Table:
    cols: dict[str, list[Any]] = {f.name: [] for f in POOL_ARROW_SCHEMA}
    for e in entries:
        for name in POOL_FIELDS:
            cols[name].append(getattr(e, name))
        cols["provenance"].append(json.dumps(dict(e.provenance), sort_keys=True) if e.provenance else "")
    return pa.Table.from_pydict(cols, schema=POOL_ARROW_SCHEMA)


def write_pool(entries: Iterable[PoolEntry | Mapping[str, Any]], path: str | os.PathLike) -> int:
    """Write a pool as JSONL or Parquet (by suffix), atomically. Entries are validated first."""
    path = Path(path)
    checked = [validate_pool_entry(e, f"#{i}") for i, e in enumerate(entries)]
    check_unique_clip_ids(checked)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise HiveError(f"pool output {path} has suffix {suffix!r}; expected .jsonl or .parquet")
    with AtomicFile(path) as f:
        if suffix == ".parquet":
            pq.write_table(pool_to_arrow(checked), f.tmp, compression="zstd")
        else:
            with f.open("w") as fh:
                for e in checked:
                    fh.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")
    return len(checked)
