"""Consistency checker for ``hive render`` output (WebDataset tar or Parquet layout).

Per sample: the full member set (``mix``, ``s1``..``sN`` per the JSON's ``num_sources``, ``json``)
with no stray or duplicate member; every signal mono at the rendered rate with
``int(target_duration * sample_rate)`` frames (the rate of the ``hive_render`` provenance, which
differs from the record's when rendered with ``--sample-rate``); stems summing to the mix
(``consistent`` mode) or to ``mix / global_normalization_factor`` (``reference`` mode); a JSON
that :func:`~mixing.validation.parse_mixture` accepts with ``mix_id`` equal to the member key and
split / number of sources equal to the shard's folder; no clipping; no all-zero stem of a
source whose ``applied_weight`` is not zero (``silent_stem``: a crop beyond its chunk, or silent audio).

Per shard: the ledger entry exists and agrees (count, size, and sha256 with ``checksums=True``).
Per output folder: no duplicate mix_id, no leftover temporary file, ``_summary.json`` agrees and,
given the metadata, every rendered record equals its metadata record and every metadata record
is either rendered or listed in ``_failures.jsonl``.

Samples are streamed: at most one sample's audio is held in memory at a time (Parquet shards are
read one row at a time).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from .audio import open_sound_file
from .errors import HiveError, InputFileError, InvalidRecordError
from .input_files import (
    BadLine, file_kind, iter_jsonl, iter_parquet_batches, iter_tar_members, load_json_file, open_parquet,
    parse_json_bytes,
)
from .metadata import MixtureRecord
from .recipe import STEM_MODES
from .resume import file_sha256, is_tmp_name
from .validation import parse_mixture
from .workers import process_pool

log = logging.getLogger(__name__)

#: absolute tolerance of the stems-sum check (on top of the encoding's own rounding)
DEFAULT_ATOL = 1e-5
AUDIO_EXTS = ("wav", "flac")
#: ``hive_render.audio_format`` values: the member extension and the subtype it implies
#: (``pcm16``: 16-bit PCM ``.wav`` members, as the reference wrote)
AUDIO_FORMATS = {"wav": ("wav", None), "flac": ("flac", None), "pcm16": ("wav", "PCM_16")}
SHARD_SUFFIX = {".tar": "webdataset", ".parquet": "parquet"}
_GROUP_DIR = re.compile(r"(\d+)mix")
_STEM = re.compile(r"s([1-9]\d*)")
#: WebDataset's key / suffix split: the key is everything before the first dot of the basename
_WDS_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
#: exact float32 / PCM step used to size the rounding allowance of the sum check
_FLOAT32_EPS = 2.0 ** -24
_PCM_STEP = {"PCM_16": 2.0 ** -15, "PCM_24": 2.0 ** -23, "PCM_32": 2.0 ** -31, "PCM_U8": 2.0 ** -7,
             "PCM_S8": 2.0 ** -7}

PROBLEM_KINDS = (
    "missing_member", "stray_member", "duplicate_member", "duplicate_sample", "bad_json",
    "invalid_record", "key_mismatch", "wrong_group", "bad_provenance", "unreadable_audio",
    "wrong_format", "wrong_sample_rate", "wrong_channels", "wrong_length", "stems_mismatch",
    "clipping", "column_mismatch", "schema_mismatch", "unreadable_shard", "missing_ledger_entry",
    "missing_shard", "ledger_mismatch", "checksum_mismatch", "summary_mismatch", "config_mismatch",
    "temp_file", "mixed_formats", "no_shards", "not_in_metadata", "metadata_mismatch",
    "not_rendered", "failed_but_rendered",
)



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

class VerifyError(HiveError):
    """The folder to verify cannot be checked at all (missing, not a folder)."""


@dataclass
class Problem:
    kind: str
    message: str
    shard: str | None = None
    mix_id: str | None = None
    member: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "shard": self.shard, "mix_id": self.mix_id, "member": self.member,
             "message": self.message}
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class ShardReport:
    shard: str
    format: str
    samples: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_counts: Counter = field(default_factory=Counter)
    #: (mix_id, digest of the record) of every sample whose JSON parsed
    records: list[tuple[str, str]] = field(default_factory=list, repr=False)
    max_problems: int = 1000

    def add(self, kind: str, message: str, mix_id: str | None = None, member: str | None = None) -> None:
        self.problem_counts[kind] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(kind, message, self.shard, mix_id, member))

    @property
    def clean(self) -> bool:
        return not self.problem_counts

    def to_dict(self) -> dict[str, Any]:
        return {"shard": self.shard, "format": self.format, "samples": self.samples,
                "clean": self.clean, "problem_counts": dict(sorted(self.problem_counts.items())),
                "problems": [p.to_dict() for p in self.problems]}


@dataclass
class VerifyReport:
    root: str
    formats: list[str] = field(default_factory=list)
    shards: list[ShardReport] = field(default_factory=list)
    #: problems that belong to no single shard (metadata cross-check, ledger, summary)
    problems: list[Problem] = field(default_factory=list)
    problem_counts: Counter = field(default_factory=Counter)
    failures_by_reason: Counter = field(default_factory=Counter)
    metadata_checked: bool = False
    checksums_checked: bool = False
    max_problems: int = 1000

    def add(self, kind: str, message: str, shard: str | None = None, mix_id: str | None = None) -> None:
        self.problem_counts[kind] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(kind, message, shard, mix_id))

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)

    def counts(self) -> Counter:
        total = Counter(self.problem_counts)
        for s in self.shards:
            total.update(s.problem_counts)
        return total

    @property
    def clean(self) -> bool:
        return not self.counts()

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "formats": self.formats, "clean": self.clean,
                "shards": len(self.shards), "samples": self.samples,
                "problem_counts": dict(sorted(self.counts().items())),
                "render_failures_by_reason": dict(sorted(self.failures_by_reason.items())),
                "metadata_checked": self.metadata_checked, "checksums_checked": self.checksums_checked,
                "problems": [p.to_dict() for p in self.problems],
                "shard_reports": [s.to_dict() for s in self.shards]}

    def summary(self) -> str:
        counts = self.counts()
        lines = [f"verified {self.root}: {len(self.shards)} shards ({', '.join(self.formats) or 'none'}), "
                 f"{self.samples} samples"
                 + (", metadata cross-checked" if self.metadata_checked else "")
                 + (", checksums checked" if self.checksums_checked else "")]
        if self.failures_by_reason:
            lines.append("render failures (in _failures.jsonl, not problems): " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.failures_by_reason.items())))
        if not counts:
            lines.append("OK: no problem found")
            return "\n".join(lines)
        bad = sum(1 for s in self.shards if not s.clean)
        lines.append(f"PROBLEMS: {sum(counts.values())} in {bad} shard(s) and {sum(self.problem_counts.values())} "
                     "outside shards: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        shown = 0
        for p in self.problems + [p for s in self.shards for p in s.problems]:
            if shown >= 20:
                lines.append("  ... (see --report for all)")
                break
            where = " ".join(x for x in (p.shard, p.member or p.mix_id) if x)
            lines.append(f"  [{p.kind}] {where + ': ' if where else ''}{p.message}")
            shown += 1
        return "\n".join(lines)


# ---- record digest (comparable across processes) -----------------------------------------------
def record_digest(rec: MixtureRecord) -> str:
    """Digest of every schema field of a record (``extra`` excluded); equal records, equal digest."""
    key = (rec.mix_id, rec.split, rec.sample_rate, rec.target_duration, rec.num_sources,
           tuple(tuple(s.to_dict().items()) for s in rec.sources),
           rec.global_normalization_factor, rec.final_max_amplitude)
    return hashlib.blake2b(repr(key).encode("utf-8"), digest_size=16).hexdigest()


def record_differences(a: MixtureRecord, b: MixtureRecord) -> list[str]:
    """Names of the fields in which two records differ."""
    out = [name for name in ("mix_id", "split", "sample_rate", "target_duration", "num_sources",
                             "global_normalization_factor", "final_max_amplitude")
           if getattr(a, name) != getattr(b, name)]
    if len(a.sources) != len(b.sources):
        out.append("sources")
    else:
        for i, (sa, sb) in enumerate(zip(a.sources, b.sources)):
            out.extend(f"sources[{i}].{k}" for k, v in sa.to_dict().items() if getattr(sb, k) != v)
    return out


# ---- one sample ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Group:
    split: str | None
    num_sources: int | None


def _group_of(rel: Path) -> _Group:
    """``{split}/{n}mix/<shard>`` -> the group the shard's samples must belong to."""
    parts = rel.parts
    if len(parts) >= 3 and (m := _GROUP_DIR.fullmatch(parts[-2])):
        return _Group(parts[-3], int(m.group(1)))
    return _Group(None, None)


def _decode(data: bytes) -> tuple[np.ndarray, tuple[int, int, str, str, int]]:
    with open_sound_file(io.BytesIO(data)) as f:
        info = (f.samplerate, f.channels, f.format, f.subtype, f.frames)
        x = f.read(dtype="float64", always_2d=True)
    return x, info


class _SampleChecker:
    """Checks one sample given its JSON bytes and its audio members."""

    def __init__(self, report: ShardReport, group: _Group, atol: float, config: dict | None = None):
        self.report = report
        self.group = group
        self.atol = atol
        #: the folder's ``_render_config.json`` (stems, audio_format, sample_rate), when present
        self.config = config

    def parse_json(self, key: str, raw: bytes | str | None) -> tuple[MixtureRecord | None, dict | None]:
        rep = self.report
        if raw is None:
            rep.add("missing_member", "no JSON member", key, f"{key}.json")
            return None, None
        try:
            obj = parse_json_bytes(raw, f"{key}.json", "a mixture record (a JSON object)")
        except InputFileError as exc:
            rep.add("bad_json", f"the JSON does not parse ({exc})", key, f"{key}.json")
            return None, None
        try:
            rec = parse_mixture(obj)
        except InvalidRecordError as exc:
            rep.add("invalid_record", f"the JSON is not a valid mixture record: {exc}", key, f"{key}.json")
            return None, obj if isinstance(obj, dict) else None
        if rec.mix_id != key:
            rep.add("key_mismatch", f"JSON mix_id {rec.mix_id!r} differs from the member key {key!r}", key)
        g = self.group
        if g.split is not None and (rec.split != g.split or rec.num_sources != g.num_sources):
            rep.add("wrong_group", f"record is {rec.split}/{rec.num_sources}mix but lies in the shard of "
                    f"{g.split}/{g.num_sources}mix", key)
        rep.records.append((key, record_digest(rec)))
        return rec, obj

    def provenance(self, key: str, rec: MixtureRecord, obj: dict) -> dict | None:
        prov = obj.get("hive_render")
        rep = self.report
        if not isinstance(prov, dict):
            rep.add("bad_provenance", "the JSON has no 'hive_render' provenance object", key, f"{key}.json")
            return None
        sr, mode, fmt = prov.get("sample_rate"), prov.get("stem_mode"), prov.get("audio_format")
        if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
            rep.add("bad_provenance", f"hive_render.sample_rate is {sr!r}; expected a positive integer", key)
            return None
        if mode not in STEM_MODES:
            rep.add("bad_provenance", f"hive_render.stem_mode is {mode!r}; expected one of {STEM_MODES}", key)
            return None
        if fmt not in AUDIO_FORMATS:
            rep.add("bad_provenance", f"hive_render.audio_format is {fmt!r}; expected one of "
                    f"{tuple(AUDIO_FORMATS)}", key)
            return None
        cfg = self.config
        if cfg is not None:
            want_sr = cfg.get("sample_rate") or rec.sample_rate
            for what, have, want in (("stem_mode", mode, cfg.get("stems")),
                                     ("audio_format", fmt, cfg.get("audio_format")),
                                     ("sample_rate", sr, want_sr)):
                if want is not None and have != want:
                    rep.add("config_mismatch", f"hive_render.{what} is {have!r}; _render_config.json "
                            f"means {want!r}", key)
        expected_scale = rec.global_normalization_factor if mode == "consistent" else 1.0
        scale = prov.get("stem_scale")
        if not isinstance(scale, (int, float)) or not np.isclose(scale, expected_scale, rtol=1e-12, atol=0):
            rep.add("bad_provenance", f"hive_render.stem_scale is {scale!r}; {mode} mode means "
                    f"{expected_scale!r}", key)
        frames = int(rec.target_duration * sr)
        if prov.get("num_frames") != frames:
            rep.add("bad_provenance", f"hive_render.num_frames is {prov.get('num_frames')!r}; "
                    f"int(target_duration * sample_rate) = {frames}", key)
        return prov

    def audio(self, key: str, rec: MixtureRecord | None, prov: dict | None,
              members: dict[str, bytes | None], ext: str | None) -> None:
        """``members``: suffix (``mix``, ``s1``...) -> encoded bytes (``None`` when absent)."""
        rep = self.report
        n = rec.num_sources if rec is not None else None
        expected = ["mix"] + [f"s{i}" for i in range(1, (n or 0) + 1)] if n is not None else None
        if expected is not None:
            for name in expected:
                if members.get(name) is None:
                    rep.add("missing_member", f"member {name} is missing ({n} sources expected)", key,
                            f"{key}.{name}.{ext or '*'}")
            for name in members:
                if name not in expected:
                    rep.add("stray_member", f"member {name} is not part of a {n}-source sample", key,
                            f"{key}.{name}.{ext or '*'}")
        if prov is not None and ext is not None and ext != AUDIO_FORMATS[prov["audio_format"]][0]:
            rep.add("wrong_format", f"audio members are .{ext}; hive_render.audio_format is "
                    f"{prov['audio_format']!r}", key)
        if rec is None or prov is None or expected is None:
            return  # nothing to measure against
        sr = prov["sample_rate"]
        frames = int(rec.target_duration * sr)
        decoded: dict[str, np.ndarray] = {}
        steps: list[float] = []
        for name in expected:
            data = members.get(name)
            if data is None:
                continue
            member = f"{key}.{name}.{ext}"
            try:
                x, (file_sr, channels, _fmt, subtype, _) = _decode(data)
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
                rep.add("unreadable_audio", f"cannot be decoded ({exc})", key, member)
                continue
            want_subtype = AUDIO_FORMATS[prov["audio_format"]][1]
            if want_subtype is not None and subtype != want_subtype:
                rep.add("wrong_format", f"{subtype} samples; hive_render.audio_format "
                        f"{prov['audio_format']!r} means {want_subtype}", key, member)
            if file_sr != sr:
                rep.add("wrong_sample_rate", f"{file_sr} Hz; hive_render.sample_rate is {sr}", key, member)
            if channels != 1:
                rep.add("wrong_channels", f"{channels} channels; expected mono", key, member)
            if x.shape[0] != frames:
                rep.add("wrong_length", f"{x.shape[0]} frames; expected int({rec.target_duration} * {sr}) = "
                        f"{frames}", key, member)
            y = x.mean(axis=1) if x.shape[1] > 0 else np.zeros(x.shape[0])
            peak = float(np.max(np.abs(y))) if y.size else 0.0
            step = _PCM_STEP.get(subtype)
            # reference-mode stems lack the global factor by design: they clip if they exceed 1
            # once the factor is applied
            unscaled = name != "mix" and prov["stem_mode"] == "reference"
            level = peak * rec.global_normalization_factor if unscaled else peak
            # float members hold values above 1 without loss: only the mix (whose peak the
            # metadata fixes at final_max_amplitude) and PCM members can clip
            if level > 1.0 and (step is not None or name == "mix"):
                rep.add("clipping", f"peak {peak:.6f}" + (f" x global factor = {level:.6f}" if unscaled else "")
                        + " > 1.0", key, member)
            elif step is not None and peak >= 1.0 - step:
                rep.add("clipping", f"{subtype} samples at full scale (peak {peak:.6f}): clipped when encoded",
                        key, member)
            if name != "mix" and y.size and peak == 0.0:
                weight = rec.sources[int(name[1:]) - 1].applied_weight
                if weight != 0.0:  # an all-zero stem of a weighted source: nothing of it was rendered
                    rep.add("silent_stem", f"all samples are zero although applied_weight is {weight!r}: its "
                            "crop lies beyond its chunk (crop_beyond_chunk, refused by 'hive render' since) or "
                            "its audio is silent; run 'hive check' on the metadata and re-render", key, member)
            steps.append(step if step is not None else 0.0)
            decoded[name] = y
        stems = [decoded.get(f"s{i}") for i in range(1, n + 1)]
        mix = decoded.get("mix")
        if mix is None or any(s is None for s in stems) or any(len(s) != len(mix) for s in stems):
            return  # already reported
        total = np.sum(stems, axis=0) if stems else np.zeros_like(mix)
        gnf = rec.global_normalization_factor
        target = mix if prov["stem_mode"] == "consistent" else mix / gnf
        # rounding allowance: each stored signal carries float32 (or PCM) rounding
        mix_div = 1.0 if prov["stem_mode"] == "consistent" else gnf
        eps = [max(s, _FLOAT32_EPS) for s in steps] or [_FLOAT32_EPS]
        stem_abs = np.sum(np.abs(stems), axis=0) if stems else np.zeros_like(mix)
        scale = max(float(np.max(stem_abs)) if stem_abs.size else 0.0, float(np.max(np.abs(target))) if target.size else 0.0)
        tol = self.atol + max(eps) * ((n + 1) * scale + 1.0 / mix_div)
        if len(steps) == n + 1 and any(steps):
            # PCM members carry an absolute rounding error of up to one step each (the mix's
            # divided by the factor in reference mode); 16-bit steps exceed atol
            tol += sum(steps[1:]) + steps[0] / mix_div
        err = float(np.max(np.abs(total - target))) if total.size else 0.0
        if not err <= tol:
            what = "mix" if prov["stem_mode"] == "consistent" else "mix / global_normalization_factor"
            rep.add("stems_mismatch", f"{prov['stem_mode']} stems: max |sum(stems) - {what}| = {err:.3g} > "
                    f"{tol:.3g}", key)


# ---- WebDataset shards -----------------------------------------------------------------------
def _iter_tar_samples(path: Path, rep: ShardReport) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """Stream ``(key, [(suffix, bytes), ...])`` of contiguous members; report non-file members."""
    key: str | None = None
    members: list[tuple[str, bytes]] = []

    def skipped(name: str) -> None:
        rep.add("stray_member", f"tar member {name!r} is not a regular file", member=name)

    try:
        for name, data in iter_tar_members(path, "shard", on_skipped=skipped):
            match = _WDS_NAME.match(name)
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


def verify_tar(path: Path, rel: str, group: _Group, atol: float = DEFAULT_ATOL,
               config: dict | None = None, max_problems: int = 1000) -> ShardReport:
    rep = ShardReport(rel, "webdataset", max_problems=max_problems)
    checker = _SampleChecker(rep, group, atol, config)
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
            if not name or ext not in AUDIO_EXTS or not (name == "mix" or _STEM.fullmatch(name)):
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


def verify_parquet(path: Path, rel: str, group: _Group, atol: float = DEFAULT_ATOL,
                   config: dict | None = None, max_problems: int = 1000) -> ShardReport:
    rep = ShardReport(rel, "parquet", max_problems=max_problems)
    checker = _SampleChecker(rep, group, atol, config)
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


def _check_parquet_row(row: dict[str, Any], checker: _SampleChecker, rep: ShardReport, seen: set[str]) -> None:
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
def find_shards(root: Path) -> tuple[list[tuple[Path, str]], list[Path]]:
    """Shard files (``(path, format)``, sorted) and leftover temporary files under ``root``."""
    shards, temps = [], []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith("_") for part in rel.parts[:-1]) or rel.parts[0].startswith("_"):
            continue
        if not p.is_file():
            if SHARD_SUFFIX.get(p.suffix) and not p.is_dir() and not p.name.startswith("."):
                shards.append((p, "special"))  # a FIFO, socket, device or dangling link: reported, never opened
            continue
        if is_tmp_name(p.name):
            temps.append(p)
            continue
        fmt = SHARD_SUFFIX.get(p.suffix)
        if fmt is not None and not p.name.startswith("."):
            shards.append((p, fmt))
    return shards, temps


def _read_json(path: Path, report: "VerifyReport | None" = None) -> Any:
    """A bookkeeping JSON file of the folder, or None when it is missing, not a regular file or
    broken (the last two reported as ``bad_json`` when a ``report`` is given)."""
    if not os.path.lexists(path):
        return None
    try:
        return load_json_file(path, "file", "a JSON document", max_bytes=64 << 20)
    except InputFileError as exc:
        if report is not None:
            report.add("bad_json", str(exc))
        return None


def _special_shard(path: Path, rel: str) -> ShardReport:
    rep = ShardReport(rel, "special")
    kind = file_kind(path.stat().st_mode) if path.exists() else "a dangling link"
    rep.add("unreadable_shard", f"it is {kind}, not a regular file; remove it (hive render writes files)")
    return rep


def _verify_one(args: tuple[str, str, str, float, dict | None, int]) -> ShardReport:
    path, rel, fmt, atol, config, max_problems = args
    if fmt == "special":
        return _special_shard(Path(path), rel)
    group = _group_of(Path(rel))
    verify = verify_tar if fmt == "webdataset" else verify_parquet
    return verify(Path(path), rel, group, atol, config, max_problems)


def _ledger(root: Path) -> dict[str, tuple[str, dict]] | None:
    """shard rel path -> (ledger file name, entry); ``None`` when the folder has no ledger."""
    d = root / "_ledger"
    if not d.is_dir():
        return None
    out: dict[str, tuple[str, dict]] = {}
    for p in sorted(d.glob("*.json")):
        if p.name.startswith("_"):
            continue
        entry = _read_json(p)
        if isinstance(entry, dict) and isinstance(entry.get("shard"), str):
            out[entry["shard"]] = (p.name, entry)
    return out


def _failures(root: Path, report: VerifyReport) -> dict[str, list[str]]:
    """mix_id -> reasons listed in ``_failures.jsonl``."""
    out: dict[str, list[str]] = {}
    p = root / "_failures.jsonl"
    if not p.exists():
        return out
    try:
        rows = list(iter_jsonl(p, "failure manifest"))
    except InputFileError as exc:
        report.add("bad_json", str(exc))
        return out
    for lineno, f in rows:
        if isinstance(f, BadLine):
            report.add("bad_json", f"_failures.jsonl line {lineno} does not parse")
            continue
        reason = f.get("reason", "?") if isinstance(f, dict) else "?"
        reason = reason if isinstance(reason, str) else "?"
        report.failures_by_reason[reason] += 1
        mid = f.get("mix_id") if isinstance(f, dict) else None
        if isinstance(mid, str):
            out.setdefault(mid, []).append(reason)
    return out


def verify_output(root: str | Path, *, metadata: str | None = None, revision: str | None = None,
                  split: str | None = None, num_sources: int | None = None, checksums: bool = False,
                  atol: float = DEFAULT_ATOL, num_workers: int = 1, progress: bool | None = None,
                  max_problems: int = 1000) -> VerifyReport:
    """Check a ``hive render`` output folder; see the module docstring for what is checked."""
    root = Path(root)
    if not root.is_dir():
        raise VerifyError(f"{root} is not a folder; expected the --output folder of 'hive render'")
    report = VerifyReport(str(root), max_problems=max_problems, checksums_checked=checksums)
    shards, temps = find_shards(root)
    for t in temps:
        report.add("temp_file", "leftover temporary file of an unfinished render; rerun 'hive render' "
                   "to finish it", shard=str(t.relative_to(root)))
    report.formats = sorted({fmt for _, fmt in shards if fmt != "special"})
    if not shards:
        report.add("no_shards", "no .tar or .parquet shard found")
    if len(report.formats) > 1:
        report.add("mixed_formats", f"the folder holds shards of several layouts: {report.formats}")
    config = _read_json(root / "_render_config.json", report)
    if isinstance(config, dict):
        fmt = config.get("format")
        if shards and fmt is not None and report.formats != [fmt]:
            report.add("config_mismatch", f"_render_config.json says format {fmt!r}; shards found: "
                       f"{report.formats}")

    cfg = ({k: config.get(k) for k in ("stems", "audio_format", "sample_rate")}
           if isinstance(config, dict) else None)
    jobs = [(str(p), p.relative_to(root).as_posix(), fmt, atol, cfg, max_problems) for p, fmt in shards]
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm.auto import tqdm

    with tqdm(total=len(jobs), unit="shard", desc="verify", disable=not show) as bar:
        if num_workers > 1 and len(jobs) > 1:
            with process_pool(num_workers) as pool:
                for rep in pool.map(_verify_one, jobs):
                    report.shards.append(rep)
                    bar.update(1)
                    bar.set_postfix(samples=report.samples, problems=sum(report.counts().values()))
        else:
            for job in jobs:
                report.shards.append(_verify_one(job))
                bar.update(1)
                bar.set_postfix(samples=report.samples, problems=sum(report.counts().values()))

    # duplicate mix_ids across shards
    where: dict[str, str] = {}
    for rep in report.shards:
        for mid, _ in rep.records:
            if mid in where and where[mid] != rep.shard:
                report.add("duplicate_sample", f"also in shard {where[mid]}", shard=rep.shard, mix_id=mid)
            where.setdefault(mid, rep.shard)

    _check_ledger(root, report, checksums)
    failures = _failures(root, report)
    summary = _read_json(root / "_summary.json", report)
    if isinstance(summary, dict) and summary.get("mixtures") != report.samples:
        report.add("summary_mismatch", f"_summary.json counts {summary.get('mixtures')} mixtures; the shards "
                   f"hold {report.samples}")
    for mid in sorted(set(failures) & set(where)):
        if set(failures[mid]) == {"duplicate_mix_id"}:
            continue  # the first record with this mix_id is rendered; the repeats are listed
        report.add("failed_but_rendered", f"listed in _failures.jsonl ({', '.join(failures[mid])}) but also "
                   "rendered", shard=where[mid], mix_id=mid)
    if metadata is not None:
        _cross_check(report, metadata, revision, split, num_sources, failures)
    return report


def _check_ledger(root: Path, report: VerifyReport, checksums: bool) -> None:
    ledger = _ledger(root)
    if ledger is None:
        if checksums:
            report.add("missing_ledger_entry", "--checksums asks for the ledger but the folder has no _ledger/")
        return
    found = {rep.shard: rep for rep in report.shards}
    for rel, (name, entry) in sorted(ledger.items()):
        rep = found.get(rel)
        if rep is None:
            report.add("missing_shard", f"ledger entry _ledger/{name} names a shard that is not there", shard=rel)
            continue
        path = root / rel
        if entry.get("count") != rep.samples:
            rep.add("ledger_mismatch", f"ledger _ledger/{name} counts {entry.get('count')} samples; the shard "
                    f"holds {rep.samples}")
        size = path.stat().st_size
        if entry.get("bytes") != size:
            rep.add("ledger_mismatch", f"ledger _ledger/{name} says {entry.get('bytes')} bytes; the file has {size}")
        if checksums:
            digest = shard_checksum(path, entry)
            if entry.get("sha256") != digest:
                rep.add("checksum_mismatch", f"sha256 {digest} differs from ledger _ledger/{name} "
                        f"({entry.get('sha256')})")
    for rel, rep in found.items():
        if rel not in ledger:
            rep.add("missing_ledger_entry", "the shard has no ledger entry (written by a run that did not "
                    "finish it, or copied in)")


def _cross_check(report: VerifyReport, metadata: str, revision: str | None, split: str | None,
                 num_sources: int | None, failures: dict[str, list[str]]) -> None:
    from .metadata_io import open_metadata
    from .validation import ValidationReport

    report.metadata_checked = True
    rendered: dict[str, tuple[str, str]] = {}
    for rep in report.shards:
        for mid, digest in rep.records:
            rendered.setdefault(mid, (digest, rep.shard))
    source = open_metadata(metadata, revision=revision)
    vr = ValidationReport()
    expected: set[str] = set()
    mismatched: set[str] = set()
    for rec in source.records(split, num_sources, on_error="skip", report=vr):
        expected.add(rec.mix_id)
        got = rendered.get(rec.mix_id)
        if got is None:
            if rec.mix_id not in failures:
                report.add("not_rendered", "metadata record is neither rendered nor listed in _failures.jsonl",
                           mix_id=rec.mix_id)
            continue
        if got[0] != record_digest(rec):
            mismatched.add(rec.mix_id)
    for mid in sorted(set(rendered) - expected):
        report.add("not_in_metadata", "rendered record is not in the metadata (or filtered out by "
                   "--split/--num-sources)", shard=rendered[mid][1], mix_id=mid)
    if mismatched:
        _name_differences(report, source, split, num_sources, mismatched, rendered)


def _name_differences(report: VerifyReport, source, split, num_sources, ids: set[str],
                      rendered: dict[str, tuple[str, str]]) -> None:
    """Second pass over the few mismatching records: re-read both sides and name the fields."""
    meta = {rec.mix_id: rec for rec in source.records(split, num_sources, on_error="skip") if rec.mix_id in ids}
    by_shard: dict[str, set[str]] = {}
    for mid in ids:
        by_shard.setdefault(rendered[mid][1], set()).add(mid)
    root = Path(report.root)
    for shard, mids in sorted(by_shard.items()):
        for key, rec in _records_of_shard(root / shard, mids):
            diff = record_differences(rec, meta[key]) or ["<record>"]
            report.add("metadata_mismatch", f"rendered record differs from the metadata in {', '.join(diff[:8])}"
                       + (" ..." if len(diff) > 8 else ""), shard=shard, mix_id=key)
            mids.discard(key)
        for mid in sorted(mids):
            report.add("metadata_mismatch", "rendered record differs from the metadata", shard=shard, mix_id=mid)


def _records_of_shard(path: Path, ids: set[str]) -> Iterator[tuple[str, MixtureRecord]]:
    """``(member key, record)`` of the named samples of one shard (JSON members only)."""
    def parse(raw: Any) -> MixtureRecord | None:
        try:
            return parse_mixture(parse_json_bytes(raw, "record", "a mixture record", expect=dict))
        except (InvalidRecordError, InputFileError, ValueError, TypeError):
            return None

    try:
        if path.suffix == ".tar":
            for name, data in iter_tar_members(path, "shard", want=lambda n: n.endswith(".json") and n[:-5] in ids):
                if data is not None:
                    rec = parse(data)
                    if rec is not None:
                        yield name[:-5], rec
            return
        pf = open_parquet(path, "shard", columns=("mix_id", "render_json"))
        for batch in iter_parquet_batches(pf, str(path), columns=["mix_id", "render_json"]):
            for mid, raw in zip(batch.column("mix_id").to_pylist(), batch.column("render_json").to_pylist()):
                if mid in ids and isinstance(raw, str):
                    rec = parse(raw)
                    if rec is not None:
                        yield mid, rec
    except InputFileError:  # already reported as unreadable by the shard check
        return


def iter_problems(report: VerifyReport) -> Iterable[Problem]:
    yield from report.problems
    for s in report.shards:
        yield from s.problems
