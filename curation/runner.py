# Over 400 lines: the stage runner's ledger, config check and merge are one resumable contract, read top to bottom.
"""The stage runner: one stage over the sorted input, split across ranks, resumable, merged.

Rank ``r`` of ``w`` takes ``items[r::w]`` of the input sorted by ``clip_id`` and writes, in the
output folder::

    rank-{r:05d}.jsonl      kept items (append mode)
    drops-{r:05d}.jsonl     dropped items, each with its reason (content decisions: final)
    failures-{r:05d}.jsonl  items the model failed on in the latest run (not done: retried next run)
    progress-{r:05d}.jsonl  the ledger: after each batch, the input ids done and both files' sizes
    stats-{r:05d}.json      counts (from the files, so a resumed run counts like an uninterrupted one)
    done-{r:05d}            the completion marker, written last

A model failure (:data:`~.stages.base.MODEL_FAILURES`: the judge/tagger errored, timed out, was
unreachable, or its answers stayed unreadable) is not a drop: the item is listed with its reason in
the failures file but not in the ledger, so the next run of the same command retries exactly those
items (a rank whose marker counts failures is run again), and a success then lands in the outputs
once. (Under ``accelerate launch`` all ranks meet at a barrier before rank 0 merges; ranks started
by hand that rerun failures are best run with ``--no-merge``, then ``hive mine merge``, as rank 0
may otherwise see another rank's marker of the earlier run.) When the model failed for every item
a run processed, or for more than ``max_failure_rate`` of them (counted over all ranks at the
merge), :func:`run_stage` raises :class:`ModelFailureError` after writing everything.

A rerun skips ranks whose marker exists and, within a rank, input items the ledger lists; kept and
dropped lines written after the last ledger entry (a batch cut by a crash) are truncated away
first, so nothing is duplicated. When every marker exists, the main process (rank 0) merges:
``output.jsonl`` (sorted by ``clip_id``), ``drops.jsonl``, ``failures.jsonl``, ``stats.json``, ``provenance.json``
(stage, options, thresholds, model ids, prompt texts and their sha256, package versions) and,
on request, ``output.parquet``. ``config.json`` pins the stage, options, input and number of
ranks; a rerun with other ones is refused unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mixing import numbers
from mixing.errors import HiveError
from mixing.locks import FolderLockedError
from mixing.ranks import AUTO, RankRun, Ranks, Wait
from mixing.resume import RankMarkers, atomic_open, atomic_write_json

from .manifest import OUTPUT_NAME, dumps, read_items, write_jsonl, write_parquet
from .stages import make_stage
from .stages.base import Drop, Item, Stage, failed_model

log = logging.getLogger(__name__)

RANK_OUTPUT = "rank-{:05d}.jsonl"
RANK_DROPS = "drops-{:05d}.jsonl"
RANK_FAILURES = "failures-{:05d}.jsonl"
RANK_PROGRESS = "progress-{:05d}.jsonl"
RANK_STATS = "stats-{:05d}.json"
RANK_DONE = "done-{rank:05d}"
CONFIG = "config.json"
FAILURES_NAME = "failures.jsonl"
MERGED = (OUTPUT_NAME, "drops.jsonl", FAILURES_NAME, "stats.json", "provenance.json", "output.parquet")
DEFAULT_MAX_FAILURE_RATE = 0.5
PACKAGES = ("hive-uss", "numpy", "soundfile", "soxr", "pyarrow", "accelerate", "torch", "transformers",
            "sherpa-onnx", "onnxruntime", "httpx", "tqdm")


class RunConfigMismatch(HiveError):
    """The output folder holds a run of another stage, options, input or number of ranks."""


class IncompleteRunError(HiveError):
    """Merging was asked for before every rank finished."""


class MineLockedError(FolderLockedError):
    """Another live process runs the same rank of a stage into the folder (or another run does)."""


class LedgerError(HiveError):
    """A rank's ledger does not match its output files."""


class ModelFailureError(HiveError):
    """The model failed for too many items; the outputs hold what succeeded, the failed items are
    retried by the next run. ``stats`` is the run's (merged or rank) statistics."""

    def __init__(self, message: str, stats: dict[str, Any] | None = None):
        super().__init__(message)
        self.stats = stats or {}


def failure_message(stats: dict[str, Any], max_rate: float, where: str = "") -> str | None:
    """The one-line error when the model failed for every processed item or more than ``max_rate``
    of them (``None`` when the run is fine). ``stats`` needs ``processed``, ``failed`` (reason ->
    count), ``failed_total`` and ``first_failure``."""
    failed, processed = int(stats.get("failed_total") or 0), int(stats.get("processed") or 0)
    if failed == 0 or processed == 0:
        return None
    rate = failed / processed
    if failed < processed and rate <= max_rate:
        return None
    reasons = stats.get("failed") or {}
    top = max(sorted(reasons), key=lambda r: reasons[r]) if reasons else "judge_failed"
    first = stats.get("first_failure") or {}
    cause = " ".join(str(first.get("detail") or first.get("reason") or top).split())  # one line
    listed = f" (listed in {where})" if where else ""
    share = f"{100 * rate:.1f}% > {100 * max_rate:g}%" if rate > max_rate else "all of them"
    return (f"{failed_model(top)} failed for {failed} of {processed} items ({share}): {cause}; fix the "
            "model backend (is its server up, are the options right?) and rerun the same command; the "
            f"{failed} failed items{listed} will be retried")


@dataclass
class RunConfig:
    input: str
    output: str
    rank: int = 0
    world_size: int = 1
    batch_size: int | None = None
    progress: bool | None = None  # None: on rank 0 when stderr is a terminal
    overwrite: bool = False
    merge: bool = True  # rank 0 waits for every rank, then merges
    parquet: bool = False
    device: str | None = None
    #: raise ModelFailureError when the model failed for more than this fraction of the items
    #: processed (or for all of them); None: never
    max_failure_rate: float | None = DEFAULT_MAX_FAILURE_RATE
    wait_timeout: float | None = None
    poll_interval: float = 0.5

    def __post_init__(self) -> None:
        ranks = Ranks.of(self.rank, self.world_size)  # the rank executor's one check of ranks
        self.rank, self.world_size = ranks.rank, ranks.world_size
        numbers.check_fields(self, {"batch_size": numbers.COUNT, "max_failure_rate": numbers.FRACTION,
                                    "wait_timeout": numbers.SECONDS, "poll_interval": numbers.SECONDS},
                             where="run setting")


@dataclass
class RunSummary:
    stage: str
    rank: int
    world_size: int
    items: int = 0  # this rank's share
    resumed: int = 0  # items already done by an earlier run
    processed: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)  # model failures of this run, by reason
    skipped_rank: bool = False
    merged: dict[str, Any] | None = None


# ---- small file helpers ---------------------------------------------------------------------------
def _done_markers(output: Path, world_size: int) -> RankMarkers:
    return RankMarkers(output, RANK_DONE, world_size)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _iter_lines(path: Path):
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "hive-uss" not in out:
        from mixing import __version__
        out["hive-uss"] = __version__
    return out


def items_fingerprint(items: list[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps(it.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# ---- the per-rank ledger ------------------------------------------------------------------------
class RankLedger:
    """Append-mode kept/drops files plus a progress ledger that makes them crash-safe."""

    def __init__(self, output: Path, rank: int):
        self.out_path = output / RANK_OUTPUT.format(rank)
        self.drops_path = output / RANK_DROPS.format(rank)
        self.progress_path = output / RANK_PROGRESS.format(rank)
        self.failures_path = output / RANK_FAILURES.format(rank)
        self.done_ids: set[str] = set()
        self.models: dict[str, Any] = {}
        self._files: tuple[Any, Any, Any, Any] | None = None

    def open(self) -> set[str]:
        """Read the ledger, truncate what a crash left after its last entry, open for appending."""
        out_size = drops_size = 0
        valid_bytes = 0
        if self.progress_path.is_file():
            with open(self.progress_path, "rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break  # a line cut by a crash
                    try:
                        entry = json.loads(raw)
                        ids, out_size, drops_size = entry["ids"], int(entry["out"]), int(entry["drops"])
                    except (ValueError, KeyError, TypeError):
                        break
                    self.done_ids.update(ids)
                    self.models.update(entry.get("models") or {})
                    valid_bytes += len(raw)
        for path, size in ((self.out_path, out_size), (self.drops_path, drops_size),
                           (self.progress_path, valid_bytes)):
            have = path.stat().st_size if path.is_file() else 0
            if have < size:
                raise LedgerError(f"{path} has {have} bytes but its ledger {self.progress_path} records "
                                  f"{size}; the folder was modified by hand. Rerun with --overwrite")
            with open(path, "ab") as fh:
                fh.truncate(size)
        # failures of an earlier run are not in the ledger: this run retries them, so list anew
        self._files = (open(self.out_path, "ab"), open(self.drops_path, "ab"), open(self.progress_path, "ab"),
                       open(self.failures_path, "wb"))
        return self.done_ids

    def commit(self, ids: list[str], kept: list[str], drops: list[str], models: dict | None = None,
               failures: list[str] | None = None) -> None:
        """Append a batch: ``ids`` are the items done (kept or dropped), ``failures`` the lines of
        items the model failed on (not done: left out of ``ids``)."""
        assert self._files is not None, "open() first"
        out, dr, prog, fail = self._files
        if failures:
            fail.write("".join(line + "\n" for line in failures).encode("utf-8"))
            fail.flush()
        if kept:
            out.write("".join(line + "\n" for line in kept).encode("utf-8"))
        out.flush()
        if drops:
            dr.write("".join(line + "\n" for line in drops).encode("utf-8"))
        dr.flush()
        entry: dict[str, Any] = {"ids": ids, "out": out.tell(), "drops": dr.tell()}
        if models:
            entry["models"] = models
        prog.write((json.dumps(entry) + "\n").encode("utf-8"))
        prog.flush()
        self.done_ids.update(ids)

    def close(self) -> None:
        if self._files:
            for f in self._files:
                f.close()
            self._files = None


# ---- running one rank -----------------------------------------------------------------------------
def _config(stage: Stage, opts: RunConfig, items: list[Item]) -> dict[str, Any]:
    return {"tool": "hive-uss", "stage": stage.name, "options": stage.options(),
            "input": os.path.abspath(opts.input), "input_sha256": items_fingerprint(items),
            "num_items": len(items), "world_size": opts.world_size}


def _identity(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg.get(k) for k in ("stage", "options", "input_sha256", "world_size")}


def _config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_identity(cfg), sort_keys=True).encode()).hexdigest()[:16]


def _clear_rank(output: Path, rank: int) -> None:
    _done_markers(output, 1).clear(rank)
    for pattern in (RANK_STATS, RANK_OUTPUT, RANK_DROPS, RANK_PROGRESS, RANK_FAILURES):
        (output / pattern.format(rank)).unlink(missing_ok=True)


def _check_config(output: Path, cfg: dict[str, Any], opts: RunConfig) -> None:
    path = output / CONFIG
    if opts.overwrite:
        _clear_rank(output, opts.rank)
        if opts.rank == 0:
            for name in MERGED:
                (output / name).unlink(missing_ok=True)
    elif path.is_file():
        have = _read_json(path)
        if _identity(have) != _identity(cfg):
            diff = {k: (have.get(k), cfg[k]) for k in _identity(cfg) if have.get(k) != cfg[k]}
            raise RunConfigMismatch(
                f"{output} holds a run with other settings (was, now): {json.dumps(diff)[:600]}. Use "
                "another --output folder, rerun with the same stage options, input and number of "
                "processes, or pass --overwrite to discard the old run")
    atomic_write_json(path, cfg)  # every rank writes the same content; rename is atomic


def _show_progress(opts: RunConfig) -> bool:
    if opts.progress is not None:
        return opts.progress and opts.rank == 0
    return opts.rank == 0 and sys.stderr.isatty()


def rank_stats(output: Path, rank: int, world_size: int, items: int, processed: int = 0) -> dict[str, Any]:
    """Counts for one rank, from its files (identical whether or not the run was resumed); the
    model failures and ``processed`` are those of the rank's latest run."""
    kept, seconds = 0, 0.0
    for line in _iter_lines(output / RANK_OUTPUT.format(rank)):
        rec = json.loads(line)
        kept += 1
        if rec.get("chunk_end_second") is not None:
            seconds += rec["chunk_end_second"] - (rec.get("chunk_start_second") or 0.0)
    dropped = Counter(json.loads(line)["reason"] for line in _iter_lines(output / RANK_DROPS.format(rank)))
    failures = [json.loads(line) for line in _iter_lines(output / RANK_FAILURES.format(rank))]
    failed = Counter(f["reason"] for f in failures)
    return {"rank": rank, "world_size": world_size, "items_in": items, "kept": kept,
            "kept_seconds": round(seconds, 6), "dropped": dict(sorted(dropped.items())),
            "dropped_total": sum(dropped.values()), "processed": processed,
            "failed": dict(sorted(failed.items())), "failed_total": len(failures),
            "first_failure": _first_failure(failures)}


def _first_failure(failures: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not failures:
        return None
    f = min(failures, key=lambda f: f["clip_id"])
    return {k: f.get(k) for k in ("clip_id", "reason", "detail")}


def run_stage(stage: Stage, opts: RunConfig) -> RunSummary:
    """Run ``stage`` for rank ``opts.rank``; on rank 0 (with ``merge``) wait for all and merge.
    The ranks, the rank's lock, its marker and the merge are the rank executor's
    (:class:`mixing.ranks.RankRun`)."""
    ranks = Ranks.of(opts.rank, opts.world_size)
    output = Path(opts.output)
    items = read_items(opts.input)
    cfg = _config(stage, opts, items)
    expect = {"config": _config_hash(cfg)}
    with RankRun(output, ranks, markers=_done_markers(output, ranks.world_size), identity=expect,
                 activity="mined", error=MineLockedError) as run:
        _check_config(output, cfg, opts)
        summary = _stage_rank(run, stage, opts, items, expect)
        if opts.merge:
            # A rank rerun to retry its model failures still has the marker of its earlier run until it
            # finishes; under a launcher with a process group, rank 0 merges after every rank's run.
            wait = Wait(opts.wait_timeout, opts.poll_interval, error=IncompleteRunError,
                        hint=f"rerun them (finished work is kept), then run 'hive mine merge --output {output}'")
            done = run.merge_once(lambda: merge_outputs(output, parquet=opts.parquet), expect=expect,
                                  barrier=AUTO, wait=wait)
            if not done.merged:
                return summary  # rank 0 checks the counts of every rank after its merge
            summary.merged = done.result
            check, where = summary.merged, output / FAILURES_NAME
        else:  # this rank alone: the merge (hive mine merge) checks all of them
            check, where = _read_json(output / RANK_STATS.format(ranks.rank)), output / RANK_FAILURES.format(ranks.rank)
    if opts.max_failure_rate is not None:  # a skipped rank has no failures: it passes
        message = failure_message(check, opts.max_failure_rate, str(where))
        if message:
            exc = ModelFailureError(message, check)
            exc.summary = summary  # type: ignore[attr-defined]
            raise exc
    return summary


def _stage_rank(run: RankRun, stage: Stage, opts: RunConfig, items: list[Item],
                expect: dict[str, Any]) -> RunSummary:
    """This rank's share of ``items``: skipped when its marker says it is done without failures,
    else processed (resuming from the ledger) and marked done."""
    rank, world = run.ranks.rank, run.ranks.world_size
    output = run.output
    shard = run.share(items)
    summary = RunSummary(stage.name, rank, world, items=len(shard))
    done_info = run.done(expect) or {}
    if done_info and not done_info.get("failed"):
        summary.skipped_rank = True
        summary.resumed = len(shard)
        stats_path = output / RANK_STATS.format(rank)
        st = _read_json(stats_path)
        if st.get("processed"):  # this run processed nothing here: the merged rate counts this run only
            st["processed"] = 0
            atomic_write_json(stats_path, st)
        log.info("%s rank %d: already done, skipped", stage.name, rank)
    else:
        run.clear_done()
        earlier_models = _run_shard(stage, opts, output, shard, summary)
        stats = rank_stats(output, rank, world, len(shard), summary.processed)
        stats["provenance"] = stage.provenance()
        stats["device"] = opts.device
        if not stage._ready:  # nothing left to do: the models an earlier run used, from the ledger
            stats["provenance"]["models"] = earlier_models
        atomic_write_json(output / RANK_STATS.format(rank), stats)
        run.mark_done({"rank": rank, "world_size": world, **expect, "kept": stats["kept"],
                       "dropped": stats["dropped_total"], "failed": stats["failed_total"]})
    st = _read_json(output / RANK_STATS.format(rank))
    summary.kept, summary.dropped = st["kept"], st["dropped"]
    summary.failed = st.get("failed", {}) if not summary.skipped_rank else {}
    return summary


def _run_shard(stage: Stage, opts: RunConfig, output: Path, shard: list[Item],
               summary: RunSummary) -> dict[str, Any]:
    """Process the items of ``shard`` the ledger does not list; return the ledger's model record."""
    from tqdm.auto import tqdm

    ledger = RankLedger(output, opts.rank)
    done = ledger.open()
    todo = [it for it in shard if it.clip_id not in done]
    summary.resumed = len(shard) - len(todo)
    stage.device = opts.device
    bar = tqdm(total=len(shard), initial=summary.resumed, desc=f"hive mine {stage.name}", unit="item",
               disable=not _show_progress(opts), dynamic_ncols=True)
    models_logged = False
    try:
        for batch, results in stage.run(todo, opts.batch_size):
            kept, drops, failures, done_ids = [], [], [], []
            for item, result in zip(batch, results):
                for r in result:
                    if not isinstance(r, (Item, Drop)):
                        raise TypeError(f"stage {stage.name} yielded a {type(r).__name__}; expected Item or Drop")
                failed = [r for r in result if isinstance(r, Drop) and r.is_model_failure]
                if failed:  # not done: nothing of this item is written, the next run asks again
                    failures.extend(dumps(r.to_dict(stage.name)) for r in failed)
                    continue
                done_ids.append(item.clip_id)
                for r in result:
                    if isinstance(r, Item):
                        kept.append(dumps(r.to_dict()))
                    else:
                        drops.append(dumps(r.to_dict(stage.name)))
            models = None
            if not models_logged:
                models, models_logged = stage.models(), True
            ledger.commit(done_ids, kept, drops, models, failures)
            summary.processed += len(batch)
            bar.update(len(batch))
    finally:
        bar.close()
        ledger.close()
    return ledger.models


# ---- waiting and merging --------------------------------------------------------------------------
def _missing_ranks(output: Path, world_size: int, config_hash: str | None) -> list[int]:
    return _done_markers(output, world_size).missing(None if config_hash is None else {"config": config_hash})


def _merge_models(per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for models in per_rank:
        for role, info in (models or {}).items():
            have = merged.get(role)
            if have is None or (isinstance(have, dict) and have.get("model_id") is None):
                merged[role] = info
    return merged


def merge_outputs(output: str | os.PathLike, parquet: bool = False) -> dict[str, Any]:
    """Merge every rank's files into ``output.jsonl`` & co. Idempotent; refuses an unfinished run."""
    output = Path(output)
    if not (output / CONFIG).is_file():
        raise IncompleteRunError(f"{output} holds no {CONFIG}; it is not the output folder of a mining stage")
    cfg = _read_json(output / CONFIG)
    world = int(cfg["world_size"])
    missing = _missing_ranks(output, world, _config_hash(cfg))
    if missing:
        raise IncompleteRunError(f"{output}: ranks {missing[:20]} of {world} have not finished; run them "
                                 "first (e.g. rerun the same command), then merge")
    keyed: list[tuple[str, str]] = []
    for r in range(world):
        for line in _iter_lines(output / RANK_OUTPUT.format(r)):
            keyed.append((json.loads(line)["clip_id"], line))
    keyed.sort(key=lambda kv: kv[0])
    for (a, _), (b, _) in zip(keyed, keyed[1:]):
        if a == b:
            raise LedgerError(f"{output}: clip_id {a!r} was written twice; the rank files are "
                              "inconsistent. Rerun with --overwrite")
    with atomic_open(output / OUTPUT_NAME) as fh:
        fh.writelines(line if line.endswith("\n") else line + "\n" for _, line in keyed)
    drops = sorted((json.loads(line) for r in range(world)
                    for line in _iter_lines(output / RANK_DROPS.format(r))),
                   key=lambda d: (d["clip_id"], d["reason"]))
    write_jsonl(drops, output / "drops.jsonl")
    failures = sorted((json.loads(line) for r in range(world)
                       for line in _iter_lines(output / RANK_FAILURES.format(r))),
                      key=lambda d: (d["clip_id"], d["reason"]))
    write_jsonl(failures, output / FAILURES_NAME)
    per_rank = [_read_json(output / RANK_STATS.format(r)) for r in range(world)]
    dropped: Counter = Counter()
    failed: Counter = Counter()
    for st in per_rank:
        dropped.update(st["dropped"])
        failed.update(st.get("failed") or {})
    stats = {"stage": cfg["stage"], "world_size": world, "items_in": sum(s["items_in"] for s in per_rank),
             "kept": len(keyed), "kept_seconds": round(sum(s["kept_seconds"] for s in per_rank), 6),
             "dropped": dict(sorted(dropped.items())), "dropped_total": sum(dropped.values()),
             # model failures of each rank's latest run: not done, retried by the next run
             "processed": sum(int(s.get("processed") or 0) for s in per_rank),
             "failed": dict(sorted(failed.items())), "failed_total": len(failures),
             "first_failure": _first_failure(failures),
             "per_rank": [{k: s.get(k) for k in ("rank", "items_in", "kept", "dropped_total", "processed",
                                                 "failed_total", "device")}
                          for s in per_rank]}
    atomic_write_json(output / "stats.json", stats)
    prov = dict(per_rank[0].get("provenance") or {})
    prov["models"] = _merge_models([(s.get("provenance") or {}).get("models") for s in per_rank])
    prov.update({"input": cfg["input"], "input_sha256": cfg["input_sha256"], "num_items": cfg["num_items"],
                 "world_size": world, "packages": package_versions(),
                 "stage": cfg["stage"], "options": cfg["options"]})
    atomic_write_json(output / "provenance.json", prov)
    if parquet:
        write_parquet([json.loads(line) for _, line in keyed], output / "output.parquet")
    make_stage(cfg["stage"], cfg["options"]).finalize(output)
    return stats
