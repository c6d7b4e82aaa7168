"""``hive store build|info|verify``: the source store, every distinct source chunk decoded and
resampled once (see :mod:`mixing.store`).

``build`` runs unchanged under ``accelerate launch`` (``$RANK``/``$WORLD_SIZE`` split the units)
and resumes after a kill: a rerun adds only what is missing. Exit status 0 when everything asked
for is in the store, 1 when some chunks could not be added (``_failures.jsonl``), 2 on refusal.
"""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at
from mixing.cli.rank_options import add_rank_options

HELP = "build, describe or verify a source store (every source chunk decoded once)"


def _build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metadata", help="mixture metadata: Hub id (ORG/NAME), Parquet file/folder, legacy JSON "
                   "folder or JSONL")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) when --metadata is a Hub id")
    p.add_argument("--pool", help="a single-event pool (JSONL/Parquet/folder): its clips are added too (for "
                   "dynamic mixing)")
    p.add_argument("--split", help="only the mixtures (or pool clips) of this split")
    p.add_argument("--num-sources", type=at.positive_int, help="only mixtures with this many sources")
    p.add_argument("--dataset-paths", required=True, help="dataset_paths.json: corpus prefix -> local folder")
    p.add_argument("--output", required=True, metavar="STORE",
                   help="the store folder (new, empty, or a store to extend)")
    p.add_argument("--sample-rate", type=at.sample_rate,
                   help="store rate in Hz (default: the records' rate; a store keeps one rate)")
    p.add_argument("--num-workers", type=at.positive_int, default=1, help="worker processes on this machine")
    p.add_argument("--segment-mb", type=at.positive_int, default=256,
                   help="largest segment file in MiB (default 256)")
    p.add_argument("--probe-jobs", type=at.positive_int, default=8, help="threads probing source files (default 8)")
    add_rank_options(p)
    p.add_argument("--allow-failures", action="store_true", help="exit 0 even if some chunks could not be added")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mixing import failures as f
    from mixing.cli import verbosity_parent

    verbosity = verbosity_parent()
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", parents=[verbosity], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="decode and resample every distinct source chunk of the metadata once, into the store",
                       description="Decode every distinct source chunk of --metadata (and/or --pool) the "
                                   "reference's way, resample it whole with soxr HQ to the store rate and append "
                                   "it as float32 mono to the store's segment files. Resumable; extends an "
                                   "existing store with what it lacks.",
                       epilog="failure reasons in STORE/_failures.jsonl:\n" + f.help_text(
                           (f.MISSING_FILE, f.UNREADABLE_AUDIO, f.UNKNOWN_PREFIX, f.UNSAFE_PATH,
                            f.CHUNK_BEYOND_END, f.STORE_STALE)))
    _build_arguments(b)
    i = sub.add_parser("info", parents=[verbosity], help="what a store holds: chunks, hours, bytes, rate, corpora",
                       description="Describe a source store: chunks, source files, hours, bytes, rate, per corpus.")
    i.add_argument("store", metavar="STORE", help="the store folder")
    i.add_argument("--json", metavar="FILE", help="also write the description as JSON to FILE")
    v = sub.add_parser("verify", parents=[verbosity], help="check a store's segments, its sources and a sample of "
                       "chunks against a fresh decode",
                       description="Check that every segment is present and whole (and, with --checksums, every "
                                   "chunk's CRC-32); with --dataset-paths, that every source file is unchanged "
                                   "and that a seeded sample of chunks re-decodes to the stored samples. Exit "
                                   "status 0 when clean, 1 when problems are found.")
    v.add_argument("store", metavar="STORE", help="the store folder")
    v.add_argument("--dataset-paths", help="dataset_paths.json: also check the source files and re-decode a sample")
    v.add_argument("--sample", type=at.non_negative_int, default=32,
                   help="chunks re-decoded and compared (default 32; 0: none)")
    v.add_argument("--seed", type=at.non_negative_int, default=0, help="seed of the sample (default 0)")
    v.add_argument("--checksums", action="store_true", help="check every chunk's CRC-32 (reads the whole store)")
    v.add_argument("--atol", type=at.positive_float, default=1e-6,
                   help="largest |difference| accepted between stored and re-decoded samples (default 1e-6)")
    v.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")


def _inputs(args: argparse.Namespace) -> list:
    from mixing.errors import HiveError
    from mixing.metadata import normalise_split
    from mixing.metadata_io import open_metadata
    from mixing.validation import ValidationReport

    if not args.metadata and not args.pool:
        raise HiveError("give --metadata (mixture metadata) and/or --pool (a single-event pool) to say which "
                        "chunks the store must hold")
    items: list = []
    if args.metadata:
        report = ValidationReport()
        items.extend(open_metadata(args.metadata, revision=args.revision).records(
            args.split, args.num_sources, on_error="skip", report=report))
        if report.invalid:
            print(f"warning: {report.invalid} invalid metadata record(s) skipped (run `hive check` to list them)")
    if args.pool:
        from mixing.pool import iter_pool

        split = normalise_split(args.split) if args.split else None
        items.extend(e for e in iter_pool(args.pool) if split is None or e.split == split)
    return items


def io(args: argparse.Namespace):
    """What ``hive store`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`): a
    build writes the store folder (an existing store, with its ``store.json``, is extended); info and
    verify read it and write only ``--json FILE``."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs

    if args.store_command == "build":
        return CommandIO([("--metadata", args.metadata), ("--pool", args.pool),
                          *dataset_paths_inputs(args.dataset_paths)],
                         [Output(args.output, signature=("store.json",), called="a source store")])
    keys = ("root", "sample_rate", "per_corpus") if args.store_command == "info" else ("root", "problems_by_kind")
    return CommandIO([("STORE", args.store), *dataset_paths_inputs(getattr(args, "dataset_paths", None))],
                     [Output(args.json, "--json", "file", signature=keys)])


def run(args: argparse.Namespace) -> int:
    from mixing.resume import atomic_write_json

    if args.store_command == "info":
        from mixing.store.info import store_info

        info = store_info(args.store)
        print(info.format())
        if args.json:
            atomic_write_json(args.json, info.to_dict())
        return 0
    if args.store_command == "verify":
        from mixing.store.verify import verify_store

        rep = verify_store(args.store, args.dataset_paths, sample=args.sample, seed=args.seed,
                           checksums=args.checksums, atol=args.atol)
        print(rep.format())
        if args.json:
            atomic_write_json(args.json, rep.to_dict())
        return 0 if rep.clean else 1
    from mixing.store import StoreBuildConfig, build_store

    cfg = StoreBuildConfig(output=args.output, sample_rate=args.sample_rate, num_workers=args.num_workers,
                           rank=args.rank, world_size=args.world_size, segment_bytes=args.segment_mb << 20,
                           probe_jobs=args.probe_jobs)
    summary = build_store(_inputs(args), args.dataset_paths, cfg, progress=False if args.no_progress else None)
    print(f"store {args.output} (rank {args.rank}/{args.world_size}): {summary.describe()}")
    if summary.failures:
        print(f"failures listed in {args.output}/_failures.jsonl" if summary.complete else
              "failures are listed in _failures.jsonl when every rank is done")
    return 0 if (not summary.failures or args.allow_failures) else 1
