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
EXTRAS = ("dev", "models", "audio", "card", "eval")


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


@pytest.mark.slow  # end to end over the toy corpus
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


HAS_MAKE = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
STOCK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _dry_run(target: str, *flags: str, **env: str) -> list[str]:
    """The commands ``make -n TARGET`` would run (no venv active unless ``env`` sets one)."""
    base = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(["make", "-n", *flags, target], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.slow
@HAS_MAKE
@pytest.mark.parametrize("target", ["test", "demo"])
def test_make_installs_with_the_constraints_into_a_venv(target, tmp_path):
    lines = _dry_run(target, "-B")  # -B: as in a fresh clone, even where this checkout has a .venv
    installs = [ln for ln in lines if "pip install" in ln]
    assert installs and all("-c constraints.txt" in ln for ln in installs), lines
    assert any("-e ." in ln or '-e ".[' in ln for ln in installs)
    # the project's .venv, made by the system's python3; pip and the tests run from it
    assert "python3 -m venv .venv" in lines
    assert all(ln.startswith(".venv/bin/python -m pip install") for ln in installs), installs
    assert (".venv/bin/hive demo" if target == "demo" else ".venv/bin/python -m pytest -q") in lines
    # no `python` command is assumed (a stock Debian has only python3)
    assert not [ln for ln in lines if re.search(r"(^|[\s;(&|])python(\s|$)", ln)], lines
    # an active virtualenv is used as it is
    venv = tmp_path / "active"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    active = _dry_run(target, VIRTUAL_ENV=str(venv))
    assert not [ln for ln in active if "-m venv" in ln], active
    assert all(ln.startswith(f"{venv}/bin/python -m pip install") for ln in active if "pip install" in ln)


FAKE_PYTHON3 = """#!/usr/bin/env bash
# the system's python3 on a machine without python3-venv (until FAKE_DIR/installed exists), or an
# old one (FAKE_DIR/old): delegates everything else to the real interpreter
if [ -e "$FAKE_DIR/old" ]; then
    case "$*" in
        *version_info*) exit 1 ;;
        *python_version*) echo 3.10.12; exit 0 ;;
    esac
fi
if [ ! -e "$FAKE_DIR/installed" ] && [ "$1" = -c ] && [[ "$2" == *ensurepip* ]]; then exit 1; fi
exec "$REAL_PYTHON" "$@"
"""
FAKE_TOOL = """#!/usr/bin/env bash
echo "{name} $*" >> "$FAKE_DIR/calls"
{body}
"""


def _fake_system(tmp_path: Path, uid: int) -> tuple[dict, Path]:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    tools = {
        "python3": FAKE_PYTHON3,
        "id": FAKE_TOOL.format(name="id", body=f'[ "$1" = -u ] && echo {uid} || exec /usr/bin/id "$@"'),
        "sudo": FAKE_TOOL.format(name="sudo", body='exec "$@"'),
        "apt-get": FAKE_TOOL.format(name="apt-get", body='if [ "$1" = install ]; then touch "$FAKE_DIR/installed"; '
                                   'echo "frontend=$DEBIAN_FRONTEND" >> "$FAKE_DIR/calls"; fi'),
    }
    for name, text in tools.items():
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(PATH=f"{fake}{os.pathsep}{env['PATH']}", FAKE_DIR=str(tmp_path), REAL_PYTHON=sys.executable)
    return env, tmp_path / "calls"


@pytest.mark.slow
@HAS_MAKE
@pytest.mark.parametrize("uid,sudo", [(0, ""), (1000, "sudo ")])
def test_make_venv_installs_python3_venv_when_missing_as_root_or_through_sudo(tmp_path, uid, sudo):
    """The real Makefile rule: python3 without ensurepip -> apt-get installs pythonX.Y-venv (as
    root directly, else through sudo), then `python3 -m venv` makes a working venv."""
    env, calls = _fake_system(tmp_path, uid)
    venv = tmp_path / "venv"
    done = subprocess.run(["make", "-s", "venv", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    pkg = "python%d.%d-venv" % sys.version_info[:2]
    assert f"installing {pkg}" in done.stdout
    lines = [ln for ln in calls.read_text().splitlines() if not ln.startswith("id ")]
    apt = ["apt-get update -qq", f"apt-get install -y -qq {pkg}", "frontend=noninteractive"]
    if sudo:
        apt = ["sudo apt-get update -qq", apt[0],
               f"sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {pkg}", *apt[1:]]
    assert lines == apt
    ran = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0 and str(venv) in ran.stdout
    # a second run finds the venv: nothing installed, nothing made
    before = calls.read_text()
    again = subprocess.run(["make", "-s", "venv", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                           env=env, timeout=120)
    assert again.returncode == 0 and again.stdout == "" and calls.read_text() == before


@pytest.mark.slow
@HAS_MAKE
def test_make_refuses_a_python3_older_than_the_pins_allow(tmp_path):
    env, calls = _fake_system(tmp_path, 0)
    (tmp_path / "old").touch()
    done = subprocess.run(["make", "-s", "venv", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode != 0
    assert "is Python 3.10.12; hive-uss needs Python 3.11 or newer" in done.stderr
    assert "make PYTHON3=python3.11" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_requires_python_and_readme_state_what_the_pins_allow():
    """Every Python the project admits is admitted by the Requires-Python of every pinned
    distribution (as installed here), the project excludes none the pins allow, and the README
    names that lowest version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = SpecifierSet(project["requires-python"])
    pinned = {name: SpecifierSet(metadata.metadata(name).get("Requires-Python") or "")
              for name in _pins() if _installed(name)}
    assert len(pinned) >= 80  # the pins are installed here (test_constraints_pin_every_dependency...)
    versions = [f"3.{minor}.0" for minor in range(8, 20)]
    refused = {v: sorted(n for n, spec in pinned.items() if not spec.contains(v)) for v in versions}
    assert [v for v in versions if v in ours and refused[v]] == [], refused  # promised but not installable
    lowest = next(v for v in versions if not refused[v])
    assert lowest in ours and all(v not in ours for v in versions[:versions.index(lowest)])
    readme = (ROOT / "README.md").read_text()
    major_minor = lowest.rsplit(".", 1)[0]
    assert f"Python {major_minor} or newer" in readme
    stated = [int(m) for m in re.findall(r"Python (?:≥|>=) ?3\.(\d+)", readme)]
    assert all(minor >= int(major_minor.split(".")[1]) for minor in stated), stated


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


FAKE_MAKE = """#!/usr/bin/env bash
# stands in for make: records where and how it runs, then exits with the status for its target
{{ echo "args=$*"; echo "pwd=$PWD"; echo "siblings=$(ls -A .. | tr '\\n' ' ')";
  echo "marker=$(cat marker.txt)"; echo "path=$PATH"; echo "home=$HOME";
  echo "home_files=$(ls -A "$HOME" | tr '\\n' ' ')"; echo "venv=${{VIRTUAL_ENV-unset}}";
  echo "pythonpath=${{PYTHONPATH-unset}}"; echo "env_names=$(env | cut -d= -f1 | sort | tr '\\n' ' ')";
  echo "--"; }} >> {log}
case "$1" in demo) exit {demo};; test) exit {test};; esac
exit 99
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


def _records(log: Path) -> list[dict[str, str]]:
    return [dict(line.split("=", 1) for line in block.strip().splitlines())
            for block in log.read_text().split("--\n") if block.strip()]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("demo,test,status", [(0, 0, 0), (0, 1, 1), (0, 5, 5), (2, 0, 2), (3, 1, 3)])
def test_ci_run_sets_up_fresh_clones_with_the_readme_commands(checkout, tmp_path, demo, test, status):
    """`make demo` in a fresh clone with the system's PATH only (env -i) and an empty HOME, then
    `make test` in another, neither seeing the caller's virtualenv or PYTHONPATH; the first
    failing status is the script's, each failure named; the folder is removed afterwards."""
    bin_dir, tmp_root, log = tmp_path / "bin", tmp_path / "tmp", tmp_path / "make.log"
    bin_dir.mkdir()
    tmp_root.mkdir()
    (bin_dir / "make").write_text(FAKE_MAKE.format(log=log, demo=demo, test=test))
    (bin_dir / "make").chmod(0o755)
    caller_path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    env = dict(os.environ, PATH=caller_path, TMPDIR=str(tmp_root), VIRTUAL_ENV=str(tmp_path / "callers-venv"),
               PYTHONPATH=str(tmp_path / "callers-code"))
    env.pop("HIVE_CI_KEEP", None)
    done = subprocess.run([str(checkout / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    first, second = _records(log)
    assert first["args"] == "demo" and second["args"] == "test"  # the README's two commands
    for rec, name in ((first, "demo"), (second, "hive")):
        clone = Path(rec["pwd"])
        assert clone.name == name and clone.parent.parent == tmp_root
        assert rec["marker"] == "committed"
        assert rec["venv"] == "unset" and rec["pythonpath"] == "unset"
    assert first["siblings"].split() == ["demo", "home"]  # an empty folder: no ../shared
    assert second["siblings"].split() == ["demo", "hive", "home"]
    # the demo sees a stock machine: the system PATH, an empty HOME, nothing else of the caller's
    assert first["path"] == STOCK_PATH and first["home"] == str(Path(first["pwd"]).parent / "home")
    assert first["home_files"] == "" and set(first["env_names"].split()) <= {"PATH", "HOME", "PWD", "SHLVL", "_",
                                                                             "OLDPWD"}
    assert second["path"] == caller_path and second["home"] == os.environ["HOME"]
    assert "uncommitted changes" in done.stderr
    assert ("'make demo (system Python only)' in a fresh clone" in done.stderr) == (demo != 0)
    assert ("'make test' in a fresh clone" in done.stderr) == (test != 0)
    assert list(tmp_root.iterdir()) == []  # removed afterwards
