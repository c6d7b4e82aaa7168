"""One error policy for every ``hive`` command (issue 11): bad input, bad numbers, selections that
match nothing and OS errors of the output are one line ``hive <cmd>: error: ...`` with exit
status 2 and no traceback. Every test runs the real CLI (``main`` in-process, or a subprocess
where a read-only / full file system is mounted in a private namespace)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixing.cli import main

from cli_output import one_error_line as _one_error_line

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture
def toy(toy_corpus):
    return toy_corpus


@pytest.fixture
def toy_ontology(tmp_path):
    from mixing.toy import write_toy_ontology

    return write_toy_ontology(tmp_path / "toy_ontology.json")


def _common(toy) -> list[str]:
    return ["--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths)]


# ---- --split / --num-sources that select nothing -------------------------------------------------
@pytest.mark.parametrize("command,extra", [
    ("check", ["--no-progress"]),
    ("render", ["--output", "{tmp}/out", "--no-progress"]),
])
def test_unknown_split_lists_the_splits_that_exist(toy, tmp_path, capsys, command, extra):
    extra = [e.format(tmp=tmp_path) for e in extra]
    assert main([command, *_common(toy), "--split", "bogus", *extra]) == 2
    line = _one_error_line(capsys, command)
    assert "no mixtures with split 'bogus'" in line
    assert "train (48), validation (16), test (16)" in line
    assert not (tmp_path / "out").exists()  # refused before any output is made


def test_num_sources_that_select_nothing_lists_the_counts(toy, tmp_path, capsys):
    assert main(["render", *_common(toy), "--num-sources", "7", "--split", "test",
                 "--output", str(tmp_path / "out"), "--no-progress"]) == 2
    line = _one_error_line(capsys, "render")
    assert "no mixtures with 7 sources in split 'test'" in line
    assert "2 sources (4), 3 sources (4), 4 sources (4), 5 sources (4)" in line


def test_verify_and_curate_check_their_selection_too(toy, toy_render, toy_ontology, tmp_path, capsys):
    assert main(["verify", str(toy_render()), "--metadata", str(toy.parquet_dir), "--split", "dev2"]) == 2
    assert "split 'dev2'" in _one_error_line(capsys, "verify")
    assert main(["curate", "--metadata", str(toy.legacy_dir), "--ontology", str(toy_ontology), "--judge",
                 "openai:url=http://127.0.0.1:9/v1,model=x", "--output", str(tmp_path / "c"),
                 "--split", "bogus"]) == 2
    assert "train (48), validation (16), test (16)" in _one_error_line(capsys, "curate")


def test_a_split_alias_still_selects(toy, capsys):
    """'val' / 'dev' name the validation split: not refused."""
    assert main(["check", *_common(toy), "--split", "dev", "--num-sources", "2", "--no-progress"]) == 0
    assert "4/4" in capsys.readouterr().out


# ---- numbers on the command line --------------------------------------------------------------
@pytest.mark.parametrize("argv,expected", [
    (["render", "--shard-size", "0"], "--shard-size: 0 is not a positive integer"),
    (["render", "--sample-rate", "0"], "--sample-rate: 0 is not a sample rate in Hz in 1..384000"),
    (["render", "--sample-rate", "1000000000"], "--sample-rate: 1000000000 is not a sample rate in Hz"),
    (["render", "--num-workers", "-1"], "--num-workers: -1 is not a number of workers in 1..1024"),
    (["render", "--rank", "5", "--world-size", "2"], "--rank is 5 but --world-size is 2"),
    (["render", "--shard-size", "ten"], "--shard-size: ten is not a positive integer"),
    (["check", "--jobs", "0"], "--jobs: 0 is not a number of workers"),
    (["verify", "{tmp}", "--num-workers", "0"], "--num-workers: 0 is not a number of workers"),
    (["verify", "{tmp}", "--atol", "nan"], "--atol: nan is not a positive number"),
    (["synthesize", "--num-mixtures", "0"], "--num-mixtures: 0 is not a number of mixtures in 1..100000000"),
    (["synthesize", "--sample-rate", "1000000000"], "--sample-rate: 1000000000 is not a sample rate"),
    (["synthesize", "--duration", "-4"], "--duration: -4 is not a number of seconds in (0, 1e+06]"),
    (["card", "{tmp}", "--rows-per-file", "0"], "--rows-per-file: 0 is not a positive integer"),
    (["curate", "--keep", "1.5"], "--keep: 1.5 is not a fraction in [0, 1]"),
    (["curate", "--rank", "2", "--world-size", "2"], "--rank is 2 but --world-size is 2"),
    (["mine", "chunk", "--batch-size", "0"], "--batch-size: 0 is not a positive integer"),
    (["mine", "chunk", "--rank", "3", "--world-size", "2"], "--rank is 3 but --world-size is 2"),
    (["demo", "--num-workers", "0"], "--num-workers: 0 is not a number of workers"),
])
def test_bad_numbers_are_one_line_usage_errors(toy, toy_ontology, tmp_path, capsys, argv, expected):
    required = {
        "render": [*_common(toy), "--output", str(tmp_path / "out")],
        "check": _common(toy),
        "synthesize": ["--pool", str(toy.pool), "--ontology", str(toy_ontology), "--dataset-paths",
                       str(toy.dataset_paths), "--output", str(tmp_path / "out")],
        "card": ["--output", str(tmp_path / "out")],
        "curate": [*_common(toy), "--ontology", str(toy_ontology), "--judge", "openai:url=http://127.0.0.1:9/v1,model=x",
                   "--output", str(tmp_path / "out")],
        "mine": ["--input", str(toy.labels_csv), "--output", str(tmp_path / "out")],
    }.get(argv[0], [])
    argv = [a.format(tmp=tmp_path) for a in argv]
    t0 = time.perf_counter()
    assert main([*argv, *required]) == 2
    assert time.perf_counter() - t0 < 20  # refused up front: nothing is allocated or rendered
    line = _one_error_line(capsys, " ".join(argv[:2]) if argv[0] == "mine" and "--rank" not in argv else argv[0])
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_rank_from_a_garbage_environment_is_refused_naming_the_variable(toy, tmp_path, monkeypatch, capsys):
    """RANK=abc used to run silently as rank 0 (issue 19): refused in one line naming $RANK; an
    explicit --rank wins over the variable."""
    monkeypatch.setenv("RANK", "not-a-number")
    assert main(["render", *_common(toy), "--output", str(tmp_path / "o"), "--split", "test",
                 "--num-sources", "2", "--no-progress"]) == 2
    line = _one_error_line(capsys, "render")
    assert "environment variable RANK=not-a-number is not a rank" in line
    assert not (tmp_path / "o").exists()
    assert main(["render", *_common(toy), "--output", str(tmp_path / "o"), "--split", "test",
                 "--num-sources", "2", "--no-progress", "--rank", "0"]) == 0
    out, err = capsys.readouterr()
    from mixing.metadata_io import open_metadata

    wanted = sum(1 for _ in open_metadata(str(toy.parquet_dir)).records("test", 2))
    assert wanted > 0 and "error" not in err
    # rank 0 of 1 (the explicit --rank, not the variable) rendered every selected mixture
    assert f"rank 0/1: 1 shards rendered, 0 already done, {wanted} mixtures written to {tmp_path / 'o'}" in out
    summary = json.loads((tmp_path / "o" / "_summary.json").read_text())
    assert (summary["mixtures"], summary["failures"]) == (wanted, 0)


# ---- invalid UTF-8 and deeply nested JSON --------------------------------------------------------
def _bad_utf8(path: Path, prefix: bytes = b'{"a": "x') -> int:
    """Write ``prefix`` + an invalid byte; return the byte offset of the invalid byte."""
    path.write_bytes(prefix + b'\xff"}\n')
    return len(prefix)


def _deep(path: Path) -> None:
    path.write_text("[" * 100_000 + "\n")


def test_dataset_paths_invalid_utf8_names_file_and_byte_offset(toy, tmp_path, capsys):
    bad = tmp_path / "dataset_paths.json"
    offset = _bad_utf8(bad)
    assert main(["check", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(bad)]) == 2
    line = _one_error_line(capsys, "check")
    assert str(bad) in line and f"invalid UTF-8 at byte offset {offset}" in line


def test_metadata_json_and_jsonl_invalid_utf8(toy, tmp_path, capsys):
    legacy = tmp_path / "m.json"
    offset = _bad_utf8(legacy, b'[{"mix_id": "a\xc3\xa9')  # a valid 2-byte character first
    assert main(["render", "--metadata", str(legacy), "--dataset-paths", str(toy.dataset_paths),
                 "--output", str(tmp_path / "o"), "--no-progress"]) == 2
    assert f"{legacy}: invalid UTF-8 at byte offset {offset}" in _one_error_line(capsys, "render")
    # JSONL: a bad line is an invalid record naming the line and its absolute byte offset
    jsonl = tmp_path / "m.jsonl"
    good = (toy.root / "good.jsonl")
    from mixing.metadata_io import iter_records, write_jsonl

    write_jsonl(list(iter_records(toy.parquet_dir, split="test", num_sources=2)), good)
    head = good.read_bytes()
    jsonl.write_bytes(head + b'{"mix_id": "\xfe"}\n')
    assert main(["check", "--metadata", str(jsonl), "--dataset-paths", str(toy.dataset_paths),
                 "--no-progress"]) == 1  # ran; one invalid record reported
    out = capsys.readouterr().out
    assert f"m.jsonl:5: invalid UTF-8 at byte offset {len(head) + 12}" in out and "Traceback" not in out


@pytest.mark.parametrize("which", ["dataset_paths", "metadata_json", "metadata_jsonl", "ontology", "pool",
                                   "provenance", "config"])
def test_deeply_nested_or_non_utf8_inputs_are_one_line(toy, toy_ontology, tmp_path, capsys, which):
    bad = tmp_path / {"dataset_paths": "dp.json", "metadata_json": "m.json", "metadata_jsonl": "m.jsonl",
                      "ontology": "o.json", "pool": "pool.jsonl", "provenance": "p.json",
                      "config": "c.yaml"}[which]
    if which == "config":
        bad.write_bytes(b"num_mixtures: 3\nmix_id_prefix: h\xe9\n")  # Latin-1, not UTF-8
    else:
        _deep(bad)
    synth = ["synthesize", "--pool", str(toy.pool), "--ontology", str(toy_ontology),
             "--dataset-paths", str(toy.dataset_paths), "--output", str(tmp_path / "s")]
    argv = {
        "dataset_paths": ["check", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(bad)],
        "metadata_json": ["render", "--metadata", str(bad), "--dataset-paths", str(toy.dataset_paths),
                          "--output", str(tmp_path / "o")],
        "metadata_jsonl": ["verify", str(tmp_path), "--metadata", str(bad)],
        "ontology": [*synth[:3], "--ontology", str(bad), *synth[5:]],
        "pool": ["synthesize", "--pool", str(bad), *synth[3:]],
        "provenance": ["card", str(toy.parquet_dir), "--output", str(tmp_path / "c"), "--provenance", str(bad)],
        "config": [*synth, "--config", str(bad)],
    }[which]
    status = main(argv)
    if which == "metadata_jsonl":  # verify reads the bad row as an invalid record: reported, not crashed
        err = capsys.readouterr()
        assert "Traceback" not in err.err and "RecursionError" not in err.err + err.out
        assert status in (1, 2)
        return
    assert status == 2
    line = _one_error_line(capsys, argv[0])
    assert str(bad) in line
    if which == "config":
        offset = len(b"num_mixtures: 3\nmix_id_prefix: h")
        assert f"invalid UTF-8 at byte offset {offset}" in line
    else:
        assert "nested deeper than" in line


def test_missing_ontology_is_one_line(toy, tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["synthesize", "--pool", str(toy.pool), "--ontology", str(missing), "--dataset-paths",
                 str(toy.dataset_paths), "--output", str(tmp_path / "s")]) == 2
    line = _one_error_line(capsys, "synthesize")
    assert f"ontology file {missing} does not exist" in line
    assert main(["curate", *_common(toy), "--ontology", str(missing), "--judge",
                 "openai:url=http://127.0.0.1:9/v1,model=x", "--output", str(tmp_path / "c")]) == 2
    assert "does not exist" in _one_error_line(capsys, "curate")


# ---- OS errors of the output ---------------------------------------------------------------------
def test_output_that_is_a_file_is_one_line(toy, tmp_path, capsys):
    afile = tmp_path / "taken"
    afile.write_text("not a folder")
    assert main(["render", *_common(toy), "--output", str(afile), "--split", "test", "--no-progress"]) == 2
    line = _one_error_line(capsys, "render")
    assert str(afile) in line and ("a file is in the way" in line or "a file is where a folder is expected" in line)
    assert afile.read_text() == "not a folder"
    assert main(["synthesize", "--pool", str(toy.pool), "--ontology", str(ROOT / "missing-is-checked-later.json"),
                 "--dataset-paths", str(toy.dataset_paths), "--output", str(afile / "sub")]) == 2
    _one_error_line(capsys, "synthesize")


@pytest.mark.slow  # end to end over the toy corpus
def test_unwritable_report_is_one_line(toy_render, capsys):
    """/sys refuses new files even to root."""
    assert main(["verify", str(toy_render()), "--report", "/sys/hive-report.json", "--no-progress"]) == 2
    line = _one_error_line(capsys, "verify")
    assert "permission denied" in line.lower() and "/sys/hive-report.json" in line


def _private_mount_works(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    r = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                       capture_output=True)
    return r.returncode == 0


def _hive_in_private_mount(tmp_path: Path, mount_opts: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``hive ARGS`` in a private mount namespace where ``tmp_path/mnt`` is a tmpfs."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = (f"mount -t tmpfs -o {mount_opts} tmpfs {mnt} && exec {sys.executable} -m mixing "
              + " ".join(f"'{a}'" for a in args))
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("opts,expected", [("ro", "Read-only file system"), ("size=4k", "no space left")])
def test_read_only_or_full_output_is_one_line(toy, toy_ontology, tmp_path, opts, expected):
    if not _private_mount_works(tmp_path):
        pytest.skip("no private mount namespace (unshare -rm) on this machine")
    out = tmp_path / "mnt" / "out"
    # --force: past the size estimate (which refuses a full disk up front), to the OS error itself
    r = _hive_in_private_mount(tmp_path, opts, ["render", *_common(toy), "--output", str(out),
                                                "--shard-size", "8", "--no-progress", "--force"])
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("hive render: error: "), r.stderr
    assert expected.lower() in lines[0].lower() and str(out) in lines[0]
    r = _hive_in_private_mount(tmp_path, opts, ["synthesize", "--pool", str(toy.pool), "--ontology",
                                                str(toy_ontology), "--dataset-paths", str(toy.dataset_paths),
                                                "--output", str(out), "--num-mixtures", "3000", "--dry-run"])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.strip().count("\n") == 0 and expected.lower() in r.stderr.lower()


def test_disk_full_report_is_one_line(toy, tmp_path, capsys):
    """``check --report`` on a file system with no room left (/dev/full refuses every write)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    status = main(["check", *_common(toy), "--split", "test", "--no-progress", "--report", "/dev/full/r.json"])
    assert status == 2
    line = _one_error_line(capsys, "check")
    assert "/dev/full" in line


# ---- synthesize: stale temporary files, unknown labels, dropped rows -------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.slow
def test_synthesize_removes_only_its_own_stale_tmp_files(toy, toy_ontology, tmp_path, capsys):
    out = tmp_path / "s"
    (out / "data").mkdir(parents=True)
    dead = _dead_pid()
    stale = [out / "data" / f".train-00000-of-00001.parquet.tmp-{dead}", out / f".synthesis_stats_train.json.tmp-{dead}"]
    for p in stale:
        p.write_bytes(b"half written")
    alive = out / f".synthesis_config_train.yaml.tmp-{os.getppid()}"  # a live writer's file stays
    alive.write_bytes(b"being written")
    other = out / "notes.tmp-123"  # not our pattern
    other.write_text("keep")
    assert main(["synthesize", "--pool", str(toy.pool), "--ontology", str(toy_ontology), "--dataset-paths",
                 str(toy.dataset_paths), "--output", str(out), "--num-mixtures", "4"]) == 0
    assert "removed 2 stale temporary files" in capsys.readouterr().out
    assert not any(p.exists() for p in stale)
    assert alive.exists() and other.exists()


def test_unknown_pool_labels_are_refused_with_count_and_suggestion(toy, toy_ontology, tmp_path, capsys):
    pool = tmp_path / "pool.jsonl"
    rows = [json.loads(line) for line in toy.pool.read_text().splitlines() if line.strip()]
    for r in rows:
        if r["label"] == "Dog":
            r["label"], r["label_id"] = "Dgo", ""
        if r["label"] == "Rain":
            r["label"], r["label_id"] = "Thunderstorm noise", ""
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n_dog = sum(1 for r in rows if r["label"] == "Dgo" and r["split"] == "train")
    assert main(["synthesize", "--pool", str(pool), "--ontology", str(toy_ontology), "--dataset-paths",
                 str(toy.dataset_paths), "--output", str(tmp_path / "s"), "--num-mixtures", "4"]) == 2
    line = _one_error_line(capsys, "synthesize")
    assert "2 pool labels of split 'train'" in line
    assert f"'Dgo' ({n_dog} clips, did you mean 'Dog'?)" in line
    assert "'Thunderstorm noise'" in line
    assert not (tmp_path / "s" / "data").exists()


def test_dropped_pool_rows_are_counted_by_reason(toy, toy_ontology, tmp_path, capsys):
    pool = tmp_path / "pool.jsonl"
    rows = [json.loads(line) for line in toy.pool.read_text().splitlines() if line.strip()]
    for r in rows:
        if r["label"] == "Dog":
            r["label"], r["label_id"] = "Dgo", ""
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "c.yaml"
    config.write_text("unknown_labels: skip\n")
    out = tmp_path / "s"
    assert main(["synthesize", "--pool", str(pool), "--ontology", str(toy_ontology), "--dataset-paths",
                 str(toy.dataset_paths), "--output", str(out), "--num-mixtures", "4", "--config", str(config),
                 "--dry-run"]) == 0
    stats = json.loads((out / "synthesis_stats_train.json").read_text())
    n_train = sum(1 for r in rows if r["split"] == "train")
    n_dog = sum(1 for r in rows if r["split"] == "train" and r["label"] == "Dgo")
    assert stats["pool_rows_dropped"] == {"label_not_in_ontology": n_dog, "other_split": len(rows) - n_train}
    assert stats["pool_rows_used"] == n_train - n_dog
    assert sum(stats["pool_rows_dropped"].values()) + stats["pool_rows_used"] == len(rows)
    out_text = capsys.readouterr().out
    assert f"label_not_in_ontology={n_dog}" in out_text


def test_labelled_list_drops_are_counted(toy, toy_ontology, tmp_path, capsys):
    listing = tmp_path / "labels.csv"
    lines = toy.labels_csv.read_text().splitlines()
    lines += ["AudioSet/clips/no_such_file.wav,Dog,train", ",Dog,train"]
    listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "s"
    assert main(["synthesize", "--pool", str(listing), "--ontology", str(toy_ontology), "--dataset-paths",
                 str(toy.dataset_paths), "--output", str(out), "--num-mixtures", "4", "--dry-run"]) == 0
    dropped = json.loads((out / "synthesis_stats_train.json").read_text())["pool_rows_dropped"]
    assert dropped.get("labelled_list_missing_path_or_label") == 1
    assert sum(v for k, v in dropped.items() if k.startswith("labelled_list_")) == 2


def test_synthesis_config_bounds_rate_and_length_like_records(toy, toy_ontology, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("sample_rate: 384000\nduration: 100\n")  # 38.4 M samples > MAX_FRAMES
    assert main(["synthesize", "--pool", str(toy.pool), "--ontology", str(toy_ontology), "--dataset-paths",
                 str(toy.dataset_paths), "--output", str(tmp_path / "s"), "--config", str(config)]) == 2
    line = _one_error_line(capsys, "synthesize")
    assert "at most 28800000 samples per mixture" in line and "100 s x 384000 Hz" in line


# ---- the reader underneath: mixing.input_files ------------------------------------------------------
def test_json_input_offsets_depth_and_strings(tmp_path):
    from mixing.errors import InputFileError
    from mixing.input_files import MAX_JSON_DEPTH, BadLine, iter_jsonl, load_json_file

    # brackets inside strings do not count as nesting; a BOM is accepted
    ok = tmp_path / "ok.json"
    ok.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": "[" * 5000, "b": [[[1]]]}).encode())
    assert load_json_file(ok, "test file", "anything")["b"] == [[[1]]]
    # exactly the limit parses; one more level is refused
    edge = tmp_path / "edge.json"
    edge.write_text("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    load_json_file(edge, "test file", "anything")
    edge.write_text("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(InputFileError, match="nested deeper than"):
        load_json_file(edge, "test file", "anything")
    # JSONL: byte offsets are absolute in the file, line numbers count blank lines
    lines = tmp_path / "x.jsonl"
    lines.write_bytes(b'{"a": 1}\n\n{"b": "\xc3\xa9"}\n{"c": "\xe9"}\n' + b"[" * 1000 + b"\n")
    rows = list(iter_jsonl(lines, "test file"))
    assert [n for n, _ in rows] == [1, 3, 4, 5]
    assert rows[1][1] == {"b": "é"}
    offset = len(b'{"a": 1}\n\n{"b": "\xc3\xa9"}\n{"c": "')
    assert isinstance(rows[2][1], BadLine) and f"byte offset {offset} " in rows[2][1].message
    assert isinstance(rows[3][1], BadLine) and "nested deeper" in rows[3][1].message


@pytest.mark.slow
def test_bugs_still_show_a_traceback_and_vv_logs_refusals(toy, tmp_path, capsys, monkeypatch):
    """Only project errors and OS errors become one line; anything else is a bug and propagates."""
    import mixing.cli.check as check_cli

    def broken(args):
        return 1 // 0

    monkeypatch.setattr(check_cli, "run", broken)
    with pytest.raises(ZeroDivisionError):
        main(["check", *_common(toy)])
    monkeypatch.undo()
    # with -vv the refusal's traceback is logged for debugging; the error line stays the last line
    r = subprocess.run([sys.executable, "-m", "mixing", "check", "-vv", "--metadata", str(toy.parquet_dir),
                        "--dataset-paths", str(tmp_path / "missing.json")], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    assert "Traceback" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("hive check: error: dataset paths file")
