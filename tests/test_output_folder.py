"""The one output-folder rule (``mixing/output_folder.py``): an output never is, lies inside or
contains an input; a folder belongs to the command that first wrote it (reruns go on, other
commands and foreign non-empty folders are refused); a command never deletes a file it did not
write. The first two tests reproduce the data losses of issue 19 with the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from mixing.cli import SUBCOMMANDS, _load, main
from mixing.output_folder import (
    MARKER, CommandIO, Output, OutputFolderError, claim, foreign_entries, read_owner, remove_own_files,
)


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith(f"hive {command}: error: "), err
    return lines[0]


# ---- the two data losses of issue 19 -------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_inspect_never_deletes_a_render_inside_its_output(toy_render, tmp_path, capsys):
    """``hive inspect RENDER --output DIR`` with RENDER inside an earlier inspect folder DIR used to
    replace DIR as a whole: the render and the user's other files in DIR were deleted."""
    pytest.importorskip("matplotlib")
    pages = tmp_path / "pages"
    assert main(["inspect", str(toy_render()), "--output", str(pages), "--sample", "1", "--no-progress"]) == 0
    capsys.readouterr()
    render = shutil.copytree(toy_render(), pages / "render")
    (pages / "my-notes.txt").write_text("mine\n")
    before = _tree(pages)
    assert main(["inspect", str(render), "--output", str(pages), "--sample", "1", "--no-progress"]) == 2
    assert "contains the input" in _error_line(capsys, "inspect")
    assert _tree(pages) == before


def test_curate_with_a_failing_judge_never_deletes_its_input_metadata(toy_corpus, tmp_path, capsys):
    """``hive curate --metadata X/metadata --output X`` with a failing judge used to remove
    X/metadata (the input) as "the metadata of an earlier run"."""
    x = tmp_path / "x"
    shutil.copytree(toy_corpus.parquet_dir, x / "metadata")
    before = _tree(x)
    status = main(["curate", "--metadata", str(x / "metadata"), "--output", str(x), "--dataset-paths",
                   str(toy_corpus.dataset_paths), "--split", "validation", "--no-progress",
                   "--judge", "openai:url=http://127.0.0.1:9/v1,model=m,timeout=2,retries=0"])
    assert status == 2
    assert "contains the input --metadata" in _error_line(capsys, "curate")
    assert _tree(x) == before and sorted(p.name for p in x.iterdir()) == ["metadata"]


def test_a_failed_curate_removes_only_the_metadata_files_it_wrote(tmp_path):
    """What ``merge`` does when a run failed: its own Parquet files go, anything else stays."""
    meta = tmp_path / "out" / "metadata"
    (meta / "data").mkdir(parents=True)
    ours = [meta / "data" / "train-00000-of-00001.parquet", meta / "data" / "test-00000-of-00002.parquet"]
    for p in ours:
        p.write_bytes(b"PAR1")
    theirs = [meta / "README.md", meta / "data" / "notes.parquet", meta / "data" / "train-extra.parquet"]
    for p in theirs:
        p.write_text("theirs")
    removed = remove_own_files(meta, ("data/*-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].parquet",))
    assert sorted(removed) == sorted(ours)
    assert all(p.is_file() for p in theirs)


# ---- the rule itself -------------------------------------------------------------------------------
def _io(out, *inputs, kind="folder", signature=()):
    return CommandIO([("--in", p) for p in inputs], [Output(out, kind=kind, signature=signature)])


def test_overlaps_are_refused_resolved(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (tmp_path / "data.json").write_text("{}")
    link = tmp_path / "link"
    link.symlink_to(src)
    for out, why in ((src, "is the input"), (src / "sub" / "out", "lies inside the input"),
                     (link / "out", "lies inside the input"), (tmp_path, "contains the input"),
                     (tmp_path / "src" / ".." / "src", "is the input")):
        with pytest.raises(OutputFolderError, match=why):
            claim("render", _io(out, src))
    with pytest.raises(OutputFolderError, match="is the input"):
        claim("check", _io(tmp_path / "data.json", tmp_path / "data.json", kind="file"))
    assert not (tmp_path / "sub").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "link",
                                                                                               "src"]
    # a Hub id or a missing path is no local input
    claim("render", _io(tmp_path / "out", "ShandaAI/Hive", tmp_path / "missing"))
    # a folder the same command wrote is its own (mine's audio root named in dataset_paths.json too)
    [c] = claim("mine", _io(tmp_path / "mined_audio"))
    claim("mine", _io(tmp_path / "mined_audio", tmp_path / "mined_audio"))
    with pytest.raises(OutputFolderError, match="is the input"):
        claim("render", _io(tmp_path / "mined_audio", tmp_path / "mined_audio"))


def test_ownership_marker_reruns_other_commands_and_foreign_folders(tmp_path):
    out = tmp_path / "out"
    [c] = claim("render", _io(out))
    assert c.created_folder and read_owner(out) == "render"
    (out / "shard.tar").write_bytes(b"x")
    claim("render", _io(out))  # a rerun (resume) of the same command goes on
    with pytest.raises(OutputFolderError, match="is the output of `hive render`"):
        claim("eval", _io(out))
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(OutputFolderError, match="non-empty folder and not an earlier `hive eval` output.*notes.txt"):
        claim("eval", _io(foreign))
    assert not (foreign / MARKER).exists()
    # an output of an earlier version (no marker) is recognised by the files it left
    old = tmp_path / "old-render"
    old.mkdir()
    (old / "_render_config.json").write_text("{}")
    claim("render", _io(old, signature=("_render_config.json",)))
    assert read_owner(old) == "render"
    # an empty folder is taken; a file is not a folder
    (tmp_path / "empty").mkdir()
    claim("eval", _io(tmp_path / "empty"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputFolderError, match="a file is where a folder is expected"):
        claim("eval", _io(tmp_path / "f"))


def test_release_leaves_no_trace_when_the_command_did_nothing(tmp_path, toy_corpus, capsys):
    [c] = claim("render", _io(tmp_path / "new" / "out"))
    c.release()
    assert not (tmp_path / "new" / "out").exists()
    # through the CLI: refused after the claim (unreadable dataset paths) -> no output folder
    bad = tmp_path / "dp.json"
    bad.write_text("[1, 2]")
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(bad), "--output",
                 str(tmp_path / "r"), "--no-progress"]) == 2
    _error_line(capsys, "render")
    assert not (tmp_path / "r").exists()
    # a claimed folder that already held the command's files keeps them
    out = tmp_path / "kept"
    out.mkdir()
    (out / "results.csv").write_text("x")
    [c] = claim("eval", _io(out, signature=("results.csv",)))
    c.release()
    assert (out / "results.csv").is_file()


def test_report_files_replace_only_earlier_reports(tmp_path, toy_corpus, capsys):
    common = ["check", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(toy_corpus.dataset_paths),
              "--split", "validation", "--no-progress"]
    report = tmp_path / "report.json"
    assert main([*common, "--report", str(report)]) == 0
    assert main([*common, "--report", str(report)]) == 0  # an earlier report is replaced
    capsys.readouterr()
    notes = tmp_path / "notes.json"
    notes.write_text(json.dumps({"mine": 1}))
    assert main([*common, "--report", str(notes)]) == 2
    assert "not an earlier `hive check` report" in _error_line(capsys, "check")
    assert json.loads(notes.read_text()) == {"mine": 1}


def test_foreign_entries_and_remove_own_files_touch_nothing_else(tmp_path):
    (tmp_path / "index.html").write_text("x")
    (tmp_path / MARKER).write_text("{}")
    (tmp_path / ".index.html.tmp-123").write_text("x")
    (tmp_path / "render").mkdir()
    assert foreign_entries(tmp_path, ("index.html",)) == ["render"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x-00000-of-00001.parquet").write_text("x")
    (tmp_path / "data" / "keep.txt").write_text("x")
    assert remove_own_files(tmp_path, ("data/*-of-*.parquet",)) == [tmp_path / "data" / "x-00000-of-00001.parquet"]
    assert (tmp_path / "data" / "keep.txt").is_file()


def test_every_subcommand_declares_what_it_reads_and_writes():
    """The rule applies to a command only through its ``io(args)``: each subcommand has one."""
    missing = [name for name in SUBCOMMANDS if not callable(getattr(_load(name), "io", None))]
    assert not missing, f"subcommands without io(args): {missing}"


def test_resume_into_its_own_folder_keeps_working(toy_corpus, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["render", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(toy_corpus.dataset_paths),
            "--output", str(out), "--split", "validation", "--shard-size", "8", "--sample-rate", "8000",
            "--no-progress", "--allow-failures"]
    assert main(args) == 0
    assert read_owner(out) == "render"
    capsys.readouterr()
    assert main(args) == 0
    assert "0 shards rendered" in capsys.readouterr().out
    assert os.path.isfile(out / MARKER)
