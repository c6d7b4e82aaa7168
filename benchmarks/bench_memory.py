"""Peak memory of ``hive render``, ``eval`` and ``inspect`` on one long mixture, against the
estimate the commands check before they allocate (:mod:`mixing.memory_estimate`).

    python benchmarks/bench_memory.py [--seconds 600] [--rate 48000] [--sources 2 5] [--no-sdr]

A toy-corpus mixture is stretched to ``--seconds`` at ``--rate`` (10 minutes at 48 kHz is the
longest record the metadata allows) and each command runs in its own subprocess; its peak
resident set size is ``ru_maxrss`` of that child. The check passes when every estimate (the
command's per-mixture bytes plus the interpreter's) is at least the measured peak.

Writes ``benchmarks/results/memory.json`` and prints a table. Needs ~7 GB free for eval with SDR.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mixing.memory_estimate import BASE_BYTES, mixture_bytes, size_text  # noqa: E402
from mixing.metadata_io import iter_records, write_jsonl  # noqa: E402
from mixing.toy import build_toy_corpus  # noqa: E402

_PEAK = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def peak_of(argv: list[str]) -> int:
    """Peak RSS (bytes) of ``python -m mixing argv`` run in a fresh child."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HIVE_MAX_MEMORY": "none", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "mixing", *argv],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"hive {argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(proc.stdout.strip().splitlines()[-1]) * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--sources", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--no-sdr", action="store_true", help="skip eval with SDR (the largest peak)")
    args = ap.parse_args()
    frames = int(args.seconds * args.rate)
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="hive-bench-memory-") as tmp:
        toy = build_toy_corpus(Path(tmp) / "toy")
        for n in args.sources:
            rec = next(r for r in iter_records(toy.parquet_dir, split="test", num_sources=n))
            rec = rec.replace(mix_id=f"long{n}", sample_rate=args.rate, target_duration=args.seconds,
                              sources=tuple(s.replace(crop_start_second=0.0, crop_end_second=args.seconds)
                                            for s in rec.sources))
            meta = Path(tmp) / f"long{n}.jsonl"
            write_jsonl([rec], meta)
            out = Path(tmp) / f"render{n}"
            runs = [("render", ["render", "--metadata", str(meta), "--dataset-paths", str(toy.dataset_paths),
                                "--output", str(out), "--no-progress"], mixture_bytes("render", frames, n)),
                    ("eval --no-sdr", ["eval", "--rendered", str(out), "--output", str(Path(tmp) / f"e{n}"),
                                       "--no-sdr", "--no-plot", "--no-progress"], mixture_bytes("eval", frames, n))]
            if not args.no_sdr:
                runs.append(("eval", ["eval", "--rendered", str(out), "--output", str(Path(tmp) / f"es{n}"),
                                      "--no-plot", "--no-progress"], mixture_bytes("eval", frames, n, sdr=True)))
            runs.append(("inspect", ["inspect", str(out), "--output", str(Path(tmp) / f"i{n}"), "--no-progress"],
                         mixture_bytes("inspect", frames, n)))
            for name, argv, need in runs:
                peak = peak_of(argv)
                estimate = need + BASE_BYTES
                ok &= estimate >= peak
                rows.append({"command": name, "sources": n, "frames": frames, "peak_bytes": peak,
                             "estimate_bytes": estimate, "estimate_covers_peak": estimate >= peak})
                print(f"{name:<14} {n} sources  peak {size_text(peak):>10}  estimate {size_text(estimate):>10}"
                      f"  {'ok' if estimate >= peak else 'UNDER-ESTIMATE'}", flush=True)
    result = {"benchmark": "memory", "seconds": args.seconds, "rate": args.rate, "rows": rows, "ok": ok,
              "machine": platform.platform(), "python": platform.python_version(),
              "max_rss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "memory.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
