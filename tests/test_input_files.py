"""The one reader of untrusted input files (``mixing/input_files.py``) and of rendered folders
(``mixing/rendered_reader.py``): regular files only, size / depth / expansion caps, UTF-8 with
the byte position, types checked, CSV limits, Parquet and tar failures as one error each."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixing.errors import InputFileError
from mixing.input_files import (
    MAX_JSON_DEPTH, iter_csv, iter_jsonl, iter_tar_members, load_json_file, open_parquet, parse_json_bytes,
    parse_yaml, read_bytes, read_text,
)


def _returns_within(fn, seconds: float = 10.0):
    """``fn()``'s outcome, or a failure if it blocks (a FIFO opened for reading would)."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} blocked for {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_fifos_and_folders_are_refused_without_opening(tmp_path):
    fifo = tmp_path / "dataset_paths.json"
    os.mkfifo(fifo)
    for read in (lambda: read_bytes(fifo, "dataset paths file"), lambda: load_json_file(fifo, "x", "y"),
                 lambda: list(iter_jsonl(fifo, "pool file")), lambda: open_parquet(fifo, "shard"),
                 lambda: list(iter_tar_members(fifo, "shard"))):
        with pytest.raises(InputFileError, match="is a FIFO .*not a regular file"):
            _returns_within(read)
    with pytest.raises(InputFileError, match="is a folder; expected a file"):
        read_bytes(tmp_path, "x")
    with pytest.raises(InputFileError, match="does not exist"):
        read_bytes(tmp_path / "missing", "x")
    with pytest.raises(InputFileError, match="cannot be read"):
        read_bytes("a\x00b", "x")


def test_size_depth_utf8_and_types(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 101)
    with pytest.raises(InputFileError, match="larger than 100 bytes"):
        read_bytes(big, "x", max_bytes=100)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputFileError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        load_json_file(deep, "x", "an object")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b'{"a": "ok", "b": "\xff"}')
    with pytest.raises(InputFileError, match=r"invalid UTF-8 at byte offset 18 "):
        read_text(bad, "x")
    with pytest.raises(InputFileError, match="top-level JSON is a list; expected an object"):
        parse_json_bytes(b"[1, 2]", "reply", "an object", expect=dict)
    with pytest.raises(InputFileError, match="top-level JSON is a boolean"):
        parse_json_bytes(b"true", "reply", "an integer", expect=int)
    assert parse_json_bytes(b'{"a": 1}', "reply", "an object", expect=dict) == {"a": 1}


def test_jsonl_lines_over_the_cap_are_bad_lines_and_the_rest_is_read(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b'{"b": "' + b"y" * 200 + b'"}\n' + b'{"c": 3}\n')
    rows = list(iter_jsonl(path, "x", max_line_bytes=100))
    assert rows[0] == (1, {"a": 1}) and rows[2] == (3, {"c": 3})
    assert "line longer than 100 bytes (at byte offset 9)" in rows[1][1].message


def test_yaml_depth_and_alias_expansion_are_capped():
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "card", "a mapping") == {"a": [1, 2], "b": [1, 2]}
    bomb = "a: &a [" + ",".join("x" * 10) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8))
    with pytest.raises(InputFileError, match="expands to more than"):
        parse_yaml(bomb, "card", "a mapping")
    with pytest.raises(InputFileError, match="nested deeper than"):
        parse_yaml("a: " + "[" * 1000 + "]" * 1000, "card", "a mapping")
    with pytest.raises(InputFileError, match="card does not parse"):
        parse_yaml("a: [unclosed\n", "card", "a mapping")
    with pytest.raises(InputFileError, match="holds a list; expected a mapping"):
        parse_yaml("- 1\n", "card", "a mapping", expect=dict)


def test_csv_field_limit_nul_and_malformed_rows_name_the_line():
    rows = list(iter_csv("a,b\n1,2\n", "list.csv"))
    assert rows == [["a", "b"], ["1", "2"]]
    with pytest.raises(InputFileError, match=r"list.csv:2: a CSV field longer than"):
        list(iter_csv('a,b\n1,"' + "x" * 200_000 + '"\n', "list.csv"))
    with pytest.raises(InputFileError, match=r"list.csv:2: a CSV field of 20 characters"):
        list(iter_csv("a,b\n1," + "x" * 20 + "\n", "list.csv", max_field=10))
    with pytest.raises(InputFileError, match=r"list.csv:3: a NUL character"):
        list(iter_csv("a,b\n1,2\n3,\x00\n", "list.csv"))
    assert list(iter_csv("a,b\n1,2\n", "l", dict_rows=True)) == [{"a": "1", "b": "2"}]


def test_parquet_not_parquet_and_missing_columns(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        open_parquet(bad, "shard")
    pq.write_table(pa.table({"a": [1]}), bad)
    with pytest.raises(InputFileError, match=r"lack \['mix_id'\]"):
        open_parquet(bad, "shard", columns=("a", "mix_id"))
    assert open_parquet(bad, "shard", columns=("a",)).metadata.num_rows == 1


def _tar(path, members):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tar_members_non_utf8_names_and_truncation(tmp_path):
    ok = _tar(tmp_path / "ok.tar", [("k.json", b"{}"), ("k.mix.wav", b"RIFF")])
    assert list(iter_tar_members(ok, "shard", want=lambda n: n.endswith(".json"))) == [("k.json", b"{}"),
                                                                                       ("k.mix.wav", None)]
    bad = _tar(tmp_path / "bad.tar", [(os.fsdecode(b"\xff.json"), b"{}")])
    with pytest.raises(InputFileError, match=r"member name .* is not UTF-8"):
        list(iter_tar_members(bad, "shard"))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(ok.read_bytes()[:700])
    with pytest.raises(InputFileError, match="cannot be read to its end"):
        list(iter_tar_members(cut, "shard"))


def test_rendered_reader_checks_key_type_and_provenance(toy_render, tmp_path):
    from mixing.rendered_reader import find_shards, iter_samples, parse_record

    render = toy_render()
    raw = next(iter_samples(*find_shards(render)[0], "x", audio=False))
    rec, prov = parse_record(raw.json, "x", raw.key)
    assert rec.mix_id == raw.key and prov["stem_mode"] == "consistent"
    obj = json.loads(raw.json)
    with pytest.raises(InputFileError, match="differs from the sample key"):
        parse_record(json.dumps({**obj, "mix_id": "other"}), "x", raw.key)
    with pytest.raises(InputFileError, match="'hive_render' is list; expected an object"):
        parse_record(json.dumps({**obj, "hive_render": [1]}), "x", raw.key)
    with pytest.raises(InputFileError, match="top-level JSON is a string"):
        parse_record(b'"str"', "x", raw.key)
    copy = shutil.copytree(render, tmp_path / "r")
    shard = find_shards(copy)[0][0]
    os.mkfifo(shard.with_name("tar_99999.tar"))
    with pytest.raises(InputFileError, match="has a shard's name but is a FIFO"):
        _returns_within(lambda: find_shards(copy))
