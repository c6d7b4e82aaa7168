"""The one reader of a ``hive render`` output folder, for every command that reads one (``eval``,
``inspect``, ``curate --rendered``; ``verify`` checks the same files with the same primitives).

Layout: ``DIR/{split}/{n}mix/tar_*.tar`` (WebDataset: members ``<key>.mix.<ext>``,
``<key>.s<i>.<ext>``, ``<key>.json``) or ``part_*.parquet`` (columns ``mix_id``, ``render_json``,
``mix``, ``sources``). Everything read is untrusted (a render folder may come from elsewhere):
shards must be regular files (a FIFO is refused, never opened), JSON is decoded and parsed through
:mod:`mixing.input_files` (UTF-8 with position, depth cap, an object expected), the record must
validate, its ``mix_id`` must equal the sample's key, ``hive_render`` must be an object, and
Parquet cells must have the rendered layout's types. Each failure is one error of the caller's class.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import InputFileError, InvalidRecordError
from .input_files import (
    file_kind, iter_parquet_batches, iter_tar_members, open_parquet, parse_json_bytes, shown_path,
)
from .metadata import MixtureRecord
from .validation import parse_mixture

SHARD_PATTERNS = {"webdataset": "tar_*.tar", "parquet": "part_*.parquet"}
#: ``<key>.<field>[.<ext>]`` with field ``mix``, ``s<i>`` or ``json`` (keys hold no dot)
MEMBER = re.compile(r"^([^.]+)\.(mix|s\d+|json)(?:\.(\w+))?$")
_VERIFY_HINT = "run 'hive verify' on the folder"


@dataclass
class RawSample:
    """One sample as stored: its key, shard (relative path), JSON text and audio bytes by name
    (``mix``, ``s1`` ...; only those asked for)."""

    key: str
    shard: str
    json: bytes | str | None
    audio: dict[str, bytes] = field(default_factory=dict)


def find_shards(root: str | os.PathLike, split: str | None = None, num_sources: int | None = None, *,
                error: type[Exception] = InputFileError) -> list[tuple[Path, str]]:
    """``(shard, format)`` of ``root/{split}/{n}mix/*``, sorted by path. An entry with a shard's
    name that is not a regular file (a FIFO, a folder) raises ``error``."""
    root = Path(root)
    found = []
    group = "*mix" if num_sources is None else f"{num_sources}mix"
    for fmt, pattern in SHARD_PATTERNS.items():
        for p in root.glob(f"{split or '*'}/{group}/{pattern}"):
            if p.parent.parent.name.startswith("_"):
                continue
            kind = file_kind(os.stat(p).st_mode) if os.path.exists(p) else "a dangling link"
            if kind is not None:
                raise error(f"{shown_path(p)} has a shard's name but is {kind}; expected a file written by "
                            f"'hive render'; remove it or {_VERIFY_HINT}")
            found.append((p, fmt))
    return sorted(found, key=lambda t: os.fsencode(t[0]))


def parse_record(raw: bytes | str | None, where: str, key: str | None = None, *,
                 error: type[Exception] = InputFileError) -> tuple[MixtureRecord, dict[str, Any]]:
    """The record of a sample's JSON and its ``hive_render`` provenance (``{}`` when absent)."""
    if raw is None:
        raise error(f"{where}: the sample has no JSON record; {_VERIFY_HINT}")
    obj = parse_json_bytes(raw, where, "a mixture record (a JSON object)", error, expect=dict)
    prov = obj.get("hive_render", {})
    if not isinstance(prov, dict):
        raise error(f"{where}: 'hive_render' is {type(prov).__name__}; expected an object; {_VERIFY_HINT}")
    try:
        rec = parse_mixture(obj)
    except InvalidRecordError as exc:
        raise error(f"{where}: not a valid mixture record ({exc}); {_VERIFY_HINT}") from None
    if key is not None and rec.mix_id != key:
        raise error(f"{where}: the JSON's mix_id {rec.mix_id!r} differs from the sample key {key!r}; "
                    f"{_VERIFY_HINT}")
    return rec, prov


def _tar_samples(path: Path, rel: str, audio: bool | set[str], error: type[Exception]) -> Iterator[RawSample]:
    def want(name: str) -> bool:
        m = MEMBER.match(name)
        if m is None:
            return False
        if m.group(2) == "json":
            return True
        return audio is True or (audio is not False and m.group(1) in audio)

    sample: RawSample | None = None
    for name, data in iter_tar_members(path, "shard", error, want=want):
        m = MEMBER.match(name)
        if m is None:
            continue
        key, what = m.group(1), m.group(2)
        if sample is None or key != sample.key:
            if sample is not None:
                yield sample
            sample = RawSample(key, rel, None)
        if data is None:
            continue
        if what == "json":
            sample.json = data
        else:
            sample.audio[what] = data
    if sample is not None:
        yield sample


def _audio_bytes(cell: Any, where: str, error: type[Exception]) -> bytes | None:
    if cell is None:
        return None
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not isinstance(data, (bytes, bytearray)):
        raise error(f"{where}: the audio cell is {type(cell).__name__}; expected an Audio struct "
                    f"{{bytes, path}}; {_VERIFY_HINT}")
    return bytes(data)


def _parquet_samples(path: Path, rel: str, audio: bool | set[str], error: type[Exception]) -> Iterator[RawSample]:
    cols = ["mix_id", "render_json"] + (["mix", "sources"] if audio is not False else [])
    pf = open_parquet(path, "shard", error, columns=cols)
    where = f"shard {shown_path(path)}"
    for batch in iter_parquet_batches(pf, where, error, batch_size=16, columns=cols):
        for row in batch.to_pylist():
            key, raw = row.get("mix_id"), row.get("render_json")
            if not isinstance(key, str) or not isinstance(raw, (str, type(None))):
                raise error(f"{where}: a row's mix_id / render_json are {type(key).__name__} / "
                            f"{type(raw).__name__}; expected strings; {_VERIFY_HINT}")
            sample = RawSample(key, rel, raw)
            if audio is True or (audio is not False and key in audio):
                mix = _audio_bytes(row.get("mix"), f"{rel} {key} mix", error)
                if mix is not None:
                    sample.audio["mix"] = mix
                stems = row.get("sources") or []
                if not isinstance(stems, list):
                    raise error(f"{rel} {key}: 'sources' is {type(stems).__name__}; expected a list of Audio "
                                f"structs; {_VERIFY_HINT}")
                for i, cell in enumerate(stems, 1):
                    data = _audio_bytes(cell, f"{rel} {key} s{i}", error)
                    if data is not None:
                        sample.audio[f"s{i}"] = data
            yield sample


def iter_samples(path: str | os.PathLike, fmt: str, rel: str, *, audio: bool | set[str] = True,
                 error: type[Exception] = InputFileError) -> Iterator[RawSample]:
    """The samples of one shard in order; ``audio``: read every sample's audio (True), none
    (False: records only), or only that of the keys in a set."""
    read = _tar_samples if fmt == "webdataset" else _parquet_samples
    yield from read(Path(path), rel, audio, error)
