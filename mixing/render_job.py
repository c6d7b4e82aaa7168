# Over 400 lines: planning, the worker pool, resume and the merge of a render are one ledger contract.
"""The render job: metadata -> shards, resumable, parallel, with a failure manifest.

* Records are grouped by (split, num_sources); the k-th valid record of a group goes to shard
  ``k // shard_size`` of that group. Shards are numbered globally in the order the stream
  completes them; rank ``r`` of ``w`` renders the shards with ``index % w == r``. So shard
  contents never depend on the number of workers or ranks.
* Each shard is written under a temporary name and renamed; then a ledger entry
  ``_ledger/{split}-{n}mix-{k:05d}.json`` (count, sha256, failures) is written. A rerun skips
  shards whose ledger entry and file agree.
* When every rank is done, ``_failures.jsonl`` and ``_summary.json`` are rebuilt from the ledger,
  so they are identical whether or not the run was interrupted; so is ``_warnings.jsonl``, one
  line per file that clipped (``--audio-format pcm16`` only: mix_id, member, clipped_samples,
  peak), absent when nothing clipped.
* Ranks, the per-rank lock, the completion markers and the merge are the rank executor's
  (:class:`mixing.ranks.RankRun`): rank ``r`` holds an exclusive ``flock`` on
  ``_locks/rank-{r:05d}.lock`` for the whole run (the kernel drops it when the process dies, even
  by ``kill -9``); a second render of the same rank, or one with another world size, is refused
  with :class:`RenderLockedError` instead of deleting the first one's temporary files. Each rank
  writes ``_ranks/rank-{r:05d}-of-{w:05d}.json`` last; the rank that finds them all merges.
* Worker processes die with their parent (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread
  that notices the parent is gone), so a killed render leaves no orphans rendering on.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import re
import sys
from collections import Counter, defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import __version__, numbers
from .errors import HiveError, InvalidRecordError
from .locks import FolderLockedError, RankLock
from .failures import DUPLICATE_MIX_ID, INVALID_RECORD
from .label_filter import LabelFilter
from .metadata import MixtureRecord
from .metadata_io import open_metadata
from .ranks import RankRun, Ranks, RankSummary, invalid_record_failure, mixture_failure, write_manifest
from .recipe import RenderRecipe
from .render import Renderer
from .resume import RankMarkers, atomic_write_json, discard_tmp, read_marker, write_marker
from .shards import PIECE_MIXTURES, SHARD_SUFFIX, assemble_shard, make_writer
from .validation import ValidationReport
from .workers import process_pool

log = logging.getLogger(__name__)

class RenderConfigMismatch(HiveError):
    """The output folder holds a render made with other parameters."""


class RenderLockedError(FolderLockedError):
    """Another live process is rendering the same rank (or another world size) into the folder."""


#: what the render's per-rank lock calls its work, and its refusal
LOCK_KINDS = {"activity": "rendered", "error": RenderLockedError}


def RenderLock(output: str | Path, rank: int, world_size: int) -> RankLock:  # reads as a lock class
    """The render's exclusive per-rank lock of ``output`` (:class:`mixing.locks.RankLock`)."""
    return RankLock(output, rank, world_size, **LOCK_KINDS)


@dataclass(frozen=True)
class RenderConfig:
    """A render job: where the shards go, their layout and size, and the render recipe."""

    output: str
    recipe: RenderRecipe
    format: str = "webdataset"
    shard_size: int = 1000
    #: only the mixtures this label filter keeps (:mod:`mixing.label_filter`)
    labels: LabelFilter | None = None

    def __post_init__(self) -> None:
        numbers.check_fields(self, {"shard_size": numbers.COUNT}, where="render setting")

    def identity(self) -> dict[str, Any]:
        """Parameters that change the bytes of the output (the store does not)."""
        out = {"format": self.format, "shard_size": self.shard_size, **self.recipe.identity()}
        if self.labels is not None:  # a render of a label subset is another output
            out["labels"] = self.labels.identity()
        return out


@dataclass
class ShardTask:
    index: int
    split: str
    num_sources: int
    number: int
    records: list[MixtureRecord]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.num_sources}mix-{self.number:05d}"


@dataclass
class RenderSummary(RankSummary):
    shards_total: int = 0
    shards_rendered: int = 0
    shards_skipped: int = 0
    mixtures_rendered: int = 0
    #: source chunks read from the store / decoded because the store lacks them (this run)
    store_hits: int = 0
    store_misses: int = 0


def shard_path(output: Path, fmt: str, split: str, n: int, number: int) -> Path:
    stem = "tar" if fmt == "webdataset" else "part"
    return output / split / f"{n}mix" / f"{stem}_{number:05d}{SHARD_SUFFIX[fmt]}"


def plan_shards(records: Iterable[MixtureRecord], shard_size: int) -> Iterator[ShardTask]:
    if shard_size < 1:
        raise ValueError(f"shard size is {shard_size}; expected >= 1")
    buffers: dict[tuple[str, int], list[MixtureRecord]] = {}
    numbers: dict[tuple[str, int], int] = defaultdict(int)
    index = 0
    for rec in records:
        group = (rec.split, rec.num_sources)
        buf = buffers.setdefault(group, [])
        buf.append(rec)
        if len(buf) >= shard_size:
            yield ShardTask(index, group[0], group[1], numbers[group], buf)
            index += 1
            numbers[group] += 1
            buffers[group] = []
    for group, buf in buffers.items():
        if buf:
            yield ShardTask(index, group[0], group[1], numbers[group], buf)
            index += 1


# ---- worker side -----------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(opts: RenderConfig) -> None:
    _WORKER["renderer"] = opts.recipe.renderer()
    _WORKER["opts"] = opts


def _duplicates(task: ShardTask) -> tuple[list[MixtureRecord | None], list[dict[str, Any]]]:
    """The shard's records with repeated mix_ids replaced by None (a repeated key would merge two
    samples in WebDataset readers), and their failure entries."""
    seen: set[str] = set()
    out: list[MixtureRecord | None] = []
    failures = []
    for rec in task.records:
        if rec.mix_id in seen:
            failures.append(mixture_failure(rec, DUPLICATE_MIX_ID, f"mix_id {rec.mix_id!r} appears twice in shard "
                                            f"{task.name}; the first is rendered, this one is left out"))
            out.append(None)
            continue
        seen.add(rec.mix_id)
        out.append(rec)
    return out, failures


def _render_into(writer, records: list[MixtureRecord | None], renderer: Renderer,
                 failures: list[dict[str, Any]]) -> None:
    """Render ``records`` into ``writer``, ending a piece every :data:`PIECE_MIXTURES` records."""
    for k, rec in enumerate(records, 1):
        if rec is not None:
            try:
                writer.add(renderer.render(rec))
            except (HiveError, OSError, ValueError, RuntimeError) as exc:
                failures.append(mixture_failure(rec, exc))
        if k % PIECE_MIXTURES == 0 and k < len(records):
            writer.end_piece()


def _store_delta(renderer: Renderer, before: tuple[int, int]) -> dict[str, int]:
    return {"store_hits": renderer.store_stats["hits"] - before[0],
            "store_misses": renderer.store_stats["misses"] - before[1]}


def _finish_shard(task: ShardTask, opts: RenderConfig, path: Path, info: dict[str, Any],
                  failures: list[dict[str, Any]]) -> dict[str, Any]:
    out = Path(opts.output)
    entry = {"shard": str(path.relative_to(out)), "index": task.index, **info, "failures": failures}
    if info.get("warnings"):
        clipped = info["warnings"]
        log.warning("%s: %d file(s) of %d mixture(s) clipped in 16-bit PCM (%d samples in all, peak %.4f); "
                    "listed in %s", path.relative_to(out), len(clipped), len({w["mix_id"] for w in clipped}),
                    sum(w["clipped_samples"] for w in clipped), max(w["peak"] for w in clipped),
                    out / "_warnings.jsonl")
    write_marker(out / "_ledger" / f"{task.name}.json", entry, ensure_ascii=True)
    return entry


def _discard_shard_tmp(out: Path, path: Path, task: ShardTask) -> None:
    """Temporary files of a killed run of this shard (this rank holds the folder's lock)."""
    discard_tmp(path)
    for frag in path.parent.glob(f".{glob.escape(path.name)}.p*.tmp-*"):
        frag.unlink(missing_ok=True)
    discard_tmp(out / "_ledger" / f"{task.name}.json")


def render_shard(task: ShardTask, renderer: Renderer, opts: RenderConfig) -> tuple[dict[str, Any], dict[str, int]]:
    """Render a whole shard in this process: ``(ledger entry, store hits/misses)``."""
    out = Path(opts.output)
    path = shard_path(out, opts.format, task.split, task.num_sources, task.number)
    _discard_shard_tmp(out, path, task)
    writer = make_writer(opts.format, path, opts.recipe.audio_format)
    before = (renderer.store_stats["hits"], renderer.store_stats["misses"])
    records, failures = _duplicates(task)
    _render_into(writer, records, renderer, failures)
    info = writer.close()
    return _finish_shard(task, opts, path, info, sorted_failures(failures, task)), _store_delta(renderer, before)


def sorted_failures(failures: list[dict[str, Any]], task: ShardTask) -> list[dict[str, Any]]:
    """Failures in record order (a duplicate's entry where the record is), whoever rendered them."""
    order = {}
    for i, rec in enumerate(task.records):
        order.setdefault(rec.mix_id, i)
    return sorted(failures, key=lambda f: (order.get(f["mix_id"], -1), f["reason"] != DUPLICATE_MIX_ID))


@dataclass
class PieceTask:
    """Records ``[start, stop)`` of a shard, rendered by one worker into a fragment file."""

    shard: ShardTask
    piece: int
    start: int
    stop: int


def split_pieces(task: ShardTask, parts: int) -> list[PieceTask]:
    """``task`` cut into ``parts`` runs of whole :data:`PIECE_MIXTURES`-record pieces (fewer when
    the shard is small)."""
    n_pieces = max(1, math.ceil(len(task.records) / PIECE_MIXTURES))
    parts = max(1, min(parts, n_pieces))
    bounds = [n_pieces * i // parts * PIECE_MIXTURES for i in range(parts)] + [len(task.records)]
    return [PieceTask(task, i, bounds[i], min(bounds[i + 1], len(task.records))) for i in range(parts)]


def render_piece(piece: PieceTask, renderer: Renderer, opts: RenderConfig) -> dict[str, Any]:
    """Render one piece of a shard into its fragment file (see :func:`mixing.shards.assemble_shard`)."""
    task = piece.shard
    path = shard_path(Path(opts.output), opts.format, task.split, task.num_sources, task.number)
    writer = make_writer(opts.format, path.with_name(f"{path.name}.p{piece.piece:04d}"), opts.recipe.audio_format,
                         fragment=True)
    before = (renderer.store_stats["hits"], renderer.store_stats["misses"])
    records, _ = _duplicates(task)  # the parent reports the duplicates once
    failures: list[dict[str, Any]] = []
    _render_into(writer, records[piece.start:piece.stop], renderer, failures)
    info = writer.close()
    return {"piece": piece.piece, "fragment": str(writer.fragment_path), "info": info, "failures": failures,
            **_store_delta(renderer, before)}


def assemble(task: ShardTask, opts: RenderConfig, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The shard of ``task`` from its pieces' fragments; its ledger entry."""
    path = shard_path(Path(opts.output), opts.format, task.split, task.num_sources, task.number)
    results = sorted(results, key=lambda r: r["piece"])
    info = assemble_shard(opts.format, path, [(Path(r["fragment"]), r["info"]) for r in results])
    _, dup = _duplicates(task)
    failures = dup + [f for r in results for f in r["failures"]]
    return _finish_shard(task, opts, path, info, sorted_failures(failures, task))


def _render_in_worker(task: ShardTask) -> tuple[dict[str, Any], dict[str, int]]:
    return render_shard(task, _WORKER["renderer"], _WORKER["opts"])


def _piece_in_worker(piece: PieceTask) -> dict[str, Any]:
    return render_piece(piece, _WORKER["renderer"], _WORKER["opts"])


def _write_json_atomic(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, ensure_ascii=True)


def rank_markers(output: Path, world_size: int) -> RankMarkers:
    """The ranks' completion markers ``_ranks/rank-{r:05d}-of-{w:05d}.json``."""
    return RankMarkers(output / "_ranks", "rank-{rank:05d}-of-{world:05d}.json", world_size, ensure_ascii=True)


def _done(output: Path, task: ShardTask, fmt: str) -> dict[str, Any] | None:
    entry = read_marker(output / "_ledger" / f"{task.name}.json")
    if entry is None:
        return None
    path = shard_path(output, fmt, task.split, task.num_sources, task.number)
    if not path.is_file() or path.stat().st_size != entry.get("bytes"):
        return None
    return entry


def _run_pool(tasks: Iterator[ShardTask], opts: RenderConfig, num_workers: int,
              account: Callable[..., None]) -> None:
    """Render ``tasks`` over ``num_workers`` processes. Whole shards while there are enough of them;
    when fewer shards than workers are left (a small render, or the tail of a large one), each is
    cut into pieces (:func:`split_pieces`) rendered in parallel and assembled here, so every
    worker stays busy. The shard bytes and ledger are the same either way."""
    it = iter(tasks)
    buf: deque[ShardTask] = deque()
    exhausted = False

    def refill() -> None:
        nonlocal exhausted
        while not exhausted and len(buf) < num_workers:
            try:
                buf.append(next(it))
            except StopIteration:
                exhausted = True

    pending: dict[Future, tuple[str, ShardTask]] = {}
    collected: dict[int, list[dict[str, Any]]] = {}
    expected: dict[int, int] = {}
    with process_pool(num_workers, initializer=_init_worker, initargs=(opts,)) as pool:
        refill()
        while buf or pending:
            while buf and len(pending) < 2 * num_workers:  # bounded: memory ~ shard size x workers
                task = buf.popleft()
                pieces = split_pieces(task, math.ceil(num_workers / (len(buf) + 1))) if exhausted else [task]
                if len(pieces) == 1:
                    pending[pool.submit(_render_in_worker, task)] = ("shard", task)
                else:
                    expected[task.index] = len(pieces)
                    collected[task.index] = []
                    for piece in pieces:
                        pending[pool.submit(_piece_in_worker, piece)] = ("piece", task)
                refill()
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in finished:
                kind, task = pending.pop(f)
                if kind == "shard":
                    entry, store = f.result()
                    account(entry, True, store)
                    continue
                got = collected[task.index]
                got.append(f.result())
                if len(got) == expected[task.index]:
                    del collected[task.index], expected[task.index]
                    store = {k: sum(r[k] for r in got) for k in ("store_hits", "store_misses")}
                    account(assemble(task, opts, got), True, store)


# ---- driver ----------------------------------------------------------------------------------
_SHARD_NAME = re.compile(r"^(?:tar_\d{5,}\.tar|part_\d{5,}\.parquet)$")


def _discard_old_render(output: Path) -> None:
    """``--overwrite`` with other parameters: delete the shards the old ledger lists (a shard file
    this command wrote: a shard name, a regular file inside ``output/{split}/{n}mix/``), then the
    ledger. Otherwise old shards that the new plan does not rewrite (another ``--shard-size``
    makes fewer of them) would stay and be read with the new ones. Nothing unlisted is deleted."""
    root = output.resolve()
    for entry_path in sorted((output / "_ledger").glob("*.json")):
        if not entry_path.name.startswith("_"):
            entry = read_marker(entry_path)
            rel = entry.get("shard") if entry else None
            if isinstance(rel, str):
                shard = output / rel
                parts = Path(rel).parts
                inside = len(parts) == 3 and not Path(rel).is_absolute() and ".." not in parts
                if (inside and _SHARD_NAME.match(parts[2]) and parts[1].endswith("mix")
                        and shard.is_file() and not shard.is_symlink() and shard.resolve().parent.parent.parent == root):
                    shard.unlink()
        entry_path.unlink()


def _check_config(output: Path, opts: RenderConfig, metadata: str, overwrite: bool) -> None:
    cfg_path = output / "_render_config.json"
    wanted = {"tool": "hive-uss", **opts.identity()}
    if cfg_path.is_file():
        have = json.loads(cfg_path.read_text())
        if {k: have.get(k) for k in wanted} != wanted and not overwrite:
            raise RenderConfigMismatch(
                f"{output} holds a render made with {have}; this run asks for {wanted}. Use another "
                "--output folder, or --overwrite to discard the old shards' ledger")
        if overwrite and {k: have.get(k) for k in wanted} != wanted:
            _discard_old_render(output)
    _write_json_atomic(cfg_path, {**wanted, "version": __version__, "metadata": metadata})


def merge_outputs(output: Path) -> dict[str, Any]:
    """Rebuild ``_failures.jsonl`` and ``_summary.json`` from the ledger (idempotent)."""
    entries = []
    for p in (output / "_ledger").glob("*.json"):
        if p.name.startswith("_"):
            continue
        entries.append(json.loads(p.read_text()))
    entries.sort(key=lambda e: e["index"])
    invalid_path = output / "_ledger" / "_invalid_records.json"
    invalid = json.loads(invalid_path.read_text()) if invalid_path.is_file() else []
    failures = invalid + [f for e in entries for f in e["failures"]]
    warnings = [w for e in entries for w in e.get("warnings", [])]
    write_manifest(output / "_failures.jsonl", failures)
    if warnings:
        write_manifest(output / "_warnings.jsonl", warnings)
    else:
        (output / "_warnings.jsonl").unlink(missing_ok=True)
    per_group: dict[str, int] = defaultdict(int)
    for e in entries:
        per_group[str(Path(e["shard"]).parent)] += e["count"]
    summary = {"shards": len(entries), "mixtures": sum(e["count"] for e in entries),
               "mixtures_per_group": dict(sorted(per_group.items())),
               "failures": len(failures),
               "failures_by_reason": dict(sorted(Counter(f["reason"] for f in failures).items()))}
    if warnings:  # only pcm16 renders clip; other summaries keep their keys
        summary["warnings"] = len(warnings)
        summary["clipped_samples"] = sum(w["clipped_samples"] for w in warnings)
    _write_json_atomic(output / "_summary.json", summary)
    return summary


def run_render(metadata: str, opts: RenderConfig, *,
               split: str | None = None, num_sources: int | None = None, num_workers: int = 1,
               ranks: Ranks | None = None, overwrite: bool = False,
               progress: bool | None = None, revision: str | None = None,
               total: int | None = None) -> RenderSummary:
    """Render ``metadata`` into shards as ``ranks`` (default: rank 0 of 1; a
    :class:`~mixing.ranks.Ranks`, checked when made); ``total`` (mixtures of this rank, if known)
    gives the bar an ETA."""
    num_workers = numbers.WORKERS.check(num_workers, "num_workers")
    if ranks is None:
        ranks = Ranks()
    elif not isinstance(ranks, Ranks):
        raise TypeError(f"ranks is a {type(ranks).__name__}; expected mixing.ranks.Ranks(rank, world_size)")
    output = Path(opts.output)
    with RankRun(output, ranks, markers=rank_markers(output, ranks.world_size), **LOCK_KINDS) as run:
        return _render_rank(run, metadata, opts, split=split, num_sources=num_sources, num_workers=num_workers,
                            overwrite=overwrite, progress=progress, revision=revision, total=total)


def _render_rank(run: RankRun, metadata: str, opts: RenderConfig, *, split: str | None, num_sources: int | None,
                 num_workers: int, overwrite: bool, progress: bool | None, revision: str | None,
                 total: int | None) -> RenderSummary:
    output, rank, world_size = run.output, run.ranks.rank, run.ranks.world_size
    if run.ranks.main:
        _check_config(output, opts, str(metadata), overwrite)
    source = open_metadata(metadata, revision=revision)
    invalid: list[dict[str, Any]] = []

    def on_invalid(err: InvalidRecordError) -> None:
        invalid.append(invalid_record_failure(err))

    report = ValidationReport(listener=on_invalid)
    records = source.records(split, num_sources, on_error="skip", report=report)
    if opts.labels is not None:  # mixtures the label filter leaves out are not failures: not asked for
        records = (r for r in records if opts.labels.keeps(r.labels))
    summary = RenderSummary()
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="mix", desc=f"render[{run.ranks}]", disable=not show, smoothing=0.05)

    def account(entry: dict[str, Any], rendered: bool, store: dict[str, int] | None = None) -> None:
        summary.failures.update(f["reason"] for f in entry["failures"])
        if rendered:
            summary.shards_rendered += 1
            summary.mixtures_rendered += entry["count"]
        else:
            summary.shards_skipped += 1
        if store:
            summary.store_hits += store["store_hits"]
            summary.store_misses += store["store_misses"]
        bar.update(entry["count"] + len(entry["failures"]))

    def mine() -> Iterator[ShardTask]:
        for task in plan_shards(records, opts.shard_size):
            summary.shards_total += 1
            if not run.owns(task.index):
                continue
            done = _done(output, task, opts.format)
            if done is not None:
                account(done, rendered=False)
                continue
            yield task

    if num_workers <= 1:
        _init_worker(opts)
        for task in mine():
            entry, store = _render_in_worker(task)
            account(entry, True, store)
    else:
        _run_pool(mine(), opts, num_workers, account)
    bar.close()
    if run.ranks.main:
        _write_json_atomic(output / "_ledger" / "_invalid_records.json", invalid)
        summary.failures.update(INVALID_RECORD for _ in invalid)
    run.mark_done({"rank": rank, "world_size": world_size, "shards": summary.shards_total,
                   "rendered": summary.shards_rendered, "skipped": summary.shards_skipped,
                   "store_hits": summary.store_hits, "store_misses": summary.store_misses})
    summary.complete = run.merge_once(lambda: merge_outputs(output)).merged
    return summary
