"""A fresh clone passes its tests: pinned versions (constraints.txt, used by make), and .ci/run,
which runs the README's test command in a clone with nothing beside it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("dev", "models", "audio", "card")


def _pins() -> dict[str, str]:
    pins = {}
    for n, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^\s;]*)", line)
        assert m, f"constraints.txt line {n}: {line!r} is not NAME==VERSION"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = m.group(2)
    return pins


def _closure() -> set[str]:
    """Every distribution that hive-uss and its extras pull in, as installed here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    todo += [Requirement(r) for e in EXTRAS for r in project["optional-dependencies"][e]]
    seen: set[tuple[str, frozenset]] = set()
    names: set[str] = set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        for text in metadata.requires(req.name) or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return names


def test_constraints_pin_every_dependency_at_the_tested_version():
    pins = _pins()
    assert pins["torch"] == "2.13.0" and pins["torchcodec"] == "0.13.0"
    closure = _closure()
    assert closure - set(pins) == set(), "dependencies without a pin in constraints.txt"
    for name in sorted(closure):
        installed = metadata.version(name)
        assert SpecifierSet(f"=={pins[name]}").contains(installed, prereleases=True), \
            f"{name}: installed {installed}, constraints.txt pins {pins[name]}"
    assert "hive-uss" not in pins  # the project itself is installed from the checkout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["test", "demo"])
def test_make_installs_with_the_constraints(target):
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    installs = [ln for ln in done.stdout.splitlines() if "pip install" in ln]
    assert installs and all("-c constraints.txt" in ln for ln in installs), done.stdout
    assert any("-e ." in ln or '-e ".[' in ln for ln in installs)


FAKE_MAKE = """#!/usr/bin/env bash
# stands in for make: records where and how it runs, then exits with $FAKE_STATUS
{ echo "args=$*"; echo "pwd=$PWD"; echo "siblings=$(ls -A .. | tr '\\n' ' ')";
  echo "marker=$(cat marker.txt)"; echo "python=$(command -v python)"; } > "$FAKE_LOG"
exit "$FAKE_STATUS"
"""


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A git repository holding this project's .ci/run and a committed marker file."""
    repo = tmp_path / "checkout"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "marker.txt").write_text("committed\n")
    (tmp_path / "shared").mkdir()  # a ../shared beside the checkout must not be beside the clone
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    (repo / "marker.txt").write_text("uncommitted\n")
    return repo


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("status", [0, 1, 2, 5])
def test_ci_run_tests_a_fresh_clone_and_returns_the_status(checkout, tmp_path, status):
    bin_dir, tmp_root, log = tmp_path / "bin", tmp_path / "tmp", tmp_path / "make.log"
    bin_dir.mkdir()
    tmp_root.mkdir()
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(tmp_root),
               FAKE_LOG=str(log), FAKE_STATUS=str(status), PYTHON=sys.executable)
    env.pop("HIVE_CI_KEEP", None)
    done = subprocess.run([str(checkout / ".ci" / "run")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == status, done.stderr
    rec = dict(line.split("=", 1) for line in log.read_text().splitlines())
    assert rec["args"].split()[0] == "test"  # the README's test command
    clone = Path(rec["pwd"])
    assert clone.name == "hive" and clone.parent.parent == tmp_root
    assert rec["siblings"].split() == ["hive", "venv"]  # an empty folder: no ../shared
    assert rec["marker"] == "committed"
    assert rec["python"] == str(clone.parent / "venv" / "bin" / "python")  # installs go to the venv
    assert "uncommitted changes" in done.stderr
    assert ("failed with exit status" in done.stderr) == (status != 0)
    assert list(tmp_root.iterdir()) == []  # removed afterwards
