"""HiveMapDataset: the map-style dataset over metadata + store and over hive render output, in every
example form, with label filters, through DataLoader workers with a shuffling sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import hive
from mixing.errors import EmptySelectionError, HiveError
from mixing.map_dataset import HiveMapDataset
from mixing.queries import ExampleConfig

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def store(toy_store):
    return toy_store(44100)


@pytest.fixture(scope="module")
def stream(toy_corpus, store):
    def get(targets="all", **kw):
        return list(hive.iter_mixtures(toy_corpus.parquet_dir, None, store=store, split="validation", targets=targets,
                                       **kw))
    return get


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("targets", ["all", "each", ExampleConfig("one", negative_rate=0.3, seed=1),
                                     ExampleConfig("each", negative_rate=0.4, query_templates=("a {label}",))])
def test_items_equal_the_stream(toy_corpus, store, stream, targets):
    ds = HiveMapDataset.from_metadata(toy_corpus.parquet_dir, store, split="validation", targets=targets)
    assert isinstance(ds, torch.utils.data.Dataset)
    expected = stream(targets)
    assert len(ds) == len(expected)
    for i, ex in enumerate(expected):
        _same(ds[i], ex)
    assert ds[-1]["mix_id"] == expected[-1]["mix_id"]
    with pytest.raises(IndexError, match=f"out of range for a HiveMapDataset of {len(ds)} examples"):
        ds[len(ds)]


@pytest.mark.slow  # end to end over the toy corpus
def test_over_a_render_folder_webdataset_and_parquet(toy_corpus, store, toy_render):
    # the render was made from the corpora (no store): the same renderer gives the same samples
    ref = {ex["mix_id"]: ex for ex in HiveMapDataset.from_metadata(toy_corpus.parquet_dir, None, toy_corpus.dataset_paths,
                                                                    split="test")}
    for fmt in ("webdataset", "parquet"):
        ds = HiveMapDataset.from_rendered(toy_render(format=fmt), split="test")
        assert len(ds) == len(ref)
        for i in range(len(ds)):
            ex = ds[i]
            _same(ex, ref[ex["mix_id"]])  # float WAV holds the rendered float32 samples exactly
    each = HiveMapDataset.from_rendered(toy_render(), split="test", targets="each",
                                        labels=hive.LabelFilter(("Animal",), label_match="any"))
    labels = Counter(each[i]["label"] for i in range(len(each)))
    assert set(labels) <= {"Dog", "Bird", "Cricket"} and sum(labels.values()) == len(each) > 0
    with pytest.raises(EmptySelectionError, match="selects none of the 16 mixtures"):
        HiveMapDataset.from_rendered(toy_render(), split="test", labels=["Cat"])


@pytest.mark.slow  # end to end over the toy corpus
def test_dataloader_workers_shuffle_and_epochs(toy_corpus, store):
    ds = HiveMapDataset.from_metadata(toy_corpus.parquet_dir, store, split="validation", targets="each")
    seen = Counter()
    loader = torch.utils.data.DataLoader(ds, batch_size=6, shuffle=True, num_workers=2, collate_fn=ds.collate,
                                         generator=torch.Generator().manual_seed(0))
    for batch in loader:
        assert batch["mix"].shape == batch["target"].shape == (len(batch["query"]), 176400)
        seen.update(zip(batch["mix_id"], batch["source_index"].tolist()))
    assert len(seen) == len(ds) and set(seen.values()) == {1}
    one = HiveMapDataset.from_metadata(toy_corpus.parquet_dir, store, split="validation", targets="one")
    first = [one[i]["source_index"] for i in range(len(one))]
    assert first == [one[i]["source_index"] for i in range(len(one))]
    one.set_epoch(1)
    assert [one[i]["source_index"] for i in range(len(one))] != first
    with pytest.raises(HiveError, match="needs a source store"):
        HiveMapDataset.from_metadata(toy_corpus.parquet_dir)
