"""``hive render --audio-format pcm16``: 16-bit PCM WAV members as the reference wrote them
(``soundfile.write(buf, x, sr, format="WAV")`` of the float64 samples: libsndfile's default WAV
subtype is PCM_16), with every clipped file counted in ``_warnings.jsonl`` and logged; ``hive
verify`` accepts such renders."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from mixing.cli import main as hive
from mixing.metadata_io import iter_records
from mixing.render import Renderer

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


def reference_wav(x: np.ndarray, sr: int) -> bytes:
    """What the reference's ``create_wav_bytes`` produced for these samples (its arrays are float64)."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(x, dtype=np.float64), sr, format="WAV")
    return buf.getvalue()


def tar_members(folder: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(folder.rglob("*.tar")):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                out[m.name] = tar.extractfile(m).read()
    return out


def parquet_members(folder: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(folder.rglob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            out[row["mix"]["path"]] = row["mix"]["bytes"]
            out.update({s["path"]: s["bytes"] for s in row["sources"]})
    return out


@pytest.fixture(scope="module")
def records(toy_corpus):
    return list(iter_records(toy_corpus.parquet_dir))


def clipped_count(x: np.ndarray) -> int:
    """Samples a signed 16-bit sample cannot hold: outside [-1, 1) (the range is [-32768, 32767] / 32768)."""
    x = np.asarray(x, dtype=np.float64)
    return int(np.sum(x >= 1.0) + np.sum(x < -1.0))


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
@pytest.mark.parametrize("stems", ["reference", "consistent"])
def test_pcm16_members_are_the_reference_quantisation_of_the_float_render(toy_corpus, toy_render, records,
                                                                          fmt, stems):
    out = toy_render(fmt, stems, "pcm16")
    members = tar_members(out) if fmt == "webdataset" else parquet_members(out)
    renderer = Renderer(toy_corpus.dataset_paths, stems=stems)
    checked, clipped = 0, {}
    for rec in records:
        r = renderer.render(rec)
        for name, x in [("mix", r.mix), *((f"s{i}", s) for i, s in enumerate(r.stems, 1))]:
            member = f"{rec.mix_id}.{name}.wav"
            data = members[member]
            info = sf.info(io.BytesIO(data))
            assert (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 1, r.sample_rate)
            assert data == reference_wav(x, r.sample_rate), member
            # and, independently of libsndfile: within one 16-bit step of the float samples,
            # saturated at full scale where they exceed it
            q, _ = sf.read(io.BytesIO(data), dtype="int16")
            assert q.shape == x.shape
            assert np.max(np.abs(q / 32768.0 - np.clip(x, -1.0, 32767 / 32768))) <= 1.0 / 32768 + 1e-12
            assert np.all(q[x >= 1.0] == 32767) and np.all(q[x < -1.0] == -32768)
            if clipped_count(x):
                clipped[member] = clipped_count(x)
            checked += 1
    assert checked == sum(r.num_sources + 1 for r in records)
    summary = json.loads((out / "_summary.json").read_text())
    if stems == "consistent":  # stems carry the global factor: nothing exceeds full scale
        assert not clipped and "warnings" not in summary and not (out / "_warnings.jsonl").exists()
        return
    # reference stems lack the global factor: the toy's clip, as the reference's files did (silently)
    warnings = [json.loads(line) for line in (out / "_warnings.jsonl").read_text().splitlines()]
    assert clipped and {w["member"]: w["clipped_samples"] for w in warnings} == clipped
    assert len(warnings) == len(clipped)  # one line per clipped file
    assert summary["warnings"] == len(clipped) and summary["clipped_samples"] == sum(clipped.values())
    assert summary["failures"] == 0


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_hive_verify_accepts_a_pcm16_render(toy_corpus, toy_render, tmp_path, capsys, fmt):
    out = toy_render(fmt, "consistent", "pcm16")
    report = tmp_path / "report.json"
    rc = hive(["verify", str(out), "--metadata", str(toy_corpus.parquet_dir), "--checksums", "--no-progress",
               "--report", str(report)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    rep = json.loads(report.read_text())
    assert rep["clean"] and rep["samples"] == sum(toy_corpus.num_mixtures.values())


def test_verify_reports_exactly_the_clipped_files(toy_corpus, toy_render, tmp_path):
    out = toy_render("webdataset", "reference", "pcm16")
    report = tmp_path / "report.json"
    rc = hive(["verify", str(out), "--no-progress", "--report", str(report)])
    rep = json.loads(report.read_text())
    warned = {json.loads(line)["member"] for line in (out / "_warnings.jsonl").read_text().splitlines()}
    problems = [p for s in rep["shard_reports"] for p in s["problems"]]
    assert rc != 0
    assert {p["member"] for p in problems if p["kind"] == "clipping"} == warned
    assert {p["kind"] for p in problems} <= {"clipping", "stems_mismatch"}
    assert {p["mix_id"] for p in problems} == {m.split(".")[0] for m in warned}


@pytest.mark.slow  # end to end over the toy corpus
def test_verify_flags_a_member_that_is_not_16_bit(toy_corpus, toy_render, tmp_path):
    import shutil

    out = tmp_path / "render"
    shutil.copytree(toy_render("webdataset", "reference", "pcm16"), out)
    path = sorted(out.rglob("*.tar"))[0]
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    name, data = next((n, d) for n, d in members if n.endswith(".s1.wav"))
    x, sr = sf.read(io.BytesIO(data), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    members = [(n, buf.getvalue() if n == name else d) for n, d in members]
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for n, d in members:
            info = tarfile.TarInfo(n)
            info.size = len(d)
            tar.addfile(info, io.BytesIO(d))
    report = tmp_path / "report.json"
    rc = hive(["verify", str(out), "--no-progress", "--report", str(report)])
    rep = json.loads(report.read_text())
    assert rc != 0 and not rep["clean"]
    problems = [p for s in rep["shard_reports"] for p in s["problems"]]
    assert any(p["kind"] == "wrong_format" and "FLOAT" in p["message"] and "PCM_16" in p["message"]
               for p in problems), problems


def test_clipped_files_are_counted_logged_and_saturate(toy_corpus, records, tmp_path, caplog, capsys):
    """Consistent stems do not clip on the toy; a source weighted x8 does: the warning manifest
    counts its clipped samples exactly, the log says so, the samples saturate at full scale, and
    the render still succeeds."""
    loud_ids = set()
    rows = []
    for rec in records[:6]:
        if len(loud_ids) < 2:
            src = dataclasses.replace(rec.sources[0], applied_weight=rec.sources[0].applied_weight * 8.0)
            rec = dataclasses.replace(rec, sources=(src, *rec.sources[1:]))
            loud_ids.add(rec.mix_id)
        rows.append(rec)
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps(r.to_flat_dict()) + "\n" for r in rows))
    out = tmp_path / "render"
    with caplog.at_level(logging.WARNING, logger="mixing.render_job"):
        rc = hive(["render", "--metadata", str(meta), "--dataset-paths", str(toy_corpus.dataset_paths),
                   "--output", str(out), "--stems", "consistent", "--audio-format", "pcm16", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    renderer = Renderer(toy_corpus.dataset_paths, stems="consistent")
    expected = {}
    for rec in rows:
        r = renderer.render(rec)
        for name, x in [("mix", r.mix), *((f"s{i}", s) for i, s in enumerate(r.stems, 1))]:
            n = clipped_count(x)
            if n:
                expected[f"{rec.mix_id}.{name}.wav"] = (n, x)
    assert expected and {k.split(".")[0] for k in expected} <= loud_ids
    warnings = [json.loads(line) for line in (out / "_warnings.jsonl").read_text().splitlines()]
    assert {w["member"]: w["clipped_samples"] for w in warnings} == {k: v[0] for k, v in expected.items()}
    assert all(w["reason"] == "clipped" and w["peak"] > 1.0 for w in warnings)
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["warnings"] == len(warnings) and summary["clipped_samples"] == sum(v[0] for v in expected.values())
    assert summary["failures"] == 0 and summary["mixtures"] == len(rows)
    assert any("clipped in 16-bit PCM" in r.getMessage() for r in caplog.records)
    assert f"warning: {len(warnings)} file(s) clipped" in printed
    members = tar_members(out)
    for member, (_, x) in expected.items():
        q, _ = sf.read(io.BytesIO(members[member]), dtype="int16")
        assert np.all(q[x >= 1.0] == 32767) and np.all(q[x < -1.0] == -32768)
        assert members[member] == reference_wav(x, sf.info(io.BytesIO(members[member])).samplerate)
