"""``hive check``: which referenced corpus files are missing, unreadable or refused (thin CLI over
:func:`mixing.api.check`). Exit status 0 when everything is present and valid, else 1."""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at


HELP = "report which referenced corpus files are missing or unreadable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixing import failures as f

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ("file status (the names render, stream, synthesize and mine report too):\n"
                     f"  {f.PRESENT:<17} the file is there and decodes to its end\n"
                     + f.help_text(f.FILE_STATUSES[1:] + (f.CHUNK_BEYOND_END, f.CROP_BEYOND_CHUNK)))
    parser.add_argument("--metadata", required=True, metavar="SRC",
                        help="Hub dataset id, Parquet file/folder, legacy JSON folder or JSONL file")
    parser.add_argument("--dataset-paths", required=True, metavar="FILE",
                        help="dataset_paths.json: corpus prefix -> local folder")
    parser.add_argument("--split", default=None, help="only this split (train, validation, test)")
    parser.add_argument("--num-sources", type=at.positive_int, default=None, metavar="N",
                        help="only mixtures of N sources")
    parser.add_argument("--report", default=None, metavar="OUT.json", help="also write the full report as JSON")
    parser.add_argument("--examples", type=at.non_negative_int, default=5, metavar="K",
                        help="example paths kept per prefix and reason (default 5)")
    parser.add_argument("--jobs", type=at.workers, default=8, metavar="J",
                        help="threads probing files (default 8; helps on network filesystems)")
    parser.add_argument("--revision", default=None, help="Hub revision (with a Hub dataset id)")
    parser.add_argument("--config", default=None, help="Hub / README config name")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def io(args: argparse.Namespace):
    """What ``hive check`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs

    return CommandIO([("--metadata", args.metadata), *dataset_paths_inputs(args.dataset_paths)],
                     [Output(args.report, "--report", "file", signature=("ok", "metadata", "dataset_paths"))])


def run(args: argparse.Namespace) -> int:
    from mixing import api

    report = api.check(args.metadata, args.dataset_paths, split=args.split, num_sources=args.num_sources,
                       revision=args.revision, config=args.config, jobs=args.jobs, examples=args.examples,
                       progress=not args.no_progress)
    print(report.format_table())
    if args.report:
        report.write_json(args.report)
        print(f"report written to {args.report}")
    return 0 if report.ok else 1
