"""Benchmark of ``hive check``: the metadata pass (rows/s) and the whole check on synthetic
Hub-layout Parquet metadata referencing small real files.

    python benchmarks/bench_check.py [--rows 200000] [--unique 10000] [--no-files]

Rows are drawn with a seeded numpy Generator: 1-5 sources each, paths from ``--unique`` files over
five prefixes; 1 % of the files are absent, 0.5 % hold garbage, 0.1 % of the rows are invalid.
Measured, best of ``--repeats``, wall clock and CPU time of this process (the CPU rate is the
one-core rate even on a shared machine):

* ``row path, as before``: :meth:`MetadataSource.records` with the struct-of-lists fast path off
  and whole 8192-row batches converted by ``to_pylist`` (the code path before this benchmark);
* ``row path``: :meth:`MetadataSource.records` as it is now;
* ``arrow batches``: :meth:`MetadataSource.arrow_batches` (columnar validation, exact fallback);
* ``check: metadata pass`` / ``check: total``: :func:`mixing.check.check_corpora`.

Writes ``benchmarks/results/check.json`` and prints a table. Goal: metadata pass >= 50,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mixing.metadata_io as metadata_io  # noqa: E402
import mixing.validation as validation  # noqa: E402
from mixing.check import check_corpora  # noqa: E402
from mixing.metadata import HUB_ARROW_SCHEMA, SOURCES_ARROW_TYPE  # noqa: E402
from mixing.metadata_io import open_metadata  # noqa: E402
from mixing.validation import ValidationReport  # noqa: E402

GOAL = 50_000
PREFIXES = ("AudioSet", "BBC_Sound_Effects", "VGGSound", "FreeSound", "FSD50K")
LABELS = ("Dog", "Rain", "Speech", "Church bell", "Violin, fiddle", "Engine")
FILE_RATE = 8000
FILE_SECONDS = 0.25


def make_corpus(root: Path, unique: int, rng: np.random.Generator, with_files: bool) -> tuple[np.ndarray, dict]:
    """Unique metadata paths, and the files (tiny WAVs) unless ``with_files`` is false."""
    import soundfile as sf

    paths = np.array([f"{PREFIXES[i % len(PREFIXES)]}/dir{i % 97:02d}/clip_{i:06d}.wav" for i in range(unique)],
                     dtype=object)
    roots = {p: str(root / "corpora" / p.lower()) for p in PREFIXES}
    (root / "dataset_paths.json").write_text(json.dumps(roots))
    stats = {"files": 0, "absent": 0, "garbage": 0}
    if with_files:
        fate = rng.random(unique)
        tone = (0.1 * np.sin(np.arange(int(FILE_RATE * FILE_SECONDS)) * 0.05)).astype(np.float32)
        for i, p in enumerate(paths):
            prefix, rel = p.split("/", 1)
            local = Path(roots[prefix]) / rel
            if fate[i] < 0.01:
                stats["absent"] += 1
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            if fate[i] < 0.015:
                local.write_bytes(b"not audio at all" * 8)
                stats["garbage"] += 1
            else:
                sf.write(str(local), tone, FILE_RATE, subtype="PCM_16")
                stats["files"] += 1
    return paths, stats


def make_metadata(folder: Path, rows: int, paths: np.ndarray, rng: np.random.Generator) -> dict:
    """Hub-layout Parquet (``data/{split}-00000-of-00001.parquet``), columnar, seeded."""
    n = rng.integers(1, 6, rows)
    total = int(n.sum())
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(n, out=offsets[1:])
    within = np.arange(total) - np.repeat(offsets[:-1], n)
    src_paths = paths[rng.integers(0, len(paths), total)]
    bad = rng.random(rows) < 0.001  # invalid rows: an unsafe path in the first source
    src_paths[offsets[:-1][bad]] = "AudioSet/../escape.wav"
    rms = rng.uniform(0.05, 2.0, total)
    snr = np.where(within == 0, 0.0, rng.uniform(-5.0, 5.0, total))
    crop_start = np.zeros(total)
    cols = {
        "source_id": np.array([f"s{k + 1}" for k in range(5)], dtype=object)[within],
        "path": src_paths,
        "label": np.array(LABELS, dtype=object)[rng.integers(0, len(LABELS), total)],
        "crop_start_second": crop_start, "crop_end_second": crop_start + FILE_SECONDS,
        "chunk_start_second": np.zeros(total), "chunk_end_second": np.full(total, FILE_SECONDS),
        "rms_gain": rms, "snr_db": snr, "applied_weight": rms * 10.0 ** (snr / 20.0),
    }
    sources = pa.StructArray.from_arrays(
        [pa.ListArray.from_arrays(pa.array(offsets), pa.array(cols[f.name], type=f.type.value_type))
         for f in SOURCES_ARROW_TYPE], fields=list(SOURCES_ARROW_TYPE))
    split_of = rng.choice(np.array(["train", "validation", "test"], dtype=object), rows, p=[0.8, 0.1, 0.1])
    table = pa.Table.from_arrays([
        pa.array([f"bench_{i:09d}" for i in range(rows)]), pa.array(split_of.astype(str)),
        pa.array(np.full(rows, 44100, dtype=np.int32)),
        pa.array(np.where(split_of == "test", 10.0, 4.0)), pa.array(n.astype(np.int32)), sources,
        pa.array(np.ones(rows)), pa.array(np.full(rows, 0.9)),
    ], schema=HUB_ARROW_SCHEMA)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        part = table.filter(pa.array(split_of == split))
        pq.write_table(part, data / f"{split}-00000-of-00001.parquet", row_group_size=10_000)
    return {"rows": rows, "source_references": total, "invalid_rows": int(bad.sum())}


def best(fn, repeats: int) -> tuple[float, float, object]:
    """(best wall seconds, best CPU seconds of this process, last result)."""
    wall = cpu = float("inf")
    res = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, res


def count_records(src) -> int:
    return sum(1 for _ in src.records(on_error="skip", report=ValidationReport()))


def count_original(src) -> int:
    """The row path as it was: no struct-of-lists fast path, whole batches through to_pylist."""
    saved = validation._FAST_PATH, metadata_io._PYLIST_ROWS
    validation._FAST_PATH, metadata_io._PYLIST_ROWS = False, metadata_io._PARQUET_BATCH
    try:
        return count_records(src)
    finally:
        validation._FAST_PATH, metadata_io._PYLIST_ROWS = saved


def count_arrow(src) -> int:
    return sum(b.num_rows for b in src.arrow_batches(on_error="skip", report=ValidationReport()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="metadata rows (>= 100k for the goal)")
    ap.add_argument("--unique", type=int, default=10_000, help="unique referenced files")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=8, help="probe threads of the check")
    ap.add_argument("--no-files", action="store_true", help="create no audio files (all missing)")
    ap.add_argument("--skip-original", action="store_true", help="do not time the former row path (slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "check.json"))
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="hive-bench-check-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths, file_stats = make_corpus(tmp, args.unique, rng, not args.no_files)
        meta_stats = make_metadata(tmp / "metadata", args.rows, paths, rng)
        setup_s = time.perf_counter() - t0
        src = open_metadata(tmp / "metadata")
        rows = args.rows
        results: dict[str, dict] = {}

        def rate(name: str, fn, n_items: int = rows, repeats: int = args.repeats) -> None:
            wall, cpu, _ = best(fn, repeats)
            results[name] = {"seconds": wall, "cpu_seconds": cpu, "rows_per_s": n_items / wall,
                             "rows_per_cpu_s": n_items / cpu}

        if not args.skip_original:
            rate("row path, as before", lambda: count_original(src), repeats=min(args.repeats, 2))
        rate("row path", lambda: count_records(src))
        rate("arrow batches", lambda: count_arrow(src))

        reports = []

        def run_check():
            rep = check_corpora(src, tmp / "dataset_paths.json", progress=False, jobs=args.jobs)
            reports.append(rep)
            return rep

        best(run_check, args.repeats)
        def timing(key: str) -> float:
            return min(r.timings[key] for r in reports)

        results["check: metadata pass"] = {
            "seconds": timing("metadata_s"), "cpu_seconds": timing("metadata_cpu_s"),
            "rows_per_s": rows / timing("metadata_s"), "rows_per_cpu_s": rows / timing("metadata_cpu_s")}
        results["check: probe files"] = {"seconds": timing("probe_s"), "files_per_s": args.unique / timing("probe_s")}
        results["check: total"] = {
            "seconds": timing("total_s"), "cpu_seconds": timing("total_cpu_s"),
            "rows_per_s": rows / timing("total_s"), "rows_per_cpu_s": rows / timing("total_cpu_s")}
        rep = reports[-1]

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    summary = {
        "machine": {"python": platform.python_version(), "cpu": platform.machine(), "cores_available": cores,
                    "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "setup": {"rows": rows, "unique_files": args.unique, "seed": args.seed, "jobs": args.jobs,
                  "setup_s": setup_s, **meta_stats, **file_stats},
        "results": results,
        "check_totals": rep.to_dict()["totals"],
        "goal_rows_per_s": GOAL,
        "meets_goal_wall": results["check: metadata pass"]["rows_per_s"] >= GOAL,
        "meets_goal_cpu": results["check: metadata pass"]["rows_per_cpu_s"] >= GOAL,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")

    print(f"hive check benchmark: {rows} rows, {meta_stats['source_references']} source refs, "
          f"{args.unique} unique files ({file_stats}), {summary['machine']['cores_available']} cores, "
          f"load {summary['machine']['load_1min']:.1f}")
    print(f"{'measure':<24} {'seconds':>8} {'rows/s':>10} {'rows/cpu-s':>11}")
    for name, r in results.items():
        per_s = r.get("rows_per_s")
        cells = (f"{per_s:>10,.0f}" if per_s else f"{r['files_per_s']:>10,.0f}") + (
            f" {r['rows_per_cpu_s']:>11,.0f}" if "rows_per_cpu_s" in r else f" {'':>11}")
        unit = "" if per_s else "  (files/s)"
        print(f"{name:<24} {r['seconds']:>8.2f} {cells}{unit}")
    t = summary["check_totals"]
    print(f"check found: {t['missing_file']} missing_file, {t['unreadable_audio']} unreadable_audio, {t['invalid_records']} invalid rows, "
          f"{t['renderable']}/{t['mixtures']} mixtures renderable")
    verdict = {(True, True): "met", (False, True): "met in CPU time (machine busy)"}.get(
        (summary["meets_goal_wall"], summary["meets_goal_cpu"]), "NOT met")
    print(f"goal >= {GOAL:,} rows/s for the metadata pass: {verdict}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
