"""``hive verify``: the checks of one output shard (a WebDataset tar or a Parquet file) and its ledger checksum."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputFileError
from .input_files import (
    iter_tar_members,
)
from .resume import file_sha256
from .verify_report import ShardReport
from .verify_sample import (
    AUDIO_EXTS,
    AUDIO_FORMATS,
    DEFAULT_ATOL,
    STEM_NAME,
    WDS_NAME,
    SampleChecker,
    ShardGroup,
)


def _iter_tar_samples(path: Path, rep: ShardReport) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """Stream ``(key, [(suffix, bytes), ...])`` of contiguous members; report non-file members."""
    key: str | None = None
    members: list[tuple[str, bytes]] = []

    def skipped(name: str) -> None:
        rep.add("stray_member", f"tar member {name!r} is not a regular file", member=name)

    try:
        for name, data in iter_tar_members(path, "shard", on_skipped=skipped):
            match = WDS_NAME.match(name)
            if match is None:
                rep.add("stray_member", f"tar member {name!r} has no '<key>.<suffix>' name", member=name)
                continue
            k, suffix = match.group(1), match.group(2)
            if k != key:
                if key is not None:
                    yield key, members
                key, members = k, []
            members.append((suffix, data or b""))
    except InputFileError as exc:
        rep.add("unreadable_shard", str(exc))
    if key is not None:
        yield key, members


def verify_tar(path: Path, rel: str, group: ShardGroup, atol: float = DEFAULT_ATOL,
               config: dict | None = None, max_problems: int = 1000) -> ShardReport:
    rep = ShardReport(rel, "webdataset", max_problems=max_problems)
    checker = SampleChecker(rep, group, atol, config)
    local_seen: set[str] = set()
    for key, items in _iter_tar_samples(path, rep):
        rep.samples += 1
        if key in local_seen:
            rep.add("duplicate_sample", "the key appears again after other samples (members of a sample "
                    "must be contiguous)", key)
        local_seen.add(key)
        json_raw: bytes | None = None
        audio: dict[str, bytes | None] = {}
        exts: set[str] = set()
        for suffix, data in items:
            if suffix == "json":
                if json_raw is not None:
                    rep.add("duplicate_member", "two JSON members", key, f"{key}.json")
                json_raw = data
                continue
            name, _, ext = suffix.rpartition(".")
            if not name or ext not in AUDIO_EXTS or not (name == "mix" or STEM_NAME.fullmatch(name)):
                rep.add("stray_member", f"unexpected member suffix {suffix!r}", key, f"{key}.{suffix}")
                continue
            if name in audio:
                rep.add("duplicate_member", f"member {name} appears twice", key, f"{key}.{suffix}")
                continue
            exts.add(ext)
            audio[name] = data
        if len(exts) > 1:
            rep.add("wrong_format", f"audio members mix extensions {sorted(exts)}", key)
        rec, obj = checker.parse_json(key, json_raw)
        prov = checker.provenance(key, rec, obj) if rec is not None and obj is not None else None
        checker.audio(key, rec, prov, audio, min(exts) if exts else None)
    return rep


# ---- Parquet shards --------------------------------------------------------------------------
def _expected_schema() -> pa.Schema:
    from .shards import RENDERED_ARROW_SCHEMA

    return RENDERED_ARROW_SCHEMA


def verify_parquet(path: Path, rel: str, group: ShardGroup, atol: float = DEFAULT_ATOL,
                   config: dict | None = None, max_problems: int = 1000) -> ShardReport:
    rep = ShardReport(rel, "parquet", max_problems=max_problems)
    checker = SampleChecker(rep, group, atol, config)
    try:
        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    except (OSError, pa.ArrowException) as exc:
        rep.add("unreadable_shard", f"not a readable Parquet file ({exc})")
        return rep
    want = _expected_schema()
    have = pf.schema_arrow.remove_metadata()
    if not have.equals(want):
        missing = [n for n in want.names if n not in have.names]
        extra = [n for n in have.names if n not in want.names]
        rep.add("schema_mismatch", f"schema differs from the rendered layout (missing columns {missing}, "
                f"extra columns {extra}, or other types)")
    names = [n for n in have.names if n in want.names]
    local_seen: set[str] = set()
    try:
        for batch in pf.iter_batches(batch_size=1, columns=names):
            for row in batch.to_pylist():
                rep.samples += 1
                _check_parquet_row(row, checker, rep, local_seen)
    except (OSError, pa.ArrowException) as exc:
        rep.add("unreadable_shard", f"the Parquet file cannot be read to the end ({exc})")
    return rep


def _check_parquet_row(row: dict[str, Any], checker: SampleChecker, rep: ShardReport, seen: set[str]) -> None:
    key = row.get("mix_id")
    if not isinstance(key, str):
        rep.add("invalid_record", f"row has mix_id {key!r}")
        return
    if key in seen:
        rep.add("duplicate_sample", "two rows with this mix_id", key)
    seen.add(key)
    rec, obj = checker.parse_json(key, row.get("render_json"))
    prov = checker.provenance(key, rec, obj) if rec is not None and obj is not None else None
    ext = AUDIO_FORMATS[prov["audio_format"]][0] if prov is not None else None
    audio: dict[str, bytes | None] = {}
    exts: set[str] = set()

    def take(name: str, cell: Any) -> None:
        if not isinstance(cell, dict) or cell.get("bytes") is None:
            audio[name] = None
            return
        p = cell.get("path")
        m = re.fullmatch(re.escape(key) + r"\.(mix|s[1-9]\d*)\.(\w+)", p) if isinstance(p, str) else None
        if m is None or m.group(1) != name:
            rep.add("stray_member", f"audio of {name} has path {p!r}; expected '{key}.{name}.<ext>'", key, p)
        else:
            exts.add(m.group(2))
        if name in audio and audio[name] is not None:
            rep.add("duplicate_member", f"member {name} appears twice", key, p)
        audio[name] = cell["bytes"]

    take("mix", row.get("mix"))
    sources = row.get("sources") or []
    for i, cell in enumerate(sources, 1):
        take(f"s{i}", cell)
    if len(exts) > 1:
        rep.add("wrong_format", f"audio members mix extensions {sorted(exts)}", key)
    if exts:
        ext = min(exts)
    checker.audio(key, rec, prov, audio, ext)
    if rec is None:
        return
    # the flat columns must say what the JSON says
    hub = rec.to_hub_row()
    expect = {"split": rec.split, "num_sources": rec.num_sources, "target_duration": rec.target_duration,
              "labels": rec.labels, "source_metadata": hub["sources"],
              "global_normalization_factor": rec.global_normalization_factor,
              "final_max_amplitude": rec.final_max_amplitude}
    if prov is not None:
        expect["sample_rate"] = prov["sample_rate"]
    for col, value in expect.items():
        if col in row and row[col] != value:
            rep.add("column_mismatch", f"column {col} is {row[col]!r:.120}; the JSON says {value!r:.120}", key)


# ---- the folder --------------------------------------------------------------------------------

def shard_checksum(path: Path, entry: dict[str, Any]) -> str:
    """The ledger checksum of a shard file: over its pieces' byte ranges when the ledger lists
    pieces (:func:`mixing.shards.pieces_digest`), else the sha256 of the whole file."""
    pieces = entry.get("pieces")
    if not isinstance(pieces, list):
        return file_sha256(path)
    import hashlib

    from .shards import pieces_digest

    found = []
    with open(path, "rb") as fh:
        for piece in pieces:
            if not (isinstance(piece, list) and len(piece) == 3 and all(isinstance(v, int) for v in piece[:2])):
                return "malformed ledger pieces"
            offset, length, _ = piece
            fh.seek(offset)
            h = hashlib.sha256()
            left = length
            while left > 0:
                block = fh.read(min(left, 1 << 20))
                if not block:
                    break
                h.update(block)
                left -= len(block)
            found.append([offset, length, h.hexdigest()])
    return pieces_digest(found)

