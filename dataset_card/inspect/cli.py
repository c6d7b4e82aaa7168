"""``hive inspect``: static HTML pages to listen to and look at mixtures (audio players for the
mix and every stem, spectrograms, labels, SNRs, weights, source paths) and an index with the
statistics of the whole input. The work is in :mod:`dataset_card.inspect.run`."""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at
from mixing.cli.label_args import add_label_arguments, label_filter

HELP = "static HTML pages to listen to and look at mixtures and their statistics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="OUT_OR_METADATA",
                   help="a `hive render` output folder, or metadata (Hub id, Parquet file/folder, legacy JSON "
                        "folder, JSONL) together with --dataset-paths")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="folder for index.html, the mixture pages and their media (replaced if it is an earlier "
                        "`hive inspect` output)")
    p.add_argument("--dataset-paths", metavar="JSON",
                   help="dataset_paths.json (corpus prefix -> local folder): needed when the input is metadata; "
                        "the chosen mixtures are rendered on the fly")
    p.add_argument("--store", metavar="STORE",
                   help="a source store (`hive store build` output): metadata input is rendered from it (with "
                        "--dataset-paths, chunks it lacks are decoded; without, the store is used alone)")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--mix-id", action="append", metavar="ID", dest="mix_ids",
                      help="show this mixture (repeat for more)")
    pick.add_argument("--sample", type=at.positive_int, metavar="N",
                      help="show N mixtures chosen deterministically from the seed (default 8)")
    p.add_argument("--seed", type=at.seed, default=0, help="seed of --sample (default 0)")
    p.add_argument("--split", help="only this split (train, validation, test)")
    p.add_argument("--num-sources", type=at.positive_int, metavar="N", help="only mixtures with N sources")
    p.add_argument("--revision", help="Hub revision when the input is a Hub id")
    at.add_max_memory(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_label_arguments(p)


def io(args: argparse.Namespace):
    """What ``hive inspect`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs

    return CommandIO([("OUT_OR_METADATA", args.input), *dataset_paths_inputs(args.dataset_paths),
                      ("--store", getattr(args, "store", None))],
                     [Output(args.output, signature=("_inspect.json",))])


def run(args: argparse.Namespace) -> int:
    from .run import InspectChoice, inspect

    result = inspect(args.input, args.output, dataset_paths=args.dataset_paths, store=args.store,
                     choice=InspectChoice(args.mix_ids, args.sample, args.seed), split=args.split, num_sources=args.num_sources,
                     revision=args.revision, progress=False if args.no_progress else None, labels=label_filter(args))
    print(f"wrote {len(result.pages)} mixture page(s); open {result.index}")
    if result.failed:
        print(f"{len(result.failed)} mixture(s) have no audio (their pages say why): "
              + ", ".join(result.failed[:5]) + (" …" if len(result.failed) > 5 else ""))
        return 1
    return 0
