"""The data model and its readers/writers: records <-> Hub rows / flat / legacy dicts, the Arrow
schema, ``datasets.load_dataset`` on what we write, and three readers agreeing record for record.

Everything runs offline: a fixture makes any socket connection fail.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixing.errors import InvalidRecordError, MetadataSourceError
from mixing.metadata import (
    HUB_ARROW_SCHEMA, SOURCE_FIELDS, SOURCE_FLOAT_FIELDS, SOURCE_STRING_FIELDS, SOURCES_ARROW_TYPE,
    MixtureRecord, SourceRecord, hub_features, records_to_arrow,
)
from mixing.metadata_io import (
    MetadataFile, iter_records, open_metadata, read_metadata_file, write_hub_folder, write_jsonl,
    write_legacy_json, write_parquet,
)
from mixing.validation import parse_mixture

PREFIXES = ("AudioSet", "BBC_Sound_Effects", "VGGSound", "FSD50K", "DCASE_real", "Clotho")
LABELS = ("Dog", "Speech", "Church bell", "Rain on surface", "Cañón, eco", "Violin, fiddle")


# ---- fixtures / helpers -----------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def make_records(n: int = 50, seed: int = 0) -> list[MixtureRecord]:
    """``n`` valid records, splits interleaved, 2-5 sources, consistent weights."""
    rng = np.random.default_rng(seed)
    splits = ("train", "validation", "test")
    out = []
    for i in range(n):
        split = splits[int(rng.integers(0, 3))] if i >= 3 else splits[i]
        dur = 10.0 if split == "test" else 4.0
        k = int(rng.integers(2, 6))
        sources = []
        for j in range(k):
            chunk_start = float(rng.uniform(0.0, 60.0))
            length = float(rng.uniform(0.5, dur))
            crop_start = float(rng.uniform(0.0, dur - length)) if dur > length else 0.0
            rms_gain = float(rng.uniform(0.05, 3.0))
            snr_db = float(rng.uniform(-15.0, 15.0))
            prefix = PREFIXES[int(rng.integers(0, len(PREFIXES)))]
            sources.append(SourceRecord(
                source_id=f"s{j + 1}",
                path=f"{prefix}/dir{int(rng.integers(0, 4))}/clip_{i:03d}_{j}.wav",
                label=LABELS[int(rng.integers(0, len(LABELS)))],
                crop_start_second=crop_start,
                crop_end_second=crop_start + length,
                chunk_start_second=chunk_start,
                chunk_end_second=chunk_start + length,
                rms_gain=rms_gain,
                snr_db=snr_db,
                applied_weight=rms_gain * 10.0 ** (snr_db / 20.0),
            ))
        out.append(MixtureRecord(
            mix_id=f"hive_{split}_{i:05d}", split=split, sample_rate=44100, target_duration=dur,
            num_sources=k, sources=tuple(sources),
            global_normalization_factor=float(rng.uniform(0.2, 1.0)),
            final_max_amplitude=float(rng.uniform(0.1, 0.99)),
        ))
    return out


def by_id(records) -> list[MixtureRecord]:
    return sorted(records, key=lambda r: r.mix_id)


@pytest.fixture(scope="module")
def records() -> list[MixtureRecord]:
    recs = make_records()
    # the helper itself must give what the tests claim: all splits, 2..5 sources
    assert {r.split for r in recs} == {"train", "validation", "test"}
    assert {r.num_sources for r in recs} == {2, 3, 4, 5}
    return recs


# ---- record <-> dict round trips ----------------------------------------------------------------
def test_hub_row_is_struct_of_lists_and_round_trips(records):
    for rec in records:
        row = rec.to_hub_row()
        assert set(row["sources"]) == set(SOURCE_FIELDS)
        assert all(len(col) == rec.num_sources for col in row["sources"].values())
        assert row["sources"]["path"] == [s.path for s in rec.sources]
        assert parse_mixture(row) == rec


def test_flat_dict_round_trip_keeps_extra_fields(records):
    rec = records[0].replace(extra={"curation_round": 2, "note": "ok"})
    flat = rec.to_flat_dict()
    assert isinstance(flat["sources"], list) and flat["sources"][0] == rec.sources[0].to_dict()
    assert flat["curation_round"] == 2
    back = parse_mixture(json.loads(json.dumps(flat)))
    assert back == rec
    assert dict(back.extra) == {"curation_round": 2, "note": "ok"}
    for rec in records:
        assert parse_mixture(rec.to_flat_dict()) == rec


def test_legacy_dict_round_trip_nests_and_renames_split(records):
    val = next(r for r in records if r.split == "validation")
    legacy = val.to_legacy_dict()
    assert legacy["dataset_info"] == {"split": "val", "sample_rate": 44100, "target_duration": 4.0}
    assert set(legacy["mixing_params"]) == {"global_normalization_factor", "final_max_amplitude"}
    assert "split" not in legacy and "global_normalization_factor" not in legacy
    for rec in records:
        back = parse_mixture(json.loads(json.dumps(rec.to_legacy_dict())))
        assert back == rec
        assert back.split in ("train", "validation", "test")


def test_record_properties(records):
    rec = records[0]
    assert rec.num_frames == int(rec.target_duration * rec.sample_rate)
    assert rec.config_name == f"{rec.num_sources}mix"
    assert rec.labels == [s.label for s in rec.sources]
    assert rec.sources[0].prefix == rec.sources[0].path.split("/")[0]
    assert rec.replace(mix_id="other") != rec


# ---- Arrow schema -------------------------------------------------------------------------------
def test_records_to_arrow_has_exactly_the_hub_schema(records):
    table = records_to_arrow(records)
    assert table.schema.equals(HUB_ARROW_SCHEMA, check_metadata=True)
    assert table.num_rows == len(records)
    src_type = table.schema.field("sources").type
    assert pa.types.is_struct(src_type)
    for name in SOURCE_STRING_FIELDS:
        assert src_type.field(name).type == pa.list_(pa.string())
    for name in SOURCE_FLOAT_FIELDS:
        assert src_type.field(name).type == pa.list_(pa.float64())
    assert table.schema.field("sample_rate").type == pa.int32()
    assert table.schema.field("num_sources").type == pa.int32()
    assert table.to_pylist() == [r.to_hub_row() for r in records]


def test_records_to_arrow_empty_keeps_schema():
    table = records_to_arrow([])
    assert table.num_rows == 0
    assert table.schema.equals(HUB_ARROW_SCHEMA)


def test_write_parquet_file_schema_and_empty_file(tmp_path, records):
    path = tmp_path / "m.parquet"
    assert write_parquet(records, path) == len(records)
    assert pq.read_schema(path).equals(HUB_ARROW_SCHEMA)
    assert list(iter_records(path)) == records
    empty = tmp_path / "empty.parquet"
    assert write_parquet([], empty) == 0
    assert pq.read_schema(empty).equals(HUB_ARROW_SCHEMA)
    assert list(iter_records(empty)) == []
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


# ---- datasets.load_dataset on the Hub folder we write --------------------------------------------
def test_write_hub_folder_loads_with_datasets(tmp_path, records):
    folder = tmp_path / "hub"
    counts = write_hub_folder(records, folder, rows_per_file=7)
    expected_counts = Counter(r.split for r in records)
    assert counts == dict(expected_counts)
    files = sorted(p.name for p in (folder / "data").iterdir())
    assert all(not f.startswith(".") for f in files), files
    n_train_files = -(-expected_counts["train"] // 7)
    assert f"train-{n_train_files - 1:05d}-of-{n_train_files:05d}.parquet" in files

    ds = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "validation", "test"}
    for split, n in expected_counts.items():
        assert ds[split].num_rows == n
        assert ds[split].features == hub_features()
        assert ds[split].data.schema.field("sources").type == SOURCES_ARROW_TYPE
    src_feature = ds["train"].features["sources"]
    assert isinstance(src_feature, dict) and set(src_feature) == set(SOURCE_FIELDS)
    row = ds["train"][0]
    assert isinstance(row["sources"], dict) and isinstance(row["sources"]["path"], list)

    expected = {r.mix_id: r for r in records}
    seen = []
    for split in ds:
        for row in ds[split]:
            rec = parse_mixture(row)
            assert rec.split == split
            assert rec == expected[rec.mix_id]
            seen.append(rec.mix_id)
    assert sorted(seen) == sorted(expected)


def test_write_hub_folder_rewrite_replaces_old_files(tmp_path, records):
    folder = tmp_path / "hub"
    write_hub_folder(records, folder, rows_per_file=5)
    train = [r for r in records if r.split == "train"]
    write_hub_folder(train[:3], folder)
    names = sorted(p.name for p in (folder / "data").glob("train-*.parquet"))
    assert names == ["train-00000-of-00001.parquet"]
    assert by_id(iter_records(folder, split="train")) == by_id(train[:3])


def test_list_of_structs_parquet_is_read(tmp_path, records):
    """A Parquet file whose ``sources`` is list<struct> (what pandas/pyarrow write naively)."""
    struct = pa.struct([pa.field(n, pa.string()) for n in SOURCE_STRING_FIELDS]
                       + [pa.field(n, pa.float64()) for n in SOURCE_FLOAT_FIELDS])
    schema = pa.schema([
        ("mix_id", pa.string()), ("split", pa.string()), ("sample_rate", pa.int64()),
        ("target_duration", pa.float64()), ("num_sources", pa.int64()),
        ("sources", pa.list_(struct)),
        ("global_normalization_factor", pa.float64()), ("final_max_amplitude", pa.float64()),
    ])
    table = pa.Table.from_pylist([r.to_flat_dict() for r in records], schema=schema)
    assert pa.types.is_list(table.schema.field("sources").type)
    path = tmp_path / "list_of_structs.parquet"
    pq.write_table(table, path)

    assert list(iter_records(path)) == records
    val = list(iter_records(path, split="val"))
    assert val == [r for r in records if r.split == "validation"] and val
    three = list(iter_records(path, num_sources=3))
    assert three == [r for r in records if r.num_sources == 3] and three


# ---- three readers, identical records ----------------------------------------------------------
def test_three_readers_yield_identical_records(tmp_path, records):
    hub = tmp_path / "hub"
    legacy = tmp_path / "legacy"
    write_hub_folder(records, hub, rows_per_file=11)
    files = write_legacy_json(records, legacy, records_per_file=4)
    assert (legacy / "val").is_dir() and not (legacy / "validation").exists()
    assert {k.split("/")[0] for k in files} == {"train", "validation", "test"}
    assert sum(files.values()) == len(list(legacy.rglob("*.json")))
    assert sorted(p.name for p in legacy.iterdir()) == ["test", "train", "val"]

    from_parquet = list(iter_records(hub))
    from_legacy = list(iter_records(legacy))
    # the code path of a Hub id: datasets.load_dataset(<id>, streaming=True), here a local folder
    from_hub = list(read_metadata_file(MetadataFile("hub", str(hub))))

    expected = by_id(records)
    assert len(from_parquet) == len(from_legacy) == len(from_hub) == len(records)
    assert by_id(from_parquet) == expected
    assert by_id(from_legacy) == expected
    assert by_id(from_hub) == expected
    # full field equality, not just the dataclass __eq__
    for a, b, c in zip(by_id(from_parquet), by_id(from_legacy), by_id(from_hub)):
        assert a.to_flat_dict() == b.to_flat_dict() == c.to_flat_dict()


def test_hub_reader_with_missing_splits(tmp_path, records):
    hub = tmp_path / "hub"
    train = [r for r in records if r.split == "train"]
    write_hub_folder(train, hub)
    assert by_id(read_metadata_file(MetadataFile("hub", str(hub)))) == by_id(train)
    with pytest.raises(MetadataSourceError, match="test"):
        list(read_metadata_file(MetadataFile("hub", str(hub)), split="test"))


@pytest.mark.parametrize("layout", ["parquet", "legacy", "jsonl", "hub"])
def test_split_and_num_sources_filtering(tmp_path, records, layout):
    if layout == "parquet":
        write_hub_folder(records, tmp_path / "m")
    elif layout == "legacy":
        write_legacy_json(records, tmp_path / "m")
    elif layout == "jsonl":
        (tmp_path / "m").mkdir()
        write_jsonl(records, tmp_path / "m" / "all.jsonl")

    def read(**kw):
        if layout == "hub":
            if not any((tmp_path / "m").glob("data/*.parquet")):
                write_hub_folder(records, tmp_path / "m")
            return list(read_metadata_file(MetadataFile("hub", str(tmp_path / "m")), **kw))
        return list(iter_records(tmp_path / "m", **kw))

    for split in ("train", "validation", "test"):
        got = read(split=split)
        assert by_id(got) == by_id(r for r in records if r.split == split) and got
    assert by_id(read(split="val")) == by_id(r for r in records if r.split == "validation")
    for n in (2, 3, 4, 5):
        got = read(num_sources=n)
        assert by_id(got) == by_id(r for r in records if r.num_sources == n) and got
    got = read(split="test", num_sources=4)
    assert by_id(got) == by_id(r for r in records if r.split == "test" and r.num_sources == 4)
    assert read(num_sources=1) == []


def test_legacy_source_splits_and_shards(tmp_path, records):
    write_legacy_json(records, tmp_path / "legacy", records_per_file=1000)
    src = open_metadata(tmp_path / "legacy")
    assert src.kind == "json"
    assert src.splits() == ["train", "validation", "test"]
    val_shards = src.files("val")
    assert val_shards and all(s.split == "validation" for s in val_shards)
    assert all("/val/" in s.location for s in val_shards)
    # legacy order: splits train, validation, test; then by number of sources
    order = [(s.split, Path(s.location).parent.name) for s in src.files()]
    assert order == sorted(order, key=lambda t: (["train", "validation", "test"].index(t[0]), t[1]))


# ---- open_metadata: recognition and errors -----------------------------------------------------
def test_open_metadata_nonexistent_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in (str(tmp_path / "no" / "such.parquet"), "no_such_file.parquet", "./x/y"):
        with pytest.raises(MetadataSourceError) as info:
            open_metadata(bad)
        msg = str(info.value)
        assert repr(bad) in msg
        assert "neither an existing file or folder nor a Hub dataset id" in msg
        assert "ORG/NAME" in msg


def test_open_metadata_unknown_suffix(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("mix_id\n")
    with pytest.raises(MetadataSourceError) as info:
        open_metadata(path)
    msg = str(info.value)
    assert "'.csv'" in msg and ".parquet" in msg and ".jsonl" in msg and str(path) in msg


def test_open_metadata_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_paths").mkdir()
    (tmp_path / "only_paths" / "dataset_paths.json").write_text("{}")
    for folder in (tmp_path / "empty", tmp_path / "only_paths"):
        with pytest.raises(MetadataSourceError) as info:
            open_metadata(folder)
        msg = str(info.value)
        assert str(folder) in msg and "holds no .parquet, .json or .jsonl" in msg


def test_open_metadata_recognises_hub_id_without_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no local folder named ShandaAI/Hive here

    def no_load(*a, **k):
        raise AssertionError("open_metadata must not load anything")

    monkeypatch.setattr(datasets, "load_dataset", no_load)
    src = open_metadata("ShandaAI/Hive", revision="v1.0", config="2mix")
    assert src.kind == "hub" and src.location == "ShandaAI/Hive"
    (shard,) = src.files()
    assert shard == MetadataFile("hub", "ShandaAI/Hive", None, "v1.0", "2mix")
    (val,) = src.files("val")
    assert val.split == "validation" and val.revision == "v1.0" and val.config == "2mix"
    # a local folder of the same name wins over the Hub id
    (tmp_path / "ShandaAI" / "Hive").mkdir(parents=True)
    write_jsonl(make_records(3), tmp_path / "ShandaAI" / "Hive" / "m.jsonl")
    assert open_metadata("ShandaAI/Hive").kind == "json"


def test_open_metadata_single_files(tmp_path, records):
    write_jsonl(records, tmp_path / "all.jsonl")
    src = open_metadata(tmp_path / "all.jsonl")
    assert src.kind == "jsonl"
    assert list(src.records()) == records
    (tmp_path / "one.json").write_text(json.dumps(records[0].to_legacy_dict()))
    assert list(iter_records(tmp_path / "one.json")) == [records[0]]
    (tmp_path / "bad.json").write_text('"just a string"')
    with pytest.raises(MetadataSourceError, match="top-level JSON is str"):
        list(iter_records(tmp_path / "bad.json"))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(MetadataSourceError, match="not a readable Parquet file"):
        list(iter_records(tmp_path / "broken.parquet"))


def _write_configs_folder(folder: Path, records) -> dict[str, list[MixtureRecord]]:
    groups: dict[str, list[MixtureRecord]] = {}
    for n in (2, 3):
        for split in ("train", "test"):
            sel = [r for r in records if r.num_sources == n and r.split == split]
            assert sel
            write_parquet(sel, folder / "data" / f"{n}mix" / f"{split}-00000-of-00001.parquet")
            groups.setdefault(f"{n}mix", []).extend(sel)
    # a file no config lists must not be read
    write_parquet([r for r in records if r.num_sources == 5], folder / "data" / "stray.parquet")
    (folder / "README.md").write_text(
        "---\n"
        "license: cc-by-4.0\n"
        "configs:\n"
        "- config_name: 2mix\n"
        "  data_files:\n"
        "  - split: train\n"
        "    path: data/2mix/train-*.parquet\n"
        "  - split: test\n"
        "    path: data/2mix/test-*.parquet\n"
        "- config_name: 3mix\n"
        "  default: true\n"
        "  data_files:\n"
        "  - split: train\n"
        "    path: data/3mix/train-*.parquet\n"
        "  - split: test\n"
        "    path: data/3mix/test-*.parquet\n"
        "---\n"
        "# Hive\n")
    return groups


def test_readme_configs_choose_files(tmp_path, records):
    folder = tmp_path / "cfg"
    groups = _write_configs_folder(folder, records)

    two = open_metadata(folder, config="2mix")
    assert two.kind == "parquet"
    assert {Path(s.location).parent.name for s in two.files()} == {"2mix"}
    assert {s.config for s in two.files()} == {"2mix"}
    assert two.splits() == ["train", "test"]
    assert by_id(two.records()) == by_id(groups["2mix"])
    assert by_id(two.records("test")) == by_id(r for r in groups["2mix"] if r.split == "test")

    default = open_metadata(folder)  # `default: true` picks 3mix
    assert by_id(default.records()) == by_id(groups["3mix"])

    with pytest.raises(MetadataSourceError) as info:
        open_metadata(folder, config="7mix")
    assert "'7mix'" in str(info.value) and "2mix" in str(info.value) and "3mix" in str(info.value)

    # datasets reads the same README the same way
    ds = datasets.load_dataset(str(folder), "2mix", cache_dir=str(tmp_path / "cache"))
    assert ds["train"].num_rows + ds["test"].num_rows == len(groups["2mix"])


def test_readme_bad_yaml_is_a_clear_error(tmp_path, records):
    folder = tmp_path / "cfg"
    write_parquet(records[:2], folder / "data" / "train-00000-of-00001.parquet")
    (folder / "README.md").write_text("---\nconfigs: [unclosed\n---\n")
    with pytest.raises(MetadataSourceError, match="YAML header does not parse"):
        open_metadata(folder)


def test_invalid_row_in_parquet_raises_by_default(tmp_path, records):
    bad = records[0].replace(sources=tuple(s.replace(path="/etc/passwd") for s in records[0].sources))
    path = tmp_path / "m.parquet"
    write_parquet([records[1], bad], path)
    with pytest.raises(InvalidRecordError) as info:
        list(iter_records(path))
    assert info.value.field == "sources[0].path"
    assert list(iter_records(path, on_error="skip")) == [records[1]]


def test_unreachable_hub_dataset_is_one_clear_error(monkeypatch):
    import datasets

    from mixing.metadata_io import MetadataFile, read_metadata_file

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'ORG/NAME' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    for split in ("validation", None):
        with pytest.raises(MetadataSourceError) as info:
            list(read_metadata_file(MetadataFile("hub", "ORG/NAME", revision="v1"), split=split))
        msg = str(info.value)
        assert "ORG/NAME (revision v1)" in msg and "OfflineModeIsEnabled" in msg and "local folder" in msg
