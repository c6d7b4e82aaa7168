"""The report of ``hive check`` (:mod:`mixing.check`): per corpus prefix and in total, what the
metadata references, what is usable, and a table and JSON of it."""

from __future__ import annotations

import difflib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .audio import EOF_TOLERANCE_FRAMES
from .failures import (
    CHUNK_BEYOND_END,
    CROP_BEYOND_CHUNK,
    FILE_STATUSES,
    MISSING_FILE,
    UNKNOWN_PREFIX,
    UNREADABLE_AUDIO,
    UNSAFE_PATH,
    describe,
)
from .resume import atomic_write_json, remove_stale_tmp_of
from .validation import ValidationReport

#: file status names (PRESENT and the failure reasons of mixing.failures), indexed by status code
FILE_REASONS = FILE_STATUSES
#: a field name with an index (``sources[3].path``), folded to ``sources[*].path``
INDEXED_FIELD = re.compile(r"\[\d+\]")


# ---- the report -------------------------------------------------------------------------------
@dataclass
class PrefixReport:
    """Files referenced under one corpus prefix and what became of them."""

    prefix: str
    known: bool
    root: str | None = None
    referenced: int = 0
    present: int = 0
    missing_file: int = 0
    unreadable_audio: int = 0
    unknown_prefix: int = 0
    unsafe_path: int = 0
    #: source references (not files) whose chunk ends > EOF_TOLERANCE_FRAMES past the file's end
    chunk_beyond_end: int = 0
    #: source references whose crop starts at or after the end of their (resampled) chunk
    crop_beyond_chunk: int = 0
    #: reason -> a few example metadata paths (chunk_beyond_end: dicts with the frame numbers)
    examples: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def refused(self) -> int:
        return self.unknown_prefix + self.unsafe_path

    @property
    def ok(self) -> bool:
        return self.present == self.referenced and self.chunk_beyond_end == 0 and self.crop_beyond_chunk == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix, "known": self.known, "root": self.root,
            "referenced": self.referenced, "present": self.present, MISSING_FILE: self.missing_file,
            UNREADABLE_AUDIO: self.unreadable_audio, UNKNOWN_PREFIX: self.unknown_prefix,
            UNSAFE_PATH: self.unsafe_path, CHUNK_BEYOND_END: self.chunk_beyond_end,
            CROP_BEYOND_CHUNK: self.crop_beyond_chunk, "examples": self.examples,
        }


@dataclass
class CheckReport:
    """What ``hive check`` found. ``ok`` is the exit status: everything present and valid."""

    metadata: str
    dataset_paths: str
    split: str | None
    num_sources: int | None
    known_prefixes: list[str]
    prefixes: dict[str, PrefixReport]
    #: split -> "{n}mix" -> {"total": mixtures, "renderable": mixtures whose sources are all fine}
    mixtures: dict[str, dict[str, dict[str, int]]]
    validation: ValidationReport
    #: records refused for an unsafe path (never looked up): count and a few examples
    refused_metadata_paths: int = 0
    refused_metadata_examples: list[Any] = field(default_factory=list)
    source_references: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    # ---- totals ----------------------------------------------------------------------------
    @property
    def total_mixtures(self) -> int:
        return sum(c["total"] for by_n in self.mixtures.values() for c in by_n.values())

    @property
    def renderable_mixtures(self) -> int:
        return sum(c["renderable"] for by_n in self.mixtures.values() for c in by_n.values())

    @property
    def unique_files(self) -> int:
        return sum(p.referenced for p in self.prefixes.values())

    def count(self, reason: str) -> int:
        """Total of one reason over all prefixes (``missing_file``, ``chunk_beyond_end``, ...)."""
        return sum(getattr(p, reason) for p in self.prefixes.values())

    @property
    def unknown_prefixes(self) -> list[str]:
        return sorted(p for p, r in self.prefixes.items() if not r.known)

    @property
    def ok(self) -> bool:
        return (self.total_mixtures > 0 and self.validation.invalid == 0
                and all(p.ok for p in self.prefixes.values()))

    def problems(self) -> list[str]:
        """One line per kind of problem (empty when ``ok``)."""
        out = []
        if self.validation.invalid:
            out.append(f"{self.validation.invalid} invalid metadata record(s)")
        for reason in FILE_REASONS[1:]:
            if n := self.count(reason):
                out.append(f"{n} file(s) {reason} ({describe(reason)})")
        if n := self.count(CHUNK_BEYOND_END):
            out.append(f"{n} chunk(s) {CHUNK_BEYOND_END} (ending more than {EOF_TOLERANCE_FRAMES} frames past the "
                       "end of their file)")
        if n := self.count(CROP_BEYOND_CHUNK):
            out.append(f"{n} crop(s) {CROP_BEYOND_CHUNK} ({describe(CROP_BEYOND_CHUNK)})")
        if self.total_mixtures == 0:
            out.append("no valid mixture matched" + (f" split={self.split}" if self.split else "")
                       + (f" num_sources={self.num_sources}" if self.num_sources else ""))
        return out

    def errors_by_field(self) -> dict[str, int]:
        """Invalid records by field, source indices folded (``sources[*].path``)."""
        out: Counter = Counter()
        for name, n in self.validation.errors_by_field.items():
            out[INDEXED_FIELD.sub("[*]", name)] += n
        return dict(sorted(out.items()))

    # ---- output ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "metadata": self.metadata,
            "dataset_paths": self.dataset_paths,
            "split": self.split,
            "num_sources": self.num_sources,
            "known_prefixes": self.known_prefixes,
            "unknown_prefixes": self.unknown_prefixes,
            "totals": {
                "mixtures": self.total_mixtures, "renderable": self.renderable_mixtures,
                "source_references": self.source_references, "unique_files": self.unique_files,
                **{reason: self.count(reason) for reason in FILE_REASONS},
                CHUNK_BEYOND_END: self.count(CHUNK_BEYOND_END),
                CROP_BEYOND_CHUNK: self.count(CROP_BEYOND_CHUNK),
                "invalid_records": self.validation.invalid,
                "refused_metadata_paths": self.refused_metadata_paths,
            },
            "prefixes": {k: v.to_dict() for k, v in self.prefixes.items()},
            "mixtures": self.mixtures,
            "invalid_records_by_field": self.errors_by_field(),
            "refused_metadata_examples": self.refused_metadata_examples,
            "validation": self.validation.to_dict(),
            "problems": self.problems(),
            "timings": self.timings,
        }

    def write_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` atomically (removing the temporaries of killed earlier writes)."""
        remove_stale_tmp_of(path)
        atomic_write_json(path, self.to_dict(), indent=2, sort_keys=False)

    def format_table(self) -> str:
        """The human-readable summary ``hive check`` prints."""
        lines = [f"metadata: {self.metadata}", f"dataset paths: {self.dataset_paths}"]
        if self.split or self.num_sources:
            lines.append(f"restricted to: split={self.split or 'all'} num_sources={self.num_sources or 'all'}")
        lines.append("")
        head = ("prefix", "files", "present", MISSING_FILE, UNREADABLE_AUDIO, "refused", "chunks>end", "crops>chunk",
                "root")
        rows = [head]
        for p in self.prefixes.values():
            root = p.root if p.known else "NOT IN dataset_paths.json"
            rows.append((p.prefix, p.referenced, p.present, p.missing_file, p.unreadable_audio, p.refused,
                         p.chunk_beyond_end, p.crop_beyond_chunk, root))
        rows.append(("total", self.unique_files, self.count("present"), self.count(MISSING_FILE),
                     self.count(UNREADABLE_AUDIO), self.count(UNKNOWN_PREFIX) + self.count(UNSAFE_PATH),
                     self.count(CHUNK_BEYOND_END), self.count(CROP_BEYOND_CHUNK), ""))
        lines += _table(rows, right=range(1, 8))
        if self.unknown_prefixes:
            lines.append("")
            for prefix in self.unknown_prefixes:
                close = difflib.get_close_matches(prefix, self.known_prefixes, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                lines.append(f"unknown prefix {prefix!r}{hint}: add it to dataset_paths.json")
            lines.append(f"known prefixes: {', '.join(self.known_prefixes)}")
        # renderable mixtures per split x number of sources
        if self.mixtures:
            ns = sorted({n for by_n in self.mixtures.values() for n in by_n}, key=lambda s: int(s[:-3]))
            rows = [("renderable / total",) + tuple(ns) + ("all",)]
            for split, by_n in self.mixtures.items():
                cells = [f"{by_n[n]['renderable']}/{by_n[n]['total']}" if n in by_n else "-" for n in ns]
                tot = sum(c["total"] for c in by_n.values())
                ren = sum(c["renderable"] for c in by_n.values())
                rows.append((split, *cells, f"{ren}/{tot}"))
            lines.append("")
            lines += _table(rows, right=range(1, len(ns) + 2))
        if self.validation.invalid or self.validation.warnings_by_field:
            lines.append("")
        if self.validation.invalid:
            by_field = ", ".join(f"{k} {v}" for k, v in self.errors_by_field().items())
            lines.append(f"invalid metadata records (skipped): {self.validation.invalid} ({by_field})")
            for ex in self.validation.examples[:3]:
                lines.append(f"  e.g. mixture {ex['mix_id']!r}: {ex['field']} is {ex['value']}; "
                             f"expected {ex['expected']}")
        if self.validation.warnings_by_field:
            n = sum(self.validation.warnings_by_field.values())
            lines.append(f"warnings (not errors): {n} applied_weight != rms_gain*10^(snr_db/20)")
        examples = [(p, reason, ex) for p in self.prefixes.values() for reason, exs in p.examples.items()
                    for ex in exs]
        if examples:
            lines.append("")
            lines.append("examples:")
            for p, reason, ex in examples:
                if isinstance(ex, dict) and reason == CROP_BEYOND_CHUNK:
                    ex = (f"{ex['path']} (crop starts at {ex['crop_start_second']} s; "
                          f"chunk [{ex['chunk_start_second']}, {ex['chunk_end_second']}) s holds "
                          f"{ex['chunk_seconds']:.6g} s of the file)")
                elif isinstance(ex, dict):
                    ex = (f"{ex['path']} (chunk ends at frame {ex['end_frame']}, "
                          f"{ex['end_frame'] - ex['frames']} past the end at {ex['samplerate']} Hz)")
                lines.append(f"  {reason:<16} {ex}")
        lines.append("")
        if self.ok:
            lines.append(f"OK: all {self.unique_files} referenced files are present and readable; "
                         f"{self.renderable_mixtures} mixtures can be rendered")
        else:
            lines.append(f"NOT READY: {'; '.join(self.problems())}. "
                         f"{self.renderable_mixtures} of {self.total_mixtures} mixtures can be rendered")
        return "\n".join(lines)


def _table(rows: list[tuple], right=()) -> list[str]:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    right = set(right)
    out = []
    for r in cells:
        out.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return out
