"""The Python API: one function per ``hive`` command, with the command's options as keyword
arguments. The CLI (``mixing/cli/*.py``) only parses flags and calls these.

>>> from mixing import api
>>> report = api.check("metadata/", "dataset_paths.json", split="test")
>>> summary = api.render("metadata/", "dataset_paths.json", "rendered/", split="test")
>>> report = api.verify("rendered/", metadata="metadata/")
>>> result, stats = api.synthesize("pool.jsonl", "new_metadata/", ontology="hive_ontology.json",
...                                dataset_paths="dataset_paths.json", split="train", num_mixtures=1000)
>>> result = api.evaluate("rendered/", "eval/", separator="mypkg.model:separate", split="test")

``hive card`` is :func:`dataset_card.api.card` (the card room imports this one, not the reverse).
The functions are not re-exported as ``mixing.render`` / ``mixing.check`` / ``mixing.verify``:
those names are the modules that implement them.
Heavy modules are imported inside each function, so ``import mixing`` stays light.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .check import CheckReport
    from .corpora import DatasetPaths
    from .evaluate import EvalOptions, EvalResult
    from .label_filter import LabelFilter
    from .render_job import RenderSummary
    from .synthesis.config import SynthesisConfig
    from .synthesis import SynthesisResult
    from .verify import VerifyReport

PathLike = str | os.PathLike


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

    jobs = numbers.WORKERS.check(jobs, "jobs")
    examples = numbers.NON_NEGATIVE.check(examples, "examples")
    return check_corpora(metadata, dataset_paths, split=split, num_sources=num_sources, progress=progress,
                         jobs=jobs, examples=examples, revision=revision, config=config)


def render(metadata: PathLike, dataset_paths: "PathLike | Mapping[str, str] | DatasetPaths | None", output: PathLike, *,
           split: str | None = None, num_sources: int | None = None,
           format: Literal["webdataset", "parquet"] = "webdataset",
           stems: Literal["consistent", "reference"] = "consistent", audio_format: Literal["wav", "flac"] = "wav",
           sample_rate: int | None = None, shard_size: int = 1000, num_workers: int = 1, rank: int = 0,
           world_size: int = 1, overwrite: bool = False, revision: str | None = None, force: bool = False,
           progress: bool | None = None, on_estimate: Callable[[Any], None] | None = None,
           store: PathLike | None = None, store_only: bool = False,
           labels: "LabelFilter | Sequence[str] | None" = None) -> "RenderSummary":
    """Render mixtures and stems into WebDataset (``tar``) or Parquet shards under ``output``.

    Before rendering, the output size is estimated (mixtures x (1 + sources) x samples x bytes per
    sample) and compared with the free space of ``output``'s filesystem; a render that would not fit
    raises :class:`mixing.render_estimate.InsufficientSpaceError` unless ``force=True``. The
    estimate (a :class:`mixing.render_estimate.RenderEstimate`) is passed to ``on_estimate``.

    Args:
        metadata: Hub dataset id, Parquet file/folder or legacy JSON folder.
        dataset_paths: ``dataset_paths.json`` or the prefix -> folder mapping.
        output: output folder (resumable: finished shards are skipped on a rerun).
        split, num_sources: render only this split / this number of sources.
        format: ``webdataset`` or ``parquet``; audio_format: ``wav`` (32-bit float) or ``flac`` (24-bit).
        stems: ``consistent`` (stems sum to the mix) or ``reference`` (as the reference release).
        sample_rate: render at this rate instead of the record's; shard_size: mixtures per shard.
        num_workers: processes on this machine; rank, world_size: this process's share.
        overwrite: discard a ledger made with other parameters; revision: Hub revision.
        force: start even if the estimate exceeds the free space.
        progress: progress bar with total and ETA (default: when stderr is a terminal).
        store: a source store (``hive store build`` output): chunks are sliced from it instead of
            decoded (same samples; output at the store's rate); ``dataset_paths=None`` renders from
            the store alone. store_only: a chunk the store lacks fails as ``not_in_store``.
        labels: only the mixtures of a label subset (a :class:`mixing.label_filter.LabelFilter`, or
            names/mids); one that keeps nothing of local metadata is refused at once.

    Returns:
        A :class:`mixing.render_job.RenderSummary` (shards rendered / skipped, mixtures, failures,
        store hits and misses).
    """
    from . import numbers
    from .recipe import RenderRecipe
    from .render_estimate import check_render_memory, check_space, estimate_render
    from .render_job import RenderConfig, run_render

    from .label_filter import LabelFilter
    from .label_selection import check_label_selection
    from .metadata_io import open_metadata

    num_workers = numbers.WORKERS.check(num_workers, "num_workers")
    rank = numbers.RANK.check(rank, "rank")
    world_size = numbers.WORLD_SIZE.check(world_size, "world_size")
    recipe = RenderRecipe.make(dataset_paths, store=store, stems=stems, sample_rate=sample_rate,
                               audio_format=audio_format, store_only=store_only)
    label_filter = LabelFilter.make(labels)
    if label_filter is not None:
        check_label_selection(open_metadata(metadata, revision=revision).files(split), split, num_sources,
                              label_filter, f"--metadata {metadata}" + (f" (split {split!r})" if split else ""))
    opts = RenderConfig(output=os.fspath(output), recipe=recipe, format=format, shard_size=shard_size,
                        labels=label_filter)
    est = estimate_render(metadata, output, split=split, num_sources=num_sources, audio_format=audio_format,
                          sample_rate=recipe.sample_rate, revision=revision)
    if on_estimate is not None:
        on_estimate(est)
    check_space(est, output, force=force)
    check_render_memory(est, num_workers)
    total = est.mixtures if world_size <= 1 else -(-est.mixtures // world_size)  # ranks share shards round-robin
    return run_render(os.fspath(metadata), opts, split=split, num_sources=num_sources,
                      num_workers=num_workers, rank=rank, world_size=world_size, overwrite=overwrite,
                      progress=progress, revision=revision, total=total)


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
    YAML file) < ``settings`` whose value is not None (keys are the config's field names)."""
    from .synthesis.config import SynthesisConfig

    if config is None:
        cfg = SynthesisConfig()
    elif isinstance(config, SynthesisConfig):
        cfg = config
    else:
        cfg = SynthesisConfig.from_yaml(config)
    changes = {k: v for k, v in settings.items() if v is not None}
    return cfg.updated(changes, "arguments").validate() if changes else cfg.validate()


def synthesize(pool: PathLike, output: PathLike, *, ontology: PathLike | None = None,
               dataset_paths: "PathLike | Mapping[str, str] | DatasetPaths | None" = None,
               config: "SynthesisConfig | PathLike | None" = None, split: str | None = None,
               num_mixtures: int | None = None, duration: float | None = None, seed: int | None = None,
               num_workers: int | None = None, sample_rate: int | None = None, mix_id_prefix: str | None = None,
               min_sources: int | None = None, max_sources: int | None = None,
               label_sampling: Literal["uniform", "proportional"] | None = None, compatibility: str | None = None,
               exclude_siblings: bool | None = None, snr_low: float | None = None, snr_high: float | None = None,
               legacy_json: bool | None = None, labels: "LabelFilter | Sequence[str] | None" = None,
               dry_run: bool = False) -> "tuple[SynthesisResult, dict[str, Any]]":
    """Synthesize new mixture metadata from a single-event pool.

    Settings: :class:`mixing.synthesis.config.SynthesisConfig` defaults < ``config`` (object or YAML
    path) < the keyword arguments given here (None = not given). Outputs under ``output``:
    ``data/<split>-*.parquet`` (Hub layout), ``synthesis_stats_<split>.json``,
    ``synthesis_config_<split>.yaml``, ``_failures_<split>.jsonl``.

    Args:
        pool: single-event pool (``.jsonl``/``.parquet``/folder) or a labelled ``.csv`` list.
        output: output folder.
        ontology: AudioSet-format ontology JSON (default: the Hive ontology shipped with the package).
        dataset_paths: corpus prefix -> folder (levels are measured on the audio; optional with
            ``dry_run``).
        labels: a label subset (a :class:`mixing.label_filter.LabelFilter`, or names/mids): only these
            pool labels are drawn (``label_match="any"``: every mixture holds at least one of them); it
            sets the config's ``labels``, ``exclude_labels``, ``include_descendants``, ``label_match``.
        dry_run: sample parameters only; write and return the stats, no metadata.

    Returns:
        ``(result, stats)``: a :class:`mixing.synthesis.SynthesisResult` (``records``, ``failures``,
        ``files``) and the statistics dict that :func:`mixing.synthesis.stats.format_summary` prints.
    """
    from .synthesis import run_synthesis

    cfg = synthesis_config(config, split=split, num_mixtures=num_mixtures, duration=duration, seed=seed,
                           num_workers=num_workers, sample_rate=sample_rate, mix_id_prefix=mix_id_prefix,
                           min_sources=min_sources, max_sources=max_sources, label_sampling=label_sampling,
                           compatibility=compatibility, exclude_siblings=exclude_siblings,
                           snr_low=snr_low, snr_high=snr_high, legacy_json=legacy_json,
                           **_label_settings(labels))
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


def evaluate(rendered: PathLike | None, output: PathLike, *,
             separator: "Callable[[Any, int, str], Any] | str | None" = None, estimates: PathLike | None = None,
             split: str | None = None, name: str | None = None, with_sdr: bool = True,
             allow_missing: bool = False, limit: int | None = None, plot: bool = True,
             progress: bool | None = None, metadata: PathLike | None = None,
             dataset_paths: "PathLike | Mapping[str, str] | DatasetPaths | None" = None,
             store: PathLike | None = None, sample_rate: int | None = None,
             options: "EvalOptions | None" = None) -> "EvalResult":
    """Evaluate a query-based separator on a render output (``hive eval``), or on ``metadata``
    rendered on the fly from a source ``store`` and/or the corpora (``dataset_paths``; consistent
    stems); see :func:`mixing.evaluate.evaluate` for the arguments, outputs and the oracle rows.
    ``options`` (:class:`mixing.evaluate.EvalOptions`): batch size and device of a batched
    separator, metric workers, number of sources, label subset."""
    from . import numbers
    from .evaluate import evaluate as _evaluate

    limit = numbers.COUNT.check_optional(limit, "limit")
    recipe = None
    if metadata is not None:
        from .recipe import RenderRecipe

        recipe = RenderRecipe.make(dataset_paths, store=store, sample_rate=sample_rate)
    return _evaluate(rendered, output, separator=separator, estimates=estimates, split=split, name=name,
                     with_sdr=with_sdr, allow_missing=allow_missing, limit=limit, plot=plot, progress=progress,
                     metadata=os.fspath(metadata) if isinstance(metadata, (str, os.PathLike)) else metadata,
                     recipe=recipe, options=options)
