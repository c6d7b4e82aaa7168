"""Corpora resolution: dataset_paths.json, prefixes, and strict containment of untrusted paths."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixing.corpora import DatasetPaths
from mixing.errors import (
    CorpusError, DatasetPathsError, PathEscapesRootError, UnknownPrefixError,
)


def touch(path: Path, data: bytes = b"RIFF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def inside(path: os.PathLike | str, root: os.PathLike | str) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, real_root]) == real_root


# ---- from_json ---------------------------------------------------------------------------------
def test_from_json_relative_roots_are_relative_to_the_file(tmp_path, monkeypatch):
    corpora = tmp_path / "corpora"
    touch(corpora / "audioset" / "dir" / "x.wav")
    touch(tmp_path / "abs_vgg" / "y.wav")
    conf = tmp_path / "conf" / "dataset_paths.json"
    conf.parent.mkdir()
    conf.write_text(json.dumps({"AudioSet": "../corpora/audioset",
                                "VGGSound": str(tmp_path / "abs_vgg")}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    dp = DatasetPaths.from_json(conf)
    assert dp.root("AudioSet").resolve() == (corpora / "audioset").resolve()
    assert dp.root("VGGSound") == tmp_path / "abs_vgg"
    got = dp.resolve("AudioSet/dir/x.wav")
    assert got.is_file() and got.resolve() == (corpora / "audioset" / "dir" / "x.wav").resolve()
    assert dp.resolve("VGGSound/y.wav").is_file()
    assert dp.prefixes == ["AudioSet", "VGGSound"] and list(dp) == ["AudioSet", "VGGSound"]


def test_from_json_relative_path_to_the_file_itself(tmp_path, monkeypatch):
    touch(tmp_path / "cfg" / "bbc" / "a.wav")
    (tmp_path / "cfg" / "dataset_paths.json").write_text('{"BBC_Sound_Effects": "bbc"}')
    monkeypatch.chdir(tmp_path)
    dp = DatasetPaths.from_json("cfg/dataset_paths.json")
    assert dp.resolve("BBC_Sound_Effects/a.wav").is_file()


def test_two_prefixes_share_one_root(tmp_path):
    dcase = tmp_path / "dcase"
    touch(dcase / "real" / "a.wav")
    touch(dcase / "synth" / "b.wav")
    conf = tmp_path / "dataset_paths.json"
    conf.write_text(json.dumps({"DCASE_real": "dcase", "DCASE_synth": "dcase"}))
    dp = DatasetPaths.from_json(conf)
    assert dp.root("DCASE_real") == dp.root("DCASE_synth")
    assert dp.resolve("DCASE_real/real/a.wav").resolve() == (dcase / "real" / "a.wav").resolve()
    assert dp.resolve("DCASE_synth/synth/b.wav").resolve() == (dcase / "synth" / "b.wav").resolve()


def test_folder_named_differently_from_prefix(tmp_path):
    """The key is the metadata prefix, not the folder's basename (the reference's bug)."""
    touch(tmp_path / "downloads" / "bbc_sfx_2023" / "nature" / "rain.wav")
    conf = tmp_path / "dataset_paths.json"
    conf.write_text(json.dumps({"BBC_Sound_Effects": "downloads/bbc_sfx_2023"}))
    dp = DatasetPaths.from_json(conf)
    got = dp.resolve("BBC_Sound_Effects/nature/rain.wav")
    assert got.is_file()
    assert got.resolve() == (tmp_path / "downloads" / "bbc_sfx_2023" / "nature" / "rain.wav").resolve()
    with pytest.raises(UnknownPrefixError):
        dp.resolve("bbc_sfx_2023/nature/rain.wav")


def test_to_json_round_trip(tmp_path):
    dp = DatasetPaths({"AudioSet": tmp_path / "as", "FSD50K": tmp_path / "fsd"})
    dp.to_json(tmp_path / "p.json")
    assert DatasetPaths.from_json(tmp_path / "p.json").roots == dp.roots


@pytest.mark.parametrize("content,match", [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    ('["AudioSet"]', "holds a list"),
    ("{}", "non-empty mapping"),
    ('{"Audio/Set": "x"}', "not a corpus prefix"),
    ('{"..": "x"}', "not a corpus prefix"),
    ('{"AudioSet": ""}', "expected a folder path"),
    ('{"AudioSet": 3}', "expected a folder path"),
])
def test_from_json_errors(tmp_path, content, match):
    conf = tmp_path / "dataset_paths.json"
    if content is not None:
        conf.write_text(content)
    with pytest.raises(DatasetPathsError, match=match):
        DatasetPaths.from_json(conf)


def test_coerce(tmp_path):
    dp = DatasetPaths({"AudioSet": tmp_path})
    assert DatasetPaths.coerce(dp) is dp
    assert DatasetPaths.coerce({"AudioSet": str(tmp_path)}).roots == {"AudioSet": tmp_path}
    (tmp_path / "p.json").write_text(json.dumps({"AudioSet": str(tmp_path)}))
    assert DatasetPaths.coerce(tmp_path / "p.json").roots == {"AudioSet": tmp_path}


# ---- unknown prefixes ----------------------------------------------------------------------------
def test_unknown_prefix_names_known_prefixes(tmp_path):
    dp = DatasetPaths({"AudioSet": tmp_path / "a", "DCASE_real": tmp_path / "d",
                       "FSD50K": tmp_path / "f"})
    with pytest.raises(UnknownPrefixError) as info:
        dp.resolve("Audioset/x.wav")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, CorpusError)
    msg = str(err)
    assert msg.startswith("corpus prefix 'Audioset'")  # not KeyError's repr() of the message
    for p in ("AudioSet", "DCASE_real", "FSD50K"):
        assert p in msg
    assert "Did you mean ['AudioSet']" in msg
    with pytest.raises(UnknownPrefixError, match="known prefixes: AudioSet, DCASE_real, FSD50K"):
        dp.root("ESC-50")


# ---- path traversal -----------------------------------------------------------------------------
TRAVERSALS = [
    "AudioSet/../../etc/passwd",
    "/etc/passwd",
    "..\\x",
    "AudioSet/a/../../x",
    "AudioSet/..",
    "AudioSet/./x.wav",
    "AudioSet\\..\\..\\etc\\passwd",
    "AudioSet/%2e%2e/../x",
    "AudioSet//etc/passwd",
    "AudioSet/x\x00/../../y",
    "AudioSet",
    "",
]


@pytest.fixture
def audioset(tmp_path) -> tuple[DatasetPaths, Path]:
    root = tmp_path / "corpora" / "AudioSet"
    touch(root / "a" / "x.wav")
    touch(tmp_path / "corpora" / "x")  # what "AudioSet/a/../../x" would reach
    return DatasetPaths({"AudioSet": root}), root


@pytest.mark.parametrize("meta_path", TRAVERSALS)
def test_traversal_never_resolves(audioset, meta_path):
    dp, _ = audioset
    with pytest.raises(PathEscapesRootError) as info:
        dp.resolve(meta_path)
    assert repr(meta_path) in str(info.value)
    trusting = DatasetPaths(dp.roots, allow_symlinks_outside=True)
    with pytest.raises(PathEscapesRootError):
        trusting.resolve(meta_path)  # the lexical checks apply even when symlinks are trusted


def test_regular_path_resolves_inside_root(audioset):
    dp, root = audioset
    got = dp.resolve("AudioSet/a/x.wav")
    assert got == root / "a" / "x.wav" and got.is_file()
    # a missing file still resolves (existence is checked when reading audio)
    assert dp.resolve("AudioSet/a/missing.wav") == root / "a" / "missing.wav"
    assert dp.split("AudioSet/a/x.wav") == ("AudioSet", "a/x.wav")


# ---- symlinks ----------------------------------------------------------------------------------
def test_root_that_is_a_symlink_resolves(tmp_path):
    real = tmp_path / "disk2" / "vggsound"
    touch(real / "clips" / "c.wav")
    link = tmp_path / "vggsound_link"
    link.symlink_to(real, target_is_directory=True)
    dp = DatasetPaths({"VGGSound": link})
    got = dp.resolve("VGGSound/clips/c.wav")
    assert got == link / "clips" / "c.wav"
    assert got.is_file() and got.resolve() == (real / "clips" / "c.wav").resolve()


def test_symlink_inside_root_pointing_outside_is_refused(tmp_path):
    root = tmp_path / "AudioSet"
    touch(root / "ok.wav")
    outside = tmp_path / "secret"
    touch(outside / "passwd")
    (root / "evil").symlink_to(outside, target_is_directory=True)
    (root / "evil_file.wav").symlink_to(outside / "passwd")
    dp = DatasetPaths({"AudioSet": root})
    for p in ("AudioSet/evil/passwd", "AudioSet/evil_file.wav", "AudioSet/evil"):
        with pytest.raises(PathEscapesRootError, match="outside the corpus root"):
            dp.resolve(p)
    assert dp.resolve("AudioSet/ok.wav").is_file()
    trusting = DatasetPaths({"AudioSet": root}, allow_symlinks_outside=True)
    got = trusting.resolve("AudioSet/evil/passwd")
    assert got == root / "evil" / "passwd" and got.is_file()
    assert trusting.resolve("AudioSet/evil_file.wav").read_bytes() == b"RIFF"


def test_symlink_inside_root_pointing_inside_is_fine(tmp_path):
    root = tmp_path / "FSD50K"
    touch(root / "dev" / "1.wav")
    (root / "alias").symlink_to(root / "dev", target_is_directory=True)
    dp = DatasetPaths({"FSD50K": root})
    assert dp.resolve("FSD50K/alias/1.wav").is_file()


def test_symlink_loop_is_refused_not_crashing(tmp_path):
    root = tmp_path / "Clotho"
    root.mkdir()
    (root / "loop").symlink_to(root / "loop")
    dp = DatasetPaths({"Clotho": root})
    for p in ("Clotho/loop", "Clotho/loop/x.wav"):
        with pytest.raises(PathEscapesRootError):
            dp.resolve(p)


# ---- fuzzing: any text either raises a project error or lands inside the root --------------------
_FUZZ_DIR = tempfile.TemporaryDirectory(prefix="hive_corpora_fuzz_")


def _fuzz_tree() -> tuple[DatasetPaths, dict[str, Path]]:
    base = Path(_FUZZ_DIR.name)
    roots = {"AudioSet": base / "corpora" / "AudioSet", "DCASE_real": base / "corpora" / "dcase",
             "DCASE_synth": base / "corpora" / "dcase"}
    if not (base / "corpora").exists():
        touch(roots["AudioSet"] / "a" / "x.wav")
        touch(roots["DCASE_real"] / "b" / "y.wav")
        touch(base / "outside" / "secret.wav")
        (roots["AudioSet"] / "out").symlink_to(base / "outside", target_is_directory=True)
        (roots["AudioSet"] / "up").symlink_to(base / "corpora", target_is_directory=True)
        (roots["AudioSet"] / "loop").symlink_to(roots["AudioSet"] / "loop")
        (roots["AudioSet"] / "in").symlink_to(roots["AudioSet"] / "a", target_is_directory=True)
    return DatasetPaths(dict(roots)), roots


SEGMENTS = st.sampled_from(["a", "b", "x.wav", "y.wav", "out", "up", "in", "loop", "secret.wav",
                            "..", ".", "", "~", "\\", "..\\..", "C:", "\x00", " ", "dcase",
                            "AudioSet", "%2e%2e"]) | st.text(max_size=6)
META_PATHS = (
    st.text()
    | st.builds(lambda pre, segs: "/".join([pre, *segs]),
                st.sampled_from(["AudioSet"] * 4 + ["DCASE_real", "DCASE_synth", "Unknown", "",
                                                     "..", "/"]),
                st.lists(SEGMENTS, max_size=6))
)


@pytest.mark.slow  # end to end over the toy corpus
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(META_PATHS)
def test_fuzz_resolve_stays_inside_root(meta_path):
    dp, roots = _fuzz_tree()
    try:
        got = dp.resolve(meta_path)
    except (PathEscapesRootError, UnknownPrefixError):
        return
    prefix = meta_path.split("/", 1)[0]
    assert inside(got, roots[prefix]), (meta_path, got)
    assert os.path.commonpath([os.path.abspath(got), os.path.abspath(roots[prefix])]) == \
        os.path.abspath(roots[prefix])


def test_fuzz_oracle_can_fail():
    """The containment check used above does detect an escape."""
    dp, roots = _fuzz_tree()
    trusting = DatasetPaths(dp.roots, allow_symlinks_outside=True)
    got = trusting.resolve("AudioSet/out/secret.wav")
    assert got.is_file() and not inside(got, roots["AudioSet"])
    assert inside(dp.resolve("AudioSet/in/x.wav"), roots["AudioSet"])
