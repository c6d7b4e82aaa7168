"""``hive eval``: SI-SDR, SI-SDRi and SDR of a query-based separator on rendered mixtures, with the
``mixture`` (SI-SDRi = 0 dB) and ``irm`` (ideal ratio mask) oracle rows (thin CLI over
:func:`mixing.evaluate.evaluate`). Exit status 0 when every source was evaluated, else 1."""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at
from mixing.cli.label_args import add_label_arguments, label_filter


HELP = "evaluate a query-based separator (SI-SDR, SI-SDRi, SDR) on rendered mixtures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--rendered", metavar="DIR", help="the --output folder of 'hive render'")
    src.add_argument("--metadata", help="mixture metadata rendered on the fly (with --store and/or --dataset-paths; "
                     "consistent stems)")
    p.add_argument("--store", metavar="STORE", help="with --metadata: a source store to render from")
    p.add_argument("--dataset-paths", help="with --metadata: dataset_paths.json (chunks the store lacks are decoded)")
    p.add_argument("--sample-rate", type=at.sample_rate, help="with --metadata: render at this rate")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="folder for results.csv (per source), summary.csv, summary.md and si_sdri.png")
    p.add_argument("--split", help="only this split (default: all rendered splits)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--separator", metavar="MODULE:FUNCTION",
                      help="batched: separate(mix[B, T], queries) -> [B, T] tensors on the separator's device; or "
                           "per source: separate(mix, sample_rate, query_label) -> estimate; or a factory without "
                           "arguments returning one; MODULE may be a dotted name on PYTHONPATH or a FILE.py")
    what.add_argument("--estimates", metavar="DIR",
                      help="folder of estimates DIR/{split}/{mix_id}/s{i}.wav|flac (i = source number, from 1)")
    p.add_argument("--name", help="the evaluated system's name in the tables (default separator / estimates)")
    p.add_argument("--no-sdr", action="store_true",
                   help="skip BSS-eval SDR/SDRi (faster; no torchmetrics needed)")
    p.add_argument("--allow-missing", action="store_true",
                   help="with --estimates: skip sources without a file (counted) instead of failing")
    p.add_argument("--limit", type=at.positive_int, metavar="N", help="only the first N mixtures (a quick look)")
    p.add_argument("--no-plot", action="store_true", help="no PNG plot")
    at.add_max_memory(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    run_opts = p.add_argument_group("running the separator and the metrics")
    run_opts.add_argument("--batch-size", type=at.positive_int, default=8,
                          help="(mixture, query) pairs per call of a batched separator separate(mix[B, T], queries) "
                               "(default 8)")
    run_opts.add_argument("--device", help="torch device of a batched separator (default: a module's own device, "
                                           "else cpu), e.g. cuda:0")
    run_opts.add_argument("--num-workers", type=at.positive_int, default=1,
                          help="processes computing the metrics (SDR is the slow part; default 1)")
    p.add_argument("--num-sources", type=at.positive_int, help="only mixtures with this many sources")
    add_label_arguments(p)


def io(args: argparse.Namespace):
    """What ``hive eval`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs, separator_input

    return CommandIO([("--rendered", args.rendered), ("--metadata", getattr(args, "metadata", None)),
                      ("--store", getattr(args, "store", None)),
                      *dataset_paths_inputs(getattr(args, "dataset_paths", None)),
                      ("--estimates", args.estimates), *separator_input(args.separator)],
                     [Output(args.output, signature=("results.csv", "summary.csv"))])


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from mixing import api

    from mixing.errors import HiveError

    if args.metadata and not (args.store or args.dataset_paths):
        raise HiveError("--metadata needs --store and/or --dataset-paths to render the mixtures")
    if args.rendered and (args.store or args.dataset_paths or args.sample_rate):
        raise HiveError("--store/--dataset-paths/--sample-rate go with --metadata, not with --rendered")
    options = api.EvalOptions(batch_size=args.batch_size, device=args.device, num_workers=args.num_workers,
                              num_sources=args.num_sources, labels=label_filter(args), name=args.name,
                              with_sdr=not args.no_sdr, allow_missing=args.allow_missing, limit=args.limit,
                              plot=not args.no_plot, progress=False if args.no_progress else None)
    recipe = None
    if args.metadata:
        recipe = api.RenderRecipe.make(args.dataset_paths, store=args.store, sample_rate=args.sample_rate)
    result = api.evaluate(args.rendered, args.output, separator=args.separator, estimates=args.estimates,
                          split=args.split, metadata=args.metadata, recipe=recipe, options=options)
    print(f"evaluated {result.mixtures} mixtures ({result.sources} sources) from {args.rendered or args.metadata}")
    print(result.markdown())
    print("(per label and number of sources: summary.md / summary.csv; per source: results.csv)")
    for key, path in result.files.items():
        print(f"{key}: {path}")
    if result.render_failures:
        print("mixtures that could not be rendered (skipped): "
              + ", ".join(f"{k}={v}" for k, v in sorted(result.render_failures.items())))
    if result.failed_batches:
        reasons = Counter(b["reason"] for b in result.failed_batches)
        print(f"separator output refused in {len(result.failed_batches)} batch(es), their sources have no estimate ("
              + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) + "):")
        for b in result.failed_batches[:10]:
            print(f"  {b['message']}")
        if len(result.failed_batches) > 10:
            print(f"  … and {len(result.failed_batches) - 10} more")
        return 1
    if result.missing:
        print(f"missing estimates (skipped): {sum(result.missing.values())} sources")
        return 1
    if result.render_failures:
        return 1
    return 0
