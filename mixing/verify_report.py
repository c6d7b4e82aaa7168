"""The findings of ``hive verify``: problem kinds, one report per shard file and one per output folder."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import HiveError

PROBLEM_KINDS = (
    "missing_member", "stray_member", "duplicate_member", "duplicate_sample", "bad_json",
    "invalid_record", "key_mismatch", "wrong_group", "bad_provenance", "unreadable_audio",
    "wrong_format", "wrong_sample_rate", "wrong_channels", "wrong_length", "stems_mismatch",
    "clipping", "column_mismatch", "schema_mismatch", "unreadable_shard", "missing_ledger_entry",
    "missing_shard", "ledger_mismatch", "checksum_mismatch", "summary_mismatch", "config_mismatch",
    "temp_file", "mixed_formats", "no_shards", "not_in_metadata", "metadata_mismatch",
    "not_rendered", "failed_but_rendered",
)



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
def iter_problems(report: VerifyReport) -> Iterable[Problem]:
    yield from report.problems
    for s in report.shards:
        yield from s.problems

