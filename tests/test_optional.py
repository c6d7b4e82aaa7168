"""A missing optional dependency is one line naming the extra that installs it (exit status 2),
for every command that imports one lazily; and every such import goes through mixing.optional.

The commands run in a fresh interpreter where the package is made unimportable: a
``sitecustomize`` on PYTHONPATH installs an import hook that refuses the names in
``HIVE_TEST_BLOCK_MODULES`` with ``ModuleNotFoundError``, as an environment without the package
would."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixing import optional

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = '''
import importlib.abc, os, sys

BLOCKED = {n for n in os.environ.get("HIVE_TEST_BLOCK_MODULES", "").split(",") if n}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
'''


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shim")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def hive_without(shim: Path, blocked: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]),
           "HIVE_TEST_BLOCK_MODULES": blocked, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "mixing", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def assert_one_line_refusal(done: subprocess.CompletedProcess, command: str, package: str, extra: str):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith(f"hive {command}: error: "), lines[0]
    assert f"needs the Python package {package!r}" in lines[0]
    assert f"pip install 'hive-uss[{extra}]'" in lines[0]
    return lines[0]


@pytest.mark.slow
def test_the_shim_really_hides_the_package(shim, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(shim), "HIVE_TEST_BLOCK_MODULES": "scipy"}
    done = subprocess.run([sys.executable, "-c", "import scipy.signal"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 1 and "ModuleNotFoundError: No module named 'scipy" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("blocked,flags,package,hint", [
    ("scipy", ["--no-sdr", "--no-plot"], "scipy", None),   # the IRM oracle row is always computed
    ("torchmetrics", ["--no-plot"], "torchmetrics", "--no-sdr"),
    ("torch", ["--no-plot"], "torch", "--no-sdr"),
    ("matplotlib", ["--no-sdr"], "matplotlib", "--no-plot"),
])
def test_eval_without_an_extra_package_is_one_line_naming_the_eval_extra(
        shim, toy_render, tmp_path, blocked, flags, package, hint):
    out = tmp_path / "eval"
    done = hive_without(shim, blocked, ["eval", "--rendered", str(toy_render()), "--output", str(out),
                                        "--split", "validation", "--no-progress", *flags], tmp_path)
    line = assert_one_line_refusal(done, "eval", package, "eval")
    assert hint is None or hint in line
    assert not out.exists()  # refused before any work


@pytest.mark.slow
def test_eval_needs_no_torch_without_sdr(shim, toy_render, tmp_path):
    """SI-SDR, SI-SDRi and the oracle rows need scipy and numpy only."""
    out = tmp_path / "eval"
    done = hive_without(shim, "torch,torchmetrics,matplotlib", [
        "eval", "--rendered", str(toy_render()), "--output", str(out), "--split", "validation",
        "--no-sdr", "--no-plot", "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "summary.csv").stat().st_size > 0 and not (out / "si_sdri.png").exists()


@pytest.mark.slow
def test_card_and_inspect_without_matplotlib_name_the_card_extra(shim, toy_corpus, toy_render, tmp_path):
    card = hive_without(shim, "matplotlib", ["card", str(toy_corpus.parquet_dir), "--output",
                                             str(tmp_path / "card")], tmp_path)
    assert_one_line_refusal(card, "card", "matplotlib", "card")
    assert not (tmp_path / "card").exists()
    page = hive_without(shim, "matplotlib", ["inspect", str(toy_render()), "--output", str(tmp_path / "page"),
                                             "--sample", "1", "--no-progress"], tmp_path)
    assert_one_line_refusal(page, "inspect", "matplotlib", "card")


@pytest.mark.slow
@pytest.mark.parametrize("stage,option,spec,blocked,package", [
    ("single-event", "--judge", "openai:url=http://127.0.0.1:9/v1,model=m,retries=0", "httpx", "httpx"),
    ("tag", "--tagger", "sherpa:model=/nonexistent/m.onnx", "sherpa_onnx", "sherpa-onnx"),
    ("tag", "--tagger", "ast:path=/nonexistent/ast", "torch", "torch"),
    ("superres", "--backend", "apollo:code=/nonexistent,checkpoint=/nonexistent.ckpt", "torch", "torch"),
])
def test_mine_without_a_model_package_refuses_before_any_item(shim, toy_corpus, tmp_path, stage, option,
                                                               spec, blocked, package):
    """Not one model failure per item (exit 1, every item in failures.jsonl): one refusal."""
    extra = ["--output-root", str(tmp_path / "root"), "--prefix", "Mined"] if stage == "superres" else []
    out = tmp_path / "out"
    done = hive_without(shim, blocked, ["mine", stage, "--input", str(toy_corpus.pool), "--output", str(out),
                                        "--dataset-paths", str(toy_corpus.dataset_paths), option, spec,
                                        *extra], tmp_path)
    assert_one_line_refusal(done, "mine", package, "models")
    assert not (out / "output.jsonl").exists() and not (out / "failures.jsonl").exists()


@pytest.mark.slow
def test_curate_without_httpx_refuses_before_writing(shim, toy_corpus, tmp_path):
    out = tmp_path / "curated"
    done = hive_without(shim, "httpx", ["curate", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
                                        str(toy_corpus.dataset_paths), "--judge",
                                        "openai:url=http://127.0.0.1:9/v1,model=m", "--output", str(out)],
                        tmp_path)
    assert_one_line_refusal(done, "curate", "httpx", "models")
    assert not out.exists()


# ---- the helper itself ----------------------------------------------------------------------------
def test_require_names_package_extra_and_alternative():
    with pytest.raises(optional.MissingDependencyError) as info:
        optional.require("hive_absent_pkg_q.sub", "the frobnicator", "eval", alternative="or pass --no-frob")
    err = info.value
    assert isinstance(err, ImportError) and err.name == "hive_absent_pkg_q"
    assert str(err) == ("the frobnicator needs the Python package 'hive_absent_pkg_q', which cannot be imported "
                        "(No module named 'hive_absent_pkg_q'); install it with: pip install 'hive-uss[eval]'; "
                        "or pass --no-frob")
    assert optional.require("json", "x", "eval").dumps([1]) == "[1]"
    assert optional.available("json") and not optional.available("hive_absent_pkg_q")
    with pytest.raises(optional.MissingDependencyError, match=r"'hive-absent'.*hive-uss\[card\]"):
        optional.require_available("hive_absent_pkg_q", "drawing", "card", package="hive-absent")


def test_curation_uses_the_ground_floor_error():
    from curation.models import MissingDependencyError
    from curation.models.registry import missing_dependency

    assert MissingDependencyError is optional.MissingDependencyError
    assert "pip install 'hive-uss[models]'" in str(missing_dependency("the x backend", "torch"))


OPTIONAL = {"torch", "torchmetrics", "torchcodec", "scipy", "matplotlib", "transformers", "accelerate",
            "sherpa_onnx", "httpx", "librosa", "sklearn", "onnx"}


@pytest.mark.slow  # end to end over the toy corpus
def test_every_optional_import_in_the_package_goes_through_the_helper():
    """No ``import torch`` / ``from scipy... import`` in mixing/, curation/, dataset_card/: an
    optional package is imported with mixing.optional.require (one error, naming the extra)."""
    found = []
    for room in ("mixing", "curation", "dataset_card"):
        for path in sorted((ROOT / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in OPTIONAL]
    assert found == []
