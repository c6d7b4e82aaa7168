"""Statistics of a metadata set, accumulated in one streaming pass (memory independent of size).

Everything kept is bounded by the vocabulary, not by the number of mixtures: counts per
(split, num_sources), per label, per corpus prefix, and a fixed-bin SNR histogram.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from mixing.metadata import MixtureRecord

from .layout import sort_splits

#: SNR histogram: 1 dB bins over [SNR_MIN, SNR_MAX); values outside go to the edge bins
SNR_MIN, SNR_MAX = -30, 30
#: bin width (dB) of the SNR table in the card
SNR_TABLE_STEP = 5


@dataclass
class CorpusStats:
    sources: int = 0
    seconds: float = 0.0


@dataclass
class CardStats:
    """Counts and durations of one metadata set."""

    #: (split, num_sources) -> number of mixtures
    mixtures: Counter = field(default_factory=Counter)
    #: (split, num_sources) -> total target duration in seconds
    seconds: dict[tuple[str, int], float] = field(default_factory=lambda: defaultdict(float))
    #: label -> number of sources carrying it
    labels: Counter = field(default_factory=Counter)
    #: corpus prefix -> sources and seconds of audio used (crop length)
    corpora: dict[str, CorpusStats] = field(default_factory=lambda: defaultdict(CorpusStats))
    #: floor(snr_db) clipped to [SNR_MIN, SNR_MAX - 1] -> number of sources
    snr_bins: Counter = field(default_factory=Counter)
    snr_min: float = math.inf
    snr_max: float = -math.inf
    snr_sum: float = 0.0
    #: sample rates and target durations seen, with counts
    sample_rates: Counter = field(default_factory=Counter)
    durations: Counter = field(default_factory=Counter)

    def add(self, rec: MixtureRecord) -> None:
        key = (rec.split, rec.num_sources)
        self.mixtures[key] += 1
        self.seconds[key] += rec.target_duration
        self.sample_rates[rec.sample_rate] += 1
        self.durations[(rec.split, rec.target_duration)] += 1
        for s in rec.sources:
            self.labels[s.label] += 1
            corpus = self.corpora[s.prefix]
            corpus.sources += 1
            corpus.seconds += max(0.0, s.crop_end_second - s.crop_start_second)
            snr = s.snr_db
            if math.isfinite(snr):
                self.snr_bins[min(max(math.floor(snr), SNR_MIN), SNR_MAX - 1)] += 1
                self.snr_min = min(self.snr_min, snr)
                self.snr_max = max(self.snr_max, snr)
                self.snr_sum += snr

    # ---- derived ---------------------------------------------------------------------------
    @property
    def num_mixtures(self) -> int:
        return sum(self.mixtures.values())

    @property
    def num_sources_total(self) -> int:
        return sum(self.labels.values())

    @property
    def num_snr(self) -> int:
        return sum(self.snr_bins.values())

    @property
    def hours(self) -> float:
        return sum(self.seconds.values()) / 3600.0

    def splits(self) -> list[str]:
        return sort_splits({s for s, _ in self.mixtures})

    def source_counts(self) -> list[int]:
        return sorted({n for _, n in self.mixtures})

    def split_total(self, split: str) -> tuple[int, float]:
        keys = [k for k in self.mixtures if k[0] == split]
        return sum(self.mixtures[k] for k in keys), sum(self.seconds[k] for k in keys) / 3600.0

    def count_total(self, n: int) -> tuple[int, float]:
        keys = [k for k in self.mixtures if k[1] == n]
        return sum(self.mixtures[k] for k in keys), sum(self.seconds[k] for k in keys) / 3600.0

    def top_labels(self, top: int) -> list[tuple[str, int]]:
        """The ``top`` most frequent labels, ties broken by name (deterministic)."""
        return sorted(self.labels.items(), key=lambda kv: (-kv[1], kv[0]))[:top]

    def snr_table(self, step: int = SNR_TABLE_STEP) -> list[tuple[str, int]]:
        """(bin label, count) over ``step``-dB bins, only bins that hold something."""
        rows: Counter = Counter()
        for b, c in self.snr_bins.items():
            rows[SNR_MIN + (b - SNR_MIN) // step * step] += c
        out = []
        for lo in sorted(rows):
            hi = lo + step
            label = f"< {hi}" if lo == SNR_MIN else f"≥ {lo}" if hi >= SNR_MAX else f"[{lo}, {hi})"
            out.append((label, rows[lo]))
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (tests and machine-readable reports)."""
        return {
            "num_mixtures": self.num_mixtures,
            "hours": self.hours,
            "mixtures": {f"{s}/{n}mix": c for (s, n), c in sorted(self.mixtures.items())},
            "labels": dict(self.top_labels(len(self.labels))),
            "corpora": {p: {"sources": c.sources, "hours": c.seconds / 3600.0} for p, c in sorted(self.corpora.items())},
            "snr_bins": {str(k): v for k, v in sorted(self.snr_bins.items())},
            "sample_rates": {str(k): v for k, v in sorted(self.sample_rates.items())},
        }
