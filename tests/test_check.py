"""``hive check`` on real files (the toy corpus with files deleted, corrupted and truncated), and
the fast validation paths it relies on, checked against the row-by-row path they replace."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

import mixing.validation as validation
from mixing.audio import chunk_frames
from mixing.check import check_corpora
from mixing.cli import main
from mixing.corpora import DatasetPaths
from mixing.errors import ChunkOutOfRangeError, InvalidRecordError
from mixing.metadata import HUB_ARROW_SCHEMA, SOURCE_FIELDS, SOURCE_STRING_FIELDS, records_to_arrow
from mixing.metadata_io import iter_records, open_metadata, write_parquet
from mixing.toy import build_toy_corpus
from mixing.validation import ValidationReport, fast_valid_mask, parse_mixture

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """The pristine toy corpus (never modified: tests that break files work on a copy)."""
    return build_toy_corpus(tmp_path_factory.mktemp("toy") / "toy")


def _copy(toy, dest: Path) -> Path:
    shutil.copytree(toy.root, dest)
    return dest


def _records(toy_root: Path, split=None):
    return list(iter_records(toy_root / "metadata" / "parquet", split=split))


@pytest.fixture(scope="session")
def broken(toy, tmp_path_factory):
    """A copy with two files deleted, one overwritten with garbage and one truncated."""
    root = _copy(toy, tmp_path_factory.mktemp("broken") / "toy")
    records = _records(root)
    paths = DatasetPaths.from_json(root / "dataset_paths.json")
    by_prefix = defaultdict(list)
    for p in sorted({s.path for r in records for s in r.sources}):
        by_prefix[p.split("/", 1)[0]].append(p)
    missing = {by_prefix["AudioSet"][0], by_prefix["DCASE_real"][1]}
    unreadable = {by_prefix["FSD50K"][0]}
    truncated = by_prefix["VGGSound"][0]
    for p in missing:
        paths.resolve(p).unlink()
    paths.resolve(next(iter(unreadable))).write_bytes(b"this is not audio " * 50)
    local = paths.resolve(truncated)
    info = sf.info(str(local))
    y, sr = sf.read(str(local))
    sf.write(str(local), y[: len(y) // 3], sr, format=info.format, subtype=info.subtype)
    return {"root": root, "records": records, "missing": missing, "unreadable": unreadable,
            "truncated": truncated, "paths": paths}


def _run(tmp_path, metadata, dataset_paths, *extra, name="report.json"):
    out = tmp_path / name
    rc = main(["check", "--metadata", str(metadata), "--dataset-paths", str(dataset_paths),
               "--report", str(out), "--no-progress", *extra])
    return rc, json.loads(out.read_text())


def _expected(records, broken_files: set[str], paths: DatasetPaths):
    """Independent computation: per split x n, total and renderable mixtures; beyond-end refs."""
    info = {}
    counts = defaultdict(lambda: defaultdict(lambda: {"total": 0, "renderable": 0}))
    beyond = Counter()
    for rec in records:
        ok = True
        for s in rec.sources:
            if s.path in broken_files:
                ok = False
                continue
            if s.path not in info:
                info[s.path] = sf.info(str(paths.resolve(s.path)))
            i = info[s.path]
            try:
                chunk_frames(s.chunk_start_second, s.chunk_end_second, i.samplerate, i.frames)
            except ChunkOutOfRangeError:
                ok = False
                beyond[s.prefix] += 1
        cell = counts[rec.split][f"{rec.num_sources}mix"]
        cell["total"] += 1
        cell["renderable"] += ok
    return {k: dict(v) for k, v in counts.items()}, beyond


# ---- hive check -----------------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_broken_corpus_is_reported_exactly(broken, tmp_path, capsys):
    rc, rep = _run(tmp_path, broken["root"] / "metadata" / "parquet", broken["root"] / "dataset_paths.json",
                   "--examples", "100")
    assert rc == 1
    assert rep["ok"] is False
    found = defaultdict(set)
    for p in rep["prefixes"].values():
        for reason, exs in p["examples"].items():
            if reason != "chunk_beyond_end":
                found[reason] |= set(exs)
    assert found == {"missing_file": broken["missing"], "unreadable_audio": broken["unreadable"]}

    # per-prefix counts against the metadata itself
    refs = defaultdict(set)
    for r in broken["records"]:
        for s in r.sources:
            refs[s.prefix].add(s.path)
    assert set(rep["prefixes"]) == set(refs)
    for prefix, files in refs.items():
        p = rep["prefixes"][prefix]
        n_missing = len(files & broken["missing"])
        n_unreadable = len(files & broken["unreadable"])
        assert p["referenced"] == len(files)
        assert (p["missing_file"], p["unreadable_audio"]) == (n_missing, n_unreadable), prefix
        assert p["present"] == len(files) - n_missing - n_unreadable
        assert p["unknown_prefix"] == p["unsafe_path"] == 0
    assert rep["totals"]["unique_files"] == sum(len(f) for f in refs.values())
    assert rep["totals"]["source_references"] == sum(r.num_sources for r in broken["records"])

    # renderable mixtures per split x n, and the truncated file's chunks
    expected, beyond = _expected(broken["records"], broken["missing"] | broken["unreadable"], broken["paths"])
    assert rep["mixtures"] == expected
    assert beyond and set(beyond) == {"VGGSound"}
    assert {k: v["chunk_beyond_end"] for k, v in rep["prefixes"].items() if v["chunk_beyond_end"]} == dict(beyond)
    assert {e["path"] for e in rep["prefixes"]["VGGSound"]["examples"]["chunk_beyond_end"]} == {broken["truncated"]}
    assert rep["totals"]["renderable"] < rep["totals"]["mixtures"] == len(broken["records"])
    out = capsys.readouterr().out
    assert "NOT READY" in out and next(iter(broken["missing"])) in out


def test_examples_are_capped(broken, tmp_path):
    _, rep = _run(tmp_path, broken["root"] / "metadata" / "parquet", broken["root"] / "dataset_paths.json",
                  "--examples", "0")
    assert all(not p["examples"] for p in rep["prefixes"].values())
    assert rep["totals"]["missing_file"] == 2 and rep["totals"]["unreadable_audio"] == 1


def test_legacy_json_and_parquet_agree(broken, tmp_path):
    _, a = _run(tmp_path, broken["root"] / "metadata" / "parquet", broken["root"] / "dataset_paths.json",
                name="a.json")
    _, b = _run(tmp_path, broken["root"] / "metadata" / "legacy", broken["root"] / "dataset_paths.json",
                "--jobs", "1", name="b.json")
    for key in ("prefixes", "mixtures", "totals"):
        assert a[key] == b[key]


def test_intact_corpus_exits_0(toy, tmp_path, capsys):
    rc, rep = _run(tmp_path, toy.parquet_dir, toy.dataset_paths)
    assert rc == 0 and rep["ok"] is True and rep["problems"] == []
    t = rep["totals"]
    assert t["mixtures"] == t["renderable"] == sum(toy.num_mixtures.values())
    assert t["present"] == t["unique_files"] > 0
    assert t["missing_file"] == t["unreadable_audio"] == t["chunk_beyond_end"] == t["invalid_records"] == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-2].startswith("OK:")


def test_split_restricts(broken, tmp_path):
    rc, rep = _run(tmp_path, broken["root"] / "metadata" / "parquet", broken["root"] / "dataset_paths.json",
                   "--split", "validation")
    val = [r for r in broken["records"] if r.split == "validation"]
    assert list(rep["mixtures"]) == ["validation"]
    assert rep["totals"]["mixtures"] == len(val) > 0
    assert rep["totals"]["unique_files"] == len({s.path for r in val for s in r.sources})
    expected, _ = _expected(val, broken["missing"] | broken["unreadable"], broken["paths"])
    assert rep["mixtures"] == expected
    assert rc == (0 if rep["totals"]["renderable"] == len(val) and rep["totals"]["missing_file"] == 0
                  and rep["totals"]["unreadable_audio"] == 0 and rep["totals"]["chunk_beyond_end"] == 0 else 1)


def test_num_sources_restricts(toy, tmp_path):
    rc, rep = _run(tmp_path, toy.parquet_dir, toy.dataset_paths, "--num-sources", "3", "--split", "train")
    assert rc == 0
    assert rep["mixtures"] == {"train": {"3mix": {"total": 12, "renderable": 12}}}


@pytest.mark.slow  # end to end over the toy corpus
def test_unknown_prefix_unsafe_paths_and_escaping_symlink(toy, tmp_path, capsys):
    root = _copy(toy, tmp_path / "toy")
    records = _records(root)
    # an unknown prefix in two mixtures, a lexically unsafe path in one, a symlink escaping its root
    outside = tmp_path / "outside.wav"
    sf.write(str(outside), np.zeros(44100), 44100)
    (root / "escape_root").mkdir()
    os.symlink(outside, root / "escape_root" / "link.wav")
    mapping = json.loads((root / "dataset_paths.json").read_text())
    mapping["Escape"] = "escape_root"
    (root / "dataset_paths.json").write_text(json.dumps(mapping))

    def swap(rec, j, path):
        srcs = list(rec.sources)
        srcs[j] = srcs[j].replace(path=path, chunk_start_second=0.0, chunk_end_second=1.0)
        return rec.replace(sources=tuple(srcs))

    rel = records[0].sources[0].path.split("/", 1)[1]
    records[0] = swap(records[0], 0, "AudioSett/" + rel)
    records[1] = swap(records[1], 1, "AudioSett/other.wav")
    records[2] = swap(records[2], 0, "AudioSet/../../outside.wav")
    records[3] = swap(records[3], 0, "Escape/link.wav")
    meta = tmp_path / "meta.parquet"
    write_parquet(records, meta)

    rc, rep = _run(tmp_path, meta, root / "dataset_paths.json", "--examples", "10")
    assert rc == 1
    assert rep["unknown_prefixes"] == ["AudioSett"]
    assert rep["known_prefixes"] == sorted(mapping)
    p = rep["prefixes"]["AudioSett"]
    assert p["known"] is False and p["referenced"] == p["unknown_prefix"] == 2 and p["present"] == 0
    assert sorted(p["examples"]["unknown_prefix"]) == sorted(["AudioSett/" + rel, "AudioSett/other.wav"])
    e = rep["prefixes"]["Escape"]
    assert (e["referenced"], e["unsafe_path"], e["present"]) == (1, 1, 0)
    assert e["examples"] == {"unsafe_path": ["Escape/link.wav"]}
    assert rep["totals"]["invalid_records"] == 1 == rep["totals"]["refused_metadata_paths"]
    assert rep["invalid_records_by_field"] == {"sources[*].path": 1}
    assert "AudioSet/../../outside.wav" in rep["refused_metadata_examples"][0]["path"]
    assert rep["totals"]["mixtures"] == len(records) - 1
    assert rep["totals"]["renderable"] == len(records) - 4
    out = capsys.readouterr().out
    assert "unknown prefix 'AudioSett' (did you mean AudioSet?)" in out
    assert "known prefixes: " + ", ".join(sorted(mapping)) in out


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--metadata", "--dataset-paths", "--split", "--num-sources", "--report", "--examples", "--jobs"):
        assert flag in out


def test_missing_required_argument_is_a_usage_error(capsys):
    assert main(["check", "--metadata", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hive check: error: ") and "--dataset-paths" in err and err.count("\n") == 1


def test_api_threads_do_not_change_the_result(broken):
    kw = dict(progress=False, examples=3)
    a = check_corpora(broken["root"] / "metadata" / "parquet", broken["root"] / "dataset_paths.json", jobs=1, **kw)
    b = check_corpora(broken["root"] / "metadata" / "parquet", broken["root"] / "dataset_paths.json", jobs=4, **kw)
    da, db = a.to_dict(), b.to_dict()
    da.pop("timings"), db.pop("timings")
    assert da == db and not a.ok
    assert a.count("missing_file") == 2 and a.renderable_mixtures < a.total_mixtures


def test_no_matching_mixture_is_not_ok(toy):
    rep = check_corpora(toy.parquet_dir, toy.dataset_paths, split="test", num_sources=1, progress=False)
    assert rep.total_mixtures == 0 and not rep.ok
    assert any("no valid mixture" in p for p in rep.problems())


# ---- the fast paths against the row-by-row path ---------------------------------------------------
_BAD_STRINGS = ["", "a\x00b", "a\tb", "AudioSet/../a.wav", "./a.wav", "AudioSet/./a.wav", "C:/a.wav",
                "AudioSet\\a.wav", "/AudioSet/a.wav", "AudioSet/a/", "AudioSet", "é/ü.wav", "AudioSet//a"]
_BAD_FLOATS = [math.nan, math.inf, -math.inf, -1.0, -0.0, 0.0, 1e308, 5e3]


def _fuzz_rows(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        k = rnd.choice([1, 2, 3, 4, 5, 3, 0, 6])
        src = {f: [] for f in SOURCE_FIELDS}
        for j in range(k):
            rms, snr = rnd.uniform(0.05, 2.0), rnd.uniform(-10, 10)
            cs, crs = rnd.uniform(0, 20), rnd.uniform(0, 2)
            path = f"{rnd.choice(['AudioSet', 'VGGSound'])}/d/f{rnd.randrange(50)}.wav"
            vals = {"source_id": f"s{j + 1}", "path": path,
                    "label": rnd.choice(["Dog", "Rain", "Church bell"]), "crop_start_second": crs,
                    "crop_end_second": crs + 4.0, "chunk_start_second": cs, "chunk_end_second": cs + 4.0,
                    "rms_gain": rms, "snr_db": snr, "applied_weight": rms * 10 ** (snr / 20)}
            for f in SOURCE_FIELDS:
                src[f].append(vals[f])
        row = {"mix_id": f"mix_{i:05d}", "split": rnd.choice(["train", "validation", "test"]),
               "sample_rate": 44100, "target_duration": 4.0, "num_sources": k, "sources": src,
               "global_normalization_factor": rnd.uniform(0.5, 1.0), "final_max_amplitude": 0.9}
        for _ in range(rnd.choice([0, 0, 0, 1, 1, 2])):
            m = rnd.randrange(13)
            f = rnd.choice(SOURCE_FIELDS)
            if m == 0:
                row["mix_id"] = rnd.choice(["a.b", "a b", "a\u2003b", "", "x" * 300, None, "a/b", "ok-ID_1"])
            elif m == 1:
                row["split"] = rnd.choice(["val", "dev", "Train", "bad split", "", None, "extra_split"])
            elif m == 2:
                row["sample_rate"] = rnd.choice([0, -1, 2_000_000, None, 16000])
            elif m == 3:
                key = rnd.choice(["target_duration", "global_normalization_factor", "final_max_amplitude"])
                row[key] = rnd.choice(_BAD_FLOATS + [None])
            elif m == 4:
                row["num_sources"] = rnd.choice([None, k + 1, k - 1])
            elif m == 5:
                row["sources"] = None
            elif m == 6:
                src[f] = None
            elif m == 7 and src[f]:
                src[f] = src[f][:-1]
            elif m == 8 and src[f]:
                j = rnd.randrange(len(src[f]))
                src[f][j] = None
            elif m in (9, 10) and src[f]:
                j = rnd.randrange(len(src[f]))
                src[f][j] = rnd.choice(_BAD_STRINGS) if f in SOURCE_STRING_FIELDS else rnd.choice(_BAD_FLOATS)
            elif m == 11 and src["applied_weight"]:
                j = rnd.randrange(len(src["applied_weight"]))
                src["applied_weight"][j] *= rnd.choice([1.0004, 1.0006, 1.002, 0.9, 1e6])
            elif m == 12 and src["rms_gain"] and src["applied_weight"]:  # negative gain, consistent weight
                j = rnd.randrange(min(len(src["rms_gain"]), len(src["applied_weight"])))
                if src["rms_gain"][j] is not None and src["applied_weight"][j] is not None:
                    src["rms_gain"][j] = -src["rms_gain"][j]
                    src["applied_weight"][j] = -src["applied_weight"][j]
        rows.append(row)
    return rows


def _variant_schema() -> pa.Schema:
    """Not the exact Hub schema, but one the fast path takes: int64 rate, float32 / large_string
    children, no num_sources column, an extra column."""
    src = pa.struct([pa.field(f, pa.list_(pa.large_string()) if f in SOURCE_STRING_FIELDS else pa.list_(pa.float32()))
                     for f in SOURCE_FIELDS] + [pa.field("extra_child", pa.list_(pa.int32()))])
    return pa.schema([pa.field("mix_id", pa.large_string()), pa.field("split", pa.string()),
                      pa.field("sample_rate", pa.int64()), pa.field("target_duration", pa.float64()),
                      pa.field("sources", src), pa.field("global_normalization_factor", pa.float64()),
                      pa.field("final_max_amplitude", pa.float64()),
                      pa.field("note", pa.string())])


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("variant", ["hub", "variant"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arrow_batches_equal_records(tmp_path, variant, seed):
    rows = _fuzz_rows(1500, seed)
    if variant == "hub":
        schema = HUB_ARROW_SCHEMA
    else:
        schema = _variant_schema()
        for r in rows:
            r.pop("num_sources")
            r["note"] = "n"
            if r["sources"] is not None:
                col = next((c for c in r["sources"].values() if c is not None), [])
                r["sources"]["extra_child"] = [1] * len(col)
    path = tmp_path / "fuzz.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=400)
    src = open_metadata(path)
    for split, n in ((None, None), ("validation", None), ("val", 3), (None, 2)):
        r1, r2 = ValidationReport(max_examples=10_000), ValidationReport(max_examples=10_000)
        recs = list(src.records(split, n, on_error="skip", report=r1))
        batches = list(src.arrow_batches(split, n, on_error="skip", report=r2))
        assert r1.to_dict() == r2.to_dict()
        assert r1.valid > 20 and r1.invalid > 20
        if split is None and n is None:
            assert r1.invalid > 100 and r1.valid > 100 and r1.warnings_by_field
        got = pa.Table.from_batches(batches, schema=HUB_ARROW_SCHEMA)
        assert got.equals(records_to_arrow(recs))
    # on_error="raise": the same first error
    with pytest.raises(InvalidRecordError) as e1:
        list(src.records(on_error="raise"))
    with pytest.raises(InvalidRecordError) as e2:
        list(src.arrow_batches(on_error="raise"))
    assert str(e1.value) == str(e2.value)


def test_fast_mask_only_accepts_rows_that_parse_cleanly():
    rows = _fuzz_rows(3000, 7)
    batch = pa.RecordBatch.from_pylist(rows, schema=HUB_ARROW_SCHEMA)
    mask = fast_valid_mask(batch)
    assert mask.sum() > 500 and (~mask).sum() > 500
    for row, fast in zip(batch.to_pylist(), mask):
        warnings = []
        try:
            rec = parse_mixture(row, warnings=warnings)
        except InvalidRecordError:
            assert not fast, row
            continue
        if fast:
            assert not warnings and rec.split in ("train", "validation", "test"), row
    # a schema it does not handle: every row takes the full path
    legacy = pa.RecordBatch.from_pylist([{"mix_id": "a", "dataset_info": {"split": "train"}}])
    assert fast_valid_mask(legacy) is None


@pytest.mark.slow  # end to end over the toy corpus
def test_row_fast_path_equals_full_path(monkeypatch):
    rows = _fuzz_rows(3000, 11)
    for row in rows[:300]:  # also non-Arrow shapes: tuples, ints, bools, str subclasses
        s = row["sources"]
        if s and s.get("rms_gain"):
            s["rms_gain"][0] = random.Random(row["mix_id"]).choice([1, True, 2.0, "1"])
        if s and s.get("label"):
            s["label"] = tuple(s["label"])

    def run(row):
        warnings = []
        try:
            rec = parse_mixture(copy.deepcopy(row), warnings=warnings)
        except InvalidRecordError as exc:
            return "error", str(exc)
        return rec, [type(v) for s in rec.sources for v in s.to_dict().values()], [w.to_dict() for w in warnings]

    fast = [run(r) for r in rows]
    monkeypatch.setattr(validation, "_FAST_PATH", False)
    slow = [run(r) for r in rows]
    assert fast == slow
    assert sum(f[0] != "error" for f in fast) > 500


def test_truncated_flac_and_mp3_and_a_fifo_are_unreadable(toy, tmp_path):
    """A FLAC (or MP3) cut short keeps a header claiming its full length: only decoding its end
    finds it (before, check said "present" and the render failed). A FIFO is refused unopened."""
    from test_audio import FifoGuard

    root = _copy(toy, tmp_path / "toy")
    records = _records(root)
    paths = DatasetPaths.from_json(root / "dataset_paths.json")
    used = sorted({s.path for r in records for s in r.sources})
    flac = next(p for p in used if p.endswith(".flac"))
    mp3 = [p for p in used if p.endswith(".mp3")][:1]
    fifo = next(p for p in used if p.endswith(".wav"))
    for p in [flac, *mp3]:
        local = paths.resolve(p)
        data = local.read_bytes()
        local.write_bytes(data[: len(data) * 2 // 3])
        assert sf.info(str(local)).frames > 0  # the header still opens
    paths.resolve(fifo).unlink()
    os.mkfifo(paths.resolve(fifo))
    broken = {flac, fifo, *mp3}
    with FifoGuard(paths.resolve(fifo)) as guard:
        rc, rep = _run(tmp_path, root / "metadata" / "parquet", root / "dataset_paths.json")
    assert not guard.unjammed, "hive check opened the FIFO"
    assert rc != 0 and rep["ok"] is False
    assert rep["totals"]["unreadable_audio"] == len(broken)
    assert rep["totals"]["missing_file"] == 0
    examples = {e for p in rep["prefixes"].values() for e in p["examples"].get("unreadable_audio", [])}
    assert examples == broken
    expected = sum(1 for r in records if not broken & {s.path for s in r.sources})
    assert rep["totals"]["renderable"] == expected < len(records)
