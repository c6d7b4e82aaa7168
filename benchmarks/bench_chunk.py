"""Chunking throughput of ``hive mine chunk`` (stage 1), in × real time per core.

Generates long files (noise with silent gaps; several rates, channel counts and formats) in a
temporary folder, then times, on one thread:

* ``stage``: :class:`ChunkStage` on every file (probe, one streaming read, energies, records);
* ``runner``: the same through the stage runner (manifest, ledger, JSONL, merge, stats).

× real time = seconds of audio chunked per second of wall time (one process, one thread, so
also per core); ``x_realtime_per_cpu_second`` divides by the process's CPU time instead, which
is the better figure on a machine shared with other work. Files are read from the page cache
(written just before), so this measures decoding and computation, not the disk. Writes ``benchmarks/results/chunk.json``.

    python benchmarks/bench_chunk.py [--minutes 5] [--repeat 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.manifest import read_items  # noqa: E402
from curation.runner import RunConfig, run_stage  # noqa: E402
from curation.stages.chunk import ChunkStage  # noqa: E402

FILES = (  # name, rate, channels, format, subtype
    ("wav48k_stereo_pcm16.wav", 48000, 2, "WAV", "PCM_16"),
    ("flac44k_mono_pcm16.flac", 44100, 1, "FLAC", "PCM_16"),
    ("wav16k_mono_float.wav", 16000, 1, "WAV", "FLOAT"),
    ("flac32k_stereo_pcm24.flac", 32000, 2, "FLAC", "PCM_24"),
)


def generate(folder: Path, minutes: float) -> tuple[Path, dict[str, float]]:
    rng = np.random.default_rng(0)
    rows, seconds = [], {}
    for name, sr, ch, fmt, subtype in FILES:
        n = int(minutes * 60 * sr)
        y = (rng.standard_normal((n, ch)) * 0.1).astype(np.float32)
        for start in range(0, n, 60 * sr):  # 12 s of silence every minute: some chunks are dropped
            y[start + 20 * sr:start + 32 * sr] = 0
        sf.write(folder / name, y, sr, format=fmt, subtype=subtype)
        rows.append({"audio_path": str(folder / name), "text_label": "noise"})
        seconds[name] = n / sr
    listing = folder / "list.json"
    listing.write_text(json.dumps(rows))
    return listing, seconds


def best_of(repeat: int, fn) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    i = int(np.argmin(walls))
    return walls[i], cpus[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="length of each generated file")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "chunk.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_chunk_") as tmp:
        folder = Path(tmp)
        listing, seconds = generate(folder, args.minutes)
        items = read_items(listing)
        stage = ChunkStage()
        stage.ensure_setup()
        per_file = {}
        for it in items:
            name = Path(it.path).name
            wall, cpu = best_of(args.repeat, lambda: stage.process_item(it))
            res = stage.process_item(it)
            per_file[name] = {"audio_seconds": seconds[name], "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
                              "x_realtime": round(seconds[name] / wall, 1),
                              "chunks_kept": sum(type(r).__name__ == "Item" for r in res),
                              "chunks_silent": sum(type(r).__name__ == "Drop" for r in res)}
        total = sum(seconds.values())
        wall, cpu = best_of(args.repeat, lambda: [stage.process_item(it) for it in items])
        n = 0

        def through_runner():
            nonlocal n
            n += 1
            run_stage(ChunkStage(), RunConfig(str(listing), str(folder / f"out{n}"), progress=False))

        rwall, rcpu = best_of(args.repeat, through_runner)
    result = {
        "benchmark": "hive mine chunk (stage 1) throughput, one process, one thread",
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "cores_visible": os.cpu_count(), "numpy": np.__version__, "soundfile": sf.__version__,
                    "libsndfile": sf.__libsndfile_version__},
        "audio_seconds_total": total,
        "stage": {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "x_realtime_per_core": round(total / wall, 1),
                  "x_realtime_per_cpu_second": round(total / cpu, 1)},
        "runner": {"wall_s": round(rwall, 3), "cpu_s": round(rcpu, 3), "x_realtime_per_core": round(total / rwall, 1),
                   "x_realtime_per_cpu_second": round(total / rcpu, 1)},
        "per_file": per_file,
        "settings": {"minutes_per_file": args.minutes, "repeat": args.repeat, "window": 10.0, "hop": 5.0,
                     "silence_threshold": 5e-4},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"chunking: {result['stage']['x_realtime_per_core']}x real time per core (stage), "
          f"{result['runner']['x_realtime_per_core']}x through the runner, {total / 3600:.2f} h of audio; "
          f"per file: " + ", ".join(f"{k} {v['x_realtime']}x" for k, v in per_file.items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
