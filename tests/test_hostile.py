"""The hostile-input harness: every ``hive`` subcommand, run as a subprocess (``python -m mixing``)
on the catalogue of hostile inputs of :mod:`tests.hostile_inputs`, with a deadline.

For every case: the exit status is in {0, 1, 2} and among those right for that input; a refusal
(status 2) is one line on stderr; no traceback; no hang; every file that is not a declared
output of the case is byte-identical afterwards (inputs unchanged, nothing written outside the
output). The cases run in a small process pool once per session; each is reported as its own test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from mixing.cli import SUBCOMMANDS
from tests.hostile_inputs import Case, Servers, World, build_world, catalogue

pytestmark = pytest.mark.slow  # every subcommand run as a process on ~280 hostile inputs

ROOT = Path(__file__).resolve().parents[1]
#: subprocesses at once (the suite runs on 2 cores; most of a case is interpreter start-up and I/O)
WORKERS = int(os.environ.get("HIVE_HOSTILE_WORKERS", "3"))


def _snapshot(root: Path) -> dict[str, str]:
    """relative path -> content hash / kind, for every entry under ``root`` (FIFOs are never opened)."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(p, os.fsencode(root)))
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                out[rel] = h.hexdigest()
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.fsdecode(os.readlink(p))
            else:
                out[rel] = f"special:{stat.S_IFMT(st.st_mode)}"
    return out


def _allowed(rel: str, root: Path, outputs: list[Path]) -> bool:
    path = root / rel
    return any(path == o or o in path.parents for o in outputs)


@dataclass
class Outcome:
    case: Case
    status: int | None  # None: killed at the deadline
    stdout: str
    stderr: str
    seconds: float
    changed: list[str]  # entries outside the outputs that appeared, vanished or changed


def _run(case: Case, world: World, env: dict[str, str]) -> Outcome:
    watched = [case.cwd, world.root]
    before = [_snapshot(r) for r in watched]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mixing", *case.argv], cwd=case.cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**env, **case.env},
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=case.timeout)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        status = None
    seconds = time.perf_counter() - t0
    changed = []
    for root, old in zip(watched, before):
        new = _snapshot(root)
        for rel in sorted(set(old) | set(new)):
            if old.get(rel) != new.get(rel) and not _allowed(rel, root, case.outputs):
                what = "removed" if rel not in new else "created" if rel not in old else "changed"
                changed.append(f"{what}: {root / rel}")
    return Outcome(case, status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds, changed)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    servers = Servers()
    world = build_world(base / "world")
    world.hub_url, world.judge_url = servers.hub_url, servers.judge_url
    cases = catalogue(world, base / "cases")
    caches = base / "caches"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(caches / "hf"), "MPLCONFIGDIR": str(caches / "mpl"),
           "OMP_NUM_THREADS": "1", "HIVE_HARNESS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = {o.case.id: o for o in pool.map(lambda c: _run(c, world, env), cases)}
    yield outcomes
    servers.close()
    shutil.rmtree(base, ignore_errors=True)


def _problems(o: Outcome) -> list[str]:
    c = o.case
    problems = []
    if o.status is None:
        problems.append(f"hung: killed after {c.timeout:.0f} s")
    elif o.status not in (0, 1, 2):
        problems.append(f"exit status {o.status} (expected 0, 1 or 2)")
    elif o.status not in c.expect:
        problems.append(f"exit status {o.status}; right for this input: {sorted(c.expect)}")
    if "Traceback (most recent call last)" in o.stderr + o.stdout:
        problems.append("traceback: " + " | ".join(o.stderr.strip().splitlines()[-2:])[-300:])
    if o.status == 2:
        lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
        if len(lines) != 1 or not lines[0].startswith(f"hive {c.command}"):
            problems.append(f"a refusal must be one line 'hive {c.command}...: error: ...' on stderr; got "
                            f"{len(lines)} lines: " + " | ".join(lines[-3:])[-300:])
    problems += [f"outside the output: {x}" for x in o.changed[:5]]
    return problems


def test_every_subcommand_has_cases(harness):
    covered = {o.case.command for o in harness.values()}
    missing = sorted(set(SUBCOMMANDS) - covered)
    assert not missing, f"subcommands without a hostile-input case: {missing}; add cases to tests/hostile_inputs.py"


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_hostile_inputs(harness, command):
    """Each case of ``command``: right exit status, one-line refusal, no traceback, no hang,
    nothing but its outputs changed. Cases marked ``xfail`` in the catalogue name the owner of the
    remaining defect; they are listed, not asserted."""
    failures, known = [], []
    for o in (o for o in harness.values() if o.case.command == command):
        problems = _problems(o)
        if problems and o.case.xfail:
            known.append(f"{o.case.id} (xfail: {o.case.xfail}): {'; '.join(problems)}")
        elif problems:
            failures.append(f"{o.case.id}: {'; '.join(problems)}\n    argv: {' '.join(o.case.argv)[:300]}")
    for line in known:
        print("known:", line)
    assert not failures, f"{len(failures)} hostile-input case(s) of 'hive {command}' failed:\n" + "\n".join(failures)
