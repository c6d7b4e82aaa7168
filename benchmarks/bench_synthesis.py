"""Benchmark of ``hive synthesize``: parameter sampling alone (one core, no audio) and full
synthesis with level measurement on the toy corpus.

    python benchmarks/bench_synthesis.py [--mixtures 20000] [--full-mixtures 200]

Writes ``benchmarks/results/synthesis.json`` and prints a table. Goal: parameter sampling
>= 20,000 records/s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mixing import packaged  # noqa: E402
from mixing.ontology import Ontology  # noqa: E402
from mixing.pool import PoolEntry, read_pool  # noqa: E402
from mixing.synthesis.config import SynthesisConfig  # noqa: E402
from mixing.synthesis import Synthesizer, synthesize  # noqa: E402

HIVE_ONTOLOGY = packaged.hive_ontology_path()
GOAL = 20_000


def synthetic_pool(ontology: Ontology, seed: int = 0) -> list[PoolEntry]:
    """Every non-root class, 1-9 files of 2-40 s each, 10 s chunks with a 5 s hop."""
    rng = np.random.default_rng(seed)
    pool = []
    for i, node in enumerate(n for n in ontology if ontology.parents(n)):
        for f in range(int(rng.integers(1, 10))):
            split = ("train", "validation", "test")[f % 3]
            dur = float(rng.choice([2.0, 3.5, 6.25, 10.0, 23.0, 40.0]))
            start, k = 0.0, 0
            while True:
                end = min(start + 10.0, dur)
                pool.append(PoolEntry(f"c{i}_{f}_{k}", f"AudioSet/c{i}/f{f}.wav", start, end, node.name, node.id,
                                      44100, 1, split))
                if end >= dur:
                    break
                start, k = start + 5.0, k + 1
    return pool


def best_rates(fn, n: int, repeats: int) -> tuple[float, float]:
    """(records per wall-clock second, records per CPU second of this process), best of ``repeats``.

    The CPU-time rate is the one-core rate even when other processes share the machine; the
    wall-clock rate equals it on an idle core.
    """
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return n / wall, n / cpu


def bench_sampling(n: int, repeats: int) -> dict:
    if HIVE_ONTOLOGY.is_file():
        ontology, source = Ontology.from_json(HIVE_ONTOLOGY), "hive_ontology.json"
    else:  # pragma: no cover - the shared data folder is absent
        from mixing.toy import write_toy_ontology

        path = Path(tempfile.mkdtemp()) / "toy_ontology.json"
        ontology, source = Ontology.from_json(write_toy_ontology(path)), "toy ontology"
    pool = synthetic_pool(ontology)
    cfg = SynthesisConfig(num_mixtures=n, seed=0)
    synth = Synthesizer(pool, cfg, ontology=ontology)
    reasons: Counter = Counter()
    draws, draws_cpu = best_rates(lambda: [synth.draw(i, reasons) for i in range(n)], n, repeats)
    drafts, drafts_cpu = best_rates(lambda: synth.sample_parameters(0, n), n, repeats)
    return {"ontology": source, "labels": len(synth.rules.labels), "pool_clips": len(pool),
            "forbidden_pairs": synth.rules.pair_counts, "mixtures": n, "repeats": repeats,
            "draws_per_s": draws, "draws_per_cpu_s": draws_cpu,
            "draft_records_per_s": drafts, "draft_records_per_cpu_s": drafts_cpu,
            "goal_per_s": GOAL, "meets_goal_cpu": drafts_cpu >= GOAL, "meets_goal_wall": drafts >= GOAL}


def bench_full(n: int) -> dict:
    from mixing.toy import build_toy_corpus, write_toy_ontology

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_toy_corpus(Path(tmp) / "toy", sizes={"train": 1})
        ontology = Ontology.from_json(write_toy_ontology(Path(tmp) / "toy_ontology.json"))
        for split in ("train", "test"):
            cfg = SynthesisConfig(split=split, num_mixtures=n, seed=0)
            synth = Synthesizer(read_pool(corpus.pool), cfg, ontology=ontology)
            synthesize(synth, corpus.dataset_paths, num_workers=1)  # warm the file-info cache and page cache
            t0, c0 = time.perf_counter(), time.process_time()
            res = synthesize(synth, corpus.dataset_paths, num_workers=1)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            sources = sum(r.num_sources for r in res.records)
            out[split] = {"duration_s": cfg.target_duration, "mixtures": len(res.records),
                          "mixtures_per_s": len(res.records) / dt, "mixtures_per_cpu_s": len(res.records) / dc,
                          "sources_per_s": sources / dt, "redraws": dict(res.reasons)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mixtures", type=int, default=20_000, help="mixtures for the sampling benchmark")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full-mixtures", type=int, default=200, help="mixtures for the full (audio) benchmark")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "synthesis.json"))
    args = ap.parse_args(argv)
    sampling = bench_sampling(args.mixtures, args.repeats)
    full = bench_full(args.full_mixtures)
    result = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                          "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else os.cpu_count(), "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
              "parameter_sampling_one_core": sampling, "full_synthesis_toy_corpus_one_core": full}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'benchmark (one core)':52s} {'wall-clock':>12s} {'CPU time':>12s}")
    print(f"{'parameter sampling, draws only (records/s)':52s} {sampling['draws_per_s']:>12,.0f} "
          f"{sampling['draws_per_cpu_s']:>12,.0f}")
    print(f"{'parameter sampling, draft records (records/s)':52s} {sampling['draft_records_per_s']:>12,.0f} "
          f"{sampling['draft_records_per_cpu_s']:>12,.0f}   goal {GOAL:,}/s")
    for split, r in full.items():
        name = f"full synthesis with levels, {split} {r['duration_s']:g} s (mix/s)"
        print(f"{name:52s} {r['mixtures_per_s']:>12,.1f} {r['mixtures_per_cpu_s']:>12,.1f}")
    print(f"({sampling['labels']} labels, {sampling['pool_clips']} clips, {sampling['ontology']}; "
          f"written to {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
