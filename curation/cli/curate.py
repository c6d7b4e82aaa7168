"""``hive curate``: score mixtures with an audio LLM over ontology confusion pools; keep the best.

Runs unchanged under ``accelerate launch scripts/curate.py …`` (ranks split the mixtures; the
main process merges and applies the keep policy to all scores).
"""

from __future__ import annotations

import argparse

from mixing.cli import argtypes as at
from mixing.cli.rank_options import add_rank_options

HELP = "score mixtures with an audio LLM and keep the best"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metadata", required=True, help="Hub id (ORG/NAME), Parquet file/folder, or legacy JSON folder")
    p.add_argument("--revision", help="Hub revision when --metadata is a Hub id")
    p.add_argument("--dataset-paths", help="dataset_paths.json: stems are rendered on the fly from the corpora")
    p.add_argument("--rendered", help="read stems from this `hive render` output (WebDataset tars) instead")
    p.add_argument("--store", metavar="STORE",
                   help="a source store (`hive store build` output): stems rendered on the fly slice it instead "
                        "of decoding (with --dataset-paths, chunks it lacks are decoded; without, it is used alone)")
    p.add_argument("--ontology", help="AudioSet-format ontology JSON that defines the confusion pools (default: "
                   "the Hive ontology shipped with hive-uss, mixing/data/hive_ontology.json)")
    p.add_argument("--judge", required=True,
                   help="judge backend spec, e.g. 'openai:url=http://127.0.0.1:8000/v1,model=NAME,timeout=60,retries=3'")
    p.add_argument("--output", required=True, help="output folder (metadata/, scores/, summary.json, provenance.json)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--keep", type=at.fraction,
                     help="keep this fraction of the scored mixtures of each (split, num_sources) group (default 0.5)")
    sel.add_argument("--min-score", type=at.fraction, help="keep every mixture scoring at least this instead")
    p.add_argument("--unscored", choices=("drop", "keep"), default="drop",
                   help="what happens to mixtures with no scorable source (judge failures, missing audio); "
                        "they never take part in the ranking (default: drop)")
    p.add_argument("--keep-rule", choices=("fraction", "reference"), default="fraction",
                   help="fraction: --keep/--min-score over each (split, num_sources) group (default); "
                        "reference: as the reference script, the top len // 2 of each shard (ties in "
                        "shard order)")
    p.add_argument("--keep-shard-size", type=at.positive_int,
                   help="shard size of --keep-rule reference (default: the --rendered folder's "
                        "--shard-size, else 1000, the reference's batch size)")
    p.add_argument("--confusion-pool", choices=("reference", "union"), default="reference",
                   help="reference: true label + the other children of its last parent in the "
                        "ontology file, as the reference (default); union: children of every parent, "
                        "without the label's ancestors and descendants")
    p.add_argument("--option-order", choices=("shuffled", "reference"), default="shuffled",
                   help="shuffled: seeded permutation per source (default); reference: true label "
                        "first, as the reference (a judge answering '1' then always scores 1)")
    p.add_argument("--prompt",
                   help="prompt template: 'reference' (the reference's wording, default), 'hive-v1', "
                        "@PATH of a text file, or the text itself; {options_json} or {options} marks "
                        "where the numbered labels go")
    p.add_argument("--system",
                   help="system message (default: the reference's 'You are a helpful assistant.'; "
                        "'' sends none)")
    p.add_argument("--temperature", type=at.temperature,
                   help="sampling temperature sent to the judge (default: none sent, so the server's "
                        "default applies, as in the reference)")
    p.add_argument("--split", help="only this split (default: every split, validation included)")
    p.add_argument("--max-pool", type=at.positive_int, help="cap each confusion pool at this many labels (true label kept)")
    p.add_argument("--seed", type=at.seed, default=0, help="seed of the pool caps and option orders (default 0)")
    p.add_argument("--cache-dir", help="answer cache folder (default OUTPUT/cache); reuse it across runs")
    p.add_argument("--answer-retries", type=at.retries, default=1,
                   help="ask again this many times when an answer names no option (default 1)")
    p.add_argument("--concurrency", type=at.workers,
                   help="judge calls in flight at once (default: the backend's own 'concurrency' option, "
                        "as HTTP judges have, else 1)")
    p.add_argument("--max-failure-rate", type=at.fraction, default=0.5, metavar="F",
                   help="fail (exit non-zero, keep nothing, write no metadata) when the judge failed for all "
                        "or more than this fraction of the sources it was asked about (default 0.5); a run "
                        "in which no source could be judged always fails. Failed answers are never cached, "
                        "so a rerun asks exactly those again")
    add_rank_options(p)
    at.add_max_memory(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def io(args: argparse.Namespace):
    """What ``hive curate`` reads and writes (the output-folder rule, :mod:`mixing.output_folder`)."""
    from mixing.output_folder import CommandIO, Output, dataset_paths_inputs

    prompt = args.prompt[1:] if isinstance(args.prompt, str) and args.prompt.startswith("@") else None
    outputs = [Output(args.output, signature=("_work", "provenance.json", "scores"))]
    if args.cache_dir:
        outputs.append(Output(args.cache_dir, "--cache-dir", signature=("answers-*.jsonl",)))
    return CommandIO([("--metadata", args.metadata), *dataset_paths_inputs(args.dataset_paths),
                      ("--rendered", args.rendered), ("--store", getattr(args, "store", None)),
                      ("--ontology", args.ontology), ("--prompt", prompt)], outputs)


def _report(result, args: argparse.Namespace) -> None:
    s = result.stats
    print(f"rank {result.rank}/{result.world_size}: {result.mixtures} mixtures scored; judge calls "
          f"{s['judge_calls']} ({s['judge_items']} sources), cached answers {s['cache_hits']}, "
          f"stems loaded for {s['audio_loaded']} mixtures")


def run(args: argparse.Namespace) -> int:
    import sys

    from curation.curate.job import (
        CurateConfig,
        CurateError,
        CurateFailedError,
        run_curate,
    )
    from mixing import packaged

    if args.keep_rule == "reference" and (args.keep is not None or args.min_score is not None):
        raise CurateError("--keep-rule reference keeps the top len // 2 of each shard; it takes no "
                          f"{'--keep' if args.keep is not None else '--min-score'}; drop it or use "
                          "--keep-rule fraction")
    if args.keep_shard_size is not None and args.keep_rule != "reference":
        raise CurateError("--keep-shard-size only applies to --keep-rule reference")

    config = CurateConfig(
        metadata=args.metadata, ontology=args.ontology or str(packaged.hive_ontology_path()), judge=args.judge,
        output=args.output,
        dataset_paths=args.dataset_paths, rendered=args.rendered, store=args.store,
        keep=None if args.min_score is not None else (0.5 if args.keep is None else args.keep),
        min_score=args.min_score,
        unscored=args.unscored, split=args.split, max_pool=args.max_pool, seed=args.seed,
        cache_dir=args.cache_dir, answer_retries=args.answer_retries, concurrency=args.concurrency,
        revision=args.revision, confusion_pool=args.confusion_pool, option_order=args.option_order,
        prompt=args.prompt, system=args.system, temperature=args.temperature, keep_rule=args.keep_rule,
        keep_shard_size=args.keep_shard_size, max_failure_rate=args.max_failure_rate)
    try:
        result = run_curate(config, rank=args.rank, world_size=args.world_size,
                            progress=False if args.no_progress else None)
    except CurateFailedError as exc:  # scores and summary are written; nothing kept
        if exc.result is not None:
            _report(exc.result, args)
        print(f"hive curate: error: {exc}", file=sys.stderr)
        return 1
    _report(result, args)
    if result.merged:
        print(result.summary_text)
        print(f"outputs in {args.output}: metadata/, scores/, summary.json, provenance.json")
    return 0
