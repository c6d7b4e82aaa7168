"""PNG plots for the card (matplotlib, Agg canvas, no pyplot global state).

The files are byte-identical for identical statistics (no timestamp or version in the PNG), so
republishing an unchanged card uploads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixing.plotting import literal_text, new_figure
from mixing.resume import AtomicFile

from .stats import SNR_MAX, SNR_MIN, CardStats

LABEL_PLOT = "label_distribution.png"
SNR_PLOT = "snr_histogram.png"
SOURCE_COUNT_PLOT = "source_count_distribution.png"
_PNG_METADATA = {"Software": None}


def _figure(width: float, height: float):
    return new_figure(width, height, "drawing the card's plots")


@literal_text
def _save(fig, path: Path) -> Path:
    with AtomicFile(path) as f:
        fig.savefig(f.tmp, format="png", metadata=_PNG_METADATA)
    return path


@literal_text
def plot_label_distribution(stats: CardStats, path: str | os.PathLike, top: int = 30) -> Path:
    """Horizontal bars: sources per label, the ``top`` most frequent labels."""
    rows = stats.top_labels(top)
    fig = _figure(8.0, max(2.5, 0.28 * len(rows) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    names = [name if len(name) <= 40 else name[:37] + "..." for name, _ in rows][::-1]
    ax.barh(range(len(rows)), [c for _, c in rows][::-1], color="#3b75af")
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.set_xlabel("sources")
    shown = f"top {len(rows)} of {len(stats.labels)} labels" if len(stats.labels) > len(rows) else f"{len(rows)} labels"
    ax.set_title(f"Label distribution ({shown})")
    fig.tight_layout()
    return _save(fig, Path(path))


@literal_text
def plot_snr_histogram(stats: CardStats, path: str | os.PathLike) -> Path:
    """1 dB bins of ``snr_db`` over every source; the edge bins hold the values beyond them."""
    fig = _figure(7.0, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    edges = list(range(SNR_MIN, SNR_MAX))
    ax.bar(edges, [stats.snr_bins.get(b, 0) for b in edges], width=1.0, align="edge", color="#e1812c")
    ax.set_xlim(SNR_MIN, SNR_MAX)
    ax.set_xlabel("snr_db (dB; edge bins include values beyond)")
    ax.set_ylabel("sources")
    ax.set_title("SNR distribution")
    fig.tight_layout()
    return _save(fig, Path(path))


@literal_text
def plot_source_counts(stats: CardStats, path: str | os.PathLike) -> Path:
    """Grouped bars: mixtures per number of sources, one group per split."""
    fig = _figure(6.0, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    counts = stats.source_counts()
    splits = stats.splits()
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        ax.bar([n - 0.4 + (i + 0.5) * width for n in counts],
               [stats.mixtures.get((split, n), 0) for n in counts], width=width, label=split)
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.set_xlabel("sources per mixture")
    ax.set_ylabel("mixtures")
    ax.set_title("Source-count distribution")
    if splits:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))


def write_plots(stats: CardStats, assets: str | os.PathLike, top: int = 30) -> dict[str, Path]:
    """All plots into ``assets``; returns name -> path."""
    assets = Path(assets)
    return {
        "labels": plot_label_distribution(stats, assets / LABEL_PLOT, top),
        "snr": plot_snr_histogram(stats, assets / SNR_PLOT),
        "source_counts": plot_source_counts(stats, assets / SOURCE_COUNT_PLOT),
    }
