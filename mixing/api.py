"""The Python API: one function per ``hive`` command. The CLI (``mixing/cli/*.py``) only parses
flags and calls these.

Each function takes its inputs, the ``split`` (and Hub ``revision``) to use, and the rest of the
command's options in one checked config object, the same objects everywhere:

* :class:`~mixing.recipe.RenderRecipe` — how records become audio (dataset paths, source store,
  ``stems``, ``sample_rate``, ``audio_format``, ``store_only``): ``render``, ``evaluate``, inspect,
  the stream and the builder;
* :class:`~mixing.render_options.RenderOptions`, :class:`~mixing.evaluate.EvalOptions`,
  :class:`~mixing.synthesis.config.SynthesisConfig` — the options of ``render``, ``evaluate`` and
  ``synthesize``.

All of them (and :class:`~mixing.label_filter.LabelFilter`, :class:`~mixing.queries.ExampleConfig`)
can be imported from here.

>>> from mixing import api
>>> from mixing.api import RenderOptions, RenderRecipe
>>> report = api.check("metadata/", "dataset_paths.json", split="test")
>>> summary = api.render("metadata/", "dataset_paths.json", "rendered/", split="test")
>>> summary = api.render("metadata/", RenderRecipe.make("dataset_paths.json", store="store/"), "rendered16k/",
...                      options=RenderOptions(format="parquet", num_workers=4))
>>> report = api.verify("rendered/", metadata="metadata/")
>>> result, stats = api.synthesize("pool.jsonl", "new_metadata/", api.synthesis_config(split="train",
...                                num_mixtures=1000), dataset_paths="dataset_paths.json")
>>> result = api.evaluate("rendered/", "eval/", separator="mypkg.model:separate", split="test")

A keyword argument that moved into a config object in issue 20 is refused with one line naming
its new place (:mod:`mixing.moved_arguments`; docs/python-api.md lists every move).
``hive card`` is :func:`dataset_card.api.card` (the card room imports this one, not the reverse).
The functions are not re-exported as ``mixing.render`` / ``mixing.check`` / ``mixing.verify``:
those names are the modules that implement them.
Heavy modules are imported inside each function, so ``import mixing`` stays light.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import HiveError
from .moved_arguments import moved

if TYPE_CHECKING:  # pragma: no cover
    from .check import CheckReport
    from .corpora import DatasetPaths
    from .evaluate import EvalOptions, EvalResult
    from .recipe import RenderRecipe
    from .render_job import RenderSummary
    from .render_options import RenderOptions
    from .synthesis.config import SynthesisConfig
    from .synthesis import SynthesisResult
    from .verify import VerifyReport

PathLike = str | os.PathLike

#: the config objects the API takes, importable from here (loaded on first use)
CONFIGS = {"RenderRecipe": "mixing.recipe", "RenderOptions": "mixing.render_options",
           "EvalOptions": "mixing.evaluate.options", "SynthesisConfig": "mixing.synthesis.config",
           "LabelFilter": "mixing.label_filter", "ExampleConfig": "mixing.queries"}


def __getattr__(name: str) -> Any:
    if name in CONFIGS:
        import importlib

        return getattr(importlib.import_module(CONFIGS[name]), name)
    raise AttributeError(f"module 'mixing.api' has no attribute {name!r}")


def check(metadata: PathLike, dataset_paths: "PathLike | Mapping[str, str] | DatasetPaths", *,
          split: str | None = None, num_sources: int | None = None, revision: str | None = None,
          config: str | None = None, jobs: int = 8, examples: int = 5, progress: bool = True) -> "CheckReport":
    """Report which corpus files the metadata references are missing, unreadable or refused.

    Args:
        metadata: Hub dataset id (``ORG/NAME``), Parquet file or folder, legacy JSON folder or JSONL.
        dataset_paths: ``dataset_paths.json`` (corpus prefix -> local folder) or the mapping itself.
        split: only this split; num_sources: only mixtures of this many sources.
        revision, config: Hub revision and README config name (with a Hub id).
        jobs: threads probing files; examples: example paths kept per prefix and reason.
        progress: show progress bars.

    Returns:
        A :class:`mixing.check.CheckReport`; ``report.ok`` is True when every file is usable,
        ``report.format_table()`` is what ``hive check`` prints, ``report.write_json(path)`` saves it.
    """
    from . import numbers
    from .check import check_corpora
    from .corpora import DatasetPaths
    from .metadata_io import open_metadata

    jobs = numbers.WORKERS.check(jobs, "jobs")
    examples = numbers.NON_NEGATIVE.check(examples, "examples")
    DatasetPaths.coerce(dataset_paths)  # a missing or bad dataset_paths.json is refused first, as before
    source = open_metadata(metadata, revision=revision, config=config)
    return check_corpora(source, dataset_paths, split=split, num_sources=num_sources, progress=progress,
                         jobs=jobs, examples=examples)


@moved(**{k: "options=RenderOptions(...)" for k in ("num_sources", "format", "shard_size", "num_workers", "rank",
                                                      "world_size", "overwrite", "force", "progress", "on_estimate",
                                                      "labels")},
       **{k: "recipe=RenderRecipe.make(dataset_paths, ...)" for k in ("dataset_paths", "stems", "audio_format",
                                                                      "sample_rate", "store", "store_only")})
def render(metadata: PathLike, recipe: "RenderRecipe | PathLike | Mapping[str, str] | DatasetPaths", output: PathLike,
           *, split: str | None = None, revision: str | None = None,
           options: "RenderOptions | None" = None) -> "RenderSummary":
    """Render mixtures and stems into WebDataset (``tar``) or Parquet shards under ``output``.

    Before rendering, the output size is estimated (mixtures x (1 + sources) x samples x bytes per
    sample) and compared with the free space of ``output``'s filesystem; a render that would not fit
    raises :class:`mixing.render_estimate.InsufficientSpaceError` unless ``options.force``. The
    estimate (a :class:`mixing.render_estimate.RenderEstimate`) is passed to ``options.on_estimate``.

    Args:
        metadata: Hub dataset id, Parquet file/folder or legacy JSON folder.
        recipe: how records become audio, a :class:`mixing.recipe.RenderRecipe`
            (``RenderRecipe.make(dataset_paths, store=..., stems=..., sample_rate=...,
            audio_format=..., store_only=...)``); or just the ``dataset_paths.json`` (or its prefix ->
            folder mapping) for the default recipe: consistent stems, each record's rate, float WAV.
            With a store, chunks are sliced from it instead of decoded (same samples; output at the
            store's rate); ``RenderRecipe.make(None, store=...)`` renders from the store alone.
        output: output folder (resumable: finished shards are skipped on a rerun).
        split: render only this split; revision: the Hub revision of ``metadata``.
        options: a :class:`mixing.render_options.RenderOptions`: ``format`` (``webdataset`` or
            ``parquet``), ``shard_size``, ``num_sources``, ``labels`` (a label subset; one that keeps
            nothing of local metadata is refused at once), ``num_workers``, ``rank``/``world_size``,
            ``overwrite``, ``force``, ``progress``, ``on_estimate``.

    Returns:
        A :class:`mixing.render_job.RenderSummary` (shards rendered / skipped, mixtures, failures,
        store hits and misses).
    """
    from .recipe import RenderRecipe
    from .render_estimate import check_render_memory, check_space, estimate_render
    from .ranks import Ranks
    from .render_job import RenderConfig, run_render
    from .render_options import RenderOptions

    from .label_selection import check_label_selection
    from .metadata_io import open_metadata

    opts = options if options is not None else RenderOptions()
    if not isinstance(opts, RenderOptions):
        raise HiveError(f"options is a {type(opts).__name__}; expected a RenderOptions(format=..., num_workers=...)")
    recipe = RenderRecipe.coerce(recipe)
    if opts.labels is not None:
        check_label_selection(open_metadata(metadata, revision=revision).files(split), split, opts.num_sources,
                              opts.labels, f"--metadata {metadata}" + (f" (split {split!r})" if split else ""))
    config = RenderConfig(output=os.fspath(output), recipe=recipe, format=opts.format, shard_size=opts.shard_size,
                          labels=opts.labels)
    est = estimate_render(metadata, output, split=split, num_sources=opts.num_sources,
                          audio_format=recipe.audio_format, sample_rate=recipe.sample_rate, revision=revision)
    if opts.on_estimate is not None:
        opts.on_estimate(est)
    check_space(est, output, force=opts.force)
    check_render_memory(est, opts.num_workers)
    world_size = opts.world_size
    total = est.mixtures if world_size <= 1 else -(-est.mixtures // world_size)  # ranks share shards round-robin
    return run_render(os.fspath(metadata), config, split=split, num_sources=opts.num_sources,
                      num_workers=opts.num_workers, ranks=Ranks(opts.rank, world_size), overwrite=opts.overwrite,
                      progress=opts.progress, revision=revision, total=total)


def verify(directory: PathLike, *, metadata: PathLike | None = None, revision: str | None = None,
           split: str | None = None, num_sources: int | None = None, checksums: bool = False,
           atol: float | None = None, num_workers: int = 1, max_problems: int = 1000,
           progress: bool | None = None) -> "VerifyReport":
    """Check a ``render`` output folder for completeness and consistency.

    Args:
        directory: the render's output folder.
        metadata: cross-check every rendered record against this metadata (and that every metadata
            record is rendered or listed as a failure); revision: its Hub revision.
        split, num_sources: with ``metadata``, what was rendered.
        checksums: also compare each shard's sha256 with its ledger entry.
        atol: tolerance of the stems-sum check (default :data:`mixing.verify.DEFAULT_ATOL`).
        num_workers: shards checked in parallel; max_problems: problems listed per shard.
        progress: progress bar (default: when stderr is a terminal).

    Returns:
        A :class:`mixing.verify.VerifyReport`; ``report.clean`` is True when nothing is wrong,
        ``report.summary()`` is what ``hive verify`` prints, ``report.to_dict()`` the JSON report.
    """
    from . import numbers
    from .verify import DEFAULT_ATOL, verify_output

    num_workers = numbers.WORKERS.check(num_workers, "num_workers")
    max_problems = numbers.NON_NEGATIVE.check(max_problems, "max_problems")
    atol = numbers.POSITIVE.check_optional(atol, "atol")

    return verify_output(directory, metadata=None if metadata is None else os.fspath(metadata), revision=revision,
                         split=split, num_sources=num_sources, checksums=checksums,
                         atol=DEFAULT_ATOL if atol is None else atol, num_workers=num_workers,
                         progress=progress, max_problems=max_problems)


def synthesis_config(config: "SynthesisConfig | PathLike | None" = None, **settings: Any) -> "SynthesisConfig":
    """A validated :class:`mixing.synthesis.config.SynthesisConfig`: defaults < ``config`` (an object or a
    YAML file) < ``settings`` whose value is not None (keys are the config's field names; ``labels``
    may also be a :class:`mixing.label_filter.LabelFilter`, which sets ``labels``, ``exclude_labels``,
    ``include_descendants`` and ``label_match``)."""
    from .label_filter import LabelFilter
    from .synthesis.config import SynthesisConfig

    if config is None:
        cfg = SynthesisConfig()
    elif isinstance(config, SynthesisConfig):
        cfg = config
    elif isinstance(config, (str, os.PathLike)):
        cfg = SynthesisConfig.from_yaml(config)
    else:
        raise HiveError(f"config is a {type(config).__name__}; expected a SynthesisConfig, the path of a YAML file "
                        "of settings, or None")
    if isinstance(settings.get("labels"), LabelFilter):
        settings = {**settings, **_label_settings(settings["labels"])}
    changes = {k: v for k, v in settings.items() if v is not None}
    return cfg.updated(changes, "arguments").validate() if changes else cfg.validate()


@moved(**{k: "config=api.synthesis_config(...) (a SynthesisConfig)" for k in (
    "split", "num_mixtures", "duration", "seed", "num_workers", "sample_rate", "mix_id_prefix", "min_sources",
    "max_sources", "label_sampling", "compatibility", "exclude_siblings", "snr_low", "snr_high", "legacy_json",
    "labels")})
def synthesize(pool: PathLike, output: PathLike, config: "SynthesisConfig | PathLike | None" = None, *,
               ontology: PathLike | None = None,
               dataset_paths: "PathLike | Mapping[str, str] | DatasetPaths | None" = None,
               dry_run: bool = False) -> "tuple[SynthesisResult, dict[str, Any]]":
    """Synthesize new mixture metadata from a single-event pool.

    Settings are one :class:`mixing.synthesis.config.SynthesisConfig` (``split``, ``num_mixtures``,
    ``seed``, ``duration``, ``sample_rate``, source counts, label rules and subset, SNR, levels,
    ``num_workers``, ...): ``config`` is the object, a YAML file of settings, or None for the
    defaults; :func:`synthesis_config` merges them (defaults < YAML/object < keyword settings), e.g.
    ``synthesize(pool, out, synthesis_config("synth.yaml", split="train", num_mixtures=1000))``.
    Outputs under ``output``: ``data/<split>-*.parquet`` (Hub layout),
    ``synthesis_stats_<split>.json``, ``synthesis_config_<split>.yaml``, ``_failures_<split>.jsonl``.

    Args:
        pool: single-event pool (``.jsonl``/``.parquet``/folder) or a labelled ``.csv`` list.
        output: output folder.
        config: the settings (a ``SynthesisConfig``, a YAML path, or None: the defaults).
        ontology: AudioSet-format ontology JSON (default: the Hive ontology shipped with the package).
        dataset_paths: corpus prefix -> folder (levels are measured on the audio; optional with
            ``dry_run``).
        dry_run: sample parameters only; write and return the stats, no metadata.

    Returns:
        ``(result, stats)``: a :class:`mixing.synthesis.SynthesisResult` (``records``, ``failures``,
        ``files``) and the statistics dict that :func:`mixing.synthesis.stats.format_summary` prints.
    """
    from .synthesis import run_synthesis

    cfg = synthesis_config(config)
    if ontology is None:
        from .packaged import hive_ontology_path
        ontology = hive_ontology_path()
    return run_synthesis(pool, cfg, output, ontology=ontology, dataset_paths=dataset_paths, dry_run=dry_run)


def _label_settings(labels: Any) -> dict[str, Any]:
    """A label filter (or names) as the SynthesisConfig fields of the same names (None: not given)."""
    from .label_filter import LabelFilter

    if labels is None:
        return {}
    lf = LabelFilter.make(labels)
    return {"labels": None if lf.labels is None else list(lf.labels),
            "exclude_labels": list(lf.exclude_labels) or None,
            "include_descendants": lf.include_descendants, "label_match": lf.label_match}


@moved(**{k: "options=EvalOptions(...)" for k in ("name", "with_sdr", "allow_missing", "limit", "plot", "progress")},
       **{k: "recipe=RenderRecipe.make(dataset_paths, store=..., sample_rate=...)"
          for k in ("dataset_paths", "store", "sample_rate")})
def evaluate(rendered: PathLike | None, output: PathLike, *,
             separator: "Callable[[Any, int, str], Any] | str | None" = None, estimates: PathLike | None = None,
             split: str | None = None, metadata: "PathLike | Any | None" = None,
             recipe: "RenderRecipe | PathLike | Mapping[str, str] | DatasetPaths | None" = None,
             options: "EvalOptions | None" = None) -> "EvalResult":
    """Evaluate a query-based separator on a render output (``hive eval``), or on ``metadata``
    rendered on the fly with ``recipe`` (a :class:`mixing.recipe.RenderRecipe`, e.g.
    ``RenderRecipe.make(None, store="store/")``, or the dataset paths; consistent stems); see
    :func:`mixing.evaluate.evaluate` for the arguments, outputs and the oracle rows. ``options``
    (:class:`mixing.evaluate.EvalOptions`): batch size and device of a batched separator, metric
    workers, number of sources, label subset, the system's name, SDR, missing estimates, limit,
    plot, progress."""
    from .evaluate import evaluate as _evaluate

    if metadata is not None:
        from .recipe import RenderRecipe

        if recipe is None:
            raise HiveError("metadata is rendered on the fly: pass recipe=RenderRecipe.make(dataset_paths, "
                            "store=...) (or the dataset paths)")
        recipe = RenderRecipe.coerce(recipe)
    elif recipe is not None:
        raise HiveError("recipe goes with metadata (render on the fly), not with a render folder")
    return _evaluate(rendered, output, separator=separator, estimates=estimates, split=split,
                     metadata=os.fspath(metadata) if isinstance(metadata, (str, os.PathLike)) else metadata,
                     recipe=recipe, options=options)
