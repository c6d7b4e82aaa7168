"""The index page's statistics: the card's :class:`~dataset_card.stats.CardStats` (labels,
mixtures per split and source count, SNR histogram) plus source chunk durations and the disk
size of a rendered folder. Memory is bounded by the vocabulary, not by the number of mixtures."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mixing.memory_estimate import size_text
from mixing.metadata import MixtureRecord
from mixing.plotting import literal_text

from ..stats import CardStats

#: chunk-duration histogram: 1 s bins over [0, CHUNK_MAX_S); longer chunks go to the last bin
CHUNK_MAX_S = 60


@dataclass
class InspectStats:
    card: CardStats = field(default_factory=CardStats)
    #: floor(chunk_end - chunk_start) clipped to [0, CHUNK_MAX_S - 1] -> sources
    chunk_bins: Counter = field(default_factory=Counter)
    chunk_min: float = math.inf
    chunk_max: float = 0.0
    chunk_sum: float = 0.0
    #: total bytes and file count of a rendered folder (None for metadata input)
    disk_bytes: int | None = None
    disk_files: int | None = None
    #: bytes per top-level folder of the rendered output (split) and per format suffix
    disk_by_split: dict[str, int] = field(default_factory=dict)

    def add(self, rec: MixtureRecord) -> None:
        self.card.add(rec)
        for s in rec.sources:
            d = s.chunk_end_second - s.chunk_start_second
            if math.isfinite(d):
                self.chunk_bins[min(max(int(math.floor(d)), 0), CHUNK_MAX_S - 1)] += 1
                self.chunk_min = min(self.chunk_min, d)
                self.chunk_max = max(self.chunk_max, d)
                self.chunk_sum += d

    @property
    def num_chunks(self) -> int:
        return sum(self.chunk_bins.values())

    def measure_folder(self, root: Path) -> None:
        """Disk size of every regular file under ``root`` (symlinks not followed)."""
        total = files = 0
        by_split: Counter = Counter()
        for dirpath, _, names in os.walk(root):
            for name in names:
                p = Path(dirpath, name)
                if p.is_symlink() or not p.is_file():
                    continue
                size = p.stat().st_size
                total += size
                files += 1
                rel = p.relative_to(root).parts
                by_split[rel[0] if len(rel) > 1 else "(top level)"] += size
        self.disk_bytes, self.disk_files = total, files
        self.disk_by_split = dict(sorted(by_split.items()))

    def to_dict(self) -> dict:
        out = self.card.to_dict()
        out["durations"] = {f"{s}/{d:g}s": c for (s, d), c in sorted(self.card.durations.items())}
        out["chunk_seconds_bins"] = {str(k): v for k, v in sorted(self.chunk_bins.items())}
        if self.disk_bytes is not None:
            out["disk_bytes"] = self.disk_bytes
            out["disk_files"] = self.disk_files
            out["disk_by_split"] = self.disk_by_split
        return out


def human_bytes(n: int) -> str:
    return size_text(n, binary=False)


@literal_text
def plot_chunk_durations(stats: InspectStats, path: str | os.PathLike) -> Path:
    """Bars: sources per 1 s bin of chunk duration."""
    from ..plots import _figure, _save

    fig = _figure(7.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    top = max(stats.chunk_bins, default=0) + 1
    edges = list(range(0, max(top, 1)))
    ax.bar(edges, [stats.chunk_bins.get(b, 0) for b in edges], width=1.0, align="edge", color="#5a9e6f")
    ax.set_xlabel(f"chunk duration (s; last bin ≥ {CHUNK_MAX_S - 1} s)" if top >= CHUNK_MAX_S else "chunk duration (s)")
    ax.set_ylabel("sources")
    ax.set_title("Source chunk durations")
    fig.tight_layout()
    return _save(fig, Path(path))
