"""One failure vocabulary: check, render, stream, synthesize (labelled list) and a mining stage
name the same broken inputs alike (mixing/failures.py)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

import hive
from curation.runner import RunConfig, run_stage
from curation.stages.base import read_error_reason
from curation.stages.chunk import ChunkStage
from mixing import failures
from mixing.check import check_corpora
from mixing.errors import (
    ChunkOutOfRangeError, ClippingError, DatasetPathsError, InvalidRecordError, MissingSourceAudioError,
    NonFiniteAudioError, PathEscapesRootError, UnknownPrefixError, UnreadableAudioError,
)
from mixing.metadata import MixtureRecord, SourceRecord
from mixing.metadata_io import write_hub_folder
from mixing.recipe import RenderRecipe
from mixing.render_job import RenderConfig, run_render
from mixing.synthesis.labelled import build_pool_from_labels

SR = 16000
#: metadata path -> the reason every command must give it
BROKEN = {
    "C/gone.wav": "missing_file",
    "C/bad.wav": "unreadable_audio",
    "Nowhere/x.wav": "unknown_prefix",
}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    rng = np.random.default_rng(3)
    for name in ("good.wav", "good2.wav"):
        sf.write(root / name, (0.1 * rng.standard_normal(SR * 12)).astype(np.float32), SR, subtype="FLOAT")
    (root / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio" * 20)
    dp = tmp_path / "dataset_paths.json"
    dp.write_text(json.dumps({"C": str(root)}))
    return tmp_path, dp


def _source(k: int, path: str) -> SourceRecord:
    return SourceRecord(f"s{k}", path, "dog", 0.0, 4.0, 0.0, 4.0, 1.0, 0.0, 1.0)


def _metadata(tmp_path):
    pairs = {"m_ok": "C/good2.wav", **{f"m_{i}": p for i, p in enumerate(BROKEN)}}
    records = [MixtureRecord(mid, "train", 44100, 4.0, 2, (_source(1, "C/good.wav"), _source(2, other)), 0.5, 0.9)
               for mid, other in pairs.items()]
    folder = tmp_path / "meta"
    write_hub_folder(records, folder)
    return folder, {f"m_{i}": reason for i, reason in enumerate(BROKEN.values())}


def _labelled_list(tmp_path):
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["audio_path", "text_label"])
        w.writeheader()
        for p in ("C/good.wav", *BROKEN):
            w.writerow({"audio_path": p, "text_label": "dog"})
    return path


def test_every_command_names_the_same_broken_inputs_alike(corpus):
    tmp_path, dp = corpus
    meta, by_mix = _metadata(tmp_path)

    # hive check: per-file status
    report = check_corpora(meta, dp, progress=False).to_dict()
    check = {path: reason for p in report["prefixes"].values() for reason, exs in p["examples"].items()
             for path in exs}
    assert check == BROKEN
    assert report["totals"]["present"] == 2
    assert {r: report["totals"][r] for r in set(BROKEN.values())} == {r: 1 for r in BROKEN.values()}

    # hive render: _failures.jsonl
    out = tmp_path / "render"
    summary = run_render(str(meta), RenderConfig(output=str(out), recipe=RenderRecipe.make(str(dp)), shard_size=10), num_workers=1,
                         progress=False)
    assert summary.mixtures_rendered == 1
    rendered = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    assert {f["path"]: f["reason"] for f in rendered} == BROKEN
    assert {f["mix_id"]: f["reason"] for f in rendered} == by_mix

    # stream (hive.py / mixing.streaming): failure manifests
    fdir = tmp_path / "stream-failures"
    ids = [ex["mix_id"] for ex in hive.iter_mixtures(str(meta), str(dp), split="train", options={"failure_dir": fdir})]
    assert ids == ["m_ok"]
    streamed = [json.loads(line) for p in sorted(fdir.glob("*.jsonl")) for line in p.read_text().splitlines()]
    assert {f["mix_id"]: f["reason"] for f in streamed} == by_mix

    # hive synthesize from a labelled list: dropped files
    listing = _labelled_list(tmp_path)
    pool = build_pool_from_labels(listing, dp)
    assert {e["path"]: e["reason"] for e in pool.dropped_examples} == BROKEN
    assert pool.num_files == 1

    # hive mine chunk: drops.jsonl
    mined = tmp_path / "mine"
    run_stage(ChunkStage(dataset_paths=str(dp)), RunConfig(input=str(listing), output=str(mined), progress=False))
    drops = [json.loads(line) for line in (mined / "drops.jsonl").read_text().splitlines()]
    assert {d["path"]: d["reason"] for d in drops} == BROKEN


@pytest.mark.parametrize("exc, reason", [
    (MissingSourceAudioError("x"), "missing_file"),
    (UnreadableAudioError("x"), "unreadable_audio"),
    (UnknownPrefixError("x"), "unknown_prefix"),
    (PathEscapesRootError("x"), "unsafe_path"),
    (ChunkOutOfRangeError("x"), "chunk_beyond_end"),
    (InvalidRecordError("m", "split", "nope", "a split"), "invalid_record"),
    (ClippingError("x"), "would_clip"),
    (NonFiniteAudioError("x"), "non_finite"),
])
def test_reason_of_maps_each_error_to_its_documented_name(exc, reason):
    assert failures.reason_of(exc) == reason
    assert read_error_reason(exc) == reason  # the mining stages use the same mapping
    assert reason in failures.DESCRIPTIONS and failures.describe(reason) != reason


def test_unknown_errors_get_the_default_of_each_command():
    assert failures.reason_of(RuntimeError("boom")) == failures.RENDER_ERROR
    assert failures.reason_of(DatasetPathsError("bad json"), default=None) is None
    assert read_error_reason(RuntimeError("libsndfile: unknown format")) == "unreadable_audio"
    # a plain FileNotFoundError is not a corpus error: it is not named missing_file
    assert failures.reason_of(FileNotFoundError("x"), default="other") == "other"


def test_docs_and_help_list_every_shared_reason():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "failure-reasons.md").read_text(encoding="utf-8")
    text = failures.help_text()
    for name, description in failures.DESCRIPTIONS.items():
        assert f"`{name}`" in readme, name
        assert name in text and description in text
