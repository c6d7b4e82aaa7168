"""Query examples (``targets="all"|"each"|"one"``, templates, negative queries), their collate,
the builder's query rows, and in-memory metadata (datasets.Dataset, pyarrow.Table, DataFrame),
all streamed from the toy corpus's source store."""

from __future__ import annotations

import io
from collections import Counter

import datasets
import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

import hive
from mixing.collate import collate_mixtures, stack_examples
from mixing.errors import HiveError
from mixing.label_index import default_label_index
from mixing.metadata_io import iter_records
from mixing.queries import ExampleConfig, ExampleConfigError, QueryMaker, has_negative


@pytest.fixture(scope="module")
def store(toy_store):
    return toy_store(44100)


@pytest.fixture(scope="module")
def whole(toy_corpus, store):
    """The validation split as whole mixtures (the reference for every query form)."""
    return {ex["mix_id"]: ex for ex in hive.iter_mixtures(toy_corpus.parquet_dir, None, store=store,
                                                           split="validation")}


def _stream(toy_corpus, store, targets, **kw):
    return list(hive.iter_mixtures(toy_corpus.parquet_dir, None, store=store, split="validation", targets=targets,
                                   **kw))


def test_each_gives_one_example_per_source_with_mid_and_templated_query(toy_corpus, store, whole):
    templates = ("the sound of {label}", "{label} in the background", "a {label}")
    got = _stream(toy_corpus, store, ExampleConfig("each", query_templates=templates, seed=3))
    assert len(got) == sum(ex["num_sources"] for ex in whole.values())
    per_mix = Counter(ex["mix_id"] for ex in got)
    assert per_mix == Counter({k: ex["num_sources"] for k, ex in whole.items()})
    index = default_label_index()
    seen_templates = Counter()
    for ex in got:
        mixture = whole[ex["mix_id"]]
        i = ex["source_index"]
        assert ex["label"] == mixture["labels"][i] and not ex["negative"]
        assert ex["label_id"] == index.node(ex["label"]).mid and ex["label_id"].startswith("/m/")
        assert ex["label_id"] == mixture["label_ids"][i]
        np.testing.assert_array_equal(ex["target"], mixture["sources"][i])
        np.testing.assert_array_equal(ex["mix"], mixture["mix"])
        names = [n.strip().lower() for n in ex["label"].split(",")]
        matches = [t for t in templates for n in names if t.replace("{label}", n) == ex["query"]]
        assert matches, ex["query"]
        seen_templates[matches[0]] += 1
    assert {ex["source_index"] for ex in got if ex["mix_id"] == got[0]["mix_id"]} == set(
        range(whole[got[0]["mix_id"]]["num_sources"]))
    assert len(seen_templates) == 3  # every template is used: the choice is per example
    # the default query: one of the label's own names ("Violin, fiddle" -> "violin" / "fiddle")
    plain = _stream(toy_corpus, store, "each")
    assert all(ex["query"] in [n.strip().lower() for n in ex["label"].split(",")] for ex in plain)
    violin = {ex["query"] for seed in range(6) for ex in _stream(toy_corpus, store, ExampleConfig("each", seed=seed))
              if ex["label"] == "Violin, fiddle"}
    assert violin == {"violin", "fiddle"}
    # seeded: the same examples again
    again = _stream(toy_corpus, store, ExampleConfig("each", query_templates=templates, seed=3))
    assert [e["query"] for e in again] == [e["query"] for e in got]


def test_one_gives_one_seeded_source_per_mixture(toy_corpus, store, whole):
    a = _stream(toy_corpus, store, ExampleConfig("one", seed=0))
    b = _stream(toy_corpus, store, ExampleConfig("one", seed=0))
    c = _stream(toy_corpus, store, ExampleConfig("one", seed=1))
    assert [e["mix_id"] for e in a] == list(whole) and len(a) == len(whole)
    assert [e["source_index"] for e in a] == [e["source_index"] for e in b]
    assert [e["source_index"] for e in a] != [e["source_index"] for e in c]
    for ex in a:
        np.testing.assert_array_equal(ex["target"], whole[ex["mix_id"]]["sources"][ex["source_index"]])


def test_negative_queries_are_unrelated_by_the_ontology_and_silent(toy_corpus, store, whole):
    cfg = ExampleConfig("each", negative_rate=0.5, seed=2)
    got = _stream(toy_corpus, store, cfg)
    negatives = [e for e in got if e["negative"]]
    expected = [k for k in whole if has_negative(cfg, k)]
    assert 0 < len(negatives) == len(expected) < len(whole)
    assert len(got) == sum(ex["num_sources"] for ex in whole.values()) + len(negatives)
    index = default_label_index()
    onto = index.ontologies[0][1]
    for ex in negatives:
        assert ex["source_index"] == -1 and not np.any(ex["target"]) and ex["target"].shape == ex["mix"].shape
        node = index.node(ex["label"])
        assert node is not None and ex["label_id"] == node.mid
        for present in whole[ex["mix_id"]]["labels"]:
            p = onto.node(present)
            related = {n.id for n in onto.ancestors(p) + onto.descendants(p) + onto.siblings(p)} | {p.id}
            assert node.mid not in related, (ex["label"], present)
    # "one" with negatives: some examples are negatives, never a related label
    one = _stream(toy_corpus, store, ExampleConfig("one", negative_rate=0.5, seed=2))
    assert 0 < sum(e["negative"] for e in one) < len(one) == len(whole)
    # a vocabulary of labels all present or related: no negative can be made
    maker = QueryMaker(ExampleConfig("each", negative_rate=1.0, negative_labels=("Dog", "Cat")))
    assert maker.negative_label(["Dog"], lambda: 0.5) is None  # Cat is Dog's sibling
    assert maker.negative_label(["Piano"], lambda: 0.0) == "Cat"


def test_example_config_refuses_bad_settings():
    with pytest.raises(ExampleConfigError, match=r"query template 'the sound' has no '\{label\}'"):
        ExampleConfig("each", query_templates=["the sound"])
    with pytest.raises(ExampleConfigError, match="targets is 'some'"):
        ExampleConfig("some")
    with pytest.raises(ExampleConfigError, match="negative_rate is 1.5"):
        ExampleConfig("each", negative_rate=1.5)
    with pytest.raises(ExampleConfigError, match="negative_rate needs query examples"):
        ExampleConfig("all", negative_rate=0.1)
    with pytest.raises(ExampleConfigError, match="expected 'all', 'each', 'one' or an ExampleConfig"):
        ExampleConfig.coerce(3)
    with pytest.raises(ExampleConfigError, match="has no '{label}'"):
        hive.stream_mixtures("unused", None, store="unused", targets=ExampleConfig("one", query_templates="x"))


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("workers", [0, 2])
def test_collate_every_form(toy_corpus, store, workers):
    torch = pytest.importorskip("torch")
    for targets in ("all", "each", ExampleConfig("one", negative_rate=0.3)):
        ds = hive.stream_mixtures(toy_corpus.parquet_dir, None, store=store, split="validation", targets=targets)
        loader = torch.utils.data.DataLoader(ds, batch_size=5, collate_fn=collate_mixtures, num_workers=workers)
        batches = list(loader)
        b = batches[0]
        if targets == "all":
            assert b["sources"].ndim == 3 and b["source_mask"].dtype == torch.bool
            assert len(b["label_ids"]) == 5 and all(m.startswith("/m/") for ids in b["label_ids"] for m in ids)
            continue
        assert set(b) >= {"mix", "target", "query", "label", "label_id", "source_index", "negative", "mix_id"}
        assert b["mix"].shape == b["target"].shape == (5, 176400) and b["target"].dtype == torch.float32
        assert b["source_index"].dtype == torch.int64 and b["negative"].dtype == torch.bool
        assert isinstance(b["query"], list) and len(b["query"]) == 5
        if workers:
            assert b["target"].is_shared()
        for batch in batches:  # a negative's target is silent, a positive's is not
            for k in range(len(batch["query"])):
                assert bool(batch["negative"][k]) == (not bool(batch["target"][k].abs().sum()))
    with pytest.raises(ValueError, match="mixes query examples"):
        ex_all = next(hive.iter_mixtures(toy_corpus.parquet_dir, None, store=store, split="validation"))
        ex_q = next(hive.iter_mixtures(toy_corpus.parquet_dir, None, store=store, split="validation", targets="one"))
        stack_examples([ex_all, ex_q])


def test_builder_query_rows_and_in_memory_metadata(toy_corpus, store, whole, tmp_path):
    """``Hive(targets="each")`` writes query rows; metadata may be a filtered datasets.Dataset, a
    pyarrow.Table or a DataFrame, for the builder and the stream alike."""
    meta = datasets.load_dataset(str(toy_corpus.parquet_dir), split="validation", cache_dir=str(tmp_path / "c0"))
    three = meta.filter(lambda r: r["num_sources"] == 3)
    ids = sorted(three["mix_id"])
    assert 0 < len(ids) < len(meta)
    builder = hive.Hive(metadata=three, store=store, targets="each", decode=False, audio_feature=False,
                        cache_dir=str(tmp_path / "c1"))
    builder.download_and_prepare()
    rows = builder.as_dataset(split="validation")
    assert len(rows) == 3 * len(ids) and sorted(set(rows["mix_id"])) == ids
    for row in rows:
        target, sr = sf.read(io.BytesIO(row["target"]["bytes"]), dtype="float32")
        np.testing.assert_array_equal(target, whole[row["mix_id"]]["sources"][row["source_index"]])
        assert row["label_id"] == whole[row["mix_id"]]["label_ids"][row["source_index"]]
    table = meta.data.table
    for form in (three, pa.Table.from_batches(table.to_batches()).filter(pa.compute.equal(table["num_sources"], 3)),
                 meta.to_pandas().query("num_sources == 3")):
        got = [ex["mix_id"] for ex in hive.iter_mixtures(form, None, store=store, split="validation")]
        assert sorted(got) == ids, type(form)
    # another builder config (the filter) is another cache entry, never the first one's rows
    other = hive.Hive(metadata=meta.filter(lambda r: r["num_sources"] == 2), store=store, decode=False,
                      audio_feature=False, cache_dir=str(tmp_path / "c1"))
    other.download_and_prepare()
    assert set(other.as_dataset(split="validation")["num_sources"]) == {2}
    with pytest.raises(HiveError, match="DatasetDict with splits"):
        list(hive.iter_mixtures(datasets.DatasetDict({"validation": meta}), None, store=store, split="validation"))
    records = {r.mix_id for r in iter_records(toy_corpus.parquet_dir, split="validation") if r.num_sources == 3}
    assert records == set(ids)
