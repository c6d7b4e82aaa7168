"""Evaluation outputs: per-source rows (streamed to ``results.csv``), the summary per
(system, label, num_sources) with mean / median / count (``summary.csv``, ``summary.md``) and a plot."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import optional
from ..csv_output import CsvWriter
from ..plotting import literal_text
from ..resume import AtomicFile, atomic_open

RESULT_FIELDS = ("system", "split", "mix_id", "num_sources", "source_index", "label",
                 "si_sdr", "si_sdr_mix", "si_sdri", "sdr", "sdr_mix", "sdri")
METRICS = ("si_sdr", "si_sdri", "sdr", "sdri")
ALL = "ALL"
SUMMARY_FIELDS = ("system", "label", "num_sources", "count", "undefined") + tuple(
    f"{m}_{s}" for m in METRICS for s in ("mean", "median"))


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6f}"
    return v


class ResultsWriter:
    """Writes ``results.csv`` row by row (temporary name, renamed on :meth:`close`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._target = AtomicFile(self.path)
        self._fh = self._target.open("w")
        self._writer = CsvWriter(self._fh, RESULT_FIELDS)
        self._writer.writeheader()
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        self._writer.writerow({k: _fmt(row.get(k, float("nan"))) for k in RESULT_FIELDS})
        self.rows += 1

    def close(self) -> Path:
        self._target.commit()
        return self.path

    def abort(self) -> None:
        self._target.abort()


@dataclass
class Summary:
    """Per-source metric values grouped by (system, label, num_sources); scalars only."""

    values: dict[tuple[str, str, int], dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    systems: list[str] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        if row["system"] not in self.systems:
            self.systems.append(row["system"])
        group = self.values[(row["system"], row["label"], int(row["num_sources"]))]
        for m in METRICS:
            group[m].append(float(row.get(m, float("nan"))))

    def _pooled(self, system: str, label: str | None, n: int | None) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for (s, lab, k), group in self.values.items():
            if s == system and (label is None or lab == label) and (n is None or k == n):
                for m in METRICS:
                    out[m].extend(group[m])
        return out

    def rows(self, per_label: bool = True) -> list[dict[str, Any]]:
        """Overall (label ALL, num_sources ALL), per num_sources (label ALL), then per label: over
        every number of sources (num_sources ALL) followed by per (label, n)."""
        out = []
        counts = sorted({k for (_, _, k) in self.values})
        labels = sorted({(lab, k) for (_, lab, k) in self.values}, key=lambda t: (t[0].lower(), t[1]))
        for system in self.systems:
            out.append(_stats(system, ALL, ALL, self._pooled(system, None, None)))
            for k in counts:
                out.append(_stats(system, ALL, k, self._pooled(system, None, k)))
        if per_label:
            done: set[str] = set()
            for lab, k in labels:
                if lab not in done:
                    done.add(lab)
                    for system in self.systems:
                        pooled = self._pooled(system, lab, None)
                        if pooled:
                            out.append(_stats(system, lab, ALL, pooled))
                for system in self.systems:
                    if (system, lab, k) in self.values:
                        out.append(_stats(system, lab, k, self.values[(system, lab, k)]))
        return out

    def mean(self, system: str, metric: str = "si_sdri", n: int | None = None) -> float:
        vals = np.asarray(self._pooled(system, None, n)[metric], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if vals.size else float("nan")


def _stats(system: str, label: str, n: Any, group: dict[str, list[float]]) -> dict[str, Any]:
    si = np.asarray(group["si_sdr"], dtype=np.float64)
    row: dict[str, Any] = {"system": system, "label": label, "num_sources": n,
                           "count": int((~np.isnan(si)).sum()), "undefined": int(np.isnan(si).sum())}
    for m in METRICS:
        v = np.asarray(group[m], dtype=np.float64)
        v = v[~np.isnan(v)]
        row[f"{m}_mean"] = float(v.mean()) if v.size else float("nan")
        row[f"{m}_median"] = float(np.median(v)) if v.size else float("nan")
    return row


def write_summary_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path, "w") as fh:
        w = CsvWriter(fh, SUMMARY_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r[k]) for k in SUMMARY_FIELDS})
    return path


def _dB(x: float) -> str:
    return f"{round(x, 2) + 0.0:.2f}"  # + 0.0: no "-0.00" for a rounding residue


def markdown_table(rows: list[dict[str, Any]], sdr: bool = True) -> str:
    metrics = METRICS if sdr else METRICS[:2]
    head = ["system", "label", "sources", "count"] + [f"{m} mean / median (dB)" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for r in rows:
        cells = [r["system"], str(r["label"]).replace("|", "\\|"), str(r["num_sources"]), str(r["count"])]
        for m in metrics:
            a, b = r[f"{m}_mean"], r[f"{m}_median"]
            cells.append("n/a" if math.isnan(a) else f"{_dB(a)} / {_dB(b)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@literal_text
def plot_summary(summary: Summary, path: str | Path) -> Path:
    """Mean SI-SDRi per number of sources for each system (bars), and SI-SDR per system (boxes)."""
    what, instead = "the si_sdri.png plot", "or pass --no-plot"
    matplotlib = optional.require("matplotlib", what, "eval", alternative=instead)
    matplotlib.use("Agg")
    plt = optional.require("matplotlib.pyplot", what, "eval", alternative=instead)

    return _plot_summary(summary, Path(path), plt)  # system names are text, never TeX (literal_text)


@literal_text
def _plot_summary(summary: Summary, path: Path, plt) -> Path:
    counts = sorted({k for (_, _, k) in summary.values})
    systems = summary.systems
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    width = 0.8 / max(1, len(systems))
    for j, system in enumerate(systems):
        means = [summary.mean(system, "si_sdri", k) for k in counts]
        bars = ax1.bar(np.arange(len(counts)) + j * width, np.nan_to_num(means), width, label=system)
        ax1.bar_label(bars, labels=[f"{m:.1f}" for m in means], fontsize=8)  # a 0 dB bar is invisible
    ax1.set_xticks(np.arange(len(counts)) + width * (len(systems) - 1) / 2, [f"{k} sources" for k in counts])
    ax1.set_ylabel("mean SI-SDRi (dB)")
    ax1.axhline(0.0, color="black", linewidth=0.8)
    ax1.legend()
    data = []
    for system in systems:
        v = np.asarray(summary._pooled(system, None, None)["si_sdr"], dtype=np.float64)
        data.append(v[~np.isnan(v)])
    ax2.boxplot(data, tick_labels=systems)
    ax2.set_ylabel("SI-SDR (dB)")
    fig.suptitle("hive eval")
    try:
        with AtomicFile(path) as f:
            fig.savefig(f.tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path
