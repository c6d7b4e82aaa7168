"""``hive verify DIR``: check rendered shards for completeness and consistency.

Exit status 0 when no problem is found, 1 otherwise (2 when DIR cannot be checked at all).
"""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at


HELP = "check rendered shards for completeness and consistency"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="the --output folder of 'hive render'")
    p.add_argument("--metadata", help="cross-check against this metadata (Hub id, Parquet file/folder, "
                   "legacy JSON folder or JSONL): every rendered record equals its metadata record and "
                   "every metadata record is rendered or listed in _failures.jsonl")
    p.add_argument("--revision", help="Hub revision when --metadata is a Hub id")
    p.add_argument("--split", help="with --metadata: only this split was rendered")
    p.add_argument("--num-sources", type=at.positive_int, help="with --metadata: only mixtures with this many sources were rendered")
    p.add_argument("--checksums", action="store_true", help="also compare each shard's sha256 with its ledger entry")
    p.add_argument("--atol", type=at.positive_float, default=None,
                   help="absolute tolerance of the stems-sum check (default 1e-5, plus the encoding's rounding)")
    p.add_argument("--report", metavar="FILE", help="write the full per-shard report as JSON to FILE")
    p.add_argument("--num-workers", type=at.workers, default=1, help="shards checked in parallel (processes)")
    p.add_argument("--max-problems", type=at.non_negative_int, default=1000, help="problems listed per shard (all are counted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def io(args: argparse.Namespace):
    """What ``hive verify`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output

    return CommandIO([("DIR", args.dir), ("--metadata", args.metadata)],
                     [Output(args.report, "--report", "file", signature=("root", "clean", "shard_reports"))])


def run(args: argparse.Namespace) -> int:
    from mixing import api

    report = api.verify(args.dir, metadata=args.metadata, revision=args.revision, split=args.split,
                        num_sources=args.num_sources, checksums=args.checksums, atol=args.atol,
                        num_workers=args.num_workers, max_problems=args.max_problems,
                        progress=False if args.no_progress else None)
    if args.report:
        from mixing.resume import atomic_write_json, remove_stale_tmp_of

        remove_stale_tmp_of(args.report)
        atomic_write_json(args.report, report.to_dict(), sort_keys=False)
    print(report.summary())
    if args.report:
        print(f"report written to {args.report}")
    return 0 if report.clean else 1
