"""The single-event pool: format, validation, readers/writers, split assignment, building a pool
from a labelled list."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import numpy as np
import pytest
import soundfile as sf

from mixing.corpora import DatasetPaths
from mixing.ontology import Ontology
from mixing.pool import (
    InvalidPoolEntryError, PoolReport, read_pool, validate_pool_entry, write_pool,
)
from mixing.synthesis.labelled import LabelledListConfig, LabelledListError, build_pool_from_labels, cut_chunks
from mixing.synthesis.splits import assign_split, check_pool_splits


def _entry(**kw) -> dict:
    base = {"clip_id": "c1", "path": "ESC50/audio/1-100-A-0.wav", "chunk_start_second": 0.0,
            "chunk_end_second": 5.0, "label": "Dog", "label_id": "/m/0bt9lr", "native_sample_rate": 44100,
            "num_channels": 1, "split": "train"}
    base.update(kw)
    return base


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_pool_round_trip(tmp_path, suffix):
    entries = [
        validate_pool_entry(_entry()),
        validate_pool_entry(_entry(clip_id="c2", chunk_start_second=5, chunk_end_second=10.5, split="val",
                                   provenance={"tagger_topk": [["Dog", 0.9]], "judge": "yes",
                                               "original_path": "ESC50/audio/orig.wav"})),
    ]
    path = tmp_path / f"pool{suffix}"
    assert write_pool(entries, path) == 2
    back = read_pool(path)
    assert back == entries
    assert back[1].split == "validation"  # legacy split name normalised
    assert back[1].provenance["tagger_topk"] == [["Dog", 0.9]]
    assert back[1].original_file == "ESC50/audio/orig.wav" and back[0].original_file == back[0].path
    assert back[1].duration == 5.5 and back[0].prefix == "ESC50"


@pytest.mark.parametrize("change,field", [
    ({"clip_id": "a.b"}, "clip_id"),
    ({"path": "/abs/file.wav"}, "path"),
    ({"path": "ESC50/../x.wav"}, "path"),
    ({"path": "nofolder"}, "path"),
    ({"chunk_end_second": 0.0}, "chunk"),
    ({"chunk_start_second": -1.0}, "chunk"),
    ({"chunk_start_second": float("nan")}, "chunk_start_second"),
    ({"chunk_end_second": "5"}, "chunk_end_second"),
    ({"label": ""}, "label"),
    ({"native_sample_rate": 0}, "native_sample_rate"),
    ({"num_channels": True}, "num_channels"),
    ({"split": "a b"}, "split"),
    ({"provenance": [1]}, "provenance"),
])
def test_pool_entry_validation(change, field):
    with pytest.raises(InvalidPoolEntryError) as exc:
        validate_pool_entry(_entry(**change), "line 3")
    assert exc.value.field == field
    assert "line 3" in str(exc.value) and "expected" in str(exc.value)


def test_pool_entry_missing_field_and_not_a_dict():
    raw = _entry()
    del raw["native_sample_rate"]
    with pytest.raises(InvalidPoolEntryError, match="required field"):
        validate_pool_entry(raw)
    with pytest.raises(InvalidPoolEntryError):
        validate_pool_entry(["not", "a", "dict"])


def test_read_pool_skip_and_report(tmp_path):
    path = tmp_path / "pool.jsonl"
    lines = [json.dumps(_entry()), "{not json", json.dumps(_entry(clip_id="c2", path="../x.wav")), "",
             json.dumps(_entry(clip_id="c3"))]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidPoolEntryError):
        read_pool(path)
    report = PoolReport()
    got = read_pool(path, on_error="skip", report=report)
    assert [e.clip_id for e in got] == ["c1", "c3"]
    assert report.valid == 2 and report.invalid == 2 and report.by_field == {"<line>": 1, "path": 1}


def test_duplicate_clip_ids_refused(tmp_path):
    with pytest.raises(InvalidPoolEntryError, match="one entry only"):
        write_pool([_entry(), _entry()], tmp_path / "p.jsonl")


def test_read_pool_folder_sorted(tmp_path):
    write_pool([_entry(clip_id="b")], tmp_path / "p" / "00001.jsonl")
    write_pool([_entry(clip_id="a")], tmp_path / "p" / "00000.parquet")
    assert [e.clip_id for e in read_pool(tmp_path / "p")] == ["a", "b"]


@pytest.mark.parametrize("dur,kw,expected", [
    (3.0, {}, [(0.0, 3.0)]),
    (5.0, {}, [(0.0, 5.0)]),
    (10.0, {}, [(0.0, 10.0)]),
    (12.0, {}, [(0.0, 10.0), (5.0, 12.0)]),
    (20.0, {}, [(0.0, 10.0), (5.0, 15.0), (10.0, 20.0)]),
    (0.5, {}, []),
    (0.5, {"min_file_seconds": 0.25}, [(0.0, 0.5)]),
    (23.0, {"hop_seconds": 10.0}, [(0.0, 10.0), (10.0, 20.0)]),  # last piece 3 s < 5 s: dropped
    (26.0, {"hop_seconds": 10.0}, [(0.0, 10.0), (10.0, 20.0), (20.0, 26.0)]),  # 6 s >= 5 s: kept
    (7.12345, {}, [(0.0, 7.123)]),  # floored to the millisecond, never past the end
])
def test_cut_chunks(dur, kw, expected):
    assert cut_chunks(dur, **kw) == expected


def test_cut_chunks_long_file_matches_toy_rule():
    chunks = cut_chunks(64.0)
    assert len(chunks) == 12 and chunks[-1] == (55.0, 64.0)
    assert all(b - a == 10.0 for a, b in chunks[:-1])


def test_assign_split_deterministic_and_proportional():
    keys = [f"corpus/file_{i}.wav" for i in range(20000)]
    splits = [assign_split(k, seed=3) for k in keys]
    assert splits == [assign_split(k, seed=3) for k in reversed(keys)][::-1]
    frac = Counter(splits)
    assert abs(frac["train"] / 20000 - 0.8) < 0.015 and abs(frac["test"] / 20000 - 0.1) < 0.01
    other = [assign_split(k, seed=4) for k in keys]
    assert sum(a != b for a, b in zip(splits, other)) > 3000  # the seed matters
    custom = Counter(assign_split(k, 0, {"a": 1, "b": 0, "c": 1}) for k in keys[:2000])
    assert set(custom) == {"a", "c"} and abs(custom["a"] - 1000) < 120


@pytest.fixture(scope="module")
def toy(toy_corpus):
    return toy_corpus  # the session's toy corpus (read-only)


def test_pool_from_labelled_csv_matches_toy_pool(toy):
    built = build_pool_from_labels(toy.labels_csv, toy.dataset_paths)
    paths = DatasetPaths.from_json(toy.dataset_paths)
    assert not built.dropped and built.num_files == toy.num_files
    ref = read_pool(toy.pool)
    assert len(built.entries) == len(ref)
    by_key = {(e.path, e.chunk_start_second): e for e in ref}
    for e in built.entries:
        r = by_key[(e.path, e.chunk_start_second)]
        assert e.label == r.label and e.split == r.split
        assert e.chunk_end_second == pytest.approx(r.chunk_end_second, abs=1e-3)
        assert e.chunk_end_second <= sf.info(str(paths.resolve(e.path))).duration
        assert e.native_sample_rate == r.native_sample_rate and e.num_channels == r.num_channels
    assert len({e.clip_id for e in built.entries}) == len(built.entries)
    assert check_pool_splits(built.entries).ok


def test_pool_from_labelled_csv_assigns_splits_per_file(toy, tmp_path):
    rows = list(csv.DictReader(open(toy.labels_csv)))
    listing = tmp_path / "labels.csv"
    with open(listing, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "category"])
        for r in rows:
            w.writerow([r["audio_path"], r["text_label"].lower()])
        w.writerow(["AudioSet/clips/absent.wav", "dog"])
        w.writerow(["AudioSet/clips/absent2.wav", ""])
    onto_nodes = [{"id": "/m/0bt9lr", "name": "Dog"}, {"id": "/m/06mb1", "name": "Rain"}]
    onto = Ontology.from_records(onto_nodes)
    config = LabelledListConfig(seed=1, split_ratios={"train": 0.5, "validation": 0.25, "test": 0.25})
    built = build_pool_from_labels(listing, toy.dataset_paths, config, ontology=onto)
    assert built.dropped == Counter({"missing_file": 1, "missing_path_or_label": 1})
    assert built.warnings["label_not_in_ontology"] > 0
    dogs = [e for e in built.entries if e.label_id == "/m/0bt9lr"]
    assert dogs and all(e.label == "Dog" for e in dogs)
    splits_of = defaultdict(set)
    for e in built.entries:
        splits_of[e.path].add(e.split)
    assert all(len(s) == 1 for s in splits_of.values())
    long_file = [e for e in built.entries if "recording" in e.path]
    assert len(long_file) > 10 and len({e.split for e in long_file}) == 1
    assert len({e.split for e in built.entries}) == 3
    again = build_pool_from_labels(listing, toy.dataset_paths, config, ontology=onto)
    assert again.entries == built.entries


def test_pool_from_labelled_csv_prefix_and_group_column(tmp_path):
    root = tmp_path / "ESC-50-master" / "audio"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    listing = tmp_path / "esc50.csv"
    with open(listing, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for i in range(12):
            name = f"1-{100 + i // 3}-{'ABC'[i % 3]}-0.wav"
            sf.write(str(root / name), rng.normal(0, 0.1, 44100 * 5), 44100)
            w.writerow([name, 1, 0, "dog", "True", str(100 + i // 3), "ABC"[i % 3]])
    built = build_pool_from_labels(listing, {"ESC50": str(tmp_path / "ESC-50-master")},
                                   LabelledListConfig(prefix="ESC50/audio", group_column="src_file", seed=0))
    assert len(built.entries) == 12 and all(e.path.startswith("ESC50/audio/1-") for e in built.entries)
    assert all(e.chunk_end_second == 5.0 for e in built.entries)
    by_group = defaultdict(set)
    for e in built.entries:
        by_group[e.path.split("-")[1]].add(e.split)
    assert all(len(s) == 1 for s in by_group.values())
    with pytest.raises(LabelledListError, match="no column 'nope'"):
        build_pool_from_labels(listing, {"ESC50": str(tmp_path)}, LabelledListConfig(path_column="nope"))
    for bad, message in [({"chunk_seconds": 0}, "chunk_seconds is 0; expected a number of seconds"),
                         ({"seed": -1}, "seed is -1; expected a seed"),
                         ({"split_ratios": {"train": -1}}, "split_ratios is {'train': -1}")]:
        with pytest.raises(LabelledListError, match=message):
            LabelledListConfig(**bad)
