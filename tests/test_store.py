"""The source store: built once, read by every consumer, exact, and safe in bad situations
(changed or deleted sources, other rates, foreign folders, truncated segments, full disks,
kill -9, concurrent builds)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixing.cli import main
from mixing.corpora import DatasetPaths
from mixing.metadata_io import open_metadata
from mixing.render import Renderer
from mixing.store import SourceStore, StoreBuildConfig, build_store
from reference_render import ReferenceRenderer

ROOT = Path(__file__).resolve().parents[1]
DTYPE_LIMIT = 1e-6


def records(corpus, split: str | None = None):
    return list(open_metadata(str(corpus.parquet_dir)).records(split))


def tree(folder: Path, skip: tuple[str, ...] = ("_locks",)) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in skip}


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def copy_corpus(corpus, dest: Path) -> Path:
    """A private copy of the toy corpora and a dataset_paths.json pointing at it."""
    shutil.copytree(corpus.root / "corpora", dest / "corpora")
    roots = json.loads(Path(corpus.dataset_paths).read_text())
    moved = {k: str(dest / "corpora" / Path(v).name) for k, v in roots.items()}
    (dest / "dataset_paths.json").write_text(json.dumps(moved))
    return dest / "dataset_paths.json"


def build(items, dp, out: Path, **kw):
    return build_store(items, dp, StoreBuildConfig(str(out), **kw), progress=False)


# ---- exactness -------------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("rate", [44100, 16000])
def test_store_render_equals_the_reference_formula_on_every_format_and_rate(toy_corpus, toy_store, rate):
    store = SourceStore(toy_store(rate))
    formats = {(row["audio_format"], row["native_rate"]) for row in store.index.table.select(
        ["audio_format", "native_rate"]).to_pylist()}
    kinds = {f.split("/")[0] for f, _ in formats}
    assert {"WAV", "FLAC", "OGG"} <= kinds and len(formats) >= 8, formats  # the toy's formats x rates
    ref = ReferenceRenderer(toy_corpus.dataset_paths)
    dp = toy_corpus.dataset_paths
    for stems in ("consistent", "reference"):
        stored, decoded = Renderer(dp, stems=stems, store=store), Renderer(dp, stems=stems, sample_rate=rate)
        worst_ref = worst_dec = 0.0
        for rec in records(toy_corpus):
            mix, ref_stems = ref.render(rec, rate)
            if stems == "consistent":
                ref_stems = ref_stems * rec.global_normalization_factor
            a, b = stored.render(rec), decoded.render(rec)
            assert a.mix.shape == mix.shape and a.stems.shape == ref_stems.shape
            worst_ref = max(worst_ref, np.abs(a.mix - mix).max(), np.abs(a.stems - ref_stems).max())
            worst_dec = max(worst_dec, np.abs(a.mix - b.mix).max(), np.abs(a.stems - b.stems).max())
        assert worst_ref <= DTYPE_LIMIT, (stems, worst_ref)
        assert worst_dec <= 2 * DTYPE_LIMIT, (stems, worst_dec)
        assert stored.store_stats["misses"] == 0 and stored.store_stats["hits"] > 0


def test_stream_builder_and_store_alone_give_the_store_less_samples(toy_corpus, toy_store):
    from hive import Hive, StreamReport, iter_mixtures

    store = toy_store()
    plain = {e["mix_id"]: e for e in iter_mixtures(str(toy_corpus.parquet_dir), toy_corpus.dataset_paths,
                                                   split="validation")}
    report = StreamReport()
    stored = {e["mix_id"]: e for e in iter_mixtures(str(toy_corpus.parquet_dir), None, split="validation",
                                                    store=store, report=report)}
    assert sorted(stored) == sorted(plain) and len(plain) == 16
    for k, e in stored.items():
        assert np.abs(e["mix"] - plain[k]["mix"]).max() <= 2e-6
        assert np.abs(e["sources"] - plain[k]["sources"]).max() <= 2e-6
    assert report.rendered == 16 and report.store_misses == 0 and report.store_hits == sum(
        e["num_sources"] for e in stored.values())
    builder = Hive(config_name="all", metadata=str(toy_corpus.parquet_dir), store=str(store), decode=False,
                   splits=("validation",), cache_dir=None)
    ex = next(iter(builder.as_streaming_dataset(split="validation")))
    import io

    mix, sr = sf.read(io.BytesIO(ex["mix"]["bytes"]), dtype="float32")
    assert sr == 44100 and np.abs(mix - plain[ex["mix_id"]]["mix"]).max() <= 2e-6


@pytest.mark.slow  # end to end over the toy corpus
def test_render_cli_from_the_store_verifies_and_counts_no_miss(toy_corpus, toy_store, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(toy_store()), "--output",
                 str(out), "--split", "test", "--no-progress", "--num-workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "0 store misses" in text and "chunk reads from the store" in text
    assert main(["verify", str(out), "--metadata", str(toy_corpus.parquet_dir), "--split", "test",
                 "--checksums", "--no-progress"]) == 0


# ---- misses, store-only, stale and deleted sources -------------------------------------------
def test_chunks_missing_from_the_store_are_decoded_and_counted_or_refused(toy_corpus, tmp_path, capsys):
    store = tmp_path / "store"
    build(records(toy_corpus, "validation"), toy_corpus.dataset_paths, store)
    recs = records(toy_corpus, "test")
    r = Renderer(toy_corpus.dataset_paths, store=store)
    plain = Renderer(toy_corpus.dataset_paths)
    for rec in recs:
        assert np.abs(r.render(rec).mix - plain.render(rec).mix).max() <= 2e-6
    assert r.store_stats["misses"] > 0
    held = SourceStore(store)
    missing = set()
    for rec in recs:
        for s in rec.sources:
            v = held.latest(s.path)
            if v is None or held.find(v, int(s.chunk_start_second * v.native_rate),
                                      min(int(s.chunk_end_second * v.native_rate), v.frames)) < 0:
                missing.add(rec.mix_id)
    out = tmp_path / "only"
    rc = main(["render", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(toy_corpus.dataset_paths),
               "--store", str(store), "--store-only", "--split", "test", "--output", str(out), "--no-progress"])
    assert rc == 1
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["failures_by_reason"] == {"not_in_store": len(missing)} and missing
    assert summary["mixtures"] == len(recs) - len(missing)


def test_a_changed_source_is_stale_never_served_and_a_rebuild_adds_it(toy_corpus, tmp_path):
    dp = copy_corpus(toy_corpus, tmp_path)
    store = tmp_path / "store"
    recs = records(toy_corpus, "validation")
    build(recs, dp, store)
    target = recs[0].sources[0]
    local = DatasetPaths.from_json(dp).resolve(target.path)
    x, sr = sf.read(local, always_2d=True)
    info = sf.info(str(local))
    sf.write(local, -x, sr, format=info.format, subtype=info.subtype)  # new content, size may even be equal
    os.utime(local, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    users = {r.mix_id for r in recs if any(s.path == target.path for s in r.sources)}
    out = tmp_path / "r"
    rc = main(["render", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(dp), "--store", str(store),
               "--split", "validation", "--output", str(out), "--no-progress"])
    assert rc == 1
    fails = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    assert {f["mix_id"] for f in fails} == users and {f["reason"] for f in fails} == {"store_stale"}
    assert main(["store", "verify", str(store), "--dataset-paths", str(dp), "--sample", "4"]) == 1
    # a rebuild adds the new version; the render then equals a fresh decode of the changed file
    assert main(["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--split", "validation",
                 "--dataset-paths", str(dp), "--output", str(store), "--no-progress"]) == 0
    r = Renderer(dp, store=store)
    fresh = Renderer(dp)
    for rec in recs:
        if rec.mix_id in users:
            assert np.abs(r.render(rec).mix - fresh.render(rec).mix).max() <= 2e-6
    assert r.store_stats["misses"] == 0


def test_a_deleted_source_fails_with_corpora_and_is_served_by_the_store_alone(toy_corpus, tmp_path):
    dp = copy_corpus(toy_corpus, tmp_path)
    store = tmp_path / "store"
    recs = records(toy_corpus, "validation")
    build(recs, dp, store)
    expected = {r.mix_id: Renderer(dp).render(r).mix for r in recs}
    gone = recs[0].sources[0]
    DatasetPaths.from_json(dp).resolve(gone.path).unlink()
    with pytest.raises(Exception) as err:
        Renderer(dp, store=store).render(recs[0])
    assert type(err.value).__name__ == "MissingSourceAudioError" and "leave out the dataset paths" in str(err.value)
    alone = Renderer(None, store=store)
    for rec in recs:
        assert np.abs(alone.render(rec).mix - expected[rec.mix_id]).max() <= 2e-6
    assert main(["store", "verify", str(store), "--dataset-paths", str(dp), "--sample", "0"]) == 1


# ---- refusals: rate, foreign folder, lock ---------------------------------------------------
def _one_line(capsys, cmd: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"hive {cmd}: error: "), err
    return lines[0]


def test_a_store_of_another_rate_is_refused_in_one_line(toy_corpus, toy_store, tmp_path, capsys):
    rc = main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(toy_store(16000)),
               "--sample-rate", "44100", "--output", str(tmp_path / "r"), "--no-progress"])
    assert rc == 2
    line = _one_line(capsys, "render")
    assert "16000 Hz" in line and "--sample-rate 16000" in line
    assert not (tmp_path / "r").exists()
    rc = main(["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
               str(toy_corpus.dataset_paths), "--output", str(toy_store(16000)), "--no-progress"])
    assert rc == 2 and "16000 Hz" in _one_line(capsys, "store")


def test_a_foreign_folder_is_neither_written_nor_read(toy_corpus, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    before = tree(foreign)
    rc = main(["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
               str(toy_corpus.dataset_paths), "--output", str(foreign), "--no-progress"])
    assert rc == 2 and "not a source store" in _one_line(capsys, "store")
    assert tree(foreign) == before
    rc = main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(foreign),
               "--output", str(tmp_path / "r"), "--no-progress"])
    assert rc == 2 and "is not a source store" in _one_line(capsys, "render")


def test_two_builds_at_once_are_refused(toy_corpus, tmp_path, capsys):
    from mixing.store.build import StoreLock

    store = tmp_path / "store"
    args = ["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
            str(toy_corpus.dataset_paths), "--output", str(store), "--no-progress"]
    assert main([*args, "--split", "test"]) == 0  # a store exists
    with StoreLock(store, 0, 1, identity={"plan": "another"}):
        assert main([*args, "--split", "validation"]) == 2
        assert f"process {os.getpid()}" in _one_line(capsys, "store")


# ---- damage: truncated segments, a full disk, kill -9 -----------------------------------------
def test_a_truncated_segment_is_reported_and_rebuilt(toy_corpus, tmp_path, capsys):
    store = tmp_path / "store"
    recs = records(toy_corpus, "validation")
    build(recs, toy_corpus.dataset_paths, store)
    seg = sorted((store / "segments").glob("*.f32"))[0]
    with open(seg, "r+b") as fh:
        fh.truncate(seg.stat().st_size // 2)
    out = tmp_path / "r"
    rc = main(["render", "--metadata", str(toy_corpus.parquet_dir), "--store", str(store), "--split",
               "validation", "--output", str(out), "--no-progress"])
    assert rc == 1
    reasons = Counter(json.loads(line)["reason"] for line in (out / "_failures.jsonl").read_text().splitlines())
    assert set(reasons) == {"store_corrupt"}
    assert main(["store", "verify", str(store)]) == 1
    assert "truncated_segment" in capsys.readouterr().out
    assert main(["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--split", "validation",
                 "--dataset-paths", str(toy_corpus.dataset_paths), "--output", str(store), "--no-progress"]) == 0
    assert main(["store", "verify", str(store), "--dataset-paths", str(toy_corpus.dataset_paths), "--checksums"]) == 0
    r = Renderer(toy_corpus.dataset_paths, store=store)
    for rec in recs:
        r.render(rec)
    assert r.store_stats["misses"] == 0


def _private_mount_works(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_registers_nothing_half_written(toy_corpus, tmp_path):
    if not _private_mount_works(tmp_path):
        pytest.skip("no private mount namespace (unshare -rm) on this machine")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    store = mnt / "store"
    args = ["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
            str(toy_corpus.dataset_paths), "--output", str(store), "--no-progress", "--segment-mb", "1"]
    check = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from mixing.store import SourceStore; "
             f"s = SourceStore({str(store)!r}); [s.read(i) for i in range(s.num_chunks)]; print('READ', s.num_chunks)")
    script = (f"mount -t tmpfs -o size=12m tmpfs {mnt} && {sys.executable} -m mixing "
              + " ".join(f"'{a}'" for a in args) + f"; echo RC=$?; {sys.executable} -c \"{check}\"")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env(),
                       timeout=300)
    assert "RC=2" in r.stdout, r.stdout + r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("hive ")]
    assert len(err) == 1 and "no space left" in err[0].lower(), r.stderr
    assert "Traceback" not in r.stderr.split("READ")[0]
    assert "READ" in r.stdout, r.stderr  # every chunk the index names reads back whole


@pytest.mark.slow
def test_kill_9_mid_build_then_rerun_gives_the_same_store(toy_corpus, tmp_path):
    args = ["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
            str(toy_corpus.dataset_paths), "--no-progress", "--segment-mb", "1"]
    clean = tmp_path / "clean"
    assert main([*args, "--output", str(clean)]) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mixing", *args, "--output", str(killed)], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "index").glob("*.parquet")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    parts = list((killed / "index").glob("*.parquet"))
    assert parts and not (killed / "index.parquet").exists(), "the build ended before it could be killed"
    assert main([*args, "--output", str(killed)]) == 0
    assert tree(killed) == tree(clean)


# ---- parallel builds --------------------------------------------------------------------------
@pytest.mark.slow
def test_workers_and_ranks_build_the_same_store(toy_corpus, tmp_path):
    args = ["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
            str(toy_corpus.dataset_paths), "--no-progress", "--segment-mb", "1"]
    one = tmp_path / "one"
    assert main([*args, "--output", str(one)]) == 0
    two = tmp_path / "two"
    assert main([*args, "--output", str(two), "--num-workers", "2"]) == 0
    ranks = tmp_path / "ranks"
    procs = [subprocess.Popen([sys.executable, "-m", "mixing", *args, "--output", str(ranks), "--rank", str(r),
                               "--world-size", "2"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert tree(two) == tree(one)
    assert tree(ranks) == tree(one)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None and
                    __import__("importlib").util.find_spec("accelerate") is None, reason="accelerate not installed")
def test_accelerate_launch_builds_the_same_store(toy_corpus, tmp_path):
    common = ["--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(toy_corpus.dataset_paths),
              "--split", "validation", "--no-progress"]
    one = tmp_path / "one"
    assert main(["store", "build", *common, "--output", str(one)]) == 0
    launched = tmp_path / "launched"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(ROOT / "scripts" / "store.py"), *common, "--output", str(launched)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**env(), "ACCELERATE_USE_CPU": "1"},
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "rank 0/2" in r.stdout and "rank 1/2" in r.stdout
    assert tree(launched) == tree(one)


@pytest.mark.slow  # end to end over the toy corpus
def test_a_later_build_extends_the_store_with_what_it_lacks(toy_corpus, tmp_path, capsys):
    store = tmp_path / "store"
    base = ["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
            str(toy_corpus.dataset_paths), "--output", str(store), "--no-progress"]
    assert main([*base, "--split", "validation"]) == 0
    first = SourceStore(store).num_chunks
    capsys.readouterr()
    assert main(base) == 0
    assert f"{first} already in the store" in capsys.readouterr().out
    full = SourceStore(store)
    assert full.num_chunks == len({(s.path, s.chunk_start_second, s.chunk_end_second)
                                   for r in records(toy_corpus) for s in r.sources})
    assert main(base) == 0
    assert "0 unit(s) built" in capsys.readouterr().out


# ---- info, verify, pickling ------------------------------------------------------------------
def test_info_and_verify(toy_corpus, toy_store, tmp_path, capsys):
    src = toy_store()
    store = tmp_path / "store"
    shutil.copytree(src, store)
    json_path = tmp_path / "info.json"
    assert main(["store", "info", str(store), "--json", str(json_path)]) == 0
    info = json.loads(json_path.read_text())
    held = SourceStore(store)
    assert info["chunks"] == held.num_chunks and info["sample_rate"] == 44100
    assert info["bytes"] == 4 * info["samples"] and abs(info["hours"] - info["samples"] / 44100 / 3600) < 1e-6
    assert sum(c["chunks"] for c in info["per_corpus"].values()) == info["chunks"]
    assert set(info["per_corpus"]) == {p.split("/", 1)[0] for p in held.index.files}
    assert main(["store", "verify", str(store), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--checksums", "--sample", "8"]) == 0
    seg = sorted((store / "segments").glob("*.f32"))[0]
    data = bytearray(seg.read_bytes())
    data[100] ^= 0xFF
    seg.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["store", "verify", str(store), "--checksums", "--sample", "0"]) == 1
    assert "checksum_mismatch=1" in capsys.readouterr().out


def test_a_store_pickles_by_path_and_reads_in_worker_processes(toy_corpus, toy_store):
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    store = SourceStore(toy_store())
    clone = pickle.loads(pickle.dumps(store))
    assert len(pickle.dumps(store)) < 1000 and clone.num_chunks == store.num_chunks
    rows = list(range(0, store.num_chunks, 7))
    with ProcessPoolExecutor(2) as pool:
        got = list(pool.map(_read_sum, [store] * len(rows), rows))
    assert got == [float(store.read(r).astype(np.float64).sum()) for r in rows]


def _read_sum(store: SourceStore, row: int) -> float:
    return float(store.read(row).astype(np.float64).sum())


def test_missing_and_fifo_sources_are_named_failures_and_the_rest_is_built(toy_corpus, tmp_path, capsys):
    dp = copy_corpus(toy_corpus, tmp_path)
    recs = records(toy_corpus, "validation")
    paths = DatasetPaths.from_json(dp)
    gone, fifo = recs[0].sources[0].path, recs[1].sources[-1].path
    assert gone != fifo
    paths.resolve(gone).unlink()
    paths.resolve(fifo).unlink()
    os.mkfifo(paths.resolve(fifo))
    store = tmp_path / "store"
    rc = main(["store", "build", "--metadata", str(toy_corpus.parquet_dir), "--split", "validation",
               "--dataset-paths", str(dp), "--output", str(store), "--no-progress"])
    assert rc == 1
    fails = {json.loads(line)["path"]: json.loads(line)["reason"]
             for line in (store / "_failures.jsonl").read_text().splitlines()}
    assert fails == {gone: "missing_file", fifo: "unreadable_audio"}
    wanted = {(s.path, s.chunk_start_second, s.chunk_end_second) for r in recs for s in r.sources}
    lost = {w for w in wanted if w[0] in (gone, fifo)}
    assert SourceStore(store).num_chunks == len(wanted) - len(lost)


# ---- one recipe; every worker busy; the other consumers ---------------------------------------
def test_the_recipe_is_the_only_way_production_code_builds_a_renderer():
    import re

    found = []
    for folder in ("mixing", "curation", "dataset_card"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"\bRenderer\(", line) and not line.lstrip().startswith(("class ", "#", '"')):
                    found.append(f"{path.relative_to(ROOT)}:{i}")
    for path in [ROOT / "hive.py"]:
        if re.search(r"\bRenderer\(", path.read_text(encoding="utf-8")):
            found.append("hive.py")
    assert found == ["mixing/recipe.py:123"] or (len(found) == 1 and found[0].startswith("mixing/recipe.py")), found


def test_each_thread_renders_with_its_own_renderer(toy_corpus, toy_store):
    """``datasets`` renders several work units of one worker at once from threads; a renderer hands
    out reused output buffers, so each thread has its own (and keeps it), and concurrent renders
    give the samples of a serial one."""
    import threading

    from mixing.recipe import RenderRecipe

    recipe = RenderRecipe.make(None, store=str(toy_store()))
    recs = records(toy_corpus, "validation")[:12]
    serial = {r.mix_id: recipe.renderer().render(r).stems.copy() for r in recs}
    seen: dict[int, list] = {}
    bad: list[str] = []
    start = threading.Barrier(4)

    def work(k: int) -> None:
        start.wait()
        for _ in range(5):
            renderer = recipe.renderer()
            seen.setdefault(k, []).append(renderer)
            for r in recs:
                got = renderer.render(r).stems
                if not np.array_equal(got, serial[r.mix_id]):
                    bad.append(f"thread {k}: {r.mix_id}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    assert all(len({id(x) for x in v}) == 1 for v in seen.values())  # one renderer per thread, kept
    assert len({id(v[0]) for v in seen.values()} | {id(recipe.renderer())}) == 5  # none shared


def _big_metadata(corpus, path: Path, copies: int = 3) -> int:
    from mixing.metadata_io import write_jsonl

    base = records(corpus, "train")
    recs = [r.replace(mix_id=f"{r.mix_id}_{k}") for k in range(copies) for r in base if r.num_sources == 3]
    write_jsonl(recs + recs[:1], path)  # and one duplicate mix_id
    return len(recs)


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_fewer_shards_than_workers_keep_every_worker_busy_and_the_same_bytes(toy_corpus, toy_store, tmp_path, fmt):
    meta = tmp_path / "meta.jsonl"
    n = _big_metadata(toy_corpus, meta, copies=12)  # 144 mixtures of 3 sources: one shard, three pieces
    assert n > 2 * 64
    common = ["render", "--metadata", str(meta), "--store", str(toy_store()), "--format", fmt, "--no-progress",
              "--allow-failures"]
    one, three = tmp_path / "one", tmp_path / "three"
    assert main([*common, "--output", str(one)]) == 0
    assert main([*common, "--output", str(three), "--num-workers", "3"]) == 0
    assert tree(three, skip=("_ranks",)) == tree(one, skip=("_ranks",))
    entry = json.loads((one / "_ledger" / "train-3mix-00000.json").read_text())
    assert entry["count"] == n and [f["reason"] for f in entry["failures"]] == ["duplicate_mix_id"]
    if fmt == "webdataset":
        assert len(entry["pieces"]) == 3
    assert not list(three.rglob(".*.tmp-*"))  # the pieces' fragments are gone
    assert main(["verify", str(three), "--checksums", "--no-progress"]) == 0


@pytest.mark.slow  # end to end over the toy corpus
def test_inspect_eval_and_curate_audio_read_the_store(toy_corpus, toy_store, tmp_path):
    from curation.curate.audio import RenderedStems
    from mixing import api

    store = toy_store()
    rec = records(toy_corpus, "validation")[0]
    a, _ = RenderedStems(toy_corpus.dataset_paths).stems(rec)
    b, _ = RenderedStems(None, store=str(store)).stems(rec)
    assert np.abs(a - b).max() <= 2e-6
    pytest.importorskip("matplotlib")
    assert main(["inspect", str(toy_corpus.parquet_dir), "--store", str(store), "--output", str(tmp_path / "ins"),
                 "--mix-id", rec.mix_id, "--no-progress"]) == 0
    page = next((tmp_path / "ins").rglob(f"*{rec.mix_id}*.html")).read_text()
    assert "source store" in page
    via_store = api.evaluate(None, tmp_path / "ev", metadata=toy_corpus.parquet_dir,
                             recipe=api.RenderRecipe.make(None, store=store), split="validation",
                             options=api.EvalOptions(with_sdr=False, plot=False, progress=False))
    assert via_store.mixtures == 16 and not via_store.render_failures
    assert abs(via_store.summary.mean("mixture")) < 1e-9 and via_store.summary.mean("irm") > 10
