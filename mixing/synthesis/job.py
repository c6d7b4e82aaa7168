"""The synthesis job: level measurement with the renderer's code, workers, and output files.

Two parts, kept apart so each can be measured on its own:

1. *parameter sampling* (:class:`~mixing.synthesis.sampler.ParameterSampler`, no audio): number of
   sources, labels under the rules, clips, crops, SNRs;
2. *level measurement* (:func:`mixing.levels.apply_levels`, the renderer's own code):
   ``rms_gain = target_rms / RMS(cropped, resampled source)``, ``applied_weight = rms_gain ·
   10^(snr_db/20)``, ``global_normalization_factor = final_max_amplitude / peak``. A silent crop
   (or an unreadable source) is redrawn — another clip of the same label, up to a few times, then
   a whole new mixture — and every redraw is counted by reason.

Mixture ``index`` of a split reads only its own generator ``default_rng([seed, split_id,
index])``, so the output is a pure function of pool, config and seed: workers take index ranges
and the results are merged in index order. ``mix_id = f"{prefix}_{split}_{index:08d}"``.

Entry points: :class:`Synthesizer` (API), :func:`synthesize` (all mixtures, workers),
:func:`run_synthesis` (files in, files out: what ``hive synthesize`` calls).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..audio import chunk_frames
from ..corpora import DatasetPaths
from ..errors import CorpusError, HiveError, NotInStoreError, StoreStaleError, UnknownPrefixError
from ..failures import reason_of
from ..levels import LevelResult, apply_levels
from ..memory_estimate import check_memory, describe_mixture, mixture_bytes
from ..metadata import MixtureRecord
from ..metadata_io import iter_records, write_hub_folder, write_legacy_json
from ..ontology import Ontology
from ..pool import PoolEntry, read_pool
from ..recipe import RenderRecipe
from ..render import Renderer
from ..resume import atomic_write_json, atomic_write_text, remove_stale_tmp
from .config import SynthesisConfig
from .rules import build_label_rules, load_compatibility, resolve_label_nodes
from .sampler import MixtureDraw, NoValidDraw, ParameterSampler, mixture_rng, uniforms
from .splits import SplitCheck, check_metadata_splits, check_pool_splits
from .stats import compute_stats
from ..validation import check_mix_id
from ..workers import process_pool

logger = logging.getLogger(__name__)

#: redraws of one failing source (same label, another clip) before the whole mixture is redrawn
SOURCE_REDRAWS = 4


class SynthesisError(HiveError, ValueError):
    """The pool, ontology or config cannot give the requested mixtures."""


#: pool rows dropped because their label_id is an ontology node other than their label's
LABEL_ID_MISMATCH = "label_id_mismatch"


def label_id_mismatch(entry: PoolEntry, ontology: Ontology) -> str | None:
    """Why ``entry``'s ``label_id`` and ``label`` disagree (None when they agree, or when the id is
    empty or unknown to the ontology): the id names a node whose name is not the label, and the
    label (the text written into the mixtures) names another node or none."""
    if not entry.label_id or entry.label_id not in ontology:
        return None
    node = ontology.node(entry.label_id)
    if entry.label == node.name or (entry.label in ontology and ontology.node(entry.label).id == node.id):
        return None
    other = f"names {ontology.node(entry.label).id!r}" if entry.label in ontology else "is not in the ontology"
    return (f"label {entry.label!r} {other} but label_id {entry.label_id!r} is {node.name!r}; expected a "
            "label and a label_id of the same node")


@dataclass
class ChunkResult:
    records: list[MixtureRecord]
    reasons: Counter
    failures: list[dict[str, Any]]


@dataclass
class SynthesisResult:
    config: SynthesisConfig
    records: list[MixtureRecord]
    reasons: Counter
    failures: list[dict[str, Any]]
    seconds: float
    split_check: SplitCheck | None = None
    files: dict[str, str] = field(default_factory=dict)
    #: pool rows not used, by named reason (rows of other splits are counted as ``other_split``)
    pool_dropped: Counter = field(default_factory=Counter)
    #: pool rows used (the clips mixtures are drawn from)
    pool_used: int = 0
    #: stale ``.tmp-PID`` files of killed earlier runs removed from the output folder
    stale_removed: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        out = compute_stats(self.records, reasons=self.reasons)
        out["requested"] = self.config.num_mixtures
        out["dropped"] = len(self.failures)
        out["seconds"] = self.seconds
        out["pool_rows_used"] = self.pool_used
        out["pool_rows_dropped"] = dict(sorted(self.pool_dropped.items()))
        if self.split_check is not None:
            out["split_check"] = self.split_check.to_dict()
        return out


def _unknown_labels_message(unknown: list[str], entries: Sequence[PoolEntry], split: str,
                            ontology: Ontology) -> str:
    """The refusal of pool labels the ontology does not know: how many, which (with their clip
    counts) and the closest ontology names."""
    import difflib

    clips = Counter(e.label for e in entries if e.label in set(unknown))
    names = [n.name for n in ontology]
    shown = []
    for lab in unknown[:10]:
        close = difflib.get_close_matches(lab, names, n=1, cutoff=0.6) or \
            difflib.get_close_matches(lab.casefold(), [n.casefold() for n in names], n=1, cutoff=0.6)
        hint = f", did you mean {close[0]!r}?" if close else ""
        shown.append(f"{lab!r} ({clips[lab]} clips{hint})")
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    return (f"{len(unknown)} pool labels of split {split!r} ({sum(clips.values())} clips) are not in the "
            f"ontology {ontology.source}: {'; '.join(shown)}{more}. Expected ontology names or ids: rename "
            "them in the pool to ontology names, or set unknown_labels: skip (drop those clips, counted) or "
            "allow (distinct-label rule only) in --config")


class Synthesizer:
    """Rules, sampler and level measurement for one split of one pool."""

    def __init__(self, pool: Sequence[PoolEntry], config: SynthesisConfig, *,
                 ontology: Ontology | None = None,
                 compatibility: Mapping[tuple[str, str], float] | None = None):
        self.config = config.validate()
        check_mix_id(f"{config.mix_id_prefix}_{config.split}_{0:08d}")
        pool_check = check_pool_splits(pool)
        pool_check.raise_if_leaky("pool")
        split = config.split
        entries = [e for e in pool if e.split == split]
        #: pool rows not drawn from, by named reason
        self.pool_dropped: Counter = Counter()
        if len(entries) < len(pool):
            self.pool_dropped["other_split"] = len(pool) - len(entries)
        if not entries:
            present = sorted({e.split for e in pool})
            raise SynthesisError(f"the pool has no clip of split {split!r} (its splits: {present}); "
                                 "choose one of those with --split or assign splits to the pool")
        if (config.exclude_ancestors or config.exclude_siblings) and ontology is None:
            raise SynthesisError("exclude_ancestors/exclude_siblings need an ontology; pass --ontology "
                                 "or set both to false in the config")
        if ontology is not None:  # a label_id naming another node than the label: which one is meant?
            kept = [e for e in entries if label_id_mismatch(e, ontology) is None]
            if len(kept) < len(entries):
                bad = [e for e in entries if label_id_mismatch(e, ontology) is not None]
                self.pool_dropped[LABEL_ID_MISMATCH] = len(bad)
                logger.warning("%d pool rows of split %s dropped (%s): e.g. clip %r: %s", len(bad), split,
                               LABEL_ID_MISMATCH, bad[0].clip_id, label_id_mismatch(bad[0], ontology))
                entries = kept
                if not entries:
                    raise SynthesisError(f"every pool row of split {split!r} has a label_id that names another "
                                         f"ontology node than its label (e.g. {label_id_mismatch(bad[0], ontology)}); "
                                         "fix the labels or the label_ids of the pool")
        label_ids: dict[str, str] = {}
        for e in entries:
            label_ids.setdefault(e.label, e.label_id)
        nodes = None
        self.skipped_clips = 0
        if ontology is not None:
            nodes = resolve_label_nodes(sorted(label_ids), label_ids, ontology)
            unknown = sorted(lab for lab, nid in nodes.items() if nid is None)
            if unknown and config.unknown_labels == "error":
                raise SynthesisError(_unknown_labels_message(unknown, entries, split, ontology))
            if unknown and config.unknown_labels == "skip":
                drop = set(unknown)
                before = len(entries)
                entries = [e for e in entries if e.label not in drop]
                self.skipped_clips = before - len(entries)
                self.pool_dropped["label_not_in_ontology"] = self.skipped_clips
        entries, required_labels = self._label_subset(entries, ontology)
        labels = sorted({e.label for e in entries})
        if len(labels) < config.max_sources:
            raise SynthesisError(f"split {split!r} of the pool has {len(labels)} usable labels; a mixture "
                                 f"of {config.max_sources} distinct labels needs at least that many; lower "
                                 "max_sources or add labels")
        if compatibility is None and config.compatibility:
            compatibility = load_compatibility(config.compatibility)
        self.rules = build_label_rules(
            labels, nodes=nodes, ontology=ontology, exclude_ancestors=config.exclude_ancestors,
            exclude_siblings=config.exclude_siblings, compatibility=compatibility,
            compatibility_default=config.compatibility_default)
        required = None if required_labels is None else frozenset(
            i for i, lab in enumerate(self.rules.labels) if lab in required_labels)
        self.sampler = ParameterSampler(entries, self.rules, config, required=required)

    def _label_subset(self, entries: list[PoolEntry], ontology: Ontology | None) -> tuple[list[PoolEntry], set | None]:
        """The pool rows a label filter keeps (excluded labels out; with ``label_match="all"`` only
        selected labels), counted as ``label_filter``; and with ``"any"`` the selected labels, one
        of which every mixture must hold (None: no such rule)."""
        lf = self.config.label_filter(None if ontology is None or ontology.source.startswith("<")
                                      else _shipped_or_path(ontology.source))
        if lf is None:
            return entries, None
        if lf.label_match == "all":
            kept = [e for e in entries if lf.selected(e.label)]
        else:  # every label not excluded may sound; the sampler asks for one selected label per mixture
            kept = [e for e in entries if not lf.is_excluded(e.label)]
        if len(kept) < len(entries):
            self.pool_dropped["label_filter"] = len(entries) - len(kept)
        selected = {e.label for e in kept if lf.selected(e.label)}
        if not selected:
            raise lf.nothing_selected(Counter(e.label for e in entries), len(entries),
                                      f"the pool's split {self.config.split!r}", unit="clips")
        return kept, (selected if lf.label_match == "any" else None)

    @property
    def entries(self) -> list[PoolEntry]:
        return self.sampler.entries

    # ---- part 1: parameters only -----------------------------------------------------------
    def draw(self, index: int, reasons: Counter | None = None) -> MixtureDraw:
        return self.sampler.draw(index, None, reasons)

    def draft(self, index: int, reasons: Counter | None = None) -> MixtureRecord:
        """The unlevelled draft record of mixture ``index`` (no audio read)."""
        return self.sampler.to_record(self.draw(index, reasons))

    def sample_parameters(self, start: int, stop: int, reasons: Counter | None = None) -> list[MixtureRecord]:
        return [self.draft(i, reasons) for i in range(start, stop)]

    # ---- part 2: levels ----------------------------------------------------------------------
    def _check_files(self, draft: MixtureRecord, renderer: Renderer) -> tuple[int, str] | None:
        if renderer.paths is None:  # a source store alone: its lookups name what it lacks
            return None
        for i, s in enumerate(draft.sources):
            try:
                local = str(renderer.paths.resolve(s.path))
                info = renderer.info(local)
                chunk_frames(s.chunk_start_second, s.chunk_end_second, info.samplerate, info.frames, local)
            except CorpusError as exc:
                return i, reason_of(exc, default=type(exc).__name__)
        return None

    def levels(self, draft: MixtureRecord, snrs: list[float], renderer: Renderer) -> LevelResult:
        """The levels of a draft, measured with the renderer's code (:func:`mixing.levels.apply_levels`)."""
        cfg = self.config
        return apply_levels(draft, snrs, renderer, target_rms=cfg.target_rms,
                            final_max_amplitude=cfg.final_max_amplitude, silence_rms=cfg.silence_rms)

    def synthesize_one(self, index: int, renderer: Renderer, reasons: Counter, epoch: int | None = None,
                       measure: Any = None) -> tuple[MixtureRecord | None, dict[str, Any] | None]:
        """Mixture ``index`` with measured levels, or ``None`` and a failure entry. ``epoch``
        (dynamic mixing) draws from the epoch's own generator of the mixture; ``measure``
        (``(draft, snrs, renderer) -> LevelResult``, default :meth:`levels`) measures the levels."""
        measure = measure or self.levels
        cfg = self.config
        s = self.sampler
        u = uniforms(mixture_rng(cfg.seed, cfg.split, index, epoch))
        attempts = 0
        last = None
        while attempts < cfg.max_attempts:
            try:
                draw = s.draw(index, u, reasons)
            except NoValidDraw:
                last = "no_valid_draw"
                break
            source_fails = 0
            while attempts < cfg.max_attempts:
                attempts += 1
                draft = s.to_record(draw)
                bad = self._check_files(draft, renderer)
                if bad is None:
                    try:
                        res = measure(draft, draw.snrs, renderer)
                    except (CorpusError, NotInStoreError, StoreStaleError) as exc:
                        bad = (None, reason_of(exc, default=type(exc).__name__))
                    else:
                        if res.record is not None:
                            return res.record, None
                        bad = (res.source_index, res.reason)
                i, last = bad
                reasons[f"redraw_{last}"] += 1
                if i is None or source_fails >= SOURCE_REDRAWS or not s.redraw_source(draw, i, u):
                    break  # a whole new mixture
                source_fails += 1
        reason = "no_valid_draw" if last == "no_valid_draw" else "max_attempts"
        reasons[f"dropped_{reason}"] += 1
        return None, {"index": index, "mix_id": s.mix_id(index), "reason": reason, "last_reason": last,
                      "attempts": attempts}

    def synthesize_range(self, start: int, stop: int, dataset_paths: DatasetPaths | Mapping | str) -> ChunkResult:
        renderer = RenderRecipe.make(dataset_paths).renderer()
        reasons: Counter = Counter()
        records, failures = [], []
        for i in range(start, stop):
            rec, fail = self.synthesize_one(i, renderer, reasons)
            if rec is not None:
                records.append(rec)
            else:
                failures.append(fail)
        return ChunkResult(records, reasons, failures)

    def check_prefixes(self, dataset_paths: DatasetPaths) -> None:
        missing = sorted({e.prefix for e in self.entries} - set(dataset_paths.roots))
        if missing:
            raise UnknownPrefixError(
                f"pool paths use corpus prefixes {missing} that the dataset paths file does not map "
                f"(it maps {dataset_paths.prefixes}); add them, e.g. \"{missing[0]}\": \"/path/to/root\"")


def _shipped_or_path(source: str) -> str | None:
    """None for the shipped Hive ontology (the label filter's default index), else the file."""
    from ..packaged import hive_ontology_path

    try:
        return None if os.path.samefile(source, hive_ontology_path()) else source
    except OSError:
        return source


# ---- workers ----------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(synth: Synthesizer, paths: DatasetPaths | None) -> None:
    _WORKER["synth"] = synth
    _WORKER["paths"] = paths


def _work(span: tuple[int, int]) -> ChunkResult:
    synth: Synthesizer = _WORKER["synth"]
    paths = _WORKER["paths"]
    if paths is None:
        reasons: Counter = Counter()
        return ChunkResult(synth.sample_parameters(span[0], span[1], reasons), reasons, [])
    return synth.synthesize_range(span[0], span[1], paths)


def _spans(n: int, workers: int, max_chunk: int = 500) -> list[tuple[int, int]]:
    size = max(1, min(max_chunk, math.ceil(n / (workers * 4)) if workers > 1 else max_chunk))
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def synthesize_chunks(synth: Synthesizer, paths: DatasetPaths | None, *, num_workers: int | None = None,
                      progress: bool | None = None) -> Iterator[ChunkResult]:
    """Results of consecutive index ranges, in index order (bounded memory: a consumer that
    writes them out holds only a few ranges at a time)."""
    cfg = synth.config
    workers = max(1, num_workers or cfg.num_workers)
    spans = _spans(cfg.num_mixtures, workers)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.num_mixtures, unit="mix", desc=f"synthesize[{cfg.split}]",
               disable=not (sys.stderr.isatty() if progress is None else progress))
    try:
        if workers == 1 or len(spans) <= 1:
            _init_worker(synth, paths)
            try:
                for span in spans:
                    yield _work(span)
                    bar.update(span[1] - span[0])
            finally:
                _WORKER.clear()
        else:
            ctx = multiprocessing.get_context("spawn")
            with process_pool(workers, mp_context=ctx, initializer=_init_worker, initargs=(synth, paths)) as ex:
                pending: list[tuple[tuple[int, int], Any]] = []
                todo = iter(spans)
                for span in itertools.islice(todo, 2 * workers):
                    pending.append((span, ex.submit(_work, span)))
                while pending:  # in order; at most 2 x workers ranges in flight
                    span, fut = pending.pop(0)
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append((nxt, ex.submit(_work, nxt)))
                    yield fut.result()
                    bar.update(span[1] - span[0])
    finally:
        bar.close()


def _prepare(synth: Synthesizer, dataset_paths) -> DatasetPaths | None:
    paths = None if dataset_paths is None else DatasetPaths.coerce(dataset_paths)
    if paths is not None:
        synth.check_prefixes(paths)
    return paths


def synthesize(synth: Synthesizer, dataset_paths: DatasetPaths | Mapping | str | None, *,
               num_workers: int | None = None, progress: bool | None = None) -> SynthesisResult:
    """All ``config.num_mixtures`` mixtures in memory (levels measured unless ``dataset_paths`` is
    None, in which case the records are unlevelled drafts). Identical output for any
    ``num_workers``. :func:`run_synthesis` streams them to disk instead."""
    paths = _prepare(synth, dataset_paths)
    t0 = time.perf_counter()
    records: list[MixtureRecord] = []
    reasons: Counter = Counter()
    failures: list[dict[str, Any]] = []
    for r in synthesize_chunks(synth, paths, num_workers=num_workers, progress=progress):
        records.extend(r.records)
        reasons.update(r.reasons)
        failures.extend(r.failures)
    if synth.skipped_clips:
        reasons["skipped_clips_unknown_label"] = synth.skipped_clips
    return SynthesisResult(synth.config, records, reasons, failures, time.perf_counter() - t0)


class WrittenRecords:
    """Records already written to a Hub-layout folder, re-read (streaming) on each iteration."""

    def __init__(self, folder: Path, split: str, count: int):
        self.folder = folder
        self.split = split
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[MixtureRecord]:
        if self.count == 0:
            return iter(())
        return iter_records(self.folder, split=self.split)


# ---- files in, files out ------------------------------------------------------------------
def output_files(output: str | os.PathLike, split: str) -> dict[str, Path]:
    out = Path(output)
    return {"parquet_dir": out, "legacy_dir": out / "legacy", "stats": out / f"synthesis_stats_{split}.json",
            "config": out / f"synthesis_config_{split}.yaml", "failures": out / f"_failures_{split}.jsonl"}


def write_outputs(result: SynthesisResult, output: str | os.PathLike, pool: Iterable[PoolEntry] | None = None,
                  *, write_metadata: bool = True) -> dict[str, Any]:
    """Hub-layout Parquet (+ legacy JSON), stats, resolved config and failure manifest."""
    cfg = result.config
    files = output_files(output, cfg.split)
    Path(output).mkdir(parents=True, exist_ok=True)
    result.split_check = check_metadata_splits(result.records, pool)
    result.split_check.raise_if_leaky("synthesized metadata")
    if write_metadata:
        if not isinstance(result.records, WrittenRecords):
            write_hub_folder(result.records, files["parquet_dir"])
        result.files["parquet"] = str(files["parquet_dir"] / "data")
        if cfg.legacy_json:
            write_legacy_json(result.records, files["legacy_dir"])
            result.files["legacy"] = str(files["legacy_dir"])
    stats = result.stats()
    atomic_write_json(files["stats"], stats, sort_keys=False)
    atomic_write_text(files["config"], cfg.to_yaml())
    result.files.update(stats=str(files["stats"]), config=str(files["config"]))
    if result.failures:
        atomic_write_text(files["failures"], "".join(json.dumps(f) + "\n" for f in result.failures))
        result.files["failures"] = str(files["failures"])
    elif files["failures"].exists():
        files["failures"].unlink()
    return stats


def load_pool(pool: str | os.PathLike, dataset_paths: DatasetPaths | None = None,
              dropped: Counter | None = None) -> list[PoolEntry]:
    """A pool file, or a labelled CSV list turned into a pool (chunks probed on disk); the rows
    of a labelled list that cannot be used are added to ``dropped`` by reason. An invalid row of
    a pool file is refused (raises), never dropped silently."""
    if str(pool).lower().endswith(".csv"):
        from .labelled import build_pool_from_labels

        if dataset_paths is None:
            raise SynthesisError(f"building a pool from the labelled list {pool} needs the dataset paths")
        labelled = build_pool_from_labels(pool, dataset_paths)
        if dropped is not None:
            dropped.update({f"labelled_list_{k}": v for k, v in labelled.dropped.items()})
        return labelled.entries
    return read_pool(pool)


def run_synthesis(pool: str | os.PathLike | Sequence[PoolEntry], config: SynthesisConfig, output: str | os.PathLike,
                  *, ontology: str | os.PathLike | Ontology | None = None,
                  dataset_paths: str | os.PathLike | DatasetPaths | Mapping | None = None,
                  dry_run: bool = False) -> tuple[SynthesisResult, dict[str, Any]]:
    """Read inputs, synthesize ``config.split`` and write the outputs under ``output``.

    ``dry_run`` samples parameters only (no audio, no metadata written) and writes the stats.
    """
    paths = None if dataset_paths is None else DatasetPaths.coerce(dataset_paths)
    if not dry_run and paths is None:
        raise SynthesisError("measuring levels needs the dataset paths (prefix -> local corpus root)")
    if not dry_run:  # each worker measures levels on one whole mixture at a time
        frames = int(config.target_duration * config.sample_rate)
        shape = describe_mixture(frames, config.max_sources, config.sample_rate)
        check_memory(mixture_bytes("render", frames, config.max_sources), f"measuring the levels of a mixture ({shape})",
                     "lower --duration, --sample-rate, --max-sources or --num-workers",
                     workers=max(1, config.num_workers))

    stale = [str(p) for p in remove_stale_tmp(output)]
    if stale:
        logger.info("removed %d stale temporary files of killed earlier runs under %s", len(stale), output)
    pool_dropped: Counter = Counter()
    entries = list(pool) if not isinstance(pool, (str, os.PathLike)) else load_pool(pool, paths, pool_dropped)
    onto = ontology if isinstance(ontology, Ontology) or ontology is None else Ontology.from_json(ontology)
    synth = Synthesizer(entries, config, ontology=onto)
    pool_dropped.update(synth.pool_dropped)
    if dry_run:
        result = synthesize(synth, None)
    else:  # stream to disk: memory does not grow with the number of mixtures
        paths = _prepare(synth, paths)
        parquet_dir = output_files(output, config.split)["parquet_dir"]
        reasons: Counter = Counter()
        failures: list[dict[str, Any]] = []
        t0 = time.perf_counter()

        def stream() -> Iterator[MixtureRecord]:
            for r in synthesize_chunks(synth, paths):
                reasons.update(r.reasons)
                failures.extend(r.failures)
                yield from r.records

        counts = write_hub_folder(stream(), parquet_dir)
        if synth.skipped_clips:
            reasons["skipped_clips_unknown_label"] = synth.skipped_clips
        records = WrittenRecords(parquet_dir, config.split, counts.get(config.split, 0))
        result = SynthesisResult(config, records, reasons, failures, time.perf_counter() - t0)
    result.pool_dropped = pool_dropped
    result.pool_used = len(synth.entries)
    result.stale_removed = stale
    stats = write_outputs(result, output, entries, write_metadata=not dry_run)
    logger.info("synthesized %d mixtures of split %s in %.1f s", len(result.records), config.split, result.seconds)
    return result, stats
