"""Stale temporaries of every command are removed (issue 19): ``inspect`` and ``eval`` left
``.tmp-PID`` files (and folders) after ``kill -9`` that reruns never removed. Every command that
writes temporaries removes, when it starts, the ones of its own outputs whose writer is dead, and
nothing else: a live writer's temporary and files it did not write stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixing.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if ".tmp-" in p.name) if folder.exists() else []


def _kill_when(argv: list[str], appeared, timeout: float = 120) -> None:
    """Start ``hive argv``, SIGKILL it as soon as ``appeared()`` is true."""
    proc = subprocess.Popen([sys.executable, "-m", "mixing", *argv], env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not appeared():
            time.sleep(0.005)
        assert proc.poll() is None, f"hive {argv[0]} ended before it could be killed mid-way"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_eval_killed_then_rerun_leaves_no_temporary(toy_render, tmp_path, capsys):
    rendered = toy_render()
    out = tmp_path / "eval"
    argv = ["eval", "--rendered", str(rendered), "--output", str(out), "--no-sdr", "--no-plot", "--no-progress"]
    _kill_when(argv, lambda: any(p.name.startswith(".results.csv.tmp-") for p in _temporaries(out)))
    left = _temporaries(out)
    assert any(p.name.startswith(".results.csv.tmp-") for p in left), left
    assert main(argv) == 0
    assert _temporaries(out) == []
    assert (out / "results.csv").is_file()


@pytest.mark.slow
def test_inspect_killed_then_rerun_leaves_no_temporary(toy_render, tmp_path):
    pytest.importorskip("matplotlib")
    rendered = toy_render()
    out = tmp_path / "pages"
    argv = ["inspect", str(rendered), "--output", str(out), "--sample", "6", "--no-progress"]
    _kill_when(argv, lambda: any(p.name.startswith(".pages.tmp-") for p in _temporaries(tmp_path)))
    left = _temporaries(tmp_path)
    assert left and any(p.is_dir() and p.name.startswith(".pages.tmp-") for p in left), left
    assert main(argv) == 0
    assert _temporaries(tmp_path) == []
    assert (out / "index.html").is_file()


# ---- every other command: planted temporaries of a dead and of a live writer ---------------------
def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.fixture
def live_pid():
    """The PID of a live process other than this one (a writer still at work)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _plant(target: Path, live_pid: int) -> tuple[Path, Path]:
    """A dead writer's and a live writer's temporary of ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    dead = target.with_name(f".{target.name}.tmp-{_dead_pid()}")
    live = target.with_name(f".{target.name}.tmp-{live_pid}")
    dead.write_text("partial")
    live.write_text("being written")
    return dead, live


@pytest.fixture(scope="module")
def toy(toy_corpus):
    return toy_corpus


@pytest.mark.slow
@pytest.mark.parametrize("command", ["check", "verify", "render", "card", "mine", "eval", "synthesize"])
def test_each_command_removes_the_dead_writers_temporaries_of_its_outputs(command, toy, toy_render, tmp_path,
                                                                          live_pid):
    out = tmp_path / "out"
    common = ["--dataset-paths", str(toy.dataset_paths)]
    targets = {
        "check": (["check", "--metadata", str(toy.parquet_dir), *common, "--report", str(out / "check.json"),
                   "--no-progress", "--split", "test"], out / "check.json"),
        "verify": (["verify", str(toy_render()), "--report", str(out / "verify.json"), "--no-progress"],
                   out / "verify.json"),
        "render": (["render", "--metadata", str(toy.parquet_dir), *common, "--output", str(out), "--split", "test",
                    "--num-sources", "2", "--no-progress"], out / "_summary.json"),
        "card": (["card", str(toy.parquet_dir), "--output", str(out)], out / "README.md"),
        "mine": (["mine", "chunk", "--input", str(toy.labels_csv), "--output", str(out), *common, "--no-progress"],
                 out / "output.jsonl"),
        "eval": (["eval", "--rendered", str(toy_render()), "--output", str(out), "--no-sdr", "--no-plot",
                  "--limit", "2", "--no-progress"], out / "summary.csv"),
        "synthesize": (["synthesize", "--pool", str(toy.pool), *common, "--output", str(out),
                        "--num-mixtures", "4", "--dry-run"], out / "synthesis_stats_train.json"),
    }
    if command == "card":
        pytest.importorskip("matplotlib")
    argv, target = targets[command]
    assert main(argv) == 0  # a finished earlier run; then a killed one left its temporary
    dead, live = _plant(target, live_pid)
    assert main(argv) == 0
    assert not dead.exists(), f"hive {command} left {dead.name} of a killed run"
    assert live.read_text() == "being written", "a live writer's temporary was touched"


@pytest.mark.slow
def test_remove_stale_tmp_of_touches_only_the_targets_temporaries(tmp_path):
    from mixing.resume import remove_stale_tmp_of

    dead = _dead_pid()
    (tmp_path / f".a.json.tmp-{dead}").write_text("x")
    (tmp_path / f".pages.tmp-{dead}").mkdir()
    (tmp_path / f".pages.tmp-{dead}" / "index.html").write_text("x")
    (tmp_path / f".b.json.tmp-{dead}").write_text("other target")
    (tmp_path / f".a.json.tmp-{os.getpid()}").write_text("live")
    (tmp_path / f".a.json.tmp-{dead}x").write_text("not our name")
    removed = remove_stale_tmp_of(tmp_path / "a.json", tmp_path / "pages")
    assert sorted(p.name for p in removed) == sorted([f".a.json.tmp-{dead}", f".pages.tmp-{dead}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".b.json.tmp-{dead}", f".a.json.tmp-{os.getpid()}", f".a.json.tmp-{dead}x"])
