"""``hive card``: the Hub layout loads with ``datasets`` exactly as the card states; plots are PNGs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from dataset_card.card import CORPORA, CardError, CardConfig, corpus_of, size_category, write_card_folder
from dataset_card.layout import CONFIGS, write_layout
from dataset_card.plots import LABEL_PLOT, SNR_PLOT, SOURCE_COUNT_PLOT
from mixing import __version__
from mixing.cli import main as hive
from mixing.metadata import hub_features
from mixing.metadata_io import iter_records
from mixing.toy import SPLIT_SIZES, build_toy_corpus

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROVENANCE = {"synthesis": {"seed": 1234, "snr_range_db": [-5, 5]}, "curation": {"judge": "toy-judge",
                                                                                  "keep_ratio": 0.8}}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy_corpus(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def card_dir(toy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("card") / "hive"
    prov = out.parent / "provenance.json"
    prov.write_text(json.dumps(PROVENANCE))
    rc = hive(["card", str(toy.parquet_dir), "--output", str(out), "--rows-per-file", "20",
               "--parent-revision", "v1.0", "--provenance", str(prov), "--repo-id", "hive-test/hive-meta",
               "--example-revision", "v1.1"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def card(card_dir):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(card_dir / "README.md")


def _infos(card) -> dict[str, dict]:
    return {i["config_name"]: i for i in card.data.dataset_info}


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow  # end to end over the toy corpus
def test_every_config_and_split_loads_with_the_counts_the_card_states(card_dir, card, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    infos = _infos(card)
    assert list(infos) == list(CONFIGS)
    for config, info in infos.items():
        assert [s["name"] for s in info["splits"]] == ["train", "validation", "test"]
        for split in info["splits"]:
            ds = datasets.load_dataset(str(card_dir), config, split=split["name"], cache_dir=str(tmp_path))
            assert len(ds) == split["num_examples"] > 0, (config, split)
            assert ds.features == hub_features()
            if config != "all":
                assert set(ds["num_sources"]) == {int(config[0])}
            assert set(ds["split"]) == {split["name"]}
    # the numbers themselves: the toy corpus's split sizes, and the Nmix configs partition `all`
    for split, size in SPLIT_SIZES.items():
        per_split = {c: next(s["num_examples"] for s in infos[c]["splits"] if s["name"] == split) for c in infos}
        assert per_split["all"] == size
        assert sum(v for c, v in per_split.items() if c != "all") == size
    # the default config is `all`
    ds = datasets.load_dataset(str(card_dir), split="test", cache_dir=str(tmp_path))
    assert len(ds) == SPLIT_SIZES["test"]


def test_card_yaml_parses_and_configs_resolve(card_dir, card):
    data = card.data.to_dict()
    assert data["license"] == "other" and data["license_name"]
    assert data["task_categories"] == ["audio-to-audio"]
    assert "sound-separation" in data["tags"]
    assert data["size_categories"] == ["n<1K"]
    configs = {c["config_name"]: c for c in data["configs"]}
    assert list(configs) == list(CONFIGS)
    assert [name for name, c in configs.items() if c.get("default")] == ["all"]
    on_disk = {p.relative_to(card_dir).as_posix() for p in (card_dir / "data").rglob("*") if p.is_file()}
    matched = set()
    for name, c in configs.items():
        for entry in c["data_files"]:
            files = {p.relative_to(card_dir).as_posix() for p in card_dir.glob(entry["path"])}
            assert files, (name, entry)
            assert all(f.startswith(f"data/{name}/{entry['split']}-") and f.endswith(".parquet") for f in files)
            matched |= files
    assert matched == on_disk  # every file belongs to exactly the config and split that name it
    # rows per file: 48 train mixtures at 20 rows a file -> 3 files, named i-of-n
    assert sorted(p.name for p in (card_dir / "data" / "all").glob("train-*")) == [
        "train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet"]
    # features in the YAML form `datasets` writes, reading back to the Hub schema
    import datasets

    for info in card.data.dataset_info:
        assert datasets.Features._from_yaml_list(info["features"]) == hub_features()
        assert info["download_size"] > 0 and info["dataset_size"] == sum(s["num_bytes"] for s in info["splits"])
    assert "&id" not in (card_dir / "README.md").read_text()  # no YAML anchors


def test_card_body(toy, card_dir, card):
    text = card.text
    for section in ("Load the metadata", "Render the audio", "Mixtures and hours per split", "Source-count",
                    "Labels", "Sources per corpus", "SNR", "Source corpora and licences", "Provenance"):
        assert f"## {section}" in text or f"### {section}" in text, section
    assert 'load_dataset("hive-test/hive-meta", "all", split="train")' in text
    assert 'revision="v1.1"' in text
    assert "hive render --metadata hive-test/hive-meta --revision v1.1" in text
    # tables: totals, label histogram, corpus prefixes
    assert "| **total** |" in text and "**80 (" in text
    labels = Counter(label for r in iter_records(toy.parquet_dir) for label in r.labels)
    top_label, top_count = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    assert f"| 1 | {top_label} | {top_count} |" in text
    assert f"{len(labels)} distinct labels over {sum(labels.values())} sources" in text
    assert "`DCASE_synth` | DCASE 2024 Task 9 |" in text and "`ESC50` | ESC-50 |" in text
    # the twelve licences
    assert len(CORPORA) == 12
    for corpus in CORPORA:
        assert f"| {corpus.name} | {corpus.licence} |" in text
    for needle in ("Remix License", "YouTube standard licence", "CC BY-NC-SA", "CC BY-NC 3.0", "academic use"):
        assert needle in text
    # provenance: tool version, parent revision, parameters
    assert f"version `{__version__}`" in text
    assert "parent revision: `v1.0`" in text
    assert '"keep_ratio": 0.8' in text and '"seed": 1234' in text
    for plot in (LABEL_PLOT, SNR_PLOT, SOURCE_COUNT_PLOT):
        assert f"(assets/{plot})" in text


def test_plots_are_readable_pngs(card_dir):
    import matplotlib.image as mpimg

    for name in (LABEL_PLOT, SNR_PLOT, SOURCE_COUNT_PLOT):
        path = card_dir / "assets" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img.std() > 0  # not a blank canvas


def test_layout_reads_back_with_our_reader(toy, card_dir):
    original = [r.mix_id for r in iter_records(toy.parquet_dir)]
    # the folder's README names `all` as default: our reader follows it (no double counting)
    assert sorted(r.mix_id for r in iter_records(card_dir)) == sorted(original)
    assert sorted(r.mix_id for r in iter_records(card_dir, config="3mix")) == sorted(
        r.mix_id for r in iter_records(toy.parquet_dir) if r.num_sources == 3)


@pytest.mark.slow  # end to end over the toy corpus
def test_rerun_is_byte_identical_and_removes_stale_files(toy, tmp_path):
    out = tmp_path / "out"
    options = CardConfig(repo_id="hive-test/hive-meta", rows_per_file=10)
    write_card_folder(toy.parquet_dir, out, options)
    first = _tree_digest(out)
    stale = out / "data" / "6mix" / "train-00000-of-00001.parquet"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    (out / "data" / "all" / "train-00000-of-00009.parquet").write_bytes(b"old")
    (out / "data" / "all" / ".part-train-00000.parquet").write_bytes(b"killed run")
    write_card_folder(toy.parquet_dir, out, options)
    assert _tree_digest(out) == first
    assert not stale.parent.exists()


@pytest.mark.slow  # end to end over the toy corpus
def test_legacy_json_input_gives_the_same_counts(toy, card, tmp_path):
    result = write_card_folder(toy.legacy_dir, tmp_path / "from_legacy", CardConfig(rows_per_file=20))
    assert {c: {s["name"]: s["num_examples"] for s in i["splits"]} for c, i in _infos(result.card).items()} == {
        c: {s["name"]: s["num_examples"] for s in i["splits"]} for c, i in _infos(card).items()}


@pytest.mark.slow  # end to end over the toy corpus
def test_errors(toy, tmp_path, capsys):
    # empty metadata: refused, and an earlier layout is not wiped
    out = tmp_path / "out"
    write_card_folder(toy.parquet_dir, out, CardConfig())
    with pytest.raises(CardError, match="holds no mixture"):
        write_card_folder([], out, CardConfig())
    assert (out / "data" / "all").is_dir()
    # output folder containing the input
    with pytest.raises(CardError, match="contains the metadata"):
        write_card_folder(toy.parquet_dir, toy.parquet_dir.parent, CardConfig())
    # provenance must be a JSON object
    bad = tmp_path / "prov.json"
    bad.write_text("[1, 2]")
    rc = hive(["card", str(toy.parquet_dir), "--output", str(tmp_path / "x"), "--provenance", str(bad)])
    assert rc == 2 and "expected an object" in capsys.readouterr().err
    rc = hive(["card", str(toy.parquet_dir), "--output", str(tmp_path / "x"), "--rows-per-file", "0"])
    assert rc == 2


def test_write_layout_bounded_buffers(toy, tmp_path):
    records = list(iter_records(toy.parquet_dir))
    layout = write_layout(iter(records), tmp_path, rows_per_file=7)
    assert layout.num_examples("all", "train") == 48
    assert len(layout.configs["all"]["train"].files) == 7  # ceil(48 / 7)
    assert layout.configs["2mix"]["test"].files == ["data/2mix/test-00000-of-00001.parquet"]


def test_helpers():
    assert corpus_of("DCASE_synth").name == "DCASE 2024 Task 9"
    assert corpus_of("ESC50").name == "ESC-50"
    assert corpus_of("Clotho_v2").name == "ClothoV2"
    assert corpus_of("MUSIC21").name == "MUSIC21"
    assert corpus_of("unknown_corpus") is None
    assert size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K"
    assert size_category(2_500_000) == "1M<n<10M"


PAPER_TITLE = "A Semantically Consistent Dataset for Data-Efficient Query-Based Universal Sound Separation"
PAPER_AUTHORS = ["Li, Kai", "Cheng, Jintao", "Zeng, Chang", "Yan, Zijun", "Wang, Helin", "Su, Zixiong",
                 "Zheng, Bo", "Hu, Xiaolin"]


def _bibtex_fields(text: str) -> dict[str, str]:
    import re

    entry = re.search(r"@article\{(\w+),\n(.*?)\n\}", text, re.S)
    assert entry is not None, text
    return {k: v for k, v in re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?$", entry.group(2), re.M)}


def test_card_and_builder_cite_the_paper(card_dir, tmp_path):
    import hive as hive_builder

    body = (card_dir / "README.md").read_text(encoding="utf-8")
    assert "## Citation" in body
    for text in (body, hive_builder.Hive(cache_dir=str(tmp_path / "cache")).info.citation):
        fields = _bibtex_fields(text)
        assert fields["title"] == "{" + PAPER_TITLE + "}" or fields["title"] == PAPER_TITLE
        assert fields["author"].split(" and ") == PAPER_AUTHORS
        assert fields["year"] == "2026" and fields["eprint"] == "2601.22599"
        assert "arXiv:2601.22599" in fields["journal"]
        assert "ShandaAI" not in fields["author"]  # the old, wrong citation
    assert ("Kai Li, Jintao Cheng, Chang Zeng, Zijun Yan, Helin Wang, Zixiong Su, Bo Zheng, Xiaolin Hu. "
            f'"{PAPER_TITLE}". arXiv:2601.22599, 2026.') in body


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("keep", [
    lambda r: r.split == "train",                          # a train-only release: no "test" split
    lambda r: r.split == "validation" and r.num_sources == 2,  # one split, no 3mix config
])
def test_the_cards_code_examples_load_the_release_they_describe(toy, tmp_path, keep):
    """Every ``load_dataset(...)`` call of the card's "Load the metadata" example runs against the
    folder the card describes (the repo id replaced by the folder, the revision dropped), and the
    render example names a split that exists."""
    import re

    import datasets

    records = [r for r in iter_records(toy.parquet_dir) if keep(r)]
    out = tmp_path / "release"
    write_card_folder(records, out, CardConfig(repo_id="org/hive-x", example_revision="v2"))
    text = (out / "README.md").read_text()
    calls = re.findall(r'load_dataset\("org/hive-x", "([^"]+)", split="([^"]+)"(?:, revision="v2")?\)', text)
    assert len(calls) == 2, text
    for config, split in calls:
        ds = datasets.load_dataset(str(out), config, split=split, cache_dir=str(tmp_path / "hf"))
        assert len(ds) > 0
    splits = {r.split for r in records}
    rendered = re.search(r"--split (\S+) --format webdataset --output shards/(\S+)", text)
    assert rendered and rendered.group(1) in splits and rendered.group(1) == rendered.group(2)
    assert 'split="test"' not in text or "test" in splits
