"""``hive mine STAGE --input IN --output DIR [options]``: one stage of the single-event mining
pipeline (chunk, single-label, single-event, tag, leaf, superres), and ``hive mine merge``.

Under ``accelerate launch --num_processes N scripts/mine.py STAGE ...`` each process runs its rank;
without it, ``--rank``/``--world-size`` (default ``$RANK``/``$WORLD_SIZE``) choose the share.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from mixing import numbers
from mixing.cli import argtypes as at
from mixing.cli.rank_options import add_rank_options

HELP = "run one stage of the six-stage single-event mining pipeline"


def _failure_rate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-failure-rate", type=at.fraction, default=0.5, metavar="F",
                   help="exit non-zero when the model (judge, tagger, ...) failed for all items or for "
                        "more than this fraction of the items processed (default 0.5); failed items are "
                        "never marked done, so the next run retries them")


def _common(p: argparse.ArgumentParser) -> None:
    add_rank_options(p)


def _stage_options(p: argparse.ArgumentParser, cls) -> None:
    g = p.add_argument_group(f"{cls.name} options")
    for f in cls.option_fields():
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        text = meta.get("help", "")
        if isinstance(f.default, bool):
            g.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true", help=text)
            continue
        typ = meta.get("type") or (type(f.default) if f.default is not None else str)
        if isinstance(typ, numbers.Rule):  # numbers go through the one checked-number rule
            typ = at.from_rule(typ)
        shown = "" if f.default is None or meta.get("required") else f" (default {f.default!r:.60})"
        g.add_argument(flag, dest=f.name, type=typ, default=f.default, choices=meta.get("choices"),
                       required=bool(meta.get("required")), help=text + shown)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from curation.stages import STAGES
    from mixing.cli import verbosity_parent

    verbosity = verbosity_parent()  # -v after the stage too: hive mine chunk -v ...
    sub = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, cls in STAGES.items():
        sp = sub.add_parser(name, help=cls.description, description=cls.description, parents=[verbosity])
        sp.add_argument("--input", required=True, help="JSONL/Parquet manifest, a stage's output folder, "
                        "or (first stage) a labelled list .json/.csv with audio_path and text_label")
        sp.add_argument("--output", required=True, help="output folder of this stage")
        sp.add_argument("--batch-size", type=at.positive_int, help=f"items per batch (default {cls.default_batch_size})")
        sp.add_argument("--device", help="device for model backends (e.g. cuda:0); default: the backend's choice")
        sp.add_argument("--overwrite", action="store_true", help="discard an earlier run in --output")
        sp.add_argument("--no-merge", action="store_true",
                        help="do not wait for the other ranks and merge (run 'hive mine merge' later)")
        sp.add_argument("--parquet", action="store_true", help="also write output.parquet when merging")
        sp.add_argument("--wait-timeout", type=at.seconds, help="seconds rank 0 waits for the other ranks")
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")
        _failure_rate(sp)
        _common(sp)
        _stage_options(sp, cls)
    mp = sub.add_parser("merge", help="merge the per-rank outputs of a finished stage",
                        description="merge the per-rank outputs of a finished stage", parents=[verbosity])
    mp.add_argument("--output", required=True, help="the stage's output folder")
    mp.add_argument("--parquet", action="store_true", help="also write output.parquet")
    _failure_rate(mp)
    _common(mp)


def _summary(stage: str, stats: dict, output: str) -> str:
    drops = ", ".join(f"{k}={v}" for k, v in stats["dropped"].items()) or "none"
    failed = stats.get("failed_total") or 0
    retry = (f", model failed for {failed} ("
             + ", ".join(f"{k}={v}" for k, v in stats["failed"].items()) + "; retried by the next run)"
             if failed else "")
    return (f"hive mine {stage}: {stats['items_in']} items in, {stats['kept']} kept "
            f"({stats['kept_seconds'] / 3600:.2f} h), dropped {stats['dropped_total']} ({drops}){retry} -> "
            f"{os.path.join(output, 'output.jsonl')}")


def _fail(stage: str, message: str) -> int:
    print(f"hive mine {stage}: error: {message}", file=sys.stderr)
    return 1


#: names an earlier run of a stage leaves in its output folder (before markers existed)
_STAGE_FILES = ("done-[0-9]*", "rank-[0-9]*.jsonl", "progress-[0-9]*.jsonl", "stats-[0-9]*.json", "output.jsonl")
#: stage options that name an input file or folder, and those that name an output folder
_INPUT_OPTIONS = ("ontology", "hive_ontology", "audioset_ontology", "prompt", "labels")
_OUTPUT_OPTIONS = ("export_dir", "output_root")


def io(args: argparse.Namespace):
    """What ``hive mine`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs

    if args.stage == "merge":
        return CommandIO([], [Output(args.output, signature=_STAGE_FILES, create=False)])
    inputs = [("--input", args.input), *dataset_paths_inputs(getattr(args, "dataset_paths", None))]
    inputs += [("--" + name.replace("_", "-"), getattr(args, name)) for name in _INPUT_OPTIONS
               if isinstance(getattr(args, name, None), str)]
    outputs = [Output(args.output, signature=_STAGE_FILES)]
    outputs += [Output(getattr(args, name), "--" + name.replace("_", "-")) for name in _OUTPUT_OPTIONS
                if getattr(args, name, None)]
    return CommandIO(inputs, outputs)


def run(args: argparse.Namespace) -> int:
    from curation.runner import (
        FAILURES_NAME,
        ModelFailureError,
        RunConfig,
        failure_message,
        merge_outputs,
        run_stage,
    )
    from curation.stages import STAGES

    if args.stage == "merge":
        if args.rank != 0:
            return 0
        stats = merge_outputs(args.output, parquet=args.parquet)
        print(_summary(stats["stage"], stats, args.output))
        message = failure_message(stats, args.max_failure_rate, os.path.join(args.output, FAILURES_NAME))
        return _fail(stats["stage"], message) if message else 0
    cls = STAGES[args.stage]
    stage = cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    opts = RunConfig(input=args.input, output=args.output, rank=args.rank, world_size=args.world_size,
                      batch_size=args.batch_size, progress=False if args.no_progress else None,
                      overwrite=args.overwrite, merge=not args.no_merge, parquet=args.parquet,
                      device=args.device, wait_timeout=args.wait_timeout,
                      max_failure_rate=args.max_failure_rate)
    try:
        summary = run_stage(stage, opts)
    except ModelFailureError as exc:  # the outputs hold what succeeded
        done = getattr(exc, "summary", None)
        if done is not None and done.merged is not None:
            print(_summary(stage.name, done.merged, args.output))
        return _fail(stage.name, str(exc))
    if summary.merged is not None:
        print(_summary(stage.name, summary.merged, args.output))
    elif args.rank == 0:
        print(f"hive mine {stage.name}: rank 0 of {args.world_size} done ({summary.kept} kept); merge with "
              f"'hive mine merge --output {args.output}'", file=sys.stderr)
    return 0
