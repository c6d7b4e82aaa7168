"""Dynamic mixing from the toy pool and its source store: deterministic per (seed, epoch, index)
across DataLoader workers and ranks, new per epoch, split-disjoint, drawn with hive synthesize's
synthesizer and level code, and every example's record re-renders offline to the same samples."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from datasets.distributed import split_dataset_by_node

import hive
from mixing.cli import main
from mixing.dynamic import DynamicMixingError, DynamicReport, DynamicSpec, records_of
from mixing.errors import EmptySelectionError, StoreRateError
from mixing.label_index import UnknownLabelError
from mixing.metadata_io import write_hub_folder
from mixing.pool import iter_pool
from mixing.recipe import RenderRecipe
from mixing.synthesis.splits import check_metadata_splits

ANIMALS = {"Dog", "Bird", "Cricket"}


@pytest.fixture(scope="module")
def store(toy_store):
    return toy_store(44100)


def _loader_audio(ds, workers: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import torch

    out = {}
    for ex in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers):
        out[ex["mix_id"]] = (ex["mix"].numpy(), ex["sources"].numpy())
    return out


@pytest.mark.slow  # end to end over the toy corpus
def test_same_seed_and_epoch_give_identical_audio_across_workers_and_ranks(toy_corpus, store):
    pytest.importorskip("torch")

    def make():
        return hive.dynamic_mixtures(toy_corpus.pool, store, seed=4, epoch=1, num_mixtures=24, num_units=8)

    one = _loader_audio(make(), 1)
    two = _loader_audio(make(), 2)
    ranks = {}
    for rank in range(2):
        ranks.update(_loader_audio(split_dataset_by_node(make(), rank=rank, world_size=2), 2))
    assert len(one) == 24 and sorted(one) == sorted(two) == sorted(ranks)
    for key, (mix, stems) in one.items():
        for other in (two, ranks):
            np.testing.assert_array_equal(other[key][0], mix)
            np.testing.assert_array_equal(other[key][1], stems)
    # another epoch draws other mixtures; the same epoch again the same ones
    again = {ex["mix_id"]: ex["mix"] for ex in make()}
    assert all(np.array_equal(again[k], one[k][0]) for k in one)
    later = hive.dynamic_mixtures(toy_corpus.pool, store, seed=4, epoch=2, num_mixtures=24, num_units=8)
    later = {ex["mix_id"].replace("_e0002_", "_e0001_"): ex for ex in later}
    assert set(later) == set(one)
    assert sum(np.array_equal(later[k]["mix"], one[k][0]) for k in one) == 0


def test_a_written_record_renders_offline_to_the_streamed_samples(toy_corpus, store, tmp_path):
    streamed = list(DynamicSpec.make(toy_corpus.pool, store, seed=9, epoch=3, num_mixtures=10,
                                     targets="each").iter())
    records = records_of(streamed)
    assert len(records) == 10 and len(streamed) == sum(r.num_sources for r in records)
    write_hub_folder(records, tmp_path / "meta")
    out = tmp_path / "render"
    assert main(["render", "--metadata", str(tmp_path / "meta"), "--store", str(store), "--output", str(out),
                 "--no-progress"]) == 0
    rendered = {}
    for tar in out.glob("train/*mix/tar_*.tar"):
        with tarfile.open(tar) as t:
            for m in t:
                key, field = m.name.split(".")[:2]
                if field != "json":
                    rendered[(key, field)] = sf.read(io.BytesIO(t.extractfile(m).read()), dtype="float32")[0]
    for ex in streamed:
        np.testing.assert_array_equal(rendered[(ex["mix_id"], "mix")], ex["mix"])
        np.testing.assert_array_equal(rendered[(ex["mix_id"], f"s{ex['source_index'] + 1}")], ex["target"])
    # and in Python, through the one renderer factory
    renderer = RenderRecipe.make(None, store=store).renderer()
    whole = {ex["mix_id"]: ex for ex in DynamicSpec.make(toy_corpus.pool, store, seed=9, epoch=3,
                                                         num_mixtures=10).iter()}
    for rec in records:
        r = renderer.render(rec)
        np.testing.assert_array_equal(r.mix, whole[rec.mix_id]["mix"])
        np.testing.assert_array_equal(r.stems, whole[rec.mix_id]["sources"])
        assert json.loads(whole[rec.mix_id]["record"])["mix_id"] == rec.mix_id


def test_drawn_by_the_synthesizer_with_its_level_code(toy_corpus, store):
    """Each record is what hive synthesize's Synthesizer gives for (seed, split, index, epoch) with
    its standard level measurement (crops read once from the store are only a faster route)."""
    spec = DynamicSpec.make(toy_corpus.pool, store, seed=2, epoch=5, num_mixtures=12)
    state = spec.state()
    renderer = RenderRecipe.make(None, store=store).renderer()
    streamed = list(spec.iter())
    for index, ex in enumerate(streamed):
        rec, failure = state.synth.synthesize_one(index, renderer, Counter(), epoch=5)
        assert failure is None
        got = records_of([ex])[0]
        assert got == dataclasses.replace(rec, mix_id=got.mix_id)
        peak = np.abs(ex["mix"]).max()
        assert peak == pytest.approx(0.95, rel=1e-5)  # Hive's final_max_amplitude
        assert 2 <= ex["num_sources"] <= 5 and len(set(ex["labels"])) == ex["num_sources"]
    cfg = spec.config
    assert cfg.sample_rate == 44100 and cfg.target_duration == 4.0 and streamed[0]["mix"].shape == (176400,)


def test_split_disjoint_and_label_subsets(toy_corpus, store):
    pool = list(iter_pool(toy_corpus.pool))
    recs = {}
    for split in ("train", "validation"):
        recs[split] = records_of(list(DynamicSpec.make(toy_corpus.pool, store, seed=1, split=split,
                                                       num_mixtures=30, max_sources=3).iter()))
        assert {r.split for r in recs[split]} == {split}
    check = check_metadata_splits(recs["train"] + recs["validation"], pool)
    assert check.ok and "<not in pool>" not in check.files_by_split
    train_files = {s.path for r in recs["train"] for s in r.sources}
    assert not train_files & {s.path for r in recs["validation"] for s in r.sources}
    # a label subset: every source of it ...
    subset = records_of(list(DynamicSpec.make(toy_corpus.pool, store, seed=1, num_mixtures=15, max_sources=2,
                                              labels=["Animal"], exclude_labels=["Bird"]).iter()))
    assert all(set(r.labels) <= ANIMALS - {"Bird"} for r in subset)
    # ... or (label_match any) at least one selected source, and only those are query targets
    spec = DynamicSpec.make(toy_corpus.pool, store, seed=1, num_mixtures=15, labels=hive.LabelFilter(
        ("Animal",), label_match="any"), targets="each")
    examples = list(spec.iter())
    assert {ex["label"] for ex in examples} <= ANIMALS
    assert all(set(r.labels) & ANIMALS for r in records_of(examples))
    assert any(set(r.labels) - ANIMALS for r in records_of(examples))


def test_negative_queries_come_from_the_pool_labels(toy_corpus, store):
    spec = DynamicSpec.make(toy_corpus.pool, store, seed=3, num_mixtures=20,
                            targets=hive.ExampleConfig("each", negative_rate=1.0, seed=3))
    examples = list(spec.iter())
    negatives = [ex for ex in examples if ex["negative"]]
    pool_labels = {e.label for e in iter_pool(toy_corpus.pool) if e.split == "train"}
    assert len(negatives) == 20 and {ex["label"] for ex in negatives} <= pool_labels
    for ex in negatives:
        present = next(r for r in records_of([ex])).labels
        assert ex["label"] not in present and not ex["target"].any()


@pytest.mark.slow  # end to end over the toy corpus
def test_endless_stream_and_reports(toy_corpus, store):
    spec = DynamicSpec.make(toy_corpus.pool, store, seed=0)
    report = DynamicReport()
    first = list(itertools.islice(spec.iter(report=report), 300))
    assert len({ex["mix_id"] for ex in first}) == 300 and report.mixtures == 300
    assert first[-1]["mix_id"].endswith("000000299")  # one process: index order across the 240 shards


def test_bad_input_is_refused_at_once(toy_corpus, store, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DynamicMixingError, match="holds no clip"):
        DynamicSpec.make(tmp_path / "empty.jsonl", store)
    moved = [dataclasses.replace(e, chunk_start_second=e.chunk_start_second + 0.25)
             for e in iter_pool(toy_corpus.pool)]  # chunks the store does not hold
    with pytest.raises(DynamicMixingError, match="holds none of the 57 clips of split 'train'"):
        DynamicSpec.make(moved, store)
    with pytest.raises(StoreRateError):
        DynamicSpec.make(toy_corpus.pool, store, sample_rate=16000)
    with pytest.raises(DynamicMixingError, match="num_mixtures is 0"):
        DynamicSpec.make(toy_corpus.pool, store, num_mixtures=0)
    with pytest.raises(DynamicMixingError, match="renders from a source store"):
        DynamicSpec.make(toy_corpus.pool, None)
    with pytest.raises(UnknownLabelError, match="closest names: 'Dog'"):
        DynamicSpec.make(toy_corpus.pool, store, labels=["Dgo"])
    with pytest.raises(EmptySelectionError, match="selects none of the 57 clips"):
        DynamicSpec.make(toy_corpus.pool, store, labels=["Cat"])
