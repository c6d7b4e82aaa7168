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

Entry points: :class:`Synthesizer` (API, here), :func:`~mixing.synthesis.parallel.synthesize`
(all mixtures, workers) and :func:`~mixing.synthesis.outputs.run_synthesis` (files in, files out:
what ``hive synthesize`` calls).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..audio import chunk_frames
from ..corpora import DatasetPaths
from ..errors import (
    CorpusError,
    HiveError,
    NotInStoreError,
    StoreStaleError,
    UnknownPrefixError,
)
from ..failures import reason_of
from ..levels import LevelResult, apply_levels
from ..metadata import MixtureRecord
from ..ontology import Ontology
from ..pool import PoolEntry
from ..recipe import RenderRecipe
from ..render import Renderer
from ..validation import check_mix_id
from .config import SynthesisConfig
from .rules import build_label_rules, load_compatibility, resolve_label_nodes
from .sampler import MixtureDraw, NoValidDraw, ParameterSampler, mixture_rng, uniforms
from .splits import SplitCheck, check_pool_splits
from .stats import compute_stats

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
