"""The curation job: ranks score their share of the mixtures, one process merges and selects.

Per rank ``r`` of ``w`` (``accelerate launch``, or ``RANK``/``WORLD_SIZE``):

1. read the metadata once for the mix ids (invalid records are skipped and reported, later
   duplicates of a mix id dropped), sort them, take ``[r::w]``;
2. read it again and score those mixtures (:class:`~.scoring.Scorer`, through the answer cache);
3. write ``_work/scores-{r:05d}-of-{w:05d}.jsonl`` atomically, then the completion marker
   ``_work/done-{r:05d}-of-{w:05d}.json`` last.

Then the merge (after a barrier when the ranks share a ``torch.distributed`` group, on the main
process; otherwise by whichever rank finds every marker of this run): the keep policy is applied
to all scores together, and the outputs are written:

* ``metadata/data/{split}-*.parquet``: the kept mixtures, unchanged, in the Hub schema (input
  order), loadable with ``datasets.load_dataset(DIR/metadata)``;
* ``scores/mixtures.parquet``, ``scores/sources.parquet``; ``summary.json``; ``provenance.json``;
* ``failures.jsonl``: records dropped before scoring (invalid, duplicate mix id), then the sources
  the judge failed for (``judge_failed``, ``model_failure: true``).

Failure semantics: a judge failure (timeout, HTTP error after the backend's retries, an exception)
leaves its source unscored with reason ``judge_failed`` and is never cached, so the next run asks
again. When the judge failed for every source this run asked, or for more than
``max_failure_rate`` of them, or when not one source could be judged at all (all failed, unreadable
or no audio), the run is a failure: the scores tables, ``summary.json`` (``"status": "failed"``)
and ``failures.jsonl`` are written, every mixture's decision is ``run_failed`` (nothing kept), no
refreshed ``metadata/`` is written (an earlier one in the output folder is removed), and
:func:`run_curate` raises :class:`CurateFailedError` with one line naming the cause.

Every output is a pure function of the inputs and the judge's answers: no timestamps, no
process counts, sorted by mix id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from curation.models.registry import make_judge
from mixing import numbers
from mixing.corpora import DatasetPaths
from mixing.errors import InvalidRecordError
from mixing.input_files import load_json_file
from mixing.metadata import MixtureRecord
from mixing.metadata_io import MetadataSource, open_metadata
from mixing.ontology import Ontology
from mixing.ranks import (
    AUTO,
    RankRun,
    Ranks,
    failure_record,
    invalid_record_failure,
)
from mixing.resume import (
    AtomicFile,
    RankMarkers,
    atomic_write_json,
    file_sha256,
    tmp_path,
)
from mixing.validation import ValidationReport

from .audio import RenderedStems, StemSource, TarStems
from .cache import AnswerCache
from .errors import CurateError, CurateFailedError, CurateLockedError
from .merge import merge, sort_by_mix_id
from .policy import KeepPolicy
from .pools import PoolBuilder
from .prompt import PromptConfig, PromptError
from .scoring import AudioJudge, Scorer

log = logging.getLogger(__name__)


#: the numeric settings of :class:`CurateConfig` and their rule (the one checked-number rule)
NUMBER_RULES = {"keep": numbers.FRACTION, "min_score": numbers.FRACTION, "max_pool": numbers.COUNT,
                "seed": numbers.SEED, "answer_retries": numbers.RETRIES, "concurrency": numbers.WORKERS,
                "temperature": numbers.TEMPERATURE,
                "keep_shard_size": numbers.COUNT, "max_failure_rate": numbers.FRACTION}


@dataclass(frozen=True)
class CurateConfig:
    metadata: str
    ontology: str
    judge: str
    output: str
    dataset_paths: str | None = None
    rendered: str | None = None
    #: a source store (``hive store build`` output): stems rendered on the fly slice it
    store: str | None = None
    keep: float | None = 0.5
    min_score: float | None = None
    unscored: str = "drop"
    split: str | None = None
    max_pool: int | None = None
    seed: int = 0
    cache_dir: str | None = None
    answer_retries: int = 1
    concurrency: int | None = None  # None: the judge's own ``concurrency`` attribute, else 1
    revision: str | None = None
    #: ``reference`` (true label + children of the last parent) or ``union`` (every parent)
    confusion_pool: str = "reference"
    #: ``shuffled`` (seeded permutation) or ``reference`` (true label first)
    option_order: str = "shuffled"
    #: prompt template: preset name (``reference``, ``hive-v1``), ``@PATH`` or text
    prompt: str | None = None
    #: system message (None: the reference's; "" sends none)
    system: str | None = None
    #: sampling temperature (None: not sent, the server's default, as the reference)
    temperature: float | None = None
    #: ``fraction`` (``keep``/``min_score`` per (split, num_sources)) or ``reference`` (per shard)
    keep_rule: str = "fraction"
    #: shard size of the reference keep rule (None: the ``--rendered`` folder's, else 1000)
    keep_shard_size: int | None = None
    #: the run fails when the judge failed for more than this fraction of the sources it was asked
    #: about (or for all of them); None: only a run that judged nothing fails
    max_failure_rate: float | None = 0.5

    def __post_init__(self) -> None:
        numbers.check_fields(self, NUMBER_RULES, where="curate setting", error=CurateError)

    def policy(self) -> KeepPolicy:
        try:
            return KeepPolicy(keep=None if self.min_score is not None else self.keep,
                              min_score=self.min_score, unscored=self.unscored, rule=self.keep_rule,
                              shard_size=self.shard_size())
        except ValueError as exc:
            raise CurateError(str(exc)) from None

    def shard_size(self) -> int:
        if self.keep_shard_size is not None:
            return self.keep_shard_size
        if self.rendered:
            try:
                size = load_json_file(Path(self.rendered) / "_render_config.json", "render config", "an object",
                                      CurateError, expect=dict, max_bytes=1 << 20).get("shard_size")
            except CurateError:
                size = None
            if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
                return size
        return 1000

    def prompt_settings(self) -> PromptConfig:
        try:
            return PromptConfig.from_options(self.prompt, self.system, self.temperature)
        except PromptError as exc:
            raise CurateError(str(exc)) from None

    @property
    def cache_folder(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.output) / "cache"


@dataclass
class CurateResult:
    rank: int
    world_size: int
    mixtures: int = 0
    stats: Counter = field(default_factory=Counter)
    merged: bool = False
    summary: dict[str, Any] | None = None
    summary_text: str = ""



def apply_request_settings(judge: AudioJudge, prompt: PromptConfig, *, explicit_system: bool = True) -> None:
    """Give the judge the system message and temperature. A backend without a ``system``
    attribute cannot take a system message (an error only when one was asked for explicitly);
    one without ``temperature`` decodes greedily, which only an unset temperature or 0 describes."""
    if hasattr(judge, "system"):
        judge.system = prompt.system
    elif prompt.system and explicit_system:
        raise CurateError(f"judge {judge.model_id!r} takes no system message; got --system "
                          f"{prompt.system[:60]!r}; pass --system '' to send none")
    if hasattr(judge, "temperature"):
        judge.temperature = prompt.temperature
    elif prompt.temperature not in (None, 0, 0.0):
        raise CurateError(f"judge {judge.model_id!r} has no sampling temperature (it decodes "
                          f"greedily); got --temperature {prompt.temperature}; leave it unset or 0")


class _Run:
    """State shared by the rank's scoring and the merge."""

    def __init__(self, config: CurateConfig, judge: AudioJudge | None, audio: StemSource | None = None):
        self.config = config
        self._audio = audio
        self.policy = config.policy()
        if config.rendered is None and config.dataset_paths is None and config.store is None and audio is None:
            raise CurateError("no audio for the judge: give --dataset-paths and/or --store (stems rendered on "
                              "the fly from the corpora / a source store) or --rendered (the output folder of "
                              "`hive render`)")
        self.output = Path(config.output)
        self.work = self.output / "_work"
        self.ontology = Ontology.from_json(config.ontology)
        self.ontology_sha256 = file_sha256(config.ontology)
        try:
            self.pools = PoolBuilder(self.ontology, seed=config.seed, max_pool=config.max_pool,
                                     rule=config.confusion_pool, order=config.option_order)
        except ValueError as exc:
            raise CurateError(str(exc)) from None
        self.prompt = config.prompt_settings()
        self.judge = judge if judge is not None else make_judge(config.judge)
        apply_request_settings(self.judge, self.prompt, explicit_system=config.system is not None)
        self.source: MetadataSource = open_metadata(config.metadata, revision=config.revision)
        self.dataset_paths: DatasetPaths | None = None

    def load_corpora(self) -> None:
        """Read ``dataset_paths.json`` before any scoring: a bad file is a refusal of the run, not a
        judge failure counted per source."""
        c = self.config
        if self._audio is None and not c.rendered and c.dataset_paths and self.dataset_paths is None:
            self.dataset_paths = DatasetPaths.from_json(c.dataset_paths)

    @property
    def audio_description(self) -> str:
        if self._audio is not None:
            return f"provided: {type(self._audio).__name__}"
        if self.config.rendered:
            return f"rendered: {self.config.rendered}"
        if self.config.store:
            return f"rendered on the fly from the source store {self.config.store} (consistent stems)"
        return "rendered on the fly (mixing.render.Renderer, consistent stems)"

    def identity(self) -> str:
        """What makes scores of one run interchangeable with another's."""
        c = self.config
        return hashlib.sha256(json.dumps([
            c.metadata, c.revision, c.split, self.ontology_sha256, c.seed, c.max_pool,
            str(self.judge.model_id), self.prompt.describe(), c.answer_retries, self.audio_description,
            c.confusion_pool, c.option_order,
        ]).encode()).hexdigest()[:16]

    def records(self, report: ValidationReport | None = None) -> Iterator[MixtureRecord]:
        return self.source.records(self.config.split, on_error="skip", report=report)

    def audio(self) -> StemSource:
        if self._audio is not None:
            return self._audio
        if self.config.rendered:
            return TarStems(self.config.rendered)
        return RenderedStems(self.dataset_paths or self.config.dataset_paths, store=self.config.store)

    def rank_files(self, rank: int, world: int) -> tuple[Path, Path]:
        return (self.work / f"scores-{rank:05d}-of-{world:05d}.jsonl", self.markers(world).path(rank))

    def markers(self, world: int) -> RankMarkers:
        """The ranks' completion markers ``_work/done-{r:05d}-of-{w:05d}.json``."""
        return RankMarkers(self.work, "done-{rank:05d}-of-{world:05d}.json", world)


def _partition(run: _Run, ranks: Ranks) -> tuple[set[str], dict[str, int], list[dict[str, Any]]]:
    """This rank's mix ids; counts and manifest of records dropped before scoring."""
    failures: list[dict[str, Any]] = []

    def on_invalid(err: InvalidRecordError) -> None:
        failures.append(invalid_record_failure(err))

    ids: set[str] = set()
    dropped = Counter()
    for rec in run.records(ValidationReport(listener=on_invalid)):
        if rec.mix_id in ids:
            dropped["duplicate_mix_id"] += 1
            failures.append(failure_record("duplicate_mix_id", "a later record repeats this mix_id; the first one "
                                           "is curated", mix_id=rec.mix_id))
            continue
        ids.add(rec.mix_id)
    dropped["invalid_record"] = sum(1 for f in failures if f.get("reason") == "invalid_record")
    if not ids:  # nothing to curate: a run that did nothing must not look like a success
        first = next((f.get("message") for f in failures if f.get("message")), None)
        split = f" of split {run.config.split!r}" if run.config.split else ""
        raise CurateError(f"--metadata {run.config.metadata}: no valid mixture record{split} to curate"
                          + (f" ({len(failures)} invalid; the first: {first[:200]})" if first else "")
                          + "; check the metadata")
    mine = set(ranks.share(sorted(ids)))
    return mine, {k: v for k, v in dropped.items() if v}, failures


def _own_records(run: _Run, mine: set[str]) -> Iterator[MixtureRecord]:
    seen: set[str] = set()
    for rec in run.records():
        if rec.mix_id in mine and rec.mix_id not in seen:
            seen.add(rec.mix_id)
            yield rec


def _score_rank(run: _Run, rank_run: RankRun, progress: bool | None) -> CurateResult:
    rank, world = rank_run.ranks.rank, rank_run.ranks.world_size
    result = CurateResult(rank, world)
    scores_path, _ = run.rank_files(rank, world)
    rank_run.clear_done()
    mine, dropped, failures = _partition(run, rank_run.ranks)
    cache = AnswerCache(run.config.cache_folder, rank)
    concurrency = run.config.concurrency or max(1, int(getattr(run.judge, "concurrency", 1) or 1))
    scorer = Scorer(run.pools, run.judge, cache, run.audio(), answer_retries=run.config.answer_retries,
                    concurrency=concurrency, prompt=run.prompt)
    show = (sys.stderr.isatty() and rank == 0) if progress is None else progress
    from tqdm.auto import tqdm

    scores_path.parent.mkdir(parents=True, exist_ok=True)
    unsorted = tmp_path(scores_path.with_name(scores_path.name + ".unsorted"))  # .<name>.unsorted.tmp-PID
    try:
        with open(unsorted, "w", encoding="utf-8") as fh, cache, \
                tqdm(total=len(mine), unit="mix", desc=f"curate[{rank}/{world}]", disable=not show) as bar:
            for ms in scorer.score(_own_records(run, mine)):
                fh.write(json.dumps(ms.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
                result.mixtures += 1
                bar.update(1)
        with AtomicFile(scores_path) as f:
            sort_by_mix_id(unsorted, f.tmp)
    finally:
        unsorted.unlink(missing_ok=True)
    result.stats = scorer.stats
    if rank == 0:
        atomic_write_json(run.work / "dropped.json", {"counts": dropped, "failures": failures})
    rank_run.mark_done({"identity": run.identity(), "rank": rank, "world_size": world,
                        "mixtures": result.mixtures, "stats": dict(scorer.stats), "first_error": scorer.first_error})
    return result


def _close_judge(run: _Run, given: AudioJudge | None) -> None:
    """Close a judge this job built (once: a closed judge is forgotten)."""
    close = getattr(run.judge, "close", None)
    if given is None and callable(close) and not getattr(run, "_judge_closed", False):
        run._judge_closed = True
        close()


def run_curate(config: CurateConfig, *, rank: int = 0, world_size: int = 1, judge: AudioJudge | None = None,
               audio: StemSource | None = None, barrier: Callable[[], None] | None = None,
               progress: bool | None = None) -> CurateResult:
    """Score this rank's share; merge when this process is the one to do it.

    ``judge`` and ``audio`` replace the backend built from ``config.judge`` and the stems of
    ``config.dataset_paths``/``config.rendered`` (library use, tests). ``barrier`` is called
    after scoring when ``world_size > 1``; then rank 0 merges (default: a torch.distributed
    barrier when the launcher set one up, else whichever rank finds every marker merges). The
    ranks, the rank's lock, its marker and the merge are the rank executor's
    (:class:`mixing.ranks.RankRun`)."""
    ranks = Ranks.of(rank, world_size, error=CurateError)
    run = _Run(config, judge, audio)
    this_run = {"identity": run.identity()}  # what every rank's marker of this run holds
    try:
        with RankRun(run.output, ranks, markers=run.markers(ranks.world_size), activity="curated",
                     error=CurateLockedError, identity=this_run) as rank_run:
            run.load_corpora()
            result = _score_rank(run, rank_run, progress)
            _close_judge(run, judge)
            try:
                done = rank_run.merge_once(lambda: merge(run, ranks.world_size),
                                           expect=this_run,
                                           barrier=AUTO if barrier is None else barrier)
            except CurateFailedError as exc:
                exc.result = result
                result.merged = True
                result.summary = json.loads((run.output / "summary.json").read_text())
                raise
    finally:
        _close_judge(run, judge)
    if done.merged:
        result.summary, result.summary_text = done.result
        result.merged = True
    return result
