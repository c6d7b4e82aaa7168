"""``hive demo``: build the embedded toy corpus and run the whole loop on it, fully offline.

The demo lives on the top floor: it writes its card with this room's card writer
(:func:`dataset_card.card.write_card_folder`), mixes through the stream of :mod:`mixing.stream`
(what ``hive.stream_mixtures`` re-exports), and runs every other room's work through the ``hive``
dispatcher (:func:`mixing.cli.main`, which finds each command by its entry point).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mixing import optional
from mixing.cli import argtypes as at

HELP = "build the embedded toy corpus and run the whole loop on it (offline)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="hive-demo", help="folder for the toy corpus and outputs (default ./hive-demo)")
    p.add_argument("--seed", type=at.seed, default=0, help="seed of the toy corpus")
    p.add_argument("--num-workers", type=at.workers, default=2, help="render worker processes")


def _step(title: str) -> float:
    print(f"\n== {title}")
    return time.perf_counter()


def _done(t0: float, status: int | None = None) -> None:
    extra = "" if status is None else f" (exit status {status})"
    print(f"   done in {time.perf_counter() - t0:.1f} s{extra}")


def write_hub_metadata(metadata: Path, output: Path) -> str:
    """The demo's metadata in the Hub layout (``data/{all,2mix..5mix}/{split}-*.parquet``) and its
    dataset card (README.md whose YAML ``configs`` make ``load_dataset(output, "2mix")`` work), written
    by the card writer of ``hive card``; the plots only where matplotlib is installed (the core
    install of ``make demo`` has none)."""
    from .card import CardConfig, write_card_folder

    plots = optional.available("matplotlib")
    write_card_folder(metadata, output, CardConfig(repo_id="local/hive-toy", plots=plots))
    return ("dataset card with statistics and plots in assets/" if plots else
            "dataset card with statistics, no plots: `pip install 'hive-uss[card]'` draws them")


def describe_first_example(hub: Path, dataset_paths: Path, split: str = "train") -> str:
    """Load the Hub-layout metadata with ``datasets`` (streaming: nothing is cached), then mix the
    first mixture of ``split`` on the fly with the training stream and describe its arrays."""
    import datasets
    import numpy as np

    from mixing.stream import stream_mixtures

    rows = datasets.load_dataset(str(hub), "2mix", split=split, streaming=True)
    num_two = sum(1 for _ in rows)
    ex = next(iter(stream_mixtures(hub, dataset_paths, split=split)), None)
    if ex is None:
        return f"split {split!r} has no renderable mixture"
    mix, stems, sr = np.asarray(ex["mix"]), np.asarray(ex["sources"]), ex["sample_rate"]
    return "\n".join([
        f"datasets.load_dataset({str(hub)!r}, \"2mix\", split={split!r}): {num_two} rows of metadata",
        f"hive.stream_mixtures(..., split={split!r}): first example {ex['mix_id']}",
        f"  mix     {tuple(mix.shape)} {mix.dtype} at {sr} Hz ({mix.shape[0] / sr:.2f} s), peak {np.abs(mix).max():.3f}",
        f"  sources {tuple(stems.shape)} {stems.dtype}: {', '.join(ex['labels'])}",
        f"  stems sum to the mix: max |sum - mix| = {np.abs(stems.sum(0) - mix).max():.2e}",
    ])


def io(args: argparse.Namespace):
    """What ``hive demo`` writes (the output-folder rule, :mod:`mixing.output_folder`): its work folder."""
    from mixing.output_folder import CommandIO, Output

    return CommandIO([], [Output(args.workdir, "--workdir", signature=("dataset_paths.json", "corpora"))])


def run(args: argparse.Namespace) -> int:
    from mixing.cli import main as hive
    from mixing.toy import build_toy_corpus, write_toy_ontology

    work = Path(args.workdir).resolve()
    t0 = _step(f"1. build the toy corpus in {work}")
    toy = build_toy_corpus(work, seed=args.seed)
    print("   " + toy.summary())
    print(f"   dataset paths : {toy.dataset_paths}")
    print(f"   metadata      : {toy.parquet_dir} (Parquet per split) and {toy.legacy_dir} (legacy JSON)")
    print(f"   pool          : {toy.pool}")
    hub = work / "metadata" / "hub"
    how = write_hub_metadata(toy.parquet_dir, hub)
    print(f"   Hub layout    : {hub}: configs all, 2mix … 5mix ({how});")
    print(f"                   datasets.load_dataset({str(hub)!r}, \"2mix\", split=\"train\") loads it")
    _done(t0)

    common = ["--metadata", str(hub), "--dataset-paths", str(toy.dataset_paths)]
    t0 = _step("2. hive check: are all referenced corpus files present and readable?")
    status = hive(["check", *common, "--report", str(work / "check_report.json")])
    _done(t0, status)
    if status != 0:
        return status

    rendered = work / "rendered"
    t0 = _step(f"3. hive render: mixtures and consistent stems into WebDataset shards in {rendered}")
    status = hive(["render", *common, "--output", str(rendered), "--shard-size", "16",
                   "--num-workers", str(args.num_workers), "--no-progress"])
    _done(t0, status)
    if status != 0:
        return status

    t0 = _step("4. hive verify: every sample complete, stems sum to the mix, nothing clips")
    status = hive(["verify", str(rendered)])
    _done(t0, status)
    if status != 0:
        return status

    t0 = _step("5. load the toy metadata with datasets and mix on the fly (the stream behind hive.py's builder)")
    print("   " + describe_first_example(hub, toy.dataset_paths).replace("\n", "\n   "))
    _done(t0)

    ontology = work / "toy_ontology.json"
    write_toy_ontology(ontology)
    synth = work / "synthesized"
    t0 = _step(f"6. hive synthesize: new mixtures from the toy single-event pool into {synth}")
    status = hive(["synthesize", "--pool", str(toy.pool), "--ontology", str(ontology),
                   "--dataset-paths", str(toy.dataset_paths), "--output", str(synth),
                   "--split", "train", "--num-mixtures", "24", "--seed", "1"])
    _done(t0, status)
    if status != 0:
        return status
    t0 = _step("7. render and verify the synthesized mixtures")
    status = hive(["render", "--metadata", str(synth), "--dataset-paths", str(toy.dataset_paths),
                   "--output", str(work / "synthesized_rendered"), "--no-progress"])
    if status == 0:
        status = hive(["verify", str(work / "synthesized_rendered")])
    _done(t0, status)
    if status != 0:
        return status

    mined = work / "mined"
    t0 = _step(f"8. hive mine: the model-free stages (chunk, single-label, superres with soxr) into {mined}")
    dp = str(toy.dataset_paths)
    steps = [("chunk", str(toy.labels_csv), []), ("single-label", str(mined / "chunk"), []),
             ("superres", str(mined / "single-label"),
              ["--backend", "resample", "--output-root", str(work / "mined_audio"), "--prefix", "Hive_mined"])]
    for stage, src, extra in steps:
        status = hive(["mine", stage, "--input", src, "--output", str(mined / stage),
                       "--dataset-paths", dp, "--no-progress", *extra])
        if status != 0:
            return status
    print(f"   single-event pool: {mined / 'superres' / 'output.jsonl'} (the audio-LLM and tagger stages "
          "need models: see `hive mine single-event --help`)")
    _done(t0, status)

    if optional.available("matplotlib"):
        page = work / "inspect"
        t0 = _step(f"9. hive inspect: pages to listen to 2 rendered mixtures and look at their spectrograms in {page}")
        status = hive(["inspect", str(rendered), "--output", str(page), "--sample", "2", "--no-progress"])
        _done(t0, status)
        if status != 0:
            return status
        print(f"   open {page / 'index.html'} in a browser")
    else:
        print("\n== 9. hive inspect: skipped (it draws spectrograms with matplotlib: pip install 'hive-uss[card]')")

    print(f"\nAll done. Everything is under {work}.")
    return 0
