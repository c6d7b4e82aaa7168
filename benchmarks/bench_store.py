"""Benchmark of the source store: build once, then render and stream at memory speed.

    python benchmarks/bench_store.py [--scale 1.0] [--reference-mixtures 300] [--rss-copies 8]

Builds the toy corpus in a temporary folder and synthesizes metadata with the release's reuse
profile (``hive synthesize`` over the toy pool, 4 s mixtures of 2-5 sources: 1,220 train / 430
validation / 660 test mixtures over the pool's 57 / 20 / 31 chunks, ~75 uses per chunk, sources at
their native rates 16-48 kHz, WAV/FLAC/Vorbis/Opus/MP3). Then, in one run, pinned to one
BLAS/OpenMP thread, rates per CPU second of this process (so they hold on a busy machine):

* store build (one worker): seconds of audio stored per CPU second (x real time per core) and
  bytes per hour, at 44.1 kHz and 16 kHz;
* render from the store (``Renderer`` with ``store=``, one process) against the straightforward
  reference implementation (whole-chunk ``sf.read`` + ``librosa.resample(soxr_hq)`` per source
  per mixture, crop, weight) on the same mixtures; goal >= 20x; also with the build time counted;
  and ``hive render`` to WebDataset shards with and without the store;
* the training stream from the store (``iter_mixtures(store=)``) at 44.1 kHz and 16 kHz, one
  process; goal >= 1,000 mixtures/s at 44.1 kHz, 4 s;
* a ``DataLoader`` with one worker over ``stream_mixtures(store=)`` against its hand-off ceiling
  (a dataset that computes nothing and yields the same shapes, same collate), wall time; goal
  >= 80 % of the ceiling;
* sizes: the store per hour of source audio against the rendered output of the same metadata as
  float WAV, FLAC and 16-bit PCM (measured on a sample of the mixtures), extrapolated to the full
  release (19.6 M mixtures, ~2,400 h of clips);
* peak RSS of a fresh process streaming every mixture from stores of 2x and ``--rss-copies``x
  the size (the corpus aliased under several prefixes): goal: it grows by at most a tenth of
  what the larger store adds (the samples stay in the page cache, not in the process).

Writes ``benchmarks/results/store.json`` and prints a table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

GOAL_RENDER_VS_REFERENCE = 20.0
GOAL_STREAM = 1000.0
GOAL_DATALOADER_OF_CEILING = 0.8
GOAL_RSS_GROWTH = 0.1  # peak RSS grows by at most a tenth of the store growth
RELEASE_MIXTURES = 19_600_000
RELEASE_CLIP_HOURS = 2_400
#: per split: mixtures to synthesize (~75 uses for each of the toy pool's chunks of that split)
SPLITS = {"train": 1220, "validation": 430, "test": 660}


# ---- inputs ----------------------------------------------------------------------------------
def make_metadata(corpus, folder: Path, scale: float) -> list:
    from mixing import api
    from mixing.metadata_io import open_metadata, write_hub_folder

    records = []
    for split, n in SPLITS.items():
        out = folder / f"synth-{split}"
        api.synthesize(corpus.pool, out, api.synthesis_config(split=split, num_mixtures=max(10, int(n * scale)),
                                                              duration=4.0, seed=1, num_workers=2),
                       dataset_paths=corpus.dataset_paths)
        records += list(open_metadata(out / "data").records())
    write_hub_folder(records, folder / "meta", rows_per_file=len(records))
    return records


def cpu_timed(fn) -> dict[str, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"n": n, "wall_s": wall, "cpu_s": cpu, "per_cpu_s": n / cpu, "per_wall_s": n / wall}


def build(records, dp, out: Path, rate: int) -> dict:
    from mixing.store import StoreBuildConfig, build_store

    t = cpu_timed(lambda: build_store(records, dp, StoreBuildConfig(str(out), rate), progress=False).seconds_added)
    size = sum(p.stat().st_size for p in (out / "segments").glob("*.f32"))
    t.update(audio_s=t["n"], x_real_time_per_core=t["n"] / t["cpu_s"], bytes=size,
             bytes_per_hour=size / (t["n"] / 3600))
    return t


def reference_render(records, dp) -> int:
    """The reference release's formula written plainly, per mixture, per source (no caching)."""
    from reference_formula import reference_stems

    from mixing.corpora import DatasetPaths

    paths = DatasetPaths.from_json(dp)
    for rec in records:
        stems = reference_stems(rec, paths)
        _ = (stems.sum(axis=0).astype(np.float32), stems.astype(np.float32))
    return len(records)


def store_render(records, store) -> int:
    from mixing.render import Renderer

    r = Renderer(None, store=store)
    for rec in records:
        r.render(rec)
    return len(records)


def stream(meta: Path, store: Path) -> int:
    from hive import iter_mixtures

    n = 0
    for split in SPLITS:
        for _ in iter_mixtures(str(meta), None, split=split, store=str(store)):
            n += 1
    return n


def hive_render(meta: Path, dp: Path, store: Path | None, out: Path) -> int:
    from mixing.recipe import RenderRecipe
    from mixing.render_job import RenderConfig, run_render

    recipe = RenderRecipe.make(dp, store=store)
    s = run_render(str(meta), RenderConfig(str(out), recipe, shard_size=256), progress=False)
    return s.mixtures_rendered


# ---- the DataLoader and its hand-off ceiling --------------------------------------------------------
class _Ceiling:
    """An IterableDataset yielding pre-made examples of the stream's shapes (computes nothing)."""

    def __init__(self, examples, n):
        self.examples, self.n = examples, n

    def __iter__(self):
        for i in range(self.n):
            yield self.examples[i % len(self.examples)]


def dataloader(meta: Path, store: Path, batch: int, epochs: int = 4) -> dict:
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    from hive import collate_mixtures, iter_mixtures, stream_mixtures

    ds = stream_mixtures(str(meta), None, split="train", store=str(store))
    examples = [dict(e) for _, e in zip(range(64), iter_mixtures(str(meta), None, split="train", store=str(store)))]
    n = sum(1 for _ in iter_mixtures(str(meta), None, split="train", store=str(store)))

    class Ceiling(IterableDataset):
        def __iter__(self):
            return iter(_Ceiling(examples, n))

    def loader(dataset):
        return DataLoader(dataset, batch_size=batch, num_workers=1, collate_fn=collate_mixtures,
                          persistent_workers=True, prefetch_factor=4)

    def epoch(loader) -> dict:
        w0 = time.perf_counter()
        got = sum(int(b["mix"].shape[0]) for b in loader)
        wall = time.perf_counter() - w0
        return {"n": got, "wall_s": wall, "per_wall_s": got / wall}

    torch.set_num_threads(1)
    loaders = {"ceiling": loader(Ceiling()), "stream": loader(ds)}
    for dl in loaders.values():  # warm-up epoch: worker start, index load, page cache
        epoch(dl)
    # the two alternate epoch by epoch, so that load from other jobs on the machine falls on both
    best: dict = {}
    for _ in range(epochs):
        for name, dl in loaders.items():
            t = epoch(dl)
            if name not in best or t["wall_s"] < best[name]["wall_s"]:
                best[name] = t
    ceiling, real = best["ceiling"], best["stream"]
    return {"batch_size": batch, "ceiling": ceiling, "stream": real,
            "of_ceiling": real["per_wall_s"] / ceiling["per_wall_s"]}


# ---- sizes ---------------------------------------------------------------------------------------
def rendered_sizes(records, store: Path, sample: int) -> dict:
    """Bytes per mixture of the rendered output (mix + stems) in each audio format, on a sample."""
    from mixing.render import Renderer
    from mixing.shards import encode_audio

    r = Renderer(None, store=store)
    rng = np.random.default_rng(0)
    picks = [records[i] for i in rng.choice(len(records), size=min(sample, len(records)), replace=False)]
    out = {}
    for fmt in ("wav", "flac", "pcm16"):
        total = 0
        for rec in picks:
            m = r.render(rec)
            scale = 1.0
            peak = max(float(np.abs(m.mix).max()), float(np.abs(m.stems).max()))
            if fmt == "flac" and peak > 1.0:  # FLAC refuses to clip: measure the size at full scale
                scale = 0.999 / peak
            total += len(encode_audio(m.mix * scale, m.sample_rate, fmt))
            total += sum(len(encode_audio(s * scale, m.sample_rate, fmt)) for s in m.stems)
        out[fmt] = total / len(picks)
    return out


# ---- peak RSS while streaming -------------------------------------------------------------------
def alias_inputs(corpus, records, folder: Path, copies: int) -> tuple[Path, Path]:
    """Metadata whose sources are spread over ``copies`` prefix aliases of every corpus root: the
    same files under other names, so the store holds ``copies`` times as many chunks."""
    from mixing.corpora import DatasetPaths
    from mixing.metadata_io import write_hub_folder

    roots = DatasetPaths.from_json(corpus.dataset_paths).roots
    aliased = {f"{k}__{c}": str(v) for c in range(copies) for k, v in roots.items()}
    dp = folder / f"paths-{copies}.json"
    dp.write_text(json.dumps(aliased))
    out = []
    for c in range(copies):
        for rec in records:
            srcs = tuple(s.replace(path=f"{s.path.split('/', 1)[0]}__{c}/{s.path.split('/', 1)[1]}")
                         for s in rec.sources)
            out.append(rec.replace(mix_id=f"{rec.mix_id}_a{c}", sources=srcs))
    meta = folder / f"meta-{copies}"
    write_hub_folder(out, meta, rows_per_file=len(out))
    return meta, dp


_RSS_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from hive import iter_mixtures
n = 0
t = time.process_time()
for split in ("train", "validation", "test"):
    for e in iter_mixtures({meta!r}, None, split=split, store={store!r}):
        n += 1
# VmHWM: this process's own peak (ru_maxrss would include the parent's RSS at fork, before exec)
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(n, hwm, time.process_time() - t)
"""


def peak_rss(corpus, records, folder: Path, copies: int) -> dict:
    from mixing.metadata_io import open_metadata

    meta, dp = alias_inputs(corpus, records, folder, copies)
    store = folder / f"store-{copies}"
    build(list(open_metadata(meta).records()), dp, store, 44100)
    size = sum(p.stat().st_size for p in (store / "segments").glob("*.f32"))
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD.format(root=str(ROOT), meta=str(meta), store=str(store))],
                         capture_output=True, text=True, check=True)
    n, rss, cpu = out.stdout.split()
    return {"copies": copies, "store_bytes": size, "mixtures": int(n), "peak_rss_bytes": int(rss),
            "stream_per_cpu_s": int(n) / float(cpu)}


# ---- main ----------------------------------------------------------------------------------------
def _rss_growth(runs: list[dict]) -> float:
    """Peak-RSS growth over store growth between the small and the large store."""
    small, large = runs
    return (large["peak_rss_bytes"] - small["peak_rss_bytes"]) / (large["store_bytes"] - small["store_bytes"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the synthesized metadata (default 1)")
    p.add_argument("--reference-mixtures", type=int, default=300,
                   help="mixtures timed with the (slow) reference implementation (default 300)")
    p.add_argument("--size-sample", type=int, default=200, help="mixtures encoded to measure rendered sizes")
    p.add_argument("--rss-copies", type=int, default=8, help="size of the large store for the RSS check (x)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "store.json"))
    args = p.parse_args(argv)
    from mixing.toy import build_toy_corpus

    res: dict = {"benchmark": "store", "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                                   "platform": platform.platform(),
                                                   "load_average_1m": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory(prefix="hive-bench-store-") as tmp:
        tmp = Path(tmp)
        corpus = build_toy_corpus(tmp / "toy")
        records = make_metadata(corpus, tmp, args.scale)
        meta = tmp / "meta"
        uses = {}
        for r in records:
            for s in r.sources:
                key = (s.path, s.chunk_start_second, s.chunk_end_second)
                uses[key] = uses.get(key, 0) + 1
        res["metadata"] = {"mixtures": len(records), "sources": sum(uses.values()), "chunks": len(uses),
                           "uses_per_chunk": sum(uses.values()) / len(uses)}
        print(f"metadata: {len(records)} mixtures over {len(uses)} chunks "
              f"({res['metadata']['uses_per_chunk']:.1f} uses per chunk)", flush=True)

        s44, s16 = tmp / "store44", tmp / "store16"
        res["build_44100"] = build(records, corpus.dataset_paths, s44, 44100)
        res["build_16000"] = build(records, corpus.dataset_paths, s16, 16000)
        print(f"store build: {res['build_44100']['x_real_time_per_core']:.0f}x real time per core "
              f"({res['build_44100']['cpu_s']:.1f} CPU s)", flush=True)

        rng = np.random.default_rng(0)
        ref_set = [records[i] for i in rng.choice(len(records), size=min(args.reference_mixtures, len(records)),
                                                 replace=False)]
        res["reference"] = cpu_timed(lambda: reference_render(ref_set, corpus.dataset_paths))
        store_render(records[:50], s44)  # warm the page cache
        res["store_render"] = cpu_timed(lambda: store_render(records, s44))
        ratio = res["store_render"]["per_cpu_s"] / res["reference"]["per_cpu_s"]
        ref_all = len(records) / res["reference"]["per_cpu_s"]
        with_build = ref_all / (res["build_44100"]["cpu_s"] + res["store_render"]["cpu_s"])
        res["render_vs_reference"] = ratio
        res["render_vs_reference_including_build"] = with_build
        print(f"render: store {res['store_render']['per_cpu_s']:.0f} mix/s, reference "
              f"{res['reference']['per_cpu_s']:.1f} mix/s: {ratio:.0f}x ({with_build:.1f}x with the build)", flush=True)
        res["hive_render_store"] = cpu_timed(lambda: hive_render(meta, corpus.dataset_paths, s44, tmp / "r_store"))
        res["hive_render_decode"] = cpu_timed(lambda: hive_render(meta, corpus.dataset_paths, None, tmp / "r_dec"))
        rendered_bytes = sum(p.stat().st_size for p in (tmp / "r_store").rglob("*.tar"))
        for d in ("r_store", "r_dec"):
            subprocess.run(["rm", "-rf", str(tmp / d)], check=True)

        stream(meta, s44)  # warm
        res["stream_44100"] = cpu_timed(lambda: stream(meta, s44))
        res["stream_16000"] = cpu_timed(lambda: stream(meta, s16))
        print(f"stream: {res['stream_44100']['per_cpu_s']:.0f} mix/s at 44.1 kHz, "
              f"{res['stream_16000']['per_cpu_s']:.0f} at 16 kHz", flush=True)
        try:
            res["dataloader"] = dataloader(meta, s44, args.batch_size)
            print(f"DataLoader(1 worker): {res['dataloader']['stream']['per_wall_s']:.0f} mix/s, ceiling "
                  f"{res['dataloader']['ceiling']['per_wall_s']:.0f}: {100 * res['dataloader']['of_ceiling']:.0f} %",
                  flush=True)
        except ImportError:
            res["dataloader"] = None

        per_mix = rendered_sizes(records, s44, args.size_sample)
        clip_hours = res["build_44100"]["audio_s"] / 3600
        res["sizes"] = {
            "store_bytes_per_clip_hour_44100": res["build_44100"]["bytes_per_hour"],
            "store_bytes_per_clip_hour_16000": res["build_16000"]["bytes_per_hour"],
            "rendered_bytes_per_mixture": per_mix,
            "rendered_webdataset_bytes": rendered_bytes,
            "store_bytes_44100": res["build_44100"]["bytes"], "clip_hours": clip_hours,
            "release": {
                "store_44100_bytes": res["build_44100"]["bytes_per_hour"] * RELEASE_CLIP_HOURS,
                "store_16000_bytes": res["build_16000"]["bytes_per_hour"] * RELEASE_CLIP_HOURS,
                **{f"render_{k}_bytes": v * RELEASE_MIXTURES for k, v in per_mix.items()},
                "store_build_core_hours_44100": RELEASE_CLIP_HOURS / res["build_44100"]["x_real_time_per_core"],
            },
        }
        res["peak_rss"] = [peak_rss(corpus, records, tmp, c) for c in (2, args.rss_copies)]
        print("peak RSS: " + ", ".join(f"{r['store_bytes'] / 1e9:.2f} GB store -> {r['peak_rss_bytes'] / 1e6:.0f} MB"
                                       for r in res["peak_rss"]), flush=True)
    res["goals"] = {
        "render_vs_reference": [GOAL_RENDER_VS_REFERENCE, res["render_vs_reference"] >= GOAL_RENDER_VS_REFERENCE],
        "stream_44100_per_core": [GOAL_STREAM, res["stream_44100"]["per_cpu_s"] >= GOAL_STREAM],
        "dataloader_of_ceiling": [GOAL_DATALOADER_OF_CEILING, bool(res["dataloader"]) and
                                  res["dataloader"]["of_ceiling"] >= GOAL_DATALOADER_OF_CEILING],
        # bounded: the process holds at most a tenth of what the larger store adds (its index and
        # the larger metadata grow with it; the samples stay in the page cache)
        "rss_growth_of_store_growth": [GOAL_RSS_GROWTH, _rss_growth(res["peak_rss"]) <= GOAL_RSS_GROWTH],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["goals"]))
    return 0 if all(ok for _, ok in res["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
