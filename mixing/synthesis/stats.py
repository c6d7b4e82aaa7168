"""Statistics of synthesized metadata: label histogram, label pairs, SNR and source-count
histograms, per-corpus hours, redraw reasons; and the one-screen summary ``hive synthesize`` prints."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations
from typing import Any, Iterable, Mapping

from ..metadata import MixtureRecord


def compute_stats(records: Iterable[MixtureRecord], *, reasons: Mapping[str, int] | None = None,
                  snr_bin_db: float = 1.0) -> dict[str, Any]:
    """Stats of ``records`` (one pass; memory ~ number of labels squared at most)."""
    n_mix = 0
    splits: Counter = Counter()
    counts: Counter = Counter()
    labels: Counter = Counter()
    pairs: Counter = Counter()
    snr_bins: Counter = Counter()
    corpus_seconds: Counter = Counter()
    corpus_sources: Counter = Counter()
    clips: set[tuple[str, float]] = set()
    mixture_seconds = 0.0
    snr_min, snr_max = math.inf, -math.inf
    gnf_min, gnf_max = math.inf, -math.inf
    for rec in records:
        n_mix += 1
        splits[rec.split] += 1
        counts[rec.num_sources] += 1
        mixture_seconds += rec.target_duration
        gnf_min = min(gnf_min, rec.global_normalization_factor)
        gnf_max = max(gnf_max, rec.global_normalization_factor)
        labs = sorted(rec.labels)
        labels.update(labs)
        pairs.update(combinations(labs, 2))
        for k, s in enumerate(rec.sources):
            prefix = s.path.split("/", 1)[0]
            audible = max(0.0, min(rec.target_duration, (s.chunk_end_second - s.chunk_start_second) - s.crop_start_second))
            corpus_seconds[prefix] += audible
            corpus_sources[prefix] += 1
            clips.add((s.path, s.chunk_start_second))
            if k > 0:
                snr_bins[math.floor(s.snr_db / snr_bin_db) * snr_bin_db] += 1
                snr_min, snr_max = min(snr_min, s.snr_db), max(snr_max, s.snr_db)
    return {
        "num_mixtures": n_mix,
        "splits": dict(splits),
        "mixture_hours": mixture_seconds / 3600.0,
        "source_count_histogram": {str(k): counts[k] for k in sorted(counts)},
        "num_labels_used": len(labels),
        "num_clips_used": len(clips),
        "label_histogram": dict(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))),
        "label_pair_counts": [[a, b, c] for (a, b), c in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))],
        "snr_db": {
            "reference_source": "s1 at 0 dB; the histogram counts sources 2..n",
            "bin_width_db": snr_bin_db,
            "min": None if n_mix == 0 or snr_min == math.inf else snr_min,
            "max": None if n_mix == 0 or snr_max == -math.inf else snr_max,
            "histogram": {f"{b:g}": snr_bins[b] for b in sorted(snr_bins)},
        },
        "corpus_hours": {k: corpus_seconds[k] / 3600.0 for k in sorted(corpus_seconds)},
        "corpus_sources": {k: corpus_sources[k] for k in sorted(corpus_sources)},
        "global_normalization_factor": {"min": None if n_mix == 0 else gnf_min,
                                        "max": None if n_mix == 0 else gnf_max},
        "reasons": dict(sorted((reasons or {}).items())),
    }


def format_summary(stats: Mapping[str, Any], *, top: int = 5) -> str:
    lines = [f"{stats['num_mixtures']} mixtures ({stats['mixture_hours']:.2f} h), "
             f"{stats['num_labels_used']} labels, {stats['num_clips_used']} clips"]
    hist = stats["source_count_histogram"]
    lines.append("sources per mixture: " + ", ".join(f"{k}: {v}" for k, v in hist.items()))
    snr = stats["snr_db"]
    if snr["min"] is not None:
        lines.append(f"SNR of sources 2..n: {snr['min']:+.2f} .. {snr['max']:+.2f} dB")
    labels = list(stats["label_histogram"].items())
    if labels:
        lines.append("most used labels: " + ", ".join(f"{k} ({v})" for k, v in labels[:top]))
        lines.append("least used labels: " + ", ".join(f"{k} ({v})" for k, v in labels[-top:]))
    if stats["corpus_hours"]:
        lines.append("source hours by corpus: " + ", ".join(f"{k} {v:.2f}" for k, v in stats["corpus_hours"].items()))
    dropped = stats.get("pool_rows_dropped") or {}
    if "pool_rows_used" in stats:
        lines.append(f"pool rows used: {stats['pool_rows_used']}; not used: "
                     + (", ".join(f"{k}={v}" for k, v in dropped.items()) or "none"))
    if stats["reasons"]:
        lines.append("redraws / drops: " + ", ".join(f"{k}={v}" for k, v in stats["reasons"].items()))
    return "\n".join(lines)
