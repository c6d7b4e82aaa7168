"""The resume protocol module: atomic writes, completion markers, sha256, stale temp cleanup."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from mixing import resume


def _no_tmp(folder):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("write", [
    lambda p: resume.atomic_write_json(p, {"bad": object()}),  # fails while encoding
    lambda p: resume.atomic_write_text(p, "\ud800"),  # a lone surrogate cannot be UTF-8
])
def test_failed_write_keeps_old_file_and_leaves_no_tmp(tmp_path, write):
    target = tmp_path / "a.json"
    target.write_text("old\n")
    with pytest.raises((TypeError, UnicodeEncodeError)):
        write(target)
    assert target.read_text() == "old\n"
    assert _no_tmp(tmp_path) == []


def test_atomic_open_exception_mid_write_keeps_old_file(tmp_path):
    target = tmp_path / "rows.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with resume.atomic_open(target) as fh:
            fh.write("new line 1\n")
            fh.flush()
            assert resume.tmp_path(target).read_text() == "new line 1\n"  # written aside
            assert target.read_text() == "old\n"
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert _no_tmp(tmp_path) == []
    with resume.atomic_open(target, fsync=True) as fh:
        fh.write("é\n")
    assert target.read_bytes() == "é\n".encode("utf-8")
    assert _no_tmp(tmp_path) == []


def test_atomic_open_refuses_append_mode(tmp_path):
    with pytest.raises(ValueError, match="write mode"):
        with resume.atomic_open(tmp_path / "x", "a"):
            pass


def test_atomic_file_by_path_commit_and_abort(tmp_path):
    target = tmp_path / "sub" / "t.bin"
    f = resume.AtomicFile(target, fsync=True)
    assert f.tmp.parent == target.parent and f.tmp.name == f".t.bin.tmp-{os.getpid()}"
    f.tmp.write_bytes(b"xyz")  # written by another library, by path
    f.commit()
    f.abort()  # after commit: nothing
    assert target.read_bytes() == b"xyz"
    g = resume.AtomicFile(target)
    g.open("wb").write(b"partial")
    g.abort()
    assert target.read_bytes() == b"xyz" and _no_tmp(target.parent) == []
    with pytest.raises(FileNotFoundError):  # nothing written: commit fails, no trace left
        resume.AtomicFile(target).commit()
    assert target.read_bytes() == b"xyz"


def test_an_unwritable_target_is_named_in_the_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root: use a folder nobody may create files in
            folder = "/sys"
        with pytest.raises(PermissionError) as info:
            resume.atomic_write_text(f"{folder}/report.json", "x")
        assert info.value.filename == f"{folder}/report.json"
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_json_formats_match_json_dumps(tmp_path):
    obj = {"b": "é", "a": [1, 2.5]}
    resume.atomic_write_json(tmp_path / "d.json", obj)
    assert (tmp_path / "d.json").read_bytes() == (
        json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    resume.atomic_write_json(tmp_path / "e.json", obj, indent=2, sort_keys=False, ensure_ascii=True)
    assert (tmp_path / "e.json").read_text() == json.dumps(obj, indent=2, ensure_ascii=True) + "\n"


def test_marker_partial_corrupt_or_mismatching_reads_as_not_done(tmp_path):
    m = tmp_path / "done-00000"
    assert resume.read_marker(m) is None  # missing
    resume.write_marker(m, {"rank": 0, "config": "abc", "msg": "ü"})
    assert resume.read_marker(m) == {"rank": 0, "config": "abc", "msg": "ü"}
    assert resume.read_marker(m, {"config": "abc"})["rank"] == 0
    assert resume.read_marker(m, {"config": "other"}) is None
    full = m.read_bytes()
    for cut in (1, len(full) // 2, len(full) - 3):
        m.write_bytes(full[:cut])  # a marker cut short (written by a non-atomic writer, or a disk full)
        assert resume.read_marker(m) is None
    m.write_bytes(b"\xff\xfe garbage")
    assert resume.read_marker(m) is None
    m.write_text("[1, 2]")  # valid JSON, but not a marker
    assert resume.read_marker(m) is None
    with pytest.raises(TypeError, match="dict"):
        resume.write_marker(m, [1])


def test_rank_markers_missing(tmp_path):
    marks = resume.RankMarkers(tmp_path, "_ranks/rank-{rank:05d}-of-{world:05d}.json", 3)
    assert marks.path(1) == tmp_path / "_ranks" / "rank-00001-of-00003.json"
    assert marks.missing() == [0, 1, 2]
    marks.write(0, {"id": "x"})
    marks.write(2, {"id": "y"})
    assert marks.missing() == [1]
    assert marks.missing({"id": "x"}) == [1, 2]
    marks.path(2).write_text('{"id": "y"')  # partial
    assert marks.missing() == [1, 2]
    marks.clear(0)
    assert marks.missing() == [0, 1, 2]


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, (1 << 20) + 7])
def test_file_sha256_matches_hashlib(tmp_path, size):
    data = os.urandom(size)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert resume.file_sha256(p) == hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_stale_cleanup_removes_only_dead_pids_files(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process (until reused, which a fresh pid makes unlikely)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "sub").mkdir()
        dead_files = [tmp_path / f".a.json.tmp-{dead.pid}", tmp_path / "sub" / f".t.tar.tmp-{dead.pid}"]
        keep = [tmp_path / f".a.json.tmp-{alive.pid}", tmp_path / f".a.json.tmp-{os.getpid()}",
                tmp_path / f"a.json.tmp-{dead.pid}",  # not hidden: not our pattern
                tmp_path / f".a.json.tmp-{dead.pid}x", tmp_path / "a.json"]
        for p in dead_files + keep:
            p.write_text("x")
        assert resume.remove_stale_tmp(tmp_path, recursive=False) == [dead_files[0]]
        assert resume.remove_stale_tmp(tmp_path) == [dead_files[1]]
        assert all(p.exists() for p in keep)
        assert not any(p.exists() for p in dead_files)
        assert resume.remove_stale_tmp(tmp_path / "nope") == []
    finally:
        alive.kill()
        alive.wait()


def test_tmp_names():
    assert resume.is_tmp_name(resume.tmp_path("/x/tar_00001.tar").name)
    for name in ("tar_00001.tar", ".tar_00001.tar", ".a.tmp-", ".a.tmp-12x", "a.tmp-12"):
        assert not resume.is_tmp_name(name), name


def test_discard_tmp_removes_every_tmp_of_one_target(tmp_path):
    target = tmp_path / "tar_[0].tar"
    mine = [tmp_path / f".tar_[0].tar.tmp-{pid}" for pid in (1, os.getpid())]
    other = tmp_path / ".tar_1.tar.tmp-1"
    for p in mine + [other]:
        p.write_text("x")
    assert resume.discard_tmp(target) == sorted(mine)
    assert other.exists() and not any(p.exists() for p in mine)
