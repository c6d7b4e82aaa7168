"""``hive verify`` on real renders of the toy corpus: clean renders pass in every layout and stem
mode; each kind of corruption is found and named."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from mixing.cli import main
from mixing.shards import float_wav_bytes
from mixing.verify import verify_output


# ---- helpers -----------------------------------------------------------------------------------
def run_verify(folder: Path, *extra: str, tmp_path: Path) -> tuple[int, dict]:
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    rc = main(["verify", str(folder), "--no-progress", "--report", str(report), *extra])
    return rc, json.loads(report.read_text())


def copy_render(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "render"
    shutil.copytree(src, dst)
    return dst


def first_tar(folder: Path) -> Path:
    return sorted(folder.rglob("*.tar"))[0]


def rewrite_tar(path: Path, edit) -> None:
    """Rewrite a tar with ``edit(list of (name, bytes)) -> list of (name, bytes)``."""
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    members = edit(members)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def first_key(members: list[tuple[str, bytes]]) -> str:
    return members[0][0].split(".")[0]


# ---- clean renders -----------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
@pytest.mark.parametrize("stems", ["consistent", "reference"])
def test_clean_render_verifies(toy_corpus, toy_render, tmp_path, capsys, fmt, stems):
    out = toy_render(fmt, stems)
    rc, report = run_verify(out, "--metadata", str(toy_corpus.parquet_dir), "--checksums", tmp_path=tmp_path)
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "OK: no problem found" in printed
    assert report["clean"] and report["formats"] == [fmt]
    assert report["samples"] == sum(toy_corpus.num_mixtures.values())
    assert report["metadata_checked"] and report["checksums_checked"]
    assert all(s["clean"] for s in report["shard_reports"])


@pytest.mark.slow  # end to end over the toy corpus
def test_clean_flac_render_verifies(toy_corpus, toy_render, tmp_path):
    out = toy_render("webdataset", "consistent", "flac")
    rc, report = run_verify(out, "--metadata", str(toy_corpus.parquet_dir), tmp_path=tmp_path)
    assert rc == 0, report["problem_counts"]
    assert report["samples"] + sum(report["render_failures_by_reason"].values()) == sum(
        toy_corpus.num_mixtures.values())


@pytest.mark.slow  # end to end over the toy corpus
def test_flac_reference_render_refuses_clipping_samples_whole(toy_corpus, toy_render, tmp_path):
    """Reference stems exceed 1.0 (no global factor): 24-bit FLAC refuses those samples by name,
    and no partial sample is left in a shard."""
    out = toy_render("webdataset", "reference", "flac")
    failures = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    assert failures and {f["reason"] for f in failures} == {"would_clip"}
    rc, report = run_verify(out, "--metadata", str(toy_corpus.parquet_dir), "--checksums", tmp_path=tmp_path)
    assert rc == 0, report["problem_counts"]
    assert report["render_failures_by_reason"] == {"would_clip": len(failures)}
    assert report["samples"] + len(failures) == sum(toy_corpus.num_mixtures.values())


def test_partial_render_is_checked_against_the_right_subset(toy_corpus, tmp_path):
    out = tmp_path / "val"
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
                 str(toy_corpus.dataset_paths), "--output", str(out), "--split", "validation",
                 "--no-progress"]) == 0
    rc, report = run_verify(out, "--metadata", str(toy_corpus.parquet_dir), tmp_path=tmp_path)
    assert rc == 1
    assert report["problem_counts"]["not_rendered"] == (toy_corpus.num_mixtures["train"]
                                                        + toy_corpus.num_mixtures["test"])
    rc, report = run_verify(out, "--metadata", str(toy_corpus.parquet_dir), "--split", "validation",
                            tmp_path=tmp_path)
    assert rc == 0, report["problem_counts"]


@pytest.mark.slow  # end to end over the toy corpus
def test_verify_output_api_with_workers(toy_render):
    out = toy_render("webdataset", "consistent")
    serial = verify_output(out, progress=False)
    parallel = verify_output(out, progress=False, num_workers=2)
    assert serial.clean and parallel.clean
    assert len(serial.shards) == len(list(out.rglob("*.tar")))
    assert [s.to_dict() for s in serial.shards] == [s.to_dict() for s in parallel.shards]


# ---- corruption: WebDataset --------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_removed_member_is_found(toy_render, tmp_path, capsys):
    out = copy_render(toy_render("webdataset", "consistent"), tmp_path)
    tar = first_tar(out)
    removed = {}

    def drop_s2(members):
        key = first_key(members)
        removed["name"] = f"{key}.s2.wav"
        return [(n, d) for n, d in members if n != removed["name"]]

    rewrite_tar(tar, drop_s2)
    rc, report = run_verify(out, tmp_path=tmp_path)
    assert rc == 1
    assert "missing_member" in capsys.readouterr().out
    bad = next(s for s in report["shard_reports"] if not s["clean"])
    assert bad["shard"] == tar.relative_to(out).as_posix()
    assert bad["problem_counts"]["missing_member"] == 1
    assert any(p["kind"] == "missing_member" and p["member"] == removed["name"] for p in bad["problems"])
    # the rewritten tar no longer matches its ledger entry
    assert bad["problem_counts"]["ledger_mismatch"] >= 1


@pytest.mark.slow  # end to end over the toy corpus
def test_scaled_stem_is_found(toy_render, tmp_path):
    out = copy_render(toy_render("webdataset", "consistent"), tmp_path)
    tar = first_tar(out)

    def scale_s1(members):
        key = first_key(members)
        edited = []
        for name, data in members:
            if name == f"{key}.s1.wav":
                x, sr = sf.read(io.BytesIO(data), dtype="float32")
                data = float_wav_bytes(x * np.float32(1.01), sr)
            edited.append((name, data))
        return edited

    rewrite_tar(tar, scale_s1)
    rc, report = run_verify(out, "--checksums", tmp_path=tmp_path)
    assert rc == 1
    counts = report["problem_counts"]
    assert counts["stems_mismatch"] == 1
    assert counts["checksum_mismatch"] == 1
    assert "missing_member" not in counts


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("stems", ["consistent", "reference"])
def test_scaled_mix_is_found_in_both_modes(toy_render, tmp_path, stems):
    out = copy_render(toy_render("webdataset", stems), tmp_path)

    def double_mix(members):
        key = first_key(members)
        edited = []
        for name, data in members:
            if name == f"{key}.mix.wav":
                x, sr = sf.read(io.BytesIO(data), dtype="float32")
                data = float_wav_bytes(x * np.float32(2.0), sr)  # peak 1.9: clips too
            edited.append((name, data))
        return edited

    rewrite_tar(first_tar(out), double_mix)
    rc, report = run_verify(out, tmp_path=tmp_path)
    assert rc == 1
    assert report["problem_counts"]["stems_mismatch"] == 1
    assert report["problem_counts"]["clipping"] == 1


@pytest.mark.slow  # end to end over the toy corpus
def test_mismatched_json_is_found(toy_corpus, toy_render, tmp_path):
    out = copy_render(toy_render("webdataset", "consistent"), tmp_path)

    def edit_json(members):
        edited = []
        done = set()
        for name, data in members:
            if name.endswith(".json") and not done:
                obj = json.loads(data)
                obj["sources"][0]["crop_start_second"] += 0.25  # no longer the metadata record
                data = json.dumps(obj).encode()
                done.add("crop")
            elif name.endswith(".json") and done == {"crop"}:
                obj = json.loads(data)
                obj["mix_id"] = obj["mix_id"] + "x"  # key no longer matches
                data = json.dumps(obj).encode()
                done.add("key")
            edited.append((name, data))
        return edited

    rewrite_tar(first_tar(out), edit_json)
    rc, report = run_verify(out, "--metadata", str(toy_corpus.parquet_dir), tmp_path=tmp_path)
    assert rc == 1
    counts = report["problem_counts"]
    assert counts["metadata_mismatch"] == 2
    assert counts["key_mismatch"] == 1
    assert "not_in_metadata" not in counts  # samples are identified by their member key
    messages = sorted(p["message"] for p in report["problems"] if p["kind"] == "metadata_mismatch")
    assert any("sources[0].crop_start_second" in m for m in messages)
    assert any(m.endswith("in mix_id") for m in messages)


@pytest.mark.slow  # end to end over the toy corpus
def test_broken_json_wrong_length_stray_and_duplicate_members(toy_render, tmp_path):
    out = copy_render(toy_render("webdataset", "consistent"), tmp_path)

    def edit(members):
        key = first_key(members)
        edited = []
        for name, data in members:
            if name == f"{key}.s1.wav":
                x, sr = sf.read(io.BytesIO(data), dtype="float32")
                data = float_wav_bytes(x[:-100], sr)
            edited.append((name, data))
        edited.insert(1, (f"{key}.s9.wav", members[1][1]))
        edited.insert(1, (f"{key}.notes.txt", b"hello"))
        edited.append(members[-1])  # the last sample's JSON twice
        return edited

    rewrite_tar(first_tar(out), edit)
    second = sorted(out.rglob("*.tar"))[1]
    rewrite_tar(second, lambda ms: [(n, b"{not json" if n.endswith(".json") else d) for n, d in ms])
    rc, report = run_verify(out, tmp_path=tmp_path)
    assert rc == 1
    counts = report["problem_counts"]
    assert counts["wrong_length"] == 1
    assert counts["stray_member"] == 2
    assert counts["duplicate_member"] == 1
    assert counts["bad_json"] >= 1


@pytest.mark.slow  # end to end over the toy corpus
def test_leftover_temp_file_and_missing_shard_are_found(toy_render, tmp_path):
    out = copy_render(toy_render("webdataset", "consistent"), tmp_path)
    tar = first_tar(out)
    (tar.parent / f".{tar.name}.tmp-12345").write_bytes(b"partial")
    sorted(out.rglob("*.tar"))[-1].unlink()
    rc, report = run_verify(out, tmp_path=tmp_path)
    assert rc == 1
    counts = report["problem_counts"]
    assert counts["temp_file"] == 1
    assert counts["missing_shard"] == 1
    assert counts["summary_mismatch"] == 1


@pytest.mark.slow  # end to end over the toy corpus
def test_duplicate_sample_across_shards(toy_render, tmp_path):
    out = copy_render(toy_render("webdataset", "consistent"), tmp_path)
    tars = sorted(out.rglob("*.tar"))
    with tarfile.open(tars[0]) as t:
        first = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
    key = first_key(first)
    sample = [(n, d) for n, d in first if n.split(".")[0] == key]
    same_group = [t for t in tars if t.parent == tars[0].parent and t != tars[0]]
    target = same_group[0] if same_group else tars[0]
    rewrite_tar(target, lambda ms: ms + sample)
    rc, report = run_verify(out, tmp_path=tmp_path)
    assert rc == 1
    assert report["problem_counts"]["duplicate_sample"] >= 1


# ---- corruption: Parquet -------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_parquet_row_missing_a_source_is_found(toy_render, tmp_path):
    out = copy_render(toy_render("parquet", "consistent"), tmp_path)
    part = sorted(out.rglob("*.parquet"))[0]
    pf = pq.ParquetFile(part)
    table = pf.read()
    rows = table.to_pylist()
    rows[0]["sources"] = rows[0]["sources"][:-1]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), part)
    rc, report = run_verify(out, tmp_path=tmp_path)
    assert rc == 1
    counts = report["problem_counts"]
    assert counts["missing_member"] == 1
    assert counts["ledger_mismatch"] >= 1


@pytest.mark.slow  # end to end over the toy corpus
def test_parquet_column_disagreeing_with_json_is_found(toy_render, tmp_path):
    out = copy_render(toy_render("parquet", "reference"), tmp_path)
    part = sorted(out.rglob("*.parquet"))[0]
    table = pq.read_table(part)
    rows = table.to_pylist()
    rows[0]["global_normalization_factor"] *= 2
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), part)
    rc, report = run_verify(out, tmp_path=tmp_path)
    assert rc == 1
    assert report["problem_counts"]["column_mismatch"] == 1


def test_verify_refuses_a_missing_folder(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_empty_folder_is_not_clean(tmp_path):
    (tmp_path / "empty").mkdir()
    rc, report = run_verify(tmp_path / "empty", tmp_path=tmp_path)  # the report lies outside the folder
    assert rc == 1 and report["problem_counts"] == {"no_shards": 1}
