"""Curation outputs besides the metadata: the scores tables and the summary.

``scores/mixtures.parquet`` (one row per mixture) and ``scores/sources.parquet`` (one row per
source: pool, options as shown, answer, chosen label, correct, status, reason) have explicit
schemas and are sorted by ``mix_id`` (then source position), so they do not depend on the number
of processes. The summary counts kept mixtures per split x num_sources, judge accuracy against
chance per label, and the most confused label pairs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mixing.resume import AtomicFile

from .policy import Decision
from .scoring import SCORED, TRIVIAL, UNSCORED, MixtureScore

MIXTURES_SCHEMA = pa.schema([
    pa.field("mix_id", pa.string()), pa.field("split", pa.string()), pa.field("num_sources", pa.int32()),
    pa.field("score", pa.float64()), pa.field("status", pa.string()),
    pa.field("sources_scored", pa.int32()), pa.field("sources_trivial", pa.int32()),
    pa.field("sources_unscored", pa.int32()), pa.field("kept", pa.bool_()),
    pa.field("decision", pa.string()), pa.field("rank_in_group", pa.int32()),
])

SOURCES_SCHEMA = pa.schema([
    pa.field("mix_id", pa.string()), pa.field("split", pa.string()), pa.field("num_sources", pa.int32()),
    pa.field("source_id", pa.string()), pa.field("label", pa.string()),
    pa.field("pool", pa.list_(pa.string())), pa.field("options", pa.list_(pa.string())),
    pa.field("true_option", pa.int32()), pa.field("answer", pa.string()), pa.field("choice", pa.int32()),
    pa.field("chosen_label", pa.string()), pa.field("correct", pa.bool_()),
    pa.field("status", pa.string()), pa.field("reason", pa.string()), pa.field("attempts", pa.int32()),
])

NONE_LABEL = "<none>"


class ScoresWriter:
    """Streams mixtures (in ``mix_id`` order) into the two Parquet tables, atomically."""

    def __init__(self, folder: Path, batch_rows: int = 20_000):
        folder.mkdir(parents=True, exist_ok=True)
        self.batch_rows = batch_rows
        self._targets = {"mix": folder / "mixtures.parquet", "src": folder / "sources.parquet"}
        self._files = {k: AtomicFile(p) for k, p in self._targets.items()}
        self._writers = {"mix": pq.ParquetWriter(self._files["mix"].tmp, MIXTURES_SCHEMA, compression="zstd"),
                         "src": pq.ParquetWriter(self._files["src"].tmp, SOURCES_SCHEMA, compression="zstd")}
        self._schemas = {"mix": MIXTURES_SCHEMA, "src": SOURCES_SCHEMA}
        self._rows: dict[str, list[dict[str, Any]]] = {"mix": [], "src": []}

    def add(self, m: MixtureScore, d: Decision) -> None:
        self._rows["mix"].append({
            "mix_id": m.mix_id, "split": m.split, "num_sources": m.num_sources, "score": m.score,
            "status": m.status, "sources_scored": m.count(SCORED), "sources_trivial": m.count(TRIVIAL),
            "sources_unscored": m.count(UNSCORED), "kept": d.kept, "decision": d.reason, "rank_in_group": d.rank})
        for s in m.sources:
            row = s.to_dict()
            row.update(split=m.split, num_sources=m.num_sources)
            self._rows["src"].append(row)
        for kind in ("mix", "src"):
            if len(self._rows[kind]) >= self.batch_rows:
                self._flush(kind)

    def _flush(self, kind: str) -> None:
        self._writers[kind].write_table(pa.Table.from_pylist(self._rows[kind], schema=self._schemas[kind]))
        self._rows[kind] = []

    def close(self) -> None:
        for kind in ("mix", "src"):
            if self._rows[kind]:
                self._flush(kind)
            self._writers[kind].close()
            self._files[kind].commit()

    def abort(self) -> None:
        for kind in ("mix", "src"):
            self._writers[kind].close()
            self._files[kind].abort()


def _acc(correct: int, n: int) -> float | None:
    return round(correct / n, 6) if n else None


class SummaryBuilder:
    """Counts kept mixtures per split x num_sources, accuracy per label, confused pairs."""

    def __init__(self) -> None:
        self.total = 0
        self.groups: dict[str, Counter] = defaultdict(Counter)
        self.by_split: dict[str, Counter] = defaultdict(Counter)
        self.src: Counter = Counter()
        self.unscored_reasons: Counter = Counter()
        self.per_label: dict[str, Counter] = defaultdict(Counter)
        self.inv_pool: dict[str, float] = defaultdict(float)
        self.pairs: Counter = Counter()
        self.chance = 0.0

    def add(self, m: MixtureScore, d: Decision) -> None:
        self.total += 1
        for c in (self.groups[f"{m.split}/{m.num_sources}mix"], self.by_split[m.split]):
            c["total"] += 1
            c[m.status] += 1
            c["kept"] += int(d.kept)
        for s in m.sources:
            self.src["total"] += 1
            self.src[s.status] += 1
            if s.status == UNSCORED:
                self.unscored_reasons[s.reason] += 1
            if s.status != SCORED:
                continue
            self.src["correct"] += int(bool(s.correct))
            self.chance += 1.0 / len(s.options)
            lab = self.per_label[s.label]
            lab["n"] += 1
            lab["correct"] += int(bool(s.correct))
            self.inv_pool[s.label] += 1.0 / len(s.options)
            if not s.correct:
                self.pairs[(s.label, s.chosen_label or NONE_LABEL)] += 1

    def result(self, dropped: dict[str, int], top_pairs: int = 20) -> dict[str, Any]:
        src, judged = self.src, self.src[SCORED]

        def counts(c: Counter) -> dict[str, int]:
            return {"total": c["total"], "scored": c[SCORED], "unscored": c[UNSCORED], "kept": c["kept"]}

        return {
            "mixtures": {
                "total": self.total, "scored": sum(c[SCORED] for c in self.by_split.values()),
                "unscored": sum(c[UNSCORED] for c in self.by_split.values()),
                "kept": sum(c["kept"] for c in self.by_split.values()),
                "dropped_before_scoring": dict(sorted(dropped.items())),
            },
            "per_split": {k: counts(c) for k, c in sorted(self.by_split.items())},
            "kept_per_group": {k: counts(c) for k, c in sorted(self.groups.items())},
            "sources": {
                "total": src["total"], "judged": judged, "trivial": src[TRIVIAL], "unscored": src[UNSCORED],
                "unscored_by_reason": dict(sorted(self.unscored_reasons.items())),
                "accuracy": _acc(src["correct"], judged),
                "chance": round(self.chance / judged, 6) if judged else None,
            },
            "accuracy_per_label": {
                label: {"n": c["n"], "correct": c["correct"], "accuracy": _acc(c["correct"], c["n"]),
                        "chance": round(self.inv_pool[label] / c["n"], 6)}
                for label, c in sorted(self.per_label.items())},
            "most_confused": [{"label": a, "chosen": b, "count": n} for (a, b), n in
                              sorted(self.pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_pairs]],
        }


def _policy_args(policy: dict[str, Any]) -> str:
    if policy["name"] == "top_fraction":
        return f"keep={policy['keep']}"
    if policy["name"] == "min_score":
        return f"min_score={policy['min_score']}"
    return f"top len // 2 of each shard of {policy['shard_size']}"


def format_summary(summary: dict[str, Any], policy: dict[str, Any]) -> str:
    m, s = summary["mixtures"], summary["sources"]
    lines = [f"curated {m['total']} mixtures: {m['scored']} scored, {m['unscored']} unscored, "
             f"{m['kept']} kept ({policy['name']}: " + _policy_args(policy) + f", unscored {policy['unscored']})"]
    if m["dropped_before_scoring"]:
        lines.append("dropped before scoring: " + ", ".join(f"{k}={v}" for k, v in m["dropped_before_scoring"].items()))
    lines.append(f"{'group':<20}{'total':>7}{'scored':>8}{'unscored':>10}{'kept':>7}")
    for g, c in summary["kept_per_group"].items():
        lines.append(f"{g:<20}{c['total']:>7}{c['scored']:>8}{c['unscored']:>10}{c['kept']:>7}")
    acc = "n/a" if s["accuracy"] is None else f"{s['accuracy']:.3f} (chance {s['chance']:.3f})"
    lines.append(f"sources: {s['total']} ({s['judged']} judged, {s['trivial']} trivial, {s['unscored']} unscored"
                 + (": " + ", ".join(f"{k}={v}" for k, v in s["unscored_by_reason"].items()) if s["unscored"] else "")
                 + f"); judge accuracy {acc}")
    if summary["most_confused"]:
        lines.append("most confused: " + "; ".join(
            f"{p['label']} -> {p['chosen']} ({p['count']})" for p in summary["most_confused"][:5]))
    return "\n".join(lines)
