"""``hive render``: metadata + local corpora -> WebDataset or Parquet shards of mixtures and stems."""

from __future__ import annotations

import argparse
import os

from mixing.cli import argtypes as at
from mixing.cli.label_args import add_label_arguments, label_filter
from mixing.cli.rank_options import add_rank_options

HELP = "render mixtures and stems into WebDataset or Parquet shards"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mixing import failures as f

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "failure reasons in out/_failures.jsonl (one vocabulary for every command):\n" + f.help_text()
    p.add_argument("--metadata", required=True, help="Hub id (ORG/NAME), Parquet file/folder, or legacy JSON folder")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) when --metadata is a Hub id")
    p.add_argument("--dataset-paths", help="dataset_paths.json: corpus prefix -> local folder (needed unless "
                   "--store holds every chunk)")
    p.add_argument("--store", metavar="STORE",
                   help="a source store (`hive store build` output): chunks are sliced from it instead of decoded "
                        "(same samples, output at the store's rate); chunks it lacks are decoded (counted as "
                        "store misses); without --dataset-paths the store is used alone")
    p.add_argument("--store-only", action="store_true",
                   help="with --store: a chunk the store lacks fails (not_in_store) instead of being decoded")
    p.add_argument("--output", required=True, help="output folder (nothing is written outside it)")
    p.add_argument("--split", help="only this split (train, validation, test)")
    p.add_argument("--num-sources", type=at.positive_int, help="only mixtures with this many sources")
    p.add_argument("--format", choices=("webdataset", "parquet"), default="webdataset")
    p.add_argument("--stems", choices=("consistent", "reference"), default="consistent",
                   help="consistent: stems carry the global factor and sum to the mix (default); "
                        "reference: stems as the reference release wrote them")
    p.add_argument("--audio-format", choices=("wav", "flac", "pcm16"), default="wav",
                   help="wav: 32-bit float (never clips, default); flac: 24-bit with a peak check; "
                        "pcm16: 16-bit PCM .wav as the reference wrote (samples outside [-1, 1) clip: "
                        "counted per file in _warnings.jsonl, with a logged warning)")
    p.add_argument("--sample-rate", type=at.sample_rate, help="render directly at this rate instead of the record's")
    p.add_argument("--shard-size", type=at.positive_int, default=1000, help="mixtures per shard (default 1000)")
    p.add_argument("--num-workers", type=at.workers, default=1, help="worker processes on this machine")
    add_rank_options(p)
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some mixtures failed")
    p.add_argument("--overwrite", action="store_true", help="discard a ledger made with other parameters")
    p.add_argument("--force", action="store_true",
                   help="render even if the size estimate exceeds the free disk space")
    at.add_max_memory(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar with ETA on a terminal)")
    add_label_arguments(p)


def io(args: argparse.Namespace):
    """What ``hive render`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs

    return CommandIO([("--metadata", args.metadata), *dataset_paths_inputs(args.dataset_paths),
                      ("--store", getattr(args, "store", None))],
                     [Output(args.output, signature=("_render_config.json", "_ledger", "_ranks", "_summary.json"))])


def run(args: argparse.Namespace) -> int:
    from mixing import api
    from mixing.errors import HiveError

    if not args.dataset_paths and not args.store:
        raise HiveError("give --dataset-paths (corpus prefix -> local folder) and/or --store (a `hive store "
                        "build` output folder); got neither")
    if args.store_only and not args.store:
        raise HiveError("--store-only needs --store STORE")

    def show(est) -> None:
        if args.rank == 0:
            print(f"render estimate: {est.describe()}", flush=True)

    recipe = api.RenderRecipe.make(args.dataset_paths, store=args.store, stems=args.stems,
                                   sample_rate=args.sample_rate, audio_format=args.audio_format,
                                   store_only=args.store_only)
    options = api.RenderOptions(format=args.format, shard_size=args.shard_size, num_sources=args.num_sources,
                                labels=label_filter(args), num_workers=args.num_workers, rank=args.rank,
                                world_size=args.world_size, overwrite=args.overwrite, force=args.force,
                                progress=False if args.no_progress else None, on_estimate=show)
    s = api.render(args.metadata, recipe, args.output, split=args.split, revision=args.revision, options=options)
    print(f"rank {args.rank}/{args.world_size}: {s.shards_rendered} shards rendered, {s.shards_skipped} "
          f"already done, {s.mixtures_rendered} mixtures written to {args.output}")
    if args.store:
        print(f"source store: {s.store_hits} chunk reads from the store, {s.store_misses} store misses "
              "(decoded from the corpora)")
    warnings = os.path.join(args.output, "_warnings.jsonl")
    if args.audio_format == "pcm16" and s.complete and os.path.isfile(warnings):
        with open(warnings, encoding="utf-8") as fh:
            rows = [line for line in fh if line.strip()]
        print(f"warning: {len(rows)} file(s) clipped in 16-bit PCM (see {warnings})")
    if s.failures:
        print("failures: " + ", ".join(f"{k}={v}" for k, v in sorted(s.failures.items()))
              + f" (see {os.path.join(args.output, '_failures.jsonl')})")
    return 0 if (not s.failures or args.allow_failures) else 1
