"""Label subsets: names or mids, descendants by the Hive ontology, label_match all/any, exclusions;
on the stream, the builder and the commands (render, inspect, eval, synthesize), with the
one-line refusals of unknown names and of a filter that selects nothing."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hive
from mixing.cli import main
from mixing.errors import EmptySelectionError
from mixing.label_filter import LabelFilter, LabelFilterError
from mixing.label_index import UnknownLabelError
from mixing.metadata_io import iter_records

INSTRUMENTS = {"Piano", "Violin, fiddle", "Drum", "Flute", "Church bell"}  # toy classes under "Musical instrument"
ANIMALS = {"Dog", "Bird", "Cricket"}


@pytest.fixture(scope="module")
def store(toy_store):
    return toy_store(44100)


@pytest.fixture(scope="module")
def records(toy_corpus):
    return list(iter_records(toy_corpus.parquet_dir))


def test_names_mids_descendants_and_matching():
    f = LabelFilter(("Musical instrument",))
    assert f.keeps(["Piano", "Drum"]) and not f.keeps(["Piano", "Dog"])
    assert f.passing(["Piano", "Dog", "Flute"]) == [0, 2]
    assert LabelFilter(("Musical instrument",), label_match="any").keeps(["Piano", "Dog"])
    assert not LabelFilter(("Musical instrument",), label_match="any").keeps(["Cat", "Dog"])
    assert not LabelFilter(("Musical instrument",), include_descendants=False).keeps(["Piano"])
    by_mid = LabelFilter(("/m/07y_7", "/m/0bt9lr"))  # Violin, fiddle and Dog by their mids
    assert by_mid.keeps(["Violin, fiddle", "dog"]) and not by_mid.keeps(["Violin, fiddle", "Cat"])
    ex = LabelFilter(None, ("Domestic animals, pets",))  # Dog and Cat excluded, with any match too
    assert not ex.keeps(["Piano", "Cat"]) and ex.keeps(["Piano", "Bird"])
    both = LabelFilter(("Animal",), ("Bird",), label_match="any")
    assert both.keeps(["Dog", "Piano"]) and not both.keeps(["Dog", "Bird"])
    assert LabelFilter.make(None) is None and LabelFilter.make(both) is both
    # the column-wise decision equals the row-wise one
    rows = [["Piano", "Dog"], ["Drum"], ["Cat", "Bird"], [], ["Flute", "Violin, fiddle", "Bird"]]
    arr = pa.array(rows, type=pa.list_(pa.string()))
    for filt in (f, both, ex, by_mid, LabelFilter(("Musical instrument",), label_match="any")):
        assert filt.keep_mask(arr).tolist() == [filt.keeps(r) and bool(r) for r in rows]


def test_unknown_names_and_bad_settings_are_one_line():
    with pytest.raises(UnknownLabelError, match=r"unknown label 'Vioiln': closest names: 'Violin, fiddle'") as info:
        LabelFilter(("Dog", "Vioiln"))
    assert "\n" not in str(info.value)
    with pytest.raises(UnknownLabelError, match="unknown excluded label 'Dgo': closest names: 'Dog'"):
        LabelFilter.make(None, ["Dgo"])
    with pytest.raises(LabelFilterError, match="label_match is 'some'"):
        LabelFilter(("Dog",), label_match="some")
    with pytest.raises(LabelFilterError, match="labels is an empty list"):
        LabelFilter(())
    with pytest.raises(LabelFilterError, match="put exclude_labels and the other settings in it"):
        LabelFilter.make(LabelFilter(("Dog",)), ["Cat"])


def test_stream_and_builder_keep_the_subset(toy_corpus, store, records, tmp_path):
    train = [r for r in records if r.split == "train"]
    want_all = {r.mix_id for r in train if set(r.labels) <= INSTRUMENTS | ANIMALS}
    got = {ex["mix_id"] for ex in hive.iter_mixtures(toy_corpus.parquet_dir, None, store=store, split="train",
                                                     labels=["Musical instrument", "Animal"])}
    assert got == want_all and 0 < len(got) < len(train)
    lf = LabelFilter(("Musical instrument",), ("Dog",), label_match="any")
    want_any = {r.mix_id for r in train if set(r.labels) & INSTRUMENTS and "Dog" not in r.labels}
    examples = list(hive.iter_mixtures(toy_corpus.parquet_dir, None, store=store, split="train", labels=lf,
                                       targets="each"))
    assert {ex["mix_id"] for ex in examples} == want_any
    assert {ex["label"] for ex in examples} <= INSTRUMENTS  # only the selected sources are query targets
    assert len(examples) == sum(len(set(r.labels) & INSTRUMENTS) for r in train if r.mix_id in want_any)
    builder = hive.Hive(metadata=toy_corpus.parquet_dir, store=store, labels=["Musical instrument", "Animal"],
                        splits=("train",), decode=False, audio_feature=False, cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    assert set(builder.as_dataset(split="train")["mix_id"]) == want_all


def test_a_filter_that_selects_nothing_lists_the_mixtures_per_label(toy_corpus, store, records):
    per_label = Counter(lab for r in records if r.split == "train" for lab in set(r.labels))
    with pytest.raises(EmptySelectionError) as info:
        hive.stream_mixtures(toy_corpus.parquet_dir, None, store=store, split="train", labels=["Cat"])
    msg = str(info.value)
    assert "\n" not in msg and "selects none of the 48 mixtures of split 'train'" in msg
    for lab, n in per_label.items():
        assert f"{lab!r} {n}" in msg


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _tar_ids(folder: Path) -> set[str]:
    ids = set()
    for tar in folder.glob("*/*mix/tar_*.tar"):
        with tarfile.open(tar) as t:
            ids |= {m.name.split(".")[0] for m in t if m.name.endswith(".json")}
    return ids


@pytest.mark.slow  # end to end over the toy corpus
def test_commands_take_label_flags(toy_corpus, store, records, tmp_path, capsys):
    val = [r for r in records if r.split == "validation"]
    want = {r.mix_id for r in val if set(r.labels) & INSTRUMENTS}
    (tmp_path / "labels.txt").write_text("# instruments\nMusical instrument\n\n")
    out = tmp_path / "render"
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(store), "--output", str(out),
                 "--split", "validation", "--labels-file", str(tmp_path / "labels.txt"), "--label-match", "any",
                 "--no-progress"]) == 0
    assert _tar_ids(out) == want and 0 < len(want) < len(val)
    assert json.loads((out / "_render_config.json").read_text())["labels"]["label_match"] == "any"
    # the same folder with another subset is refused (one output holds one selection)
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(store), "--output", str(out),
                 "--split", "validation", "--labels", "Animal", "--no-progress"]) == 2
    assert "holds a render made with" in capsys.readouterr().err
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(store), "--output",
                 str(tmp_path / "r2"), "--labels", "Cat", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hive render: error: the label filter") and err.count("\n") == 1
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(store), "--output",
                 str(tmp_path / "r3"), "--labels", "Pianoo", "--no-progress"]) == 2
    assert "closest names: 'Piano'" in capsys.readouterr().err
    # eval: only the kept mixtures, only their selected sources
    ev = tmp_path / "eval"
    assert main(["eval", "--rendered", str(out), "--output", str(ev), "--labels", "Musical instrument",
                 "--label-match", "any", "--exclude-labels", "Dog", "--no-sdr", "--no-plot", "--no-progress"]) == 0
    rows = _csv(ev / "results.csv")
    assert {r["mix_id"] for r in rows} == {r.mix_id for r in val if set(r.labels) & INSTRUMENTS and "Dog" not in r.labels}
    assert {r["label"] for r in rows} <= INSTRUMENTS
    assert main(["eval", "--rendered", str(out), "--output", str(ev), "--num-sources", "2", "--no-sdr",
                 "--no-plot", "--no-progress"]) == 0
    assert {r["num_sources"] for r in _csv(ev / "results.csv")} == {"2"}
    # eval of metadata rendered on the fly: the filter chooses before anything is rendered
    assert main(["eval", "--metadata", str(toy_corpus.parquet_dir), "--store", str(store), "--split", "validation",
                 "--output", str(tmp_path / "ev2"), "--labels", "Animal", "--no-descendants", "--no-sdr",
                 "--no-plot", "--no-progress"]) == 2
    assert "selects none of the 16 mixtures" in capsys.readouterr().err  # "Animal" itself labels no source
    assert main(["eval", "--metadata", str(toy_corpus.parquet_dir), "--store", str(store), "--split", "validation",
                 "--output", str(tmp_path / "ev2"), "--labels", "Animal", "--label-match", "any", "--no-sdr",
                 "--no-plot", "--no-progress"]) == 0
    rows = _csv(tmp_path / "ev2" / "results.csv")
    assert {r["mix_id"] for r in rows} == {r.mix_id for r in val if set(r.labels) & ANIMALS}
    assert {r["label"] for r in rows} <= ANIMALS
    # inspect
    capsys.readouterr()
    assert main(["inspect", str(toy_corpus.parquet_dir), "--store", str(store), "--output", str(tmp_path / "insp"),
                 "--split", "validation", "--labels", "Musical instrument", "--label-match", "any", "--sample", "3",
                 "--no-progress"]) == 0
    pages = json.dumps([p.read_text() for p in (tmp_path / "insp").rglob("*.html")])
    chosen = [m for m in want if m in pages]
    assert len(chosen) >= 3 and not [r.mix_id for r in val if r.mix_id not in want and r.mix_id in pages]
    assert main(["inspect", str(toy_corpus.parquet_dir), "--store", str(store), "--output", str(tmp_path / "i2"),
                 "--labels", "Cat", "--no-progress"]) == 2
    assert "selects none of the 80 mixtures" in capsys.readouterr().err


def test_synthesize_draws_only_the_subset(toy_corpus, tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synthesize", "--pool", str(toy_corpus.pool), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(out), "--num-mixtures", "12", "--max-sources", "3", "--labels", "Musical instrument",
                 "Animal", "--exclude-labels", "Bird"]) == 0
    recs = list(iter_records(out))
    assert len(recs) == 12 and all(set(r.labels) <= (INSTRUMENTS | ANIMALS) - {"Bird"} for r in recs)
    stats = json.loads((out / "synthesis_stats_train.json").read_text())
    assert stats["pool_rows_dropped"]["label_filter"] > 0
    out2 = tmp_path / "synth_any"
    (tmp_path / "dog.txt").write_text("/m/0bt9lr  \n")  # Dog by its mid
    assert main(["synthesize", "--pool", str(toy_corpus.pool), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(out2), "--num-mixtures", "10", "--labels-file", str(tmp_path / "dog.txt"),
                 "--label-match", "any"]) == 0
    recs = list(iter_records(out2))
    assert len(recs) == 10 and all("Dog" in r.labels for r in recs)
    assert any(len(set(r.labels) - {"Dog"}) for r in recs)
    capsys.readouterr()
    assert main(["synthesize", "--pool", str(toy_corpus.pool), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(tmp_path / "s3"), "--labels", "Cat", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "selects none of the 57 clips of the pool's split 'train'" in err and "'Rain' 14" in err


def test_in_memory_arrow_metadata_with_a_filter(toy_corpus, store, records):
    table = pa.Table.from_pylist([r.to_hub_row() for r in records])
    got = [ex["mix_id"] for ex in hive.iter_mixtures(table, None, store=store, split="test",
                                                     labels=LabelFilter(("Animal",), label_match="any"))]
    assert got == [r.mix_id for r in records if r.split == "test" and set(r.labels) & ANIMALS]
    mix = next(hive.iter_mixtures(table, None, store=store, split="test"))["mix"]
    assert mix.dtype == np.float32 and mix.shape == (441000,)
