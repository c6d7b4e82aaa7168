"""``hive card``: metadata -> Hub layout (Parquet per config and split) + README.md + plots."""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at

from .layout import DEFAULT_ROWS_PER_FILE


HELP = "write the Hub layout and dataset card with statistics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("metadata", metavar="METADATA",
                   help="Hub id (ORG/NAME), Parquet file/folder, legacy JSON folder or JSONL file")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="folder to write data/, assets/ and README.md into (its data/ is rewritten)")
    p.add_argument("--rows-per-file", type=at.positive_int, default=DEFAULT_ROWS_PER_FILE, metavar="N",
                   help=f"rows per Parquet file (default {DEFAULT_ROWS_PER_FILE}); bounds memory too")
    p.add_argument("--revision", help="revision to read when METADATA is a Hub id")
    p.add_argument("--parent-revision", metavar="R",
                   help="the Hub revision this metadata derives from (shown under Provenance)")
    p.add_argument("--provenance", metavar="JSON_FILE",
                   help="JSON object of synthesis / curation parameters (shown under Provenance)")
    p.add_argument("--repo-id", default=None, metavar="ORG/NAME",
                   help="the Hub repository the card's examples load from (default ShandaAI/Hive)")
    p.add_argument("--example-revision", default="main",
                   help="revision shown in the card's loading examples (e.g. the tag you will publish)")
    p.add_argument("--license", default=None, help="Hub licence id of the metadata (default: other)")
    p.add_argument("--top-labels", type=at.positive_int, default=30, metavar="N", help="labels in the histogram (default 30)")


def _load_provenance(path: str | None) -> dict:
    from .card import CardError

    if not path:
        return {}
    from mixing.input_files import load_json_file

    data = load_json_file(path, "--provenance file", "a JSON object of synthesis / curation parameters", CardError)
    if not isinstance(data, dict):
        raise CardError(f"--provenance {path}: top-level JSON is {type(data).__name__}; expected an object")
    return data


def io(args: argparse.Namespace):
    """What ``hive card`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`);
    a Hub-layout folder (a clone of the dataset repository) is taken as an earlier card output."""
    from mixing.output_folder import CommandIO, Output

    return CommandIO([("METADATA", args.metadata), ("--provenance", args.provenance)],
                     [Output(args.output, signature=("README.md",))])


def run(args: argparse.Namespace) -> int:
    from .api import card

    result = card(args.metadata, args.output, revision=args.revision, repo_id=args.repo_id,
                  parent_revision=args.parent_revision, provenance=_load_provenance(args.provenance),
                  license=args.license, top_labels=args.top_labels, example_revision=args.example_revision,
                  rows_per_file=args.rows_per_file)
    layout = result.layout
    print(f"wrote {args.output}: {result.stats.num_mixtures} mixtures, {len(layout.files())} Parquet files in "
          f"configs {', '.join(layout.config_names())}; README.md and {len(result.plots)} plots in assets/")
    for config in layout.config_names():
        sizes = ", ".join(f"{s}={layout.num_examples(config, s)}" for s in layout.split_names(config))
        print(f"  {config}: {sizes}")
    return 0
