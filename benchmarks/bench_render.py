"""Benchmark of ``hive render`` against the straightforward per-sample implementation, one core.

    python benchmarks/bench_render.py [--mixtures 200] [--files 60] [--repeats 2] [--kinds pcm,compressed]

Builds its own corpus in a temporary folder per kind of source and metadata over it (4 s mixtures
of 2-5 sources cropped from 10 s chunks at offsets), mono and stereo files 30-60 s long:

* ``pcm``: WAV (PCM_16, float) and FLAC at 16k / 22.05k / 32k / 48k, whose seek is sample-exact,
  so the renderer reads only the window a crop needs;
* ``compressed``: Ogg Vorbis (16k / 22.05k / 32k / 48k), Ogg Opus (16k / 48k) and MP3 (where
  libsndfile writes it), which the renderer decodes from the chunk start like the reference does
  (whole chunk, cached per renderer), so the speed-up is smaller.

Measures mixtures/s of

* (a) ``hive render`` (``run_render``, one worker, WebDataset, float WAV), and
* (b) the reference release's algorithm written plainly: per mixture, per source, ``sf.read`` of
  the whole chunk, ``librosa.resample(res_type="soxr_hq")``, crop, weight; the same tar layout
  written with the same shard writer;

on the same metadata in the same run, pinned to one CPU with one BLAS/OpenMP thread. Prints the
ratio and the max |difference| between the two outputs and writes
``benchmarks/results/render.json``. Goal: (a) >= 5x (b).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mixing.corpora import DatasetPaths  # noqa: E402
from mixing.metadata import MixtureRecord, SourceRecord  # noqa: E402
from mixing.metadata_io import write_hub_folder  # noqa: E402
from mixing.render import RenderedMixture  # noqa: E402
from mixing.recipe import RenderRecipe
from mixing.render_job import RenderConfig, run_render  # noqa: E402
from mixing.shards import WebDatasetShardWriter  # noqa: E402

GOAL = 5.0
SR = 44100
RATES = (16000, 22050, 32000, 48000)
FORMATS = (("WAV", "PCM_16", ".wav"), ("FLAC", "PCM_16", ".flac"), ("WAV", "FLOAT", ".wav"))
#: (format, rates it is written at): Opus takes 8/12/16/24/48 kHz only
COMPRESSED = ((("OGG", "VORBIS", ".ogg"), RATES), (("OGG", "OPUS", ".opus"), (16000, 48000)),
              (("MP3", "MPEG_LAYER_III", ".mp3"), RATES))
KINDS = ("pcm", "compressed")


def kind_formats(kind: str) -> list[tuple[tuple[str, str, str], int]]:
    """(format, rate) pairs a corpus of this kind cycles through."""
    if kind == "pcm":
        return [(fmt, sr) for sr in RATES for fmt in FORMATS]
    have = sf.available_formats()
    return [(fmt, sr) for fmt, rates in COMPRESSED if fmt[0] in have for sr in rates]


# ---- inputs ----------------------------------------------------------------------------------------
def _signal(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f0 = rng.uniform(80, 2000)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2.0) * t) ** 2
    y = 0.25 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) * env
    y += 0.05 * rng.standard_normal(n)
    return y


def write_blocks(path: Path, y: np.ndarray, sr: int, fmt: tuple[str, str, str], block: int = 1 << 15) -> None:
    """``sf.write`` in blocks: one big write of a long Ogg Vorbis file crashes libsndfile 1.2."""
    channels = 1 if y.ndim == 1 else y.shape[1]
    with sf.SoundFile(str(path), "w", sr, channels, fmt[1], format=fmt[0]) as f:
        for i in range(0, len(y), block):
            f.write(y[i:i + block])


def build_corpus(root: Path, num_files: int, seed: int = 0,
                 kind: str = "pcm") -> tuple[Path, list[tuple[str, float, float]]]:
    """Write the audio files; return dataset_paths.json and the 10 s chunks ``(path, start, end)``."""
    corpus = root / "corpus" / "bench"
    corpus.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    chunks = []
    cycle = kind_formats(kind)
    for i in range(num_files):
        fmt, sr = cycle[(i * 7) % len(cycle)]
        channels = 2 if i % 3 == 1 else 1
        dur = float(rng.uniform(30.0, 60.0))
        y = _signal(rng, sr, dur)
        if channels == 2:
            y = np.stack([y, np.roll(y, 11) * 0.8], axis=1)
        name = f"f{i:03d}{fmt[2]}"
        write_blocks(corpus / name, y, sr, fmt)
        start = 0.0
        while start + 10.0 <= dur:
            chunks.append((f"Bench/{name}", round(start, 3), round(start + 10.0, 3)))
            start += 5.0
    dp = root / "dataset_paths.json"
    dp.write_text(json.dumps({"Bench": "corpus/bench"}))
    return dp, chunks


def build_metadata(root: Path, chunks: list[tuple[str, float, float]], num_mixtures: int,
                   seed: int = 1) -> tuple[Path, list[MixtureRecord]]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(num_mixtures):
        n = 2 + i % 4
        picks = rng.choice(len(chunks), size=n, replace=False)
        sources = []
        for s, k in enumerate(picks):
            path, cs, ce = chunks[int(k)]
            crop = round(float(rng.uniform(0.0, 6.0)), 3)
            gain = float(rng.uniform(0.5, 2.0))
            snr = 0.0 if s == 0 else round(float(rng.uniform(-5, 5)), 2)
            sources.append(SourceRecord(f"s{s + 1}", path, "Tone", crop, round(crop + 4.0, 3), cs, ce,
                                        gain, snr, gain * 10 ** (snr / 20)))
        records.append(MixtureRecord(f"bench_{i:05d}", "train", SR, 4.0, n, tuple(sources),
                                     0.95 / (0.4 * n), 0.95))
    meta = root / "metadata"
    write_hub_folder(records, meta)
    return meta, records


# ---- (b) the straightforward implementation --------------------------------------------------------
def straightforward(records: list[MixtureRecord], dataset_paths: Path, out: Path) -> None:
    """Per mixture, per source: whole-chunk read, librosa soxr_hq, crop, weight; consistent stems."""
    from reference_formula import reference_stems

    paths = DatasetPaths.from_json(dataset_paths)
    groups: dict[int, list[MixtureRecord]] = defaultdict(list)
    for rec in records:
        groups[rec.num_sources].append(rec)
    for n, recs in sorted(groups.items()):
        writer = WebDatasetShardWriter(out / f"{n}mix.tar", "wav")
        for rec in recs:
            stems = reference_stems(rec, paths, SR)
            writer.add(RenderedMixture(rec, stems.sum(axis=0).astype(np.float32), stems.astype(np.float32),
                                       SR, "consistent", rec.global_normalization_factor))
        writer.close()


# ---- comparison ------------------------------------------------------------------------------------
def read_members(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted(folder.rglob("*.tar")):
        with tarfile.open(p) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".wav"):
                    out[m.name] = sf.read(io.BytesIO(tar.extractfile(m).read()), dtype="float64")[0]
    return out


def max_diff(a: Path, b: Path) -> tuple[float, int]:
    ma, mb = read_members(a), read_members(b)
    if sorted(ma) != sorted(mb):
        raise SystemExit(f"the two outputs hold different members: {sorted(set(ma) ^ set(mb))[:5]}")
    return max(float(np.max(np.abs(ma[k] - mb[k]))) for k in ma), len(ma)


def bench_kind(kind: str, args: argparse.Namespace, tmp_path: Path) -> dict:
    """Time (a) and (b) on a corpus of one kind; the result record of that kind."""
    t0 = time.perf_counter()
    dp, chunks = build_corpus(tmp_path, args.files, kind=kind)
    meta, records = build_metadata(tmp_path, chunks, args.mixtures)
    setup = time.perf_counter() - t0
    hive_times, ref_times, hive_cpu, ref_cpu = [], [], [], []
    for r in range(args.repeats):  # interleaved, so that load from elsewhere hits both alike
        out_a = tmp_path / f"hive{r}"
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_render(str(meta), RenderConfig(output=str(out_a), recipe=RenderRecipe.make(str(dp))), num_workers=1,
                             progress=False)
        hive_times.append(time.perf_counter() - t0)
        hive_cpu.append(time.process_time() - c0)
        if summary.mixtures_rendered != len(records) or summary.failures:
            raise SystemExit(f"hive render failed on the {kind} corpus: {summary}")
        out_b = tmp_path / f"ref{r}"
        out_b.mkdir()
        t0, c0 = time.perf_counter(), time.process_time()
        straightforward(records, dp, out_b)
        ref_times.append(time.perf_counter() - t0)
        ref_cpu.append(time.process_time() - c0)
    diff, members = max_diff(tmp_path / "hive0", tmp_path / "ref0")
    n = len(records)
    hive_rate, ref_rate = n / min(hive_times), n / min(ref_times)
    ratio = hive_rate / ref_rate
    return {
        "kind": kind, "formats": sorted({f"{f[0]}/{f[1]}@{sr}" for f, sr in kind_formats(kind)}),
        "mixtures": n, "files": args.files, "chunks": len(chunks),
        "hive_render_seconds": min(hive_times), "straightforward_seconds": min(ref_times),
        "hive_render_mixtures_per_s": hive_rate, "straightforward_mixtures_per_s": ref_rate,
        "hive_render_cpu_seconds": min(hive_cpu), "straightforward_cpu_seconds": min(ref_cpu),
        "speedup": ratio, "speedup_cpu_time": min(ref_cpu) / min(hive_cpu),
        "hive_render_seconds_all": hive_times, "straightforward_seconds_all": ref_times,
        "max_abs_diff": diff, "members_compared": members, "setup_seconds": setup,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixtures", type=int, default=200)
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings of each implementation")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="comma-separated source kinds to benchmark: pcm (WAV/FLAC), compressed (Vorbis/Opus/MP3)")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "render.json"))
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        ap.error(f"--kinds is {args.kinds!r}; expected a comma-separated subset of {','.join(KINDS)}")
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})

    import librosa

    librosa.resample(np.zeros(1000), orig_sr=16000, target_sr=SR, res_type="soxr_hq")  # warm up imports

    results = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"hive-bench-render-{kind}-") as tmp:
            results[kind] = bench_kind(kind, args, Path(tmp))
    result = {
        "benchmark": "render", "target_sample_rate": SR, "mixture_seconds": 4.0,
        "sources_per_mixture": "2-5", "cpu_cores": 1, "repeats": args.repeats, "goal_speedup": GOAL,
        "goal_applies_to": "pcm (WAV/FLAC); compressed sources are decoded from the chunk start "
                           "like the reference, so their speed-up is reported, not promised",
        "meets_goal": results["pcm"]["speedup"] >= GOAL if "pcm" in results else None,
        "kinds": results,
        "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
        "libsndfile": sf.__libsndfile_version__,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("4 s mixtures (2-5 sources from 10 s chunks at offsets), one core")
    for kind, r in results.items():
        print(f"[{kind}] {r['mixtures']} mixtures over {r['files']} files ({', '.join(r['formats'])})")
        print(f"  hive render         {r['hive_render_seconds']:7.2f} s wall {r['hive_render_cpu_seconds']:7.2f} s CPU  "
              f"{r['hive_render_mixtures_per_s']:8.1f} mixtures/s")
        print(f"  straightforward     {r['straightforward_seconds']:7.2f} s wall {r['straightforward_cpu_seconds']:7.2f} s CPU  "
              f"{r['straightforward_mixtures_per_s']:8.1f} mixtures/s")
        goal = f"(goal >= {GOAL:g} x: {'met' if r['speedup'] >= GOAL else 'NOT met'})" if kind == "pcm" else "(no goal)"
        print(f"  speedup             {r['speedup']:7.2f} x wall, {r['speedup_cpu_time']:.2f} x CPU time  {goal}")
        print(f"  max |diff|          {r['max_abs_diff']:.3g} over {r['members_compared']} audio members")
    print(f"  written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
