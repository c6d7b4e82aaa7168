"""``hive synthesize``: new mixture metadata (Hub-layout Parquet, optional legacy JSON, stats)
from a single-event pool. Settings: :class:`mixing.synthesis.config.SynthesisConfig` defaults <
``--config`` YAML < flags given here."""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at
from mixing.cli.label_args import add_label_arguments, label_settings

HELP = "synthesize new mixture metadata from a single-event pool"

#: flag dest -> config field, for the flags that override the config (None = not given)
_OVERRIDES = ("split", "num_mixtures", "duration", "seed", "num_workers", "sample_rate", "mix_id_prefix",
              "min_sources", "max_sources", "label_sampling", "compatibility", "snr_low", "snr_high")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", required=True,
                   help="single-event pool (.jsonl, .parquet or a folder of them), or a labelled list "
                        "(.csv: audio_path,text_label[,split]) cut into 10 s chunks on the fly")
    p.add_argument("--ontology", help="AudioSet-format ontology JSON (default: the Hive ontology shipped with "
                   "hive-uss, mixing/data/hive_ontology.json)")
    p.add_argument("--dataset-paths", required=True, help="dataset_paths.json: corpus prefix -> local folder "
                   "(levels are measured on the audio)")
    p.add_argument("--output", required=True, help="output folder: data/<split>-*.parquet (Hub layout), "
                   "synthesis_stats_<split>.json, synthesis_config_<split>.yaml, _failures_<split>.jsonl")
    p.add_argument("--config", help="YAML file of synthesis settings (keys = SynthesisConfig fields); "
                   "flags given here override it")
    g = p.add_argument_group("settings (default: the config file, else the documented defaults)")
    g.add_argument("--split", help="split to synthesize; only its pool clips are drawn (default train)")
    g.add_argument("--num-mixtures", type=at.mixtures, help="number of mixtures (default 1000)")
    g.add_argument("--duration", type=at.seconds, help="seconds per mixture (default 4; 10 for test)")
    g.add_argument("--seed", type=at.seed, help="seed; mixture i draws from default_rng([seed, split, i]) (default 0)")
    g.add_argument("--num-workers", type=at.workers, help="worker processes; the output does not depend on it (default 1)")
    g.add_argument("--sample-rate", type=at.sample_rate, help="mixture rate in Hz (default 44100)")
    g.add_argument("--mix-id-prefix", help="mix_id = <prefix>_<split>_<index:08d> (default hive)")
    g.add_argument("--min-sources", type=at.num_sources, help="fewest sources (default 2)")
    g.add_argument("--max-sources", type=at.num_sources, help="most sources (default 5)")
    g.add_argument("--label-sampling", choices=("uniform", "proportional"),
                   help="labels uniform (default, counters the long tail) or proportional to the pool")
    g.add_argument("--compatibility", help="label x label weights (CSV or JSON; 0 = forbidden pair)")
    g.add_argument("--exclude-siblings", action="store_true", default=None,
                   help="also forbid two labels with a common ontology parent")
    g.add_argument("--snr-low", type=at.decibels, help="lowest SNR of sources 2..n vs source 1, dB (default -5)")
    g.add_argument("--snr-high", type=at.decibels, help="highest SNR of sources 2..n vs source 1, dB (default 5)")
    g.add_argument("--legacy-json", action="store_true", default=None,
                   help="also write the reference release's JSON layout under <output>/legacy")
    add_label_arguments(p)
    p.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even if some mixtures were dropped (see _failures_<split>.jsonl)")
    at.add_max_memory(p)
    p.add_argument("--dry-run", action="store_true",
                   help="sample parameters only (no audio, no metadata written); write and print the stats")


def _settings(args: argparse.Namespace) -> dict:
    """The settings flags as keyword arguments of :func:`mixing.api.synthesis_config` (None = not given)."""
    return {**{name: getattr(args, name, None) for name in _OVERRIDES},
            "exclude_siblings": args.exclude_siblings, "legacy_json": args.legacy_json}


def _labels(args: argparse.Namespace):
    """The label flags over the config's label settings (a LabelFilter for :func:`mixing.api.synthesize`)."""
    from mixing.label_filter import LabelFilter

    given = {k: v for k, v in label_settings(args).items() if v is not None}
    if not given:
        return None
    base = config_from_args(args)  # the config file's label settings, overridden by the flags
    merged = {"labels": base.labels, "exclude_labels": base.exclude_labels,
              "include_descendants": base.include_descendants, "label_match": base.label_match, **given}
    return LabelFilter.make(merged["labels"], merged["exclude_labels"],
                            include_descendants=merged["include_descendants"], label_match=merged["label_match"])


def config_from_args(args: argparse.Namespace):
    from mixing.api import synthesis_config

    return synthesis_config(args.config, **_settings(args))


def io(args: argparse.Namespace):
    """What ``hive synthesize`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs

    return CommandIO([("--pool", args.pool), ("--ontology", args.ontology), *dataset_paths_inputs(args.dataset_paths),
                      ("--config", args.config), ("--compatibility", args.compatibility)],
                     [Output(args.output, signature=("synthesis_config_*.yaml", "synthesis_stats_*.json",
                                                     "_failures_*.jsonl"))])


def run(args: argparse.Namespace) -> int:
    from mixing import api
    from mixing.synthesis.stats import format_summary

    config = api.synthesis_config(args.config, labels=_labels(args), **_settings(args))
    result, stats = api.synthesize(args.pool, args.output, config, ontology=args.ontology,
                                   dataset_paths=args.dataset_paths, dry_run=args.dry_run)
    cfg = result.config
    mode = "sampled (dry run, no levels)" if args.dry_run else "synthesized"
    print(f"split {cfg.split}: {len(result.records)}/{cfg.num_mixtures} mixtures {mode} in {result.seconds:.1f} s "
          f"(seed {cfg.seed}, {cfg.target_duration:g} s at {cfg.sample_rate} Hz)")
    print(format_summary(stats))
    if result.stale_removed:
        print(f"removed {len(result.stale_removed)} stale temporary files of killed earlier runs")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0 if (not result.failures or args.allow_failures) else 1
