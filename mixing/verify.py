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

This module checks an output folder (its shard files, ledger, summary and the metadata); the
checks of one shard file are in :mod:`mixing.verify_shard`, of one sample in
:mod:`mixing.verify_sample`, and the reports in :mod:`mixing.verify_report`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

from .errors import InputFileError, InvalidRecordError
from .input_files import (
    BadLine,
    file_kind,
    iter_jsonl,
    iter_parquet_batches,
    iter_tar_members,
    load_json_file,
    open_parquet,
    parse_json_bytes,
)
from .metadata import MixtureRecord
from .resume import is_tmp_name
from .validation import parse_mixture
from .verify_report import ShardReport, VerifyError, VerifyReport, iter_problems
from .verify_sample import DEFAULT_ATOL, group_of, record_differences, record_digest
from .verify_shard import shard_checksum, verify_parquet, verify_tar
from .workers import process_pool

__all__ = ["DEFAULT_ATOL", "ShardReport", "VerifyError", "VerifyReport", "find_shards", "iter_problems", "verify_output"]

#: the layout of a shard file, by suffix
SHARD_SUFFIX = {".tar": "webdataset", ".parquet": "parquet"}



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
    group = group_of(Path(rel))
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


