"""``hive demo``: build the embedded toy corpus and run the whole loop on it, fully offline."""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from mixing import optional
from mixing.cli import argtypes as at


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


def write_hub_metadata(metadata: Path, output: Path) -> tuple[int, str]:
    """The demo's metadata in the Hub layout: ``data/{all,2mix..5mix}/{split}-*.parquet`` and a
    README.md whose YAML ``configs`` make ``load_dataset(output, "2mix")`` work. With matplotlib
    this is ``hive card`` (card with statistics and plots); without it (the core install of
    ``make demo``) the same layout with a card that holds only the configs and sizes."""
    if optional.available("matplotlib"):
        from mixing.cli import main as hive

        status = hive(["card", str(metadata), "--output", str(output), "--repo-id", "local/hive-toy"])
        return status, "hive card: README.md with configs and statistics, plots in assets/"
    return 0, write_hub_layout_without_plots(metadata, output)


def write_hub_layout_without_plots(metadata: Path, output: Path) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    from dataset_card.card import check_card, configs_yaml, dataset_info_yaml
    from dataset_card.layout import write_layout
    from mixing.metadata_io import iter_records
    from mixing.resume import atomic_write_text

    layout = write_layout(iter_records(metadata), output)
    data = DatasetCardData(pretty_name="Hive toy metadata", configs=configs_yaml(layout),
                           dataset_info=dataset_info_yaml(layout))
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n# Hive toy metadata\n\nWritten by `hive demo` (no plots: "
                       "matplotlib is not installed; `pip install 'hive-uss[card]'` and `hive card` write the "
                       "full card).\n")
    check_card(card, output)
    atomic_write_text(output / "README.md", str(card))
    return "Hub layout and a README.md with the configs (install matplotlib for the full card)"


def io(args: argparse.Namespace):
    """What ``hive demo`` writes (the output-folder rule, :mod:`mixing.output_folder`): its work folder."""
    from mixing.output_folder import CommandIO, Output

    return CommandIO([], [Output(args.workdir, "--workdir", signature=("dataset_paths.json", "corpora"))])


def run(args: argparse.Namespace) -> int:
    from mixing.cli import main as hive
    from mixing.toy import build_toy_corpus

    work = Path(args.workdir).resolve()
    t0 = _step(f"1. build the toy corpus in {work}")
    toy = build_toy_corpus(work, seed=args.seed)
    print("   " + toy.summary())
    print(f"   dataset paths : {toy.dataset_paths}")
    print(f"   metadata      : {toy.parquet_dir} (Parquet per split) and {toy.legacy_dir} (legacy JSON)")
    print(f"   pool          : {toy.pool}")
    hub = work / "metadata" / "hub"
    status, how = write_hub_metadata(toy.parquet_dir, hub)
    if status != 0:
        return status
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

    if importlib.util.find_spec("mixing.verify"):
        t0 = _step("4. hive verify: every sample complete, stems sum to the mix, nothing clips")
        status = hive(["verify", str(rendered)])
        _done(t0, status)
        if status != 0:
            return status

    if importlib.util.find_spec("hive") and hasattr(importlib.import_module("hive"), "describe_first_example"):
        t0 = _step("5. load the toy metadata through the datasets builder in hive.py (on-the-fly mixing)")
        import hive as hive_builder

        print("   " + hive_builder.describe_first_example(str(hub), str(toy.dataset_paths)))
        _done(t0)

    if importlib.util.find_spec("mixing.cli.synthesize") and importlib.util.find_spec("mixing.synthesis"):
        ontology = work / "toy_ontology.json"
        from mixing.toy import write_toy_ontology

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
        if status == 0 and importlib.util.find_spec("mixing.verify"):
            status = hive(["verify", str(work / "synthesized_rendered")])
        _done(t0, status)
        if status != 0:
            return status

    if importlib.util.find_spec("curation.stages"):
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
