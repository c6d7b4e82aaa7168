"""The merge of a curation run: every rank's scores, the keep policy, the outputs.

Runs once per run (the rank executor's :meth:`mixing.ranks.RankRun.merge_once`), streaming: the
rank files are sorted by mix_id, so only the per-mixture decisions are held in memory. What it
writes is listed in :mod:`curation.curate.job`.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

from mixing import __version__
from mixing.metadata import MixtureRecord
from mixing.metadata_io import write_hub_folder
from mixing.output_folder import remove_own_files
from mixing.ranks import failure_record, write_manifest
from mixing.resume import atomic_write_json

from .errors import CurateError, CurateFailedError
from .errors import redact as _redact
from .policy import Candidate, Decision
from .report import ScoresWriter, SummaryBuilder, format_summary
from .scoring import SCORED, UNSCORED, MixtureScore

#: the job's run state (:class:`curation.curate.job._Run`: config, policy, output, records, markers);
#: named, not imported, so the job imports the merge and not the other way round
_Run = Any


def _iter_scores(path: Path) -> Iterator[MixtureScore]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield MixtureScore.from_dict(json.loads(line))


def sort_by_mix_id(src: Path, dst: Path) -> None:
    """Rewrite a scores JSONL file in ``mix_id`` order (an index of offsets in memory, not the rows)."""
    index: list[tuple[str, int, int]] = []
    with open(src, "rb") as fh:
        offset = 0
        for line in fh:
            index.append((json.loads(line)["mix_id"], offset, len(line)))
            offset += len(line)
    index.sort()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for _, offset, length in index:
            fin.seek(offset)
            fout.write(fin.read(length))


def _group_positions(run: _Run) -> dict[str, int]:
    """Each mixture's position in its (split, num_sources) group, in input order (valid records,
    first of a repeated mix id): the order ``hive render`` cuts shards in."""
    positions: dict[str, int] = {}
    counts: Counter = Counter()
    for rec in run.records():
        if rec.mix_id not in positions:
            group = (rec.split, rec.num_sources)
            positions[rec.mix_id] = counts[group]
            counts[group] += 1
    return positions
def _failure(run: _Run, world: int, paths: list[Path]) -> str | None:
    """Why this run failed (one line), or None: the judge failed for all or more than
    ``max_failure_rate`` of the sources this run asked it about (counted over every rank), or
    no source needing the judge got a readable answer."""
    asked = failed = 0
    first: str | None = None
    markers = run.markers(world)
    for r in range(world):
        marker = markers.read(r)
        if marker is None:
            raise CurateError(f"{markers.path(r)} is missing or unreadable: rank {r} has not finished; "
                              "rerun the same command")
        asked += int(marker["stats"].get("judge_sources_asked", 0))
        failed += int(marker["stats"].get("judge_sources_failed", 0))
        first = first or marker.get("first_error")
    first = " ".join(first.split()) if first else first  # one line
    judged = unscored = 0
    reasons: Counter = Counter()
    for p in paths:
        for m in _iter_scores(p):
            for s in m.sources:
                judged += s.status == SCORED
                if s.status == UNSCORED:
                    unscored += 1
                    reasons[s.reason] += 1
    hint = f"fix the judge ({_redact(run.config.judge)[:200]}) and rerun the same command"
    limit = run.config.max_failure_rate
    if failed and (failed == asked or (limit is not None and failed / asked > limit)):
        rate = failed / asked
        share = (f"{100 * rate:.1f}% > {100 * limit:g}%" if limit is not None and rate > limit
                 else "all of them")
        return (f"the judge failed for {failed} of {asked} sources ({share}): {first or 'no answer'}; "
                f"{hint}; nothing was kept and no metadata written; failed sources are never cached and will be "
                "asked again")
    if judged == 0 and unscored:
        why = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
        return (f"no source could be judged ({unscored} unscored: {why}); nothing was kept and no "
                "metadata written; check the judge's answers in "
                f"{run.output / 'scores' / 'sources.parquet'} and the audio (--dataset-paths/--rendered), then rerun")
    return None


def merge(run: _Run, world: int) -> tuple[dict[str, Any], str]:
    """Apply the keep policy to every rank's scores and write the outputs. Streams: the rank
    files are sorted by mix_id, so only the per-mixture decisions are held in memory. When the run
    failed (:func:`_failure`), nothing is kept and :class:`CurateFailedError` is raised after the
    scores, summary and failures are written."""
    paths = [run.rank_files(r, world)[0] for r in range(world)]
    positions = _group_positions(run) if run.policy.rule == "reference" else {}
    decisions = run.policy.select(Candidate(m.mix_id, m.split, m.num_sources, m.score, positions.get(m.mix_id))
                                  for p in paths for m in _iter_scores(p))
    failure = _failure(run, world, paths)
    if failure:
        decisions = {k: Decision(False, "run_failed", d.rank) for k, d in decisions.items()}
    out = run.output
    writer, summary_builder = ScoresWriter(out / "scores"), SummaryBuilder()
    try:
        for m in heapq.merge(*(_iter_scores(p) for p in paths), key=lambda m: m.mix_id):
            d = decisions[m.mix_id]
            writer.add(m, d)
            summary_builder.add(m, d)
    except BaseException:
        writer.abort()
        raise
    writer.close()

    if failure:  # no refreshed metadata claiming success, not even an earlier run's (only its own files go)
        remove_own_files(out, ("metadata/data/*-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].parquet",))
    kept = {mix_id for mix_id, d in decisions.items() if d.kept}
    seen: set[str] = set()

    def kept_records() -> Iterator[MixtureRecord]:
        for rec in run.records():
            if rec.mix_id in kept and rec.mix_id not in seen:
                seen.add(rec.mix_id)
                yield rec

    counts: dict[str, int] = {}
    if not failure:
        counts = write_hub_folder(kept_records(), out / "metadata")
        for stale in (out / "metadata" / "data").glob("*-of-*.parquet"):
            if stale.name.split("-", 1)[0] not in counts:  # a split with nothing kept this time
                stale.unlink()

    dropped_info = json.loads((run.work / "dropped.json").read_text())

    def failures() -> Iterator[dict[str, Any]]:  # streamed: the judge may have failed for many sources
        yield from dropped_info["failures"]
        for p in paths:  # model failures: not cached, asked again by the next run
            for m in _iter_scores(p):
                for src in m.sources:
                    if src.reason == "judge_failed":
                        yield failure_record("judge_failed", "the judge gave no answer; asked again by the next run",
                                             mix_id=m.mix_id, source_id=src.source_id, model_failure=True)

    write_manifest(out / "failures.jsonl", failures())

    summary = summary_builder.result(dropped_info["counts"])
    summary["metadata_rows_written"] = dict(sorted(counts.items()))
    summary["status"] = "failed" if failure else "ok"
    if failure:
        summary["error"] = failure
    policy = run.policy.describe()
    summary["policy"] = policy
    atomic_write_json(out / "summary.json", summary)
    c = run.config
    atomic_write_json(out / "provenance.json", {
        "tool": "hive-uss", "version": __version__, "step": "curate",
        "metadata": {"source": c.metadata, "revision": c.revision, "split": c.split or "all"},
        "ontology": {"path": os.path.basename(c.ontology), "sha256": run.ontology_sha256},
        "judge": {"spec": _redact(c.judge), "model_id": str(run.judge.model_id),
                  "answer_retries": c.answer_retries},
        "prompt": run.prompt.describe(),
        "pools": {"rule": c.confusion_pool,
                  "definition": ("true label + the other children of its last parent in ontology file "
                                 "order (the reference rule)" if c.confusion_pool == "reference" else
                                 "true label + ontology siblings (children of each parent), without the "
                                 "label's ancestors and descendants"),
                  "max_pool": c.max_pool, "seed": c.seed,
                  "cap": "true label + the max_pool-1 siblings with the smallest "
                         "sha256(seed, mix_id, source_id, 'pool', label)",
                  "option_order": c.option_order,
                  "order": ("options sorted by sha256(seed, mix_id, source_id, 'order', label)"
                            if c.option_order == "shuffled" else "true label first, then the pool's order")},
        "audio": run.audio_description,
        "policy": policy,
        "cache_key": "sha256([mix_id, source_id, pool, model_id, sha256([prompt, system, temperature])])",
        "counts": summary["mixtures"],
        "config": {k: v for k, v in asdict(c).items()
                   if k in ("keep", "min_score", "unscored", "split", "max_pool", "seed", "confusion_pool",
                            "option_order", "prompt", "system", "temperature", "keep_rule")},
    })
    text = format_summary(summary, policy)
    if failure:
        raise CurateFailedError(failure)
    return summary, text
