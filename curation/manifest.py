"""Mining manifests: reading the items a stage works on, and writing what it keeps.

Inputs (detected by suffix and content):

* a JSONL manifest (``.jsonl``: one record per line, as the stages write them; a record needs
  ``path`` and usually ``clip_id``),
* a Parquet manifest (``.parquet``, or a folder of them) with :data:`MANIFEST_SCHEMA`'s columns
  (at least ``path``),
* a stage's output folder (its merged ``output.jsonl``),
* a labelled list, as in the reference pipeline's examples: a JSON list of
  ``{"audio_path": ..., "text_label": str | [str, ...]}`` objects, or a CSV with ``audio_path``
  and ``text_label`` columns (a cell may hold a JSON list) and optional ``split``.

Items get a ``clip_id`` from their path when the input has none (:func:`make_clip_id`); rows
of a labelled list that name the same file are merged into one item with all their labels.
Items are returned sorted by ``clip_id``, which must be unique.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mixing.errors import HiveError
from mixing.input_files import (
    BadLine, depth_exceeded, check_regular_file, iter_csv, iter_jsonl, iter_parquet_batches, open_parquet,
    parse_json, read_text,
)
from mixing.pool import POOL_ARROW_SCHEMA
from mixing.resume import AtomicFile, atomic_open

from .stages.base import ITEM_FIELDS, Item, make_clip_id

MANIFEST_SCHEMA = pa.schema(list(POOL_ARROW_SCHEMA) + [
    pa.field("text_label", pa.string()),  # JSON (string or list), null when none
    pa.field("extra", pa.string()),  # JSON object of any other fields, "" when none
])
OUTPUT_NAME = "output.jsonl"


class ManifestError(HiveError, ValueError):
    """An input manifest cannot be read or breaks the manifest format."""


# ---- reading ----------------------------------------------------------------------------------
def _check_number(row: dict, key: str, where: str, integer: bool = False) -> None:
    v = row.get(key)
    if v is None:
        return
    ok = (isinstance(v, int) if integer else isinstance(v, (int, float))) and not isinstance(v, bool)
    if not ok or (isinstance(v, float) and not math.isfinite(v)):
        raise ManifestError(f"{where}: field {key!r} is {v!r}; expected "
                            f"{'an integer' if integer else 'a finite number'} or null")


def item_from_row(row: Any, where: str) -> tuple[Item, bool]:
    """An item from a manifest record or a labelled-list row; the flag tells whether the id was
    given (``True``) or derived from the path."""
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: got a {type(row).__name__}; expected an object with 'path' "
                            "(manifest) or 'audio_path' and 'text_label' (labelled list)")
    row = dict(row)
    if "path" not in row and "audio_path" in row:  # labelled list row
        row["path"] = row.pop("audio_path")
        if "text_label" not in row and "label" in row:
            row["text_label"] = row.pop("label")
    path = row.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ManifestError(f"{where}: 'path' is {path!r}; expected the audio file's path "
                            "('<corpus prefix>/<relative path>' or a local path)")
    for key in ("chunk_start_second", "chunk_end_second"):
        _check_number(row, key, where)
    for key in ("native_sample_rate", "num_channels"):
        if isinstance(row.get(key), float) and row[key].is_integer():
            row[key] = int(row[key])
        _check_number(row, key, where, integer=True)
    for key in ("label", "label_id", "split"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise ManifestError(f"{where}: {key!r} is {row[key]!r}; expected a string or null")
    if isinstance(row.get("extra"), str):  # the Parquet form
        extra = row.pop("extra")
        row.update(json.loads(extra) if extra else {})
    given = isinstance(row.get("clip_id"), str) and bool(row["clip_id"])
    if not given:
        if row.get("clip_id") not in (None, ""):
            raise ManifestError(f"{where}: 'clip_id' is {row['clip_id']!r}; expected a string")
        offsets = () if row.get("chunk_end_second") is None else (row.get("chunk_start_second") or 0.0,
                                                                   row["chunk_end_second"])
        row["clip_id"] = make_clip_id(path, *offsets)
    try:
        item = Item.from_dict(row)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: {exc}") from None
    if not isinstance(item.provenance, dict):
        raise ManifestError(f"{where}: 'provenance' is {item.provenance!r}; expected an object")
    return item, given


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    for lineno, row in iter_jsonl(path, "manifest", ManifestError):
        if isinstance(row, BadLine):  # invalid UTF-8 (with its byte offset), bad or too deep JSON
            raise ManifestError(row.message)
        yield f"{path}:{lineno}", row


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    pf = open_parquet(path, "manifest", ManifestError)
    i = 0
    for batch in iter_parquet_batches(pf, f"manifest {path}", ManifestError, batch_size=4096):
        for row in batch.to_pylist():
            if isinstance(row.get("text_label"), str):  # written as JSON; a plain string stays one
                try:
                    decoded = json.loads(row["text_label"])
                except json.JSONDecodeError:
                    decoded = None
                if isinstance(decoded, (str, list)):
                    row["text_label"] = decoded
            if row.get("provenance") in ("", None):
                row.pop("provenance", None)
            yield f"{path}[{i}]", {k: v for k, v in row.items() if v is not None or k in ITEM_FIELDS}
            i += 1


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    if path.is_dir():
        if (path / OUTPUT_NAME).is_file():
            yield from _jsonl_rows(path / OUTPUT_NAME)
            return
        files = sorted(path.glob("*.parquet"))
        if files:
            for f in files:
                yield from _parquet_rows(f)
            return
        hint = (" (it holds per-rank outputs: the stage has not finished or was not merged; rerun it or "
                "run 'hive mine merge --output DIR')") if any(path.glob("rank-*.jsonl")) else ""
        raise ManifestError(f"{path} is a folder without {OUTPUT_NAME} or .parquet files{hint}")
    if not os.path.exists(path):
        raise ManifestError(f"input {path} does not exist; expected a JSONL/Parquet manifest, a "
                            "labelled list (.json/.csv) or a stage's output folder")
    check_regular_file(path, "input", ManifestError)  # a FIFO or device: refused, never opened
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(path)
    elif suffix == ".parquet":
        yield from _parquet_rows(path)
    elif suffix == ".csv":
        table = iter_csv(read_text(path, "labelled list", ManifestError), f"labelled list {path}", ManifestError)
        header = next(table, None)
        if not header or not {"audio_path", "path"} & set(header):
            raise ManifestError(f"{path}: CSV columns are {header}; expected audio_path (or path) and text_label")
        for i, cells in enumerate(table, 2):
            if not cells:
                continue
            row = dict(zip(header, cells))
            yield f"{path}:{i}", {k: (v if v != "" or k == "text_label" else None) for k, v in row.items()}
    elif suffix == ".json":
        text = read_text(path, "labelled list", ManifestError)  # invalid UTF-8: the byte offset
        try:
            data = json.loads(text) if not depth_exceeded(text) else parse_json(
                text, f"labelled list {path}", "a list of {audio_path, text_label} objects", ManifestError)
        except json.JSONDecodeError:  # maybe JSON lines under a .json name
            yield from _jsonl_rows(path)
            return
        if not isinstance(data, list):
            raise ManifestError(f"{path} holds a JSON {type(data).__name__}; expected a list of "
                                "{audio_path, text_label} objects")
        for i, row in enumerate(data):
            yield f"{path}[{i}]", row
    else:
        raise ManifestError(f"input {path} has suffix {suffix!r}; expected .jsonl, .parquet, .json or .csv")


def _merge_labels(a: Any, b: Any) -> Any:
    la = a if isinstance(a, list) else ([] if a in (None, "") else [a])
    lb = b if isinstance(b, list) else ([] if b in (None, "") else [b])
    return la + [x for x in lb if x not in la]


def read_items(path: str | os.PathLike) -> list[Item]:
    """All items of an input, sorted by ``clip_id`` (unique)."""
    by_id: dict[str, Item] = {}
    given: dict[str, bool] = {}
    where_of: dict[str, str] = {}
    for where, row in _rows(Path(path)):
        item, explicit = item_from_row(row, where)
        old = by_id.get(item.clip_id)
        if old is None:
            by_id[item.clip_id], given[item.clip_id], where_of[item.clip_id] = item, explicit, where
        elif not explicit and not given[item.clip_id] and old.path == item.path:
            old.text_label = _merge_labels(old.text_label, item.text_label)
        else:
            raise ManifestError(f"{where}: clip_id {item.clip_id!r} was already used at "
                                f"{where_of[item.clip_id]}; expected unique ids")
    return [by_id[k] for k in sorted(by_id)]


# ---- writing ----------------------------------------------------------------------------------
def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def write_jsonl(records: Iterable[dict[str, Any]], path: str | os.PathLike) -> int:
    """Write records atomically (temporary name, then rename)."""
    n = 0
    with atomic_open(path) as fh:
        for r in records:
            fh.write(dumps(r) + "\n")
            n += 1
    return n


def items_to_arrow(records: list[dict[str, Any]]) -> pa.Table:
    cols: dict[str, list[Any]] = {f.name: [] for f in MANIFEST_SCHEMA}
    for r in records:
        for name in ITEM_FIELDS:
            cols[name].append(r.get(name))
        prov = r.get("provenance") or {}
        cols["provenance"].append(json.dumps(prov, ensure_ascii=False, sort_keys=True) if prov else "")
        tl = r.get("text_label")
        cols["text_label"].append(None if tl is None else json.dumps(tl, ensure_ascii=False))
        extra = {k: v for k, v in r.items() if k not in ITEM_FIELDS and k not in ("provenance", "text_label")}
        cols["extra"].append(json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else "")
    return pa.Table.from_pydict(cols, schema=MANIFEST_SCHEMA)


def write_parquet(records: list[dict[str, Any]], path: str | os.PathLike) -> int:
    with AtomicFile(path) as f:
        pq.write_table(items_to_arrow(records), f.tmp, compression="zstd")
    return len(records)
