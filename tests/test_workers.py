"""Workers of every command die with their parent (issue 19): ``synthesize`` workers used to
outlive ``kill -9`` of the parent (and ``verify``'s likewise), each holding memory and files.
Every process pool is :func:`mixing.workers.process_pool`; each test starts the real command
with two workers, kills the parent with SIGKILL once its workers run, and asserts that no process
it started survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _parents() -> dict[int, int]:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            out[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _descendants(pid: int) -> list[int]:
    parents = _parents()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_parent_and_check_workers(argv: list[str], min_workers: int = 2) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mixing", *argv], env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [p for p in _descendants(proc.pid) if _alive(p)]
            if len(workers) >= min_workers:
                break
            time.sleep(0.01)
        assert proc.poll() is None and len(workers) >= min_workers, \
            f"hive {argv[0]} ended before its workers could be seen (exit {proc.poll()})"
        time.sleep(0.5)  # let the workers take work
        workers = sorted(set(workers) | set(p for p in _descendants(proc.pid) if _alive(p)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.05)
        survivors = [p for p in workers if _alive(p)]
        assert not survivors, f"hive {argv[0]}: processes {survivors} outlived their killed parent"
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from mixing.toy import build_toy_corpus, write_toy_ontology

    corpus = build_toy_corpus(tmp_path_factory.mktemp("workers") / "toy")
    write_toy_ontology(corpus.root / "toy_ontology.json")
    return corpus


@pytest.mark.slow
def test_synthesize_workers_die_with_the_parent(toy, tmp_path):
    kill_parent_and_check_workers(
        ["synthesize", "--pool", str(toy.pool), "--ontology", str(toy.root / "toy_ontology.json"),
         "--dataset-paths", str(toy.dataset_paths), "--output", str(tmp_path / "out"), "--num-mixtures", "5000",
         "--num-workers", "2"])


@pytest.mark.slow
def test_verify_workers_die_with_the_parent(toy, tmp_path):
    from mixing.cli import main

    rendered = tmp_path / "rendered"
    assert main(["render", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
                 "--output", str(rendered), "--shard-size", "1", "--no-progress"]) == 0
    kill_parent_and_check_workers(["verify", str(rendered), "--num-workers", "2", "--checksums"])


def test_every_process_pool_of_the_project_is_the_one_that_dies_with_its_parent():
    """No module starts worker processes any other way (a new command cannot forget it)."""
    offenders = []
    for room in ("mixing", "curation", "dataset_card"):
        for path in sorted((ROOT / room).rglob("*.py")):
            if path.name == "workers.py" and path.parent.name == "mixing":
                continue
            text = path.read_text(encoding="utf-8")
            for needle in ("ProcessPoolExecutor(", "multiprocessing.Pool(", ".Pool(", "Process(target"):
                if needle in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert (ROOT / "hive.py").read_text(encoding="utf-8").count("ProcessPoolExecutor(") == 0
    assert not offenders, "process pools outside mixing.workers.process_pool: " + "; ".join(offenders)
