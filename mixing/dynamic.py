"""Dynamic mixing: new mixtures every epoch, drawn from a single-event pool, rendered from a store.

Each mixture is made exactly as ``hive synthesize`` makes one — the same
:class:`~mixing.synthesis.job.Synthesizer` (label rules of the ontology, sampler, level measurement
with the renderer's code, redraws of silent sources) — but from the generator
``default_rng([seed, split, index, epoch])``, and rendered at once from the source store: nothing is
decoded. So:

* mixture ``index`` of ``(seed, epoch)`` is a pure function of pool, settings and store — the same
  whatever the number of DataLoader workers or ``split_dataset_by_node`` ranks; another epoch
  draws other mixtures;
* only clips of the settings' split are drawn (a pool whose original files straddle splits is
  refused, as by ``hive synthesize``), so train and validation mixtures never share a file;
* every example carries its ``record`` (the mixture's metadata as JSON): written out with
  :func:`records_of` + :func:`mixing.metadata_io.write_hub_folder` and rendered offline
  (``hive render --store``), it gives the same samples.

Work is split by index: ``num_units`` work units (default 240); unit ``u`` holds the indices
``u, u + num_units, …``; a process iterates its units round-robin, so the mixtures of an
endless stream come in index order for one process. ``num_mixtures=None`` never ends.

:class:`DynamicSpec` is the small, picklable description a worker needs; the pool (a file, or
the entries) is loaded once per process and the synthesizer kept across epochs.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .errors import HiveError
from .failures import reason_of
from .label_filter import LabelFilter
from .levels import measure_levels
from .metadata import MixtureRecord
from .pool import PoolEntry
from .per_thread import per_thread_cache
from .queries import ExampleConfig, QueryMaker
from .ranks import Ranks
from .recipe import RenderRecipe
from .streaming import AUTO_UNIT_MULTIPLE, RENDER_ERRORS, array_example
from .validation import parse_mixture

log = logging.getLogger(__name__)
#: settings that are not SynthesisConfig fields but label filter shortcuts
_LABEL_KEYS = ("labels", "exclude_labels", "include_descendants", "label_match")


class DynamicMixingError(HiveError, ValueError):
    """Dynamic mixing cannot start: an empty pool, a store without its clips, bad settings."""


@dataclass
class DynamicReport:
    """What one process drew: mixtures yielded, and mixtures given up by reason."""

    mixtures: int = 0
    failures: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class DynamicSpec:
    """What a worker needs to draw and render mixtures (build with :meth:`make`)."""

    pool: str | tuple[PoolEntry, ...]
    store: str
    config_json: str
    ontology: str | None = None
    examples: ExampleConfig = ExampleConfig()
    epoch: int = 0
    num_mixtures: int | None = None
    num_units: int = AUTO_UNIT_MULTIPLE

    @classmethod
    def make(cls, pool: str | os.PathLike | Sequence[PoolEntry], store: Any, config: Any = None, *,
             epoch: int = 0, num_mixtures: int | None = None, targets: str | ExampleConfig = "all",
             ontology: str | os.PathLike | None = None, num_units: int | None = None,
             **settings: Any) -> "DynamicSpec":
        """Checked settings: :class:`~mixing.synthesis.config.SynthesisConfig` defaults < ``config``
        (object or YAML) < ``settings`` (its field names: ``sample_rate``, ``duration``, ``seed``,
        ``split``, ``min_sources`` …, and ``labels`` / ``exclude_labels`` — names, mids or a
        :class:`~mixing.label_filter.LabelFilter`). The store must hold the pool's clips at the
        settings' rate (default: the store's rate). The pool is checked here, at once."""
        from .api import synthesis_config
        from .store import open_store

        for name, value, lo in (("epoch", epoch, 0), ("num_units", num_units, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lo):
                raise DynamicMixingError(f"{name} is {value!r}; expected an integer >= {lo}")
        if num_mixtures is not None and (isinstance(num_mixtures, bool) or not isinstance(num_mixtures, int)
                                         or num_mixtures < 1):
            raise DynamicMixingError(f"num_mixtures is {num_mixtures!r}; expected a positive integer, or None "
                                     "for an endless stream")
        opened = open_store(store)
        if opened is None:
            raise DynamicMixingError("dynamic mixing renders from a source store; pass store=STORE (a `hive store "
                                     "build` output folder holding the pool's clips)")
        settings = _label_settings(settings)
        if settings.get("sample_rate") is None:
            settings["sample_rate"] = opened.sample_rate
        cfg = synthesis_config(config, **settings)
        RenderRecipe.make(None, store=opened, sample_rate=cfg.sample_rate)  # a store of another rate: refused
        onto = None if ontology is None else str(Path(ontology).expanduser().absolute())
        pool_ref: str | tuple[PoolEntry, ...]
        if isinstance(pool, (str, os.PathLike)):
            pool_ref = str(Path(pool).expanduser().absolute())
        else:
            pool_ref = tuple(pool)
            if not all(isinstance(e, PoolEntry) for e in pool_ref):
                raise DynamicMixingError("pool is a sequence of something else than PoolEntry; pass a pool file "
                                         "(.jsonl/.parquet) or mixing.pool.PoolEntry objects")
        spec = cls(pool_ref, str(opened.root), json.dumps(cfg.to_dict(), sort_keys=True), onto,
                   ExampleConfig.coerce(targets), epoch, num_mixtures, num_units or AUTO_UNIT_MULTIPLE)
        spec.state()  # an empty pool, a pool the store lacks, unknown labels: refused now, in this process
        return spec

    @property
    def config(self):
        from .synthesis.config import SynthesisConfig

        return SynthesisConfig(**json.loads(self.config_json))

    def with_epoch(self, epoch: int) -> "DynamicSpec":
        """The same stream at another epoch (the pool and synthesizer are kept in each process)."""
        from dataclasses import replace

        return replace(self, epoch=int(epoch))

    def state(self) -> "_State":
        return _state(self.pool, self.store, self.config_json, self.ontology, self.examples)

    def indices(self, units: Sequence[int]) -> Iterator[int]:
        """The mixture indices of some work units, round-robin (index order for all units)."""
        units = sorted(int(s) for s in units)
        for k in itertools.count():
            base = k * self.num_units
            if self.num_mixtures is not None and base >= self.num_mixtures:
                return
            for s in units:
                i = base + s
                if self.num_mixtures is None or i < self.num_mixtures:
                    yield i

    def iter(self, units: Sequence[int] | None = None, *, rank: int = 0, world_size: int = 1,
             report: DynamicReport | None = None) -> Iterator[dict[str, Any]]:
        """Examples of ``units`` (default: every unit; ``rank``/``world_size`` take every
        ``world_size``-th of them), in the form ``examples`` asks for; ``report`` counts."""
        ranks = Ranks.of(rank, world_size, error=DynamicMixingError)
        units = ranks.share(range(self.num_units)) if units is None else units
        return iter_dynamic(self, units, report)


class _State:
    """One process's synthesizer, renderer and query maker for a spec (kept across epochs)."""

    def __init__(self, pool: str | tuple[PoolEntry, ...], store: str, config_json: str, ontology: str | None,
                 examples: ExampleConfig):
        from .ontology import Ontology
        from .packaged import hive_ontology_path
        from .synthesis.config import SynthesisConfig
        from .synthesis import Synthesizer, load_pool

        cfg = SynthesisConfig(**json.loads(config_json))
        entries = list(pool) if isinstance(pool, tuple) else load_pool(pool)
        where = f"pool {pool}" if isinstance(pool, str) else "the pool"
        if not entries:
            raise DynamicMixingError(f"{where} holds no clip; dynamic mixing draws from single-event clips "
                                     "(a `hive mine` pool or a labelled list made into one)")
        self.renderer = RenderRecipe.make(None, store=store, sample_rate=cfg.sample_rate).renderer()
        in_store = [e for e in entries if e.split != cfg.split or _in_store(self.renderer.store, e)]
        missing = len(entries) - len(in_store)
        if missing and len(in_store) == sum(e.split != cfg.split for e in entries):
            raise DynamicMixingError(f"the source store {store} holds none of the {missing} clips of split "
                                     f"{cfg.split!r} of {where}; build it for the pool: `hive store build --pool "
                                     "POOL --dataset-paths dataset_paths.json --output STORE`")
        if missing:
            log.warning("dynamic mixing: %d clips of split %r are not in the store %s and are left out", missing,
                        cfg.split, store)
        onto = Ontology.from_json(ontology or hive_ontology_path())
        self.synth = Synthesizer(in_store, cfg, ontology=onto)
        if missing:
            self.synth.pool_dropped["not_in_store"] = missing
        self.levels = _CropLevels(cfg)
        self.mix_id_prefix = f"{cfg.mix_id_prefix}_{cfg.split}"
        self.labels = cfg.label_filter(None if ontology is None else ontology)
        self.maker = None
        if examples.queries:
            self.maker = QueryMaker(examples, selected=None if self.labels is None else self.labels.passing,
                                    vocabulary=self.synth.rules.labels)


class _CropLevels:
    """The synthesizer's level measurement on crops read once from the store and kept, so the
    mixture is then rendered from the same buffers (one read per source instead of two):
    :func:`mixing.levels.measure_levels` and :meth:`mixing.render.Renderer.mix_store_crops` give
    the samples ``hive synthesize`` + ``hive render --store`` give."""

    def __init__(self, cfg: Any):
        self.kw = {"target_rms": cfg.target_rms, "final_max_amplitude": cfg.final_max_amplitude,
                   "silence_rms": cfg.silence_rms}
        self.crops: tuple[np.ndarray, list[int | None]] | None = None
        self.work: np.ndarray | None = None  # float64 scratch of measure_levels, reused

    def __call__(self, draft: MixtureRecord, snrs: list[float], renderer: Any) -> Any:
        self.crops = None  # release the last draw's buffer to the renderer's pool
        out = renderer.store_buffer(draft)  # (n + 1, T): the mix row, then the crops
        used = renderer.read_store_crops(draft, out[1:])  # the store alone: a chunk it lacks raises
        self.crops = (out, used)
        if self.work is None or self.work.shape[1] != out.shape[1]:
            self.work = np.empty((3, out.shape[1]), dtype=np.float64)
        return measure_levels(draft, snrs, out[1:], work=self.work, **self.kw)


def _in_store(store: Any, e: PoolEntry) -> bool:
    from .audio import chunk_frames
    from .errors import CorpusError

    version = store.latest(e.path)
    if version is None:
        return False
    try:
        start, stop = chunk_frames(e.chunk_start_second, e.chunk_end_second, version.native_rate, version.frames,
                                   e.path)
    except CorpusError:
        return False
    return store.find(version, start, stop) >= 0


@per_thread_cache(maxsize=4)
def _state(pool: Any, store: str, config_json: str, ontology: str | None, examples: ExampleConfig) -> _State:
    return _State(pool, store, config_json, ontology, examples)


def _label_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``labels=LabelFilter(...)`` spread into the SynthesisConfig fields of the same names."""
    out = dict(settings)
    lf = out.get("labels")
    if isinstance(lf, LabelFilter):
        extra = [k for k in _LABEL_KEYS[1:] if out.get(k) is not None]
        if extra:
            raise DynamicMixingError(f"labels is a LabelFilter; put {extra} in it")
        if lf.ontology is not None:
            raise DynamicMixingError("a LabelFilter with its own ontology: pass ontology= to dynamic mixing instead")
        out.update(labels=None if lf.labels is None else list(lf.labels),
                   exclude_labels=list(lf.exclude_labels) or None, include_descendants=lf.include_descendants,
                   label_match=lf.label_match)
    for key in ("labels", "exclude_labels"):
        if isinstance(out.get(key), (str, tuple)):
            out[key] = [out[key]] if isinstance(out[key], str) else list(out[key])
    return out


def iter_dynamic(spec: DynamicSpec, units: Sequence[int], report: DynamicReport | None = None
                 ) -> Iterator[dict[str, Any]]:
    """Draw, level, render and shape the mixtures of ``units`` (see the module docstring)."""
    state = spec.state()
    synth, renderer, maker = state.synth, state.renderer, state.maker
    reasons: Counter = report.reasons if report is not None else Counter()
    prefix = f"{state.mix_id_prefix}_e{spec.epoch:04d}_"
    for index in spec.indices(units):
        rec, failure = synth.synthesize_one(index, renderer, reasons, epoch=spec.epoch, measure=state.levels)
        if rec is None:
            if report is not None:
                report.failures[failure["reason"]] += 1
            continue
        rec = rec.replace(mix_id=f"{prefix}{index:09d}")
        try:
            out, used = state.levels.crops
            state.levels.crops = None  # the rendered mixture holds the buffer now (views of it)
            rendered = renderer.mix_store_crops(rec, out, used)
        except RENDER_ERRORS as exc:
            if report is not None:
                report.failures[reason_of(exc)] += 1
            log.warning("dynamic mixture %s left out (%s): %s", rec.mix_id, reason_of(exc), exc)
            continue
        ex = array_example(rendered)
        ex["record"] = json.dumps(rec.to_flat_dict(), ensure_ascii=False)
        if report is not None:
            report.mixtures += 1
        if maker is None:
            yield ex
        else:
            yield from maker.examples(ex, spec.epoch)


def generate_dynamic(units: Sequence[int], spec: DynamicSpec) -> Iterator[dict[str, Any]]:
    """The generator behind :func:`dynamic_mixtures` (module level: pickled by reference)."""
    yield from iter_dynamic(spec, units)


def dynamic_mixtures(pool: str | os.PathLike | Sequence[PoolEntry], store: Any, config: Any = None, *,
                     epoch: int = 0, num_mixtures: int | None = None, targets: str | ExampleConfig = "all",
                     ontology: str | os.PathLike | None = None, num_units: int | None = None,
                     **settings: Any):
    """New mixtures as a ``datasets.IterableDataset`` of numpy arrays (see the module docstring).

    ``settings`` are :class:`~mixing.synthesis.config.SynthesisConfig` fields (``seed``,
    ``sample_rate``, ``duration``, ``split``, ``min_sources``, ``snr_low`` …, ``labels``,
    ``exclude_labels``) over ``config``; ``targets`` as in :func:`hive.stream_mixtures`. A DataLoader's
    workers and ``split_dataset_by_node`` ranks take different work units (``num_units`` a
    multiple of ``world_size``). Each epoch: ``dynamic_mixtures(..., epoch=e)`` (cheap: each
    process keeps its pool and synthesizer)."""
    import datasets

    spec = DynamicSpec.make(pool, store, config, epoch=epoch, num_mixtures=num_mixtures, targets=targets,
                            ontology=ontology, num_units=num_units, **settings)
    return datasets.IterableDataset.from_generator(
        generate_dynamic, gen_kwargs={"units": list(range(spec.num_units)), "spec": spec},
        split=datasets.Split(spec.config.split))


def records_of(examples: Sequence[Mapping[str, Any]]) -> list[MixtureRecord]:
    """The mixture records that dynamic examples carry (one per mixture, in first-seen order):
    write them with :func:`mixing.metadata_io.write_hub_folder` to render the same mixtures offline."""
    seen: dict[str, MixtureRecord] = {}
    for ex in examples:
        if "record" not in ex:
            raise DynamicMixingError("an example without 'record': only dynamic-mixing examples carry their record")
        rec = parse_mixture(json.loads(ex["record"]))
        seen.setdefault(rec.mix_id, rec)
    return list(seen.values())
