"""The "Train a separator" example of docs/training.md (linked from the README), run as written on the toy corpus on CPU: the Python
file trains a tiny query-conditioned mask network on dynamic mixtures from a source store, and
``hive eval`` then evaluates it through its batched interface."""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: training steps per epoch in the test (the README shows 20; fewer keep the suite short)
STEPS = "8"


def _blocks() -> tuple[str, list[list[str]]]:
    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    section = text[text.index("## Train a separator"):]
    end = section.find("\n## ", 10)
    section = section if end < 0 else section[:end]
    code = re.search(r"```python\n(# train_separator\.py\n.*?)```", section, re.S).group(1)
    bash = re.search(r"```bash\n(.*?)```", section[section.index(code):], re.S).group(1)
    commands = [shlex.split(c) for c in bash.replace("\\\n", " ").splitlines() if c.strip()]
    return code, commands


@pytest.mark.slow
def test_readme_example_trains_and_evaluates(toy_corpus, toy_store, tmp_path):
    pytest.importorskip("torch")
    code, commands = _blocks()
    assert len(code.splitlines()) <= 45 and [c[0] for c in commands] == ["python", "hive"]
    (tmp_path / "train_separator.py").write_text(code)
    (tmp_path / "pool.jsonl").symlink_to(toy_corpus.pool)
    (tmp_path / "store").symlink_to(toy_store(44100))
    (tmp_path / "metadata").symlink_to(toy_corpus.parquet_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    train, evaluate = commands
    assert train[1:3] == ["train_separator.py", "pool.jsonl"]
    train = [sys.executable, *train[1:-1], STEPS]
    proc = subprocess.run(train, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [float(m) for m in re.findall(r"loss ([0-9.]+)", proc.stdout)]
    assert len(losses) >= 2 * int(STEPS) and all(x == x for x in losses)  # both epochs, finite
    assert (tmp_path / "tiny_mask.pt").stat().st_size > 0
    evaluate = [sys.executable, "-m", "mixing", *evaluate[1:], "--no-sdr", "--no-plot", "--no-progress"]
    proc = subprocess.run(evaluate, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| separator | ALL | ALL | 56 |" in proc.stdout  # every validation source was queried
    with open(tmp_path / "eval" / "summary.csv", newline="") as fh:
        overall = {r["system"]: r for r in csv.DictReader(fh) if r["label"] == "ALL" and r["num_sources"] == "ALL"}
    # an untrained mask scales the mixture (0 dB SI-SDRi); the trained one has learned to separate
    assert float(overall["separator"]["si_sdri_mean"]) > 1.0
