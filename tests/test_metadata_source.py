"""The one metadata resolver (:mod:`mixing.metadata_source`): every kind of location, README YAML
configs (with and without), the config choice, clear errors, and agreement with ``datasets``'
own resolution of the same README. Offline: a fixture makes any socket connection fail."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mixing.errors import HiveError, MetadataSourceError
from mixing.metadata_io import open_metadata, write_jsonl, write_legacy_json, write_parquet
from mixing.metadata_source import (
    ConfigSpec, MetadataFile, choose_config, classify_location, config_names, hub_split_files, local_files,
    location_files, readme_configs,
)
from mixing.streaming import resolve_metadata
from tests.test_metadata import by_id, make_records


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def records():
    return make_records(60, seed=3)


def _readme(folder: Path, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(body, encoding="utf-8")


def _configs_folder(folder: Path, records, *, default: str | None = None, with_all: bool = True) -> None:
    """data/{n}mix/{split}-00000-of-00001.parquet for n = 2, 3 plus data/all/...; README configs."""
    lines = ["---", "license: apache-2.0", "configs:"]
    groups = ([("all", None)] if with_all else []) + [("2mix", 2), ("3mix", 3)]
    for name, n in groups:
        lines += [f"- config_name: {name}"] + (["  default: true"] if name == default else []) + ["  data_files:"]
        for split in ("train", "test"):
            sel = [r for r in records if r.split == split and (n is None or r.num_sources == n)]
            write_parquet(sel, folder / "data" / name / f"{split}-00000-of-00001.parquet")
            lines += [f"  - split: {split}", f"    path: data/{name}/{split}-*.parquet"]
    _readme(folder, "\n".join(lines + ["---", "", "# card", ""]))


# ---- each kind of location -------------------------------------------------------------------
def test_every_location_kind_is_recognised(tmp_path, records, monkeypatch):
    write_parquet(records, tmp_path / "one.parquet")
    write_jsonl(records, tmp_path / "one.jsonl")
    (tmp_path / "one.json").write_text(json.dumps([r.to_legacy_dict() for r in records[:3]]))
    write_parquet(records, tmp_path / "pq" / "data" / "train-00000-of-00001.parquet")
    write_legacy_json(records, tmp_path / "legacy", records_per_file=7)
    _configs_folder(tmp_path / "cfg", records)
    monkeypatch.chdir(tmp_path)
    kinds = {name: classify_location(tmp_path / name).kind
             for name in ("one.parquet", "one.jsonl", "one.json", "pq", "legacy", "cfg")}
    assert kinds == {"one.parquet": "parquet", "one.jsonl": "jsonl", "one.json": "json", "pq": "parquet",
                     "legacy": "json", "cfg": "configs"}
    hub = classify_location("ShandaAI/Hive")
    assert hub.kind == "hub" and hub.path is None and hub.location == "ShandaAI/Hive"
    # a local folder of the same name wins over the Hub id
    write_jsonl(records[:2], tmp_path / "ShandaAI" / "Hive" / "m.jsonl")
    assert classify_location("ShandaAI/Hive").kind == "json"
    # legacy folder: train, validation, test order, then number of sources
    shards = local_files(classify_location(tmp_path / "legacy"))
    order = {"train": 0, "validation": 1, "test": 2}
    keys = [(order[s.split], int(Path(s.location).parent.name[0])) for s in shards]
    assert keys == sorted(keys) and {s.kind for s in shards} == {"json"}
    # single files carry the split their name gives (or none)
    assert local_files(classify_location(tmp_path / "one.jsonl")) == [
        MetadataFile("jsonl", str(tmp_path / "one.jsonl"), None)]


@pytest.mark.parametrize("bad, expected", [
    ("notes.txt", "has suffix '.txt'; expected .parquet"),
    ("missing.parquet", "the file does not exist; check the path"),
    ("no hub id", "neither an existing file or folder nor a Hub dataset id"),
    ("emptydir", "holds no .parquet, .json or .jsonl file"),
])
def test_unrecognised_locations_are_clear_errors(tmp_path, monkeypatch, bad, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(MetadataSourceError, match=expected) as info:
        classify_location(bad)
    assert bad in str(info.value) and isinstance(info.value, HiveError) and isinstance(info.value, ValueError)


# ---- README YAML configs ---------------------------------------------------------------------
def test_readme_with_configs_lists_and_resolves_them(tmp_path, records):
    folder = tmp_path / "cfg"
    _configs_folder(folder, records, default="all")
    configs = readme_configs(folder)
    assert [c.name for c in configs] == ["all", "2mix", "3mix"]
    assert configs[0] == ConfigSpec("all", True, (("train", "data/all/train-*.parquet"),
                                                  ("test", "data/all/test-*.parquet")))
    loc = classify_location(folder)
    assert config_names(loc) == ["all", "2mix", "3mix"]
    shards = local_files(loc, config="3mix")
    assert [(Path(s.location).relative_to(folder).as_posix(), s.split, s.config) for s in shards] == [
        ("data/3mix/train-00000-of-00001.parquet", "train", "3mix"),
        ("data/3mix/test-00000-of-00001.parquet", "test", "3mix")]
    assert by_id(open_metadata(folder, config="3mix").records()) == by_id(r for r in records if r.num_sources == 3
                                                                         and r.split in ("train", "test"))
    # the default rule: {n}mix for num_sources, else the declared default
    assert {s.config for s in local_files(loc, num_sources=2)} == {"2mix"}
    assert {s.config for s in local_files(loc, num_sources=5)} == {"all"}  # no 5mix: the default
    assert {s.config for s in local_files(loc)} == {"all"}


def test_choose_config_rule():
    names = ["2mix", "3mix", "all"]
    assert choose_config("x", names, "3mix") == "3mix"
    assert choose_config("x", names, None, num_sources=2) == "2mix"
    assert choose_config("x", names, None, default="3mix") == "3mix"
    assert choose_config("x", names, None, default="3mix", num_sources=2) == "2mix"
    assert choose_config("x", names, None) == "all"
    assert choose_config("x", ["b", "a"], None) == "b"
    assert choose_config("x", [], None) is None


def test_unknown_config_lists_the_known_ones(tmp_path, records):
    folder = tmp_path / "cfg"
    _configs_folder(folder, records)
    for call in (lambda: local_files(classify_location(folder), config="7mix"),
                 lambda: open_metadata(folder, config="7mix"),
                 lambda: resolve_metadata(folder, config="7mix"),
                 lambda: hub_split_files(str(folder), config="7mix")):
        with pytest.raises(MetadataSourceError) as info:
            call()
        msg = str(info.value)
        assert "'7mix' not found" in msg and "['all', '2mix', '3mix']" in msg


def test_readme_without_configs_is_a_plain_parquet_folder(tmp_path, records):
    for name, readme in [("header", "---\nlicense: mit\n---\n# no configs\n"), ("plain", "# just a title\n"),
                         ("empty_list", "---\nconfigs: []\n---\n")]:
        folder = tmp_path / name
        write_parquet(records, folder / "data" / "train-00000-of-00001.parquet")
        _readme(folder, readme)
        assert readme_configs(folder) is None
        loc = classify_location(folder)
        assert loc.kind == "parquet" and config_names(loc) == []
        (shard,) = local_files(loc)
        assert shard.split == "train" and shard.config is None


@pytest.mark.parametrize("header, expected", [
    ("configs: [unclosed", "the YAML header does not parse"),
    ("configs:\n- just a string", r"configs\[0\] is 'just a string'; expected a mapping"),
    ("configs:\n- config_name: a\n  data_files: 3", "config 'a' has data_files 3; expected a glob pattern"),
])
def test_bad_readme_header_is_a_clear_error(tmp_path, records, header, expected):
    folder = tmp_path / "cfg"
    write_parquet(records[:2], folder / "data" / "train-00000-of-00001.parquet")
    _readme(folder, f"---\n{header}\n---\n")
    for call in (lambda: classify_location(folder), lambda: open_metadata(folder), lambda: resolve_metadata(folder)):
        with pytest.raises(MetadataSourceError, match=expected) as info:
            call()
        assert str(folder / "README.md") in str(info.value) and "\n" not in str(info.value)


def test_config_matching_no_file_and_json_data_files(tmp_path, records):
    folder = tmp_path / "cfg"
    write_jsonl([r for r in records if r.split == "train"], folder / "meta" / "train.jsonl")
    _readme(folder, "---\nconfigs:\n- config_name: j\n  data_files:\n  - split: train\n    path: meta/*.jsonl\n"
                    "- config_name: none\n  data_files: nothing/*.parquet\n---\n")
    (shard,) = local_files(classify_location(folder), config="j")
    assert shard.kind == "jsonl" and shard.split == "train"  # the suffix decides how it is read
    assert by_id(open_metadata(folder, config="j").records()) == by_id(r for r in records if r.split == "train")
    with pytest.raises(MetadataSourceError, match=r"config 'none' matches no data file .*nothing/\*\.parquet"):
        local_files(classify_location(folder), config="none")
    # patterns must stay inside the folder
    write_parquet(records[:2], tmp_path / "outside.parquet")
    for pattern in ("../*.parquet", str(tmp_path / "*.parquet")):
        _readme(folder, f"---\nconfigs:\n- config_name: x\n  data_files: '{pattern}'\n---\n")
        with pytest.raises(MetadataSourceError, match="is not a relative path inside"):
            open_metadata(folder)


def test_local_readme_and_datasets_resolution_agree(tmp_path, records):
    """The README reader gives the files ``datasets`` itself resolves for each config (the Hub path,
    :func:`hub_split_files`, run here on the local folder, which ``datasets`` accepts offline)."""
    folder = tmp_path / "cfg"
    _configs_folder(folder, records, default="3mix")
    loc = classify_location(folder)
    for config in (None, "all", "2mix", "3mix"):
        mine: dict[str, list[str]] = {}
        for s in local_files(loc, config=config):
            mine.setdefault(s.split, []).append(Path(s.location).resolve().as_posix())
        theirs = {split: [Path(s.location).resolve().as_posix() for s in shards]
                  for split, shards in hub_split_files(str(folder), config=config).items()}
        assert mine == theirs, config
        assert {s.config for fs in hub_split_files(str(folder), config=config).values() for s in fs} == {
            config or "3mix"}


def test_location_files_cover_what_a_location_reads(tmp_path, records):
    folder = tmp_path / "cfg"
    _configs_folder(folder, records, with_all=False)
    write_parquet(records[:2], folder / "data" / "stray.parquet")  # no config lists it
    got = [p.relative_to(folder).as_posix() for p in location_files(classify_location(folder))]
    assert got == ["README.md", "data/2mix/test-00000-of-00001.parquet", "data/2mix/train-00000-of-00001.parquet",
                   "data/3mix/test-00000-of-00001.parquet", "data/3mix/train-00000-of-00001.parquet"]
    write_legacy_json(records, tmp_path / "legacy", records_per_file=100)
    (tmp_path / "legacy" / "dataset_paths.json").write_text("{}")
    legacy = location_files(classify_location(tmp_path / "legacy"))
    assert legacy and all(p.suffix == ".json" and p.name != "dataset_paths.json" for p in legacy)
    assert location_files(classify_location("ShandaAI/Hive")) == []


def test_builder_cache_key_follows_the_files_the_metadata_reads(tmp_path, records):
    """``hive.Hive`` keys its cache on :func:`location_files`: rewriting a file a config lists
    changes the key; a stray file no config lists does not."""
    import os

    import hive

    folder = tmp_path / "cfg"
    _configs_folder(folder, records, with_all=False)
    stray = folder / "data" / "stray.parquet"
    write_parquet(records[:2], stray)

    def key() -> str:
        return hive.Hive(metadata=str(folder), dataset_paths={"X": str(tmp_path)}, cache_dir=str(tmp_path / "c")).hash

    first = key()
    assert key() == first
    os.utime(stray, ns=(1, 1))
    assert key() == first
    listed = folder / "data" / "2mix" / "train-00000-of-00001.parquet"
    os.utime(listed, ns=(1, 1))
    assert key() != first


def test_row_ranges_of_one_file_read_from_many_threads_at_once(tmp_path):
    """``datasets`` reads several work units at once from threads (a shuffled IterableDataset): the
    row-group cache of one process must not share a Parquet reader between threads."""
    import threading

    from mixing.metadata_source import MetadataFile
    from mixing.unit_rows import Piece, iter_piece_rows

    path = tmp_path / "train.parquet"
    write_parquet(make_records(600, seed=3), path, row_group_size=50)
    pieces = [Piece(MetadataFile("parquet", str(path)), start, start + 75) for start in range(0, 600, 75)]
    want = [[r["mix_id"] for r in iter_piece_rows(p, None, None)] for p in pieces]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def read(k: int) -> None:
        start.wait()
        try:
            for _ in range(6):
                for i in (k, *range(len(pieces))):
                    got = [r["mix_id"] for r in iter_piece_rows(pieces[i], None, None)]
                    assert got == want[i]
        except BaseException as exc:  # noqa: BLE001 - reported below with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{len(errors)} of 8 threads failed; first: {errors[0]!r}"
    assert sum(len(w) for w in want) == 600
