"""``hive render`` end to end on real files: fidelity to the reference formula, stem modes, both
shard layouts, kill-and-resume, workers and ranks, and named failures for bad inputs."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixing.cli import main
from mixing.corpora import DatasetPaths
from mixing.metadata import MixtureRecord, SourceRecord
from mixing.metadata_io import iter_records, write_jsonl
from reference_render import ReferenceRenderer

REPO = Path(__file__).resolve().parents[1]
SR = 44100


# ---- helpers -----------------------------------------------------------------------------------
def read_tar_samples(folder: Path) -> dict[str, dict]:
    """mix_id -> {"mix": float64 array, "stems": [arrays], "json": dict} of every tar under folder."""
    out: dict[str, dict] = {}
    for tar_path in sorted(folder.rglob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                key, suffix = m.name.split(".", 1)
                data = tar.extractfile(m).read()
                d = out.setdefault(key, {"stems": {}})
                if suffix == "json":
                    d["json"] = json.loads(data)
                else:
                    name = suffix.split(".")[0]
                    x, sr = sf.read(io.BytesIO(data), dtype="float64")
                    d["sr"] = sr
                    if name == "mix":
                        d["mix"] = x
                    else:
                        d["stems"][int(name[1:])] = x
    for d in out.values():
        d["stems"] = [d["stems"][i] for i in sorted(d["stems"])]
    return out


def tree(folder: Path, exclude: tuple[str, ...] = ("_ranks", "_locks")) -> dict[str, bytes]:
    """relative path -> bytes of every file, except under the excluded top-level folders."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in exclude}


def assert_same_tree(a: Path, b: Path, exclude: tuple[str, ...] = ("_ranks", "_locks")) -> None:
    ta, tb = tree(a, exclude), tree(b, exclude)
    assert sorted(ta) == sorted(tb)
    differ = [k for k in ta if ta[k] != tb[k]]
    assert not differ, f"files differ: {differ}"


def render_args(corpus, out: Path, *extra: str) -> list[str]:
    return ["render", "--metadata", str(corpus.parquet_dir), "--dataset-paths", str(corpus.dataset_paths),
            "--output", str(out), "--no-progress", *extra]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def ledger_entries(out: Path) -> list[Path]:
    d = out / "_ledger"
    return [p for p in d.glob("*.json") if not p.name.startswith("_")] if d.is_dir() else []


@pytest.fixture(scope="module")
def toy_records(toy_corpus) -> dict[str, MixtureRecord]:
    return {r.mix_id: r for r in iter_records(toy_corpus.parquet_dir)}


# ---- the toy metadata exercises every edge of the formula --------------------------------------
def test_toy_metadata_covers_the_edge_cases(toy_corpus, toy_records):
    paths = DatasetPaths.from_json(toy_corpus.dataset_paths)
    rates, channels, formats = set(), set(), set()
    offsets = near_eof = crop_past_chunk = 0
    for rec in toy_records.values():
        for s in rec.sources:
            info = sf.info(str(paths.resolve(s.path)))
            rates.add(info.samplerate)
            channels.add(info.channels)
            formats.add(info.format)
            offsets += s.chunk_start_second > 0
            over = int(s.chunk_end_second * info.samplerate) - info.frames
            near_eof += 0 < over <= 10
            crop_past_chunk += (rec.split == "test"
                                and s.crop_end_second > s.chunk_end_second - s.chunk_start_second)
    assert {16000, 22050, 32000, 44100, 48000} <= rates
    assert {1, 2} <= channels
    assert {"WAV", "FLAC"} <= formats
    assert offsets > 0, "no chunk of a long file at an offset"
    assert near_eof > 0, "no chunk ending within 10 frames past EOF"
    assert crop_past_chunk > 0, "no crop past the end of its chunk"


def test_toy_metadata_crops_compressed_files_mid_file_and_near_chunk_ends(toy_corpus, toy_records):
    """Vorbis, Opus and MP3 sources whose chunks start mid-file, cropped near their chunk's end
    (train/validation) and past it (test): where seeking inside a chunk goes wrong."""
    paths = DatasetPaths.from_json(toy_corpus.dataset_paths)
    seen: dict[str, dict[str, int]] = {}
    for rec in toy_records.values():
        for s in rec.sources:
            info = sf.info(str(paths.resolve(s.path)))
            if info.format not in ("OGG", "MP3"):
                continue
            c = seen.setdefault(info.subtype, {"sources": 0, "mid_file": 0, "near_end": 0, "past_end": 0})
            span = s.chunk_end_second - s.chunk_start_second
            c["sources"] += 1
            c["mid_file"] += s.chunk_start_second > 0
            c["near_end"] += s.crop_start_second > 0 and 0 <= span - s.crop_end_second < 0.5
            c["past_end"] += s.crop_end_second > span
    wanted = {"VORBIS", "OPUS"} | ({"MPEG_LAYER_III"} if "MP3" in sf.available_formats() else set())
    assert wanted <= set(seen), seen
    for subtype in wanted:
        assert seen[subtype]["mid_file"] > 0, (subtype, seen)
    assert sum(c["near_end"] for c in seen.values()) >= 3, seen
    assert sum(c["past_end"] for c in seen.values()) >= 1, seen


# ---- fidelity --------------------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_reference_stems_match_the_straightforward_formula(toy_corpus, toy_records, toy_render):
    rendered = read_tar_samples(toy_render("webdataset", "reference"))
    assert sorted(rendered) == sorted(toy_records)
    ref = ReferenceRenderer(toy_corpus.dataset_paths)
    worst = 0.0
    for mix_id, rec in sorted(toy_records.items()):
        mix, stems = ref.render(rec)
        got = rendered[mix_id]
        assert got["sr"] == SR
        assert got["mix"].shape == (int(rec.target_duration * SR),)
        assert len(got["stems"]) == rec.num_sources
        worst = max(worst, float(np.max(np.abs(got["mix"] - mix))))
        for have, want in zip(got["stems"], stems):
            worst = max(worst, float(np.max(np.abs(have - want))))
    assert worst <= 1e-5, f"max |render - reference| = {worst}"


FIDELITY_FORMATS = (("WAV", "PCM_16", ".wav"), ("WAV", "FLOAT", ".wav"), ("FLAC", "PCM_16", ".flac"),
                    ("FLAC", "PCM_24", ".flac"), ("OGG", "VORBIS", ".ogg"), ("OGG", "OPUS", ".opus"),
                    ("MP3", "MPEG_LAYER_III", ".mp3"))
FIDELITY_RATES = (16000, 22050, 32000, 44100, 48000)
#: the rates libsndfile's Opus encoder accepts
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _fidelity_cases():
    for fmt in FIDELITY_FORMATS:
        for sr in FIDELITY_RATES:
            if fmt[1] == "OPUS" and sr not in OPUS_RATES:
                continue
            marks = [pytest.mark.skipif(fmt[0] not in sf.available_formats(),
                                        reason=f"this libsndfile cannot write {fmt[0]} (needs >= 1.1)")]
            yield pytest.param(fmt, sr, id=f"{fmt[1]}-{sr}", marks=marks)


def _transient_recording(sr: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    """Barks and clock ticks with silent gaps: content on which Vorbis and MP3 seeks go wrong."""
    from mixing.toy_sounds import clock, dog

    rng = np.random.default_rng(seed)
    y = 0.6 * dog(rng, sr, seconds) + 0.4 * clock(rng, sr, seconds)
    if channels == 1:
        return y
    return np.stack([y, 0.5 * np.roll(y, 5) + 0.2 * dog(rng, sr, seconds)], axis=1)


@pytest.mark.parametrize("fmt,sr", list(_fidelity_cases()))
def test_every_format_and_rate_renders_the_reference_signal(tmp_path, fmt, sr):
    """Reference-mode render == an independent whole-chunk implementation (seek to the chunk start,
    read the chunk, librosa soxr_hq, crop) within 1e-5, for every format x rate; crops in the
    middle of chunks at 0, near the end of chunks that start mid-file, and past a chunk's end."""
    from mixing.render import Renderer

    root = tmp_path / "corpus"
    root.mkdir()
    channels = 2 if sr == 48000 else 1
    name = f"rec{fmt[2]}"
    sf.write(str(root / name), _transient_recording(sr, 12.5, channels, sr), sr, format=fmt[0], subtype=fmt[1])
    frames = sf.info(str(root / name)).frames
    end = round(frames / sr, 4)
    dp = {"Rec": str(root)}
    # (chunk start, chunk end, crop start, crop end): a crop inside a chunk at 0, one ending 10 ms
    # before the end of a chunk that starts mid-file, and chunks ending at the end of the file
    # (where Vorbis seeks go wrong) with crops running past them into the zero padding
    spans = [(0.0, 6.0, 1.731, 5.731), (2.37, 8.37, 1.99, 5.99), (8.5, end, 0.5, 4.5),
             (round(end - 1.0, 4), end, 0.7, 4.7), (round(end - 0.8, 4), end, 0.3, 4.3),
             (round(end - 0.6, 4), end, 0.45, 4.45)]
    weights = (0.7, 1.3, 1.0, 2.1, 0.4, 1.6)
    sources = [SourceRecord(f"s{i % 3 + 1}", f"Rec/{name}", "Rec", cs0, cs1, c0, c1, 1.0, 0.0, w)
               for i, ((c0, c1, cs0, cs1), w) in enumerate(zip(spans, weights))]
    renderer, reference = Renderer(dp, stems="reference"), ReferenceRenderer(dp)
    diff = []
    for k in range(2):
        rec = MixtureRecord(f"fid{k}", "train", SR, 4.0, 3, tuple(sources[3 * k: 3 * k + 3]), 0.8, 0.95)
        want_mix, want_stems = reference.render(rec)
        got = renderer.render(rec)
        assert got.mix.shape == want_mix.shape == (4 * SR,)
        assert np.max(np.abs(want_stems)) > 0.05, "the crops hold no signal"
        diff += [float(np.max(np.abs(g - w))) for g, w in zip(got.stems, want_stems)]
        diff.append(float(np.max(np.abs(got.mix - want_mix))))
        if k == 1:  # the crops run past their chunks: zero padding after each chunk's end
            for stem, src in zip(got.stems, rec.sources):
                span = min(int(src.chunk_end_second * sr), frames) - int(src.chunk_start_second * sr)
                n = int(math.ceil(span * SR / sr)) - int(src.crop_start_second * SR)
                assert 0 < n < len(stem) and not np.any(stem[n + 1:]), src
    assert max(diff) <= 1e-5, f"max |render - reference| per stem and mix: {diff}"


@pytest.mark.slow  # end to end over the toy corpus
def test_decoded_chunk_cache_changes_nothing(toy_corpus, toy_records):
    """Compressed chunks are decoded once per renderer and reused: same samples as no cache."""
    from mixing.render import Renderer

    paths = DatasetPaths.from_json(toy_corpus.dataset_paths)
    compressed = [r for r in toy_records.values()
                  if any(sf.info(str(paths.resolve(s.path))).format in ("OGG", "MP3") for s in r.sources)]
    assert len(compressed) >= 5
    cached, uncached = Renderer(paths), Renderer(paths, chunk_cache_bytes=0)
    for rec in compressed + compressed:
        a, b = cached.render(rec), uncached.render(rec)
        np.testing.assert_array_equal(a.mix, b.mix)
        np.testing.assert_array_equal(a.stems, b.stems)
    assert cached.chunk_cache_stats["hits"] >= len(compressed)
    assert uncached.chunk_cache_stats["hits"] == 0
    small = Renderer(paths, chunk_cache_bytes=200_000)  # bounded: evicts, never exceeds the budget
    for rec in compressed:
        small.render(rec)
        assert small._chunk_bytes <= 200_000


@pytest.mark.slow  # end to end over the toy corpus
def test_consistent_stems_sum_to_the_mix(toy_records, toy_render):
    consistent = read_tar_samples(toy_render("webdataset", "consistent"))
    reference = read_tar_samples(toy_render("webdataset", "reference"))
    for mix_id, rec in toy_records.items():
        c = consistent[mix_id]
        total = np.sum(np.stack(c["stems"]).astype(np.float32), axis=0, dtype=np.float64)
        # float32 stems sum to the float32 mix up to float32 rounding
        assert np.max(np.abs(total - c["mix"])) <= 1e-6 * rec.num_sources
        np.testing.assert_array_equal(c["mix"], reference[mix_id]["mix"])
        gnf = rec.global_normalization_factor
        for cs, rs in zip(c["stems"], reference[mix_id]["stems"]):
            np.testing.assert_allclose(cs, rs * gnf, rtol=1e-6, atol=1e-7)
        assert c["json"]["hive_render"]["stem_mode"] == "consistent"
        assert c["json"]["hive_render"]["stem_scale"] == gnf


def test_sample_rate_option_renders_at_that_rate(toy_corpus, toy_records, tmp_path):
    out = tmp_path / "out16k"
    assert main(render_args(toy_corpus, out, "--split", "validation", "--num-sources", "2",
                            "--sample-rate", "16000", "--stems", "reference")) == 0
    got = read_tar_samples(out)
    ref = ReferenceRenderer(toy_corpus.dataset_paths)
    assert got
    for mix_id, d in got.items():
        rec = toy_records[mix_id]
        assert d["sr"] == 16000 and d["json"]["hive_render"]["sample_rate"] == 16000
        mix, stems = ref.render(rec, 16000)
        assert d["mix"].shape == (int(rec.target_duration * 16000),)
        assert np.max(np.abs(d["mix"] - mix)) <= 1e-5
        for have, want in zip(d["stems"], stems):
            assert np.max(np.abs(have - want)) <= 1e-5


@pytest.mark.slow  # end to end over the toy corpus
def test_parquet_output_loads_with_datasets(toy_records, toy_render, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = toy_render("parquet", "consistent")
    files = sorted(str(p) for p in out.rglob("*.parquet"))
    assert files
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == len(toy_records)
    assert isinstance(ds.features["mix"], datasets.Audio)
    raw = ds.cast_column("mix", datasets.Audio(decode=False))
    raw = raw.cast_column("sources", datasets.List(datasets.Audio(decode=False)))
    wds = read_tar_samples(toy_render("webdataset", "consistent"))
    for row in raw:
        rec = toy_records[row["mix_id"]]
        assert row["num_sources"] == rec.num_sources == len(row["sources"])
        assert row["mix"]["path"] == f"{rec.mix_id}.mix.wav"
        mix, sr = sf.read(io.BytesIO(row["mix"]["bytes"]), dtype="float64")
        assert sr == SR
        np.testing.assert_array_equal(mix, wds[rec.mix_id]["mix"])
        stems = [sf.read(io.BytesIO(s["bytes"]), dtype="float64")[0] for s in row["sources"]]
        assert np.max(np.abs(np.sum(stems, axis=0) - mix)) <= 1e-6 * rec.num_sources
        assert json.loads(row["render_json"])["mix_id"] == rec.mix_id
    try:
        import torchcodec  # noqa: F401
    except Exception:  # decoding through datasets.Audio needs torchcodec
        return
    first = ds[0]
    decoded = first["mix"]
    array = decoded["array"] if isinstance(decoded, dict) else decoded.get_all_samples().data.numpy()[0]
    np.testing.assert_allclose(np.asarray(array, dtype=np.float64), wds[first["mix_id"]]["mix"], atol=1e-6)


# ---- determinism: interruption, workers, ranks -----------------------------------------------------
@pytest.fixture(scope="module")
def baseline_small_shards(toy_corpus, tmp_path_factory) -> Path:
    """An uninterrupted single-process render with 2 mixtures per shard (many shards)."""
    out = tmp_path_factory.mktemp("baseline") / "out"
    assert main(render_args(toy_corpus, out, "--shard-size", "2", "--num-workers", "1")) == 0
    return out


@pytest.mark.slow
def test_kill_mid_render_then_resume_is_byte_identical(toy_corpus, baseline_small_shards, tmp_path):
    total = len(ledger_entries(baseline_small_shards))
    assert total >= 20
    env = subprocess_env()
    for attempt in range(5):
        out = tmp_path / f"killed{attempt}"
        cmd = [sys.executable, "-m", "mixing", *render_args(toy_corpus, out, "--shard-size", "2",
                                                              "--num-workers", "1")]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killed = False
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            done = len(ledger_entries(out))
            if 0 < done < total // 2:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
        proc.wait()
        if not killed:
            continue
        assert proc.returncode == -signal.SIGKILL
        partial = len(ledger_entries(out))
        assert 0 < partial < total
        assert not (out / "_summary.json").exists()
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        assert "already done" in rerun.stdout
        assert_same_tree(out, baseline_small_shards)
        return
    pytest.fail("the render finished before it could be killed mid-way in 5 attempts")


@pytest.mark.slow  # end to end over the toy corpus
def test_two_workers_give_identical_output(toy_corpus, baseline_small_shards, tmp_path):
    out = tmp_path / "workers2"
    assert main(render_args(toy_corpus, out, "--shard-size", "2", "--num-workers", "2")) == 0
    assert_same_tree(out, baseline_small_shards)


@pytest.mark.slow
def test_two_ranks_in_one_folder_equal_one_process(toy_corpus, baseline_small_shards, tmp_path):
    out = tmp_path / "ranks"
    env = subprocess_env()
    procs = [subprocess.Popen([sys.executable, "-m", "mixing",
                               *render_args(toy_corpus, out, "--shard-size", "2", "--rank", str(r),
                                            "--world-size", "2")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
    assert sorted(p.name for p in (out / "_ranks").iterdir()) == [
        "rank-00000-of-00002.json", "rank-00001-of-00002.json"]
    assert_same_tree(out, baseline_small_shards)


# ---- bad inputs ------------------------------------------------------------------------------------
def _tone(sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1234 * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def _mixture(mix_id: str, paths: list[str], chunk_end: float = 3.0) -> MixtureRecord:
    sources = tuple(SourceRecord(f"s{i + 1}", p, "Tone", 0.5, 1.5, 0.0, chunk_end, 1.0, 0.0, 0.5)
                    for i, p in enumerate(paths))
    return MixtureRecord(mix_id, "train", SR, 1.0, len(sources), sources, 0.9, 0.95)


@pytest.fixture
def bad_inputs(tmp_path):
    """A corpus with one good file and every kind of bad one, and JSONL metadata pointing at them."""
    inputs = tmp_path / "inputs"
    root = inputs / "corpus" / "sounds"
    root.mkdir(parents=True)
    sf.write(root / "good.wav", _tone(32000, 3.0), 32000, subtype="PCM_16")
    sf.write(root / "good.flac", _tone(48000, 3.0, 2), 48000, subtype="PCM_24")
    (root / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(20000))
    sf.write(root / "cut.wav", _tone(22050, 3.0), 22050, subtype="PCM_16")
    data = (root / "cut.wav").read_bytes()
    (root / "cut.wav").write_bytes(data[: len(data) // 2])  # ~1.5 s of a 3 s chunk left
    sf.write(root / "short.flac", _tone(16000, 2.0), 16000, subtype="PCM_16")  # 2 s file, 3 s chunk
    sf.write(root / "lies.flac", _tone(44100, 3.0), 44100, subtype="PCM_16")
    data = (root / "lies.flac").read_bytes()
    (root / "lies.flac").write_bytes(data[: len(data) // 2])  # STREAMINFO still claims 3 s
    outside = inputs / "outside.wav"
    sf.write(outside, _tone(16000, 3.0), 16000)
    (root / "escape.wav").symlink_to(outside)
    dp = inputs / "dataset_paths.json"
    dp.write_text(json.dumps({"Tones": "corpus/sounds"}))
    good = "Tones/good.wav"
    records = [
        _mixture("good_a", [good, "Tones/good.flac"]),
        _mixture("bad_missing", [good, "Tones/nope.wav"]),
        _mixture("bad_prefix", [good, "Unknown/good.wav"]),
        _mixture("bad_garbage", [good, "Tones/garbage.wav"]),
        _mixture("bad_cutwav", [good, "Tones/cut.wav"]),
        _mixture("bad_shortflac", [good, "Tones/short.flac"]),
        _mixture("bad_lies", [good, "Tones/lies.flac"]),
        _mixture("bad_symlink", [good, "Tones/escape.wav"]),
        _mixture("good_b", ["Tones/good.flac", good]),
        _mixture("good_a", ["Tones/good.flac", good]),  # a repeated key in the same shard
    ]
    meta = inputs / "meta.jsonl"
    write_jsonl(records, meta)
    invalid = records[0].to_flat_dict()
    invalid.update(mix_id="bad_chunk")
    invalid["sources"][1].update(chunk_start_second=2.0, chunk_end_second=2.0)
    dotdot = records[0].to_flat_dict()
    dotdot.update(mix_id="bad_dotdot")
    dotdot["sources"][1]["path"] = "Tones/../../outside.wav"
    with open(meta, "a") as fh:
        fh.write(json.dumps(invalid) + "\n" + json.dumps(dotdot) + "\n")
    return inputs, meta, dp


EXPECTED_FAILURES = {
    "bad_missing": ("missing_file", "Tones/nope.wav"),
    "bad_prefix": ("unknown_prefix", "Unknown/good.wav"),
    "bad_garbage": ("unreadable_audio", "Tones/garbage.wav"),
    "bad_cutwav": ("chunk_beyond_end", "Tones/cut.wav"),
    "bad_shortflac": ("chunk_beyond_end", "Tones/short.flac"),
    "bad_lies": ("unreadable_audio", "Tones/lies.flac"),
    "bad_symlink": ("unsafe_path", "Tones/escape.wav"),
}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_bad_inputs_fail_by_name_and_the_shard_still_renders(bad_inputs, tmp_path, monkeypatch, capsys, fmt):
    inputs, meta, dp = bad_inputs
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = work / "out"
    before = _snapshot(inputs)
    args = ["render", "--metadata", str(meta), "--dataset-paths", str(dp), "--output", str(out),
            "--format", fmt, "--no-progress"]
    assert main(args) == 1
    assert "failures:" in capsys.readouterr().out
    assert _snapshot(inputs) == before, "the render wrote into its inputs"
    assert [p.name for p in work.iterdir()] == ["out"], "the render wrote outside --output"

    failures = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    by_id = {f["mix_id"]: f for f in failures}
    assert len(by_id) == len(failures) == len(EXPECTED_FAILURES) + 3
    assert by_id["good_a"]["reason"] == "duplicate_mix_id"
    for mix_id, (reason, path) in EXPECTED_FAILURES.items():
        f = by_id[mix_id]
        assert (f["reason"], f["source"], f["path"]) == (reason, "s2", path), f
        assert f["message"]
    assert by_id["bad_chunk"]["reason"] == "invalid_record"
    assert by_id["bad_dotdot"]["reason"] in ("invalid_record", "unsafe_path")
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["mixtures"] == 2 and summary["shards"] == 1
    assert summary["failures_by_reason"] == {"chunk_beyond_end": 2, "duplicate_mix_id": 1, "invalid_record": 2,
                                             "missing_file": 1,
                                             "unknown_prefix": 1, "unreadable_audio": 2, "unsafe_path": 1}
    # the good mixtures of the same shard are there
    (shard,) = [p for p in out.rglob("*") if p.suffix in (".tar", ".parquet")]
    if fmt == "webdataset":
        assert sorted(read_tar_samples(out)) == ["good_a", "good_b"]
    else:
        import pyarrow.parquet as pq

        assert pq.read_table(shard, columns=["mix_id"]).column("mix_id").to_pylist() == ["good_a", "good_b"]
    # rerun: nothing to do, same failures, exit 0 only when failures are allowed
    assert main(args) == 1
    assert main(args + ["--allow-failures"]) == 0
    assert [p.name for p in work.iterdir()] == ["out"]
    assert (out / "_failures.jsonl").read_text().count("\n") == len(failures)


# ---- non-finite values, FIFOs, the render lock, worker processes -----------------------------------
def test_non_finite_audio_and_overflowing_levels_fail_as_non_finite(tmp_path, capsys):
    """NaN inside a crop, a weight overflowing float32 and a weight x global factor overflowing
    float64 pass validation but must never reach the shards: named failures, finite output."""
    root = tmp_path / "corpus"
    root.mkdir()
    sf.write(root / "good.wav", _tone(32000, 3.0), 32000, subtype="PCM_16")
    y = _tone(32000, 3.0)
    y[32000:32010] = np.nan  # inside the crop [0.5, 1.5) s of chunk [0, 3)
    sf.write(root / "nan.wav", y, 32000, subtype="FLOAT")
    dp = tmp_path / "dataset_paths.json"
    dp.write_text(json.dumps({"Tones": str(root)}))
    good = _mixture("good", ["Tones/good.wav", "Tones/good.wav"])
    nan = _mixture("nan_crop", ["Tones/good.wav", "Tones/nan.wav"])
    w32 = _mixture("weight_f32", ["Tones/good.wav", "Tones/good.wav"])
    w32 = MixtureRecord(w32.mix_id, w32.split, SR, 1.0, 2, (w32.sources[0], SourceRecord(
        "s2", "Tones/good.wav", "Tone", 0.5, 1.5, 0.0, 3.0, 1.0, 0.0, 1e300)), 0.9, 0.95)
    w64 = MixtureRecord("weight_f64", "train", SR, 1.0, 2, tuple(SourceRecord(
        f"s{i + 1}", "Tones/good.wav", "Tone", 0.5, 1.5, 0.0, 3.0, 1.0, 0.0, 1e200) for i in range(2)),
        1e200, 0.95)
    meta = tmp_path / "meta.jsonl"
    write_jsonl([good, nan, w32, w64], meta)
    out = tmp_path / "out"
    args = ["render", "--metadata", str(meta), "--dataset-paths", str(dp), "--output", str(out), "--no-progress"]
    assert main(args) == 1
    assert "non_finite=3" in capsys.readouterr().out
    failures = {f["mix_id"]: f for f in map(json.loads, (out / "_failures.jsonl").read_text().splitlines())}
    assert sorted(failures) == ["nan_crop", "weight_f32", "weight_f64"]
    assert {f["reason"] for f in failures.values()} == {"non_finite"}
    assert (failures["nan_crop"]["source"], failures["nan_crop"]["path"]) == ("s2", "Tones/nan.wav")
    assert "NaN or infinite" in failures["nan_crop"]["message"]
    assert (failures["weight_f32"]["source"], failures["weight_f32"]["path"]) == ("s2", "Tones/good.wav")
    assert "1e+300" in failures["weight_f32"]["message"] and "overflow" in failures["weight_f32"]["message"]
    assert "1e+200" in failures["weight_f64"]["message"]
    samples = read_tar_samples(out)
    assert sorted(samples) == ["good"]
    assert all(np.isfinite(x).all() for x in [samples["good"]["mix"], *samples["good"]["stems"]])
    # the stem mode does not matter: in reference mode the factor hits only the mix
    out2 = tmp_path / "out_ref"
    assert main(["render", "--metadata", str(meta), "--dataset-paths", str(dp), "--output", str(out2),
                 "--no-progress", "--stems", "reference"]) == 1
    reasons = [json.loads(x)["reason"] for x in (out2 / "_failures.jsonl").read_text().splitlines()]
    assert reasons == ["non_finite"] * 3


def test_a_fifo_source_fails_as_unreadable_without_hanging(tmp_path, capsys):
    from test_audio import FifoGuard

    root = tmp_path / "corpus"
    root.mkdir()
    sf.write(root / "good.wav", _tone(32000, 3.0), 32000, subtype="PCM_16")
    os.mkfifo(root / "pipe.wav")
    dp = tmp_path / "dataset_paths.json"
    dp.write_text(json.dumps({"Tones": str(root)}))
    meta = tmp_path / "meta.jsonl"
    write_jsonl([_mixture("good", ["Tones/good.wav", "Tones/good.wav"]),
                 _mixture("fifo", ["Tones/good.wav", "Tones/pipe.wav"])], meta)
    out = tmp_path / "out"
    with FifoGuard(root / "pipe.wav") as guard:
        rc = main(["render", "--metadata", str(meta), "--dataset-paths", str(dp), "--output", str(out),
                   "--no-progress"])
    assert not guard.unjammed, "the render blocked opening the FIFO"
    assert rc == 1
    (f,) = map(json.loads, (out / "_failures.jsonl").read_text().splitlines())
    assert (f["mix_id"], f["reason"], f["path"]) == ("fifo", "unreadable_audio", "Tones/pipe.wav")
    assert "FIFO" in f["message"]
    assert sorted(read_tar_samples(out)) == ["good"]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited (nobody reaped it yet)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_kill_9_of_a_render_leaves_no_worker_processes(toy_corpus, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mixing", *render_args(toy_corpus, out, "--shard-size", "2", "--num-workers", "2")]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            if len(workers) >= 2 and ledger_entries(out):
                break
            time.sleep(0.01)
        assert proc.poll() is None and len(workers) >= 2, "the render ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.05)
        survivors = [p for p in workers if _alive(p)]
        assert not survivors, f"worker processes {survivors} outlived their killed parent"
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    # the lock died with the process: the next render resumes
    rerun = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr


@pytest.mark.slow
def test_a_second_render_into_the_same_folder_is_refused_while_the_first_runs(
        toy_corpus, baseline_small_shards, tmp_path, capsys):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mixing", *render_args(toy_corpus, out, "--shard-size", "2")]
    first = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None and not ledger_entries(out):
            time.sleep(0.01)
        assert first.poll() is None, "the first render ended before the second started"
        rc = main(render_args(toy_corpus, out, "--shard-size", "2"))
        err = capsys.readouterr().err
        assert first.poll() is None, "the first render ended while the second ran: nothing was tested"
        assert rc == 2
        assert err.startswith("hive render: error: ") and err.count("\n") == 1, err
        assert f"process {first.pid}" in err and "another --output folder" in err
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert_same_tree(out, baseline_small_shards, exclude=("_ranks", "_locks"))
    assert main(render_args(toy_corpus, out, "--shard-size", "2")) == 0  # released when it ended
    assert "already done" in capsys.readouterr().out
    assert not (out / "_locks").exists(), "a finished render left its lock file"


def test_render_lock_refuses_the_same_rank_and_other_world_sizes(tmp_path):
    from mixing.render_job import RenderLock, RenderLockedError

    with RenderLock(tmp_path, 0, 2):
        with pytest.raises(RenderLockedError, match=f"process {os.getpid()}"):
            RenderLock(tmp_path, 0, 2).acquire()
        with RenderLock(tmp_path, 1, 2):  # the other rank of the same run is welcome
            pass
        with pytest.raises(RenderLockedError, match="different world sizes"):
            RenderLock(tmp_path, 2, 3).acquire()
    with RenderLock(tmp_path, 0, 1):  # released on exit
        pass
