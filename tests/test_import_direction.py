"""The ground floor imports nothing above it: no module under ``mixing/`` imports ``curation``,
``dataset_card`` or ``hive`` (``hive.py``), neither with an import statement nor by a string given
to ``importlib.import_module``, ``__import__``, ``find_spec`` and the like; the ``hive``
subcommands of the floors above are found through the ``hive.commands`` entry points."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mixing.cli import registry

ROOT = Path(__file__).resolve().parents[1]
ABOVE = ("curation", "dataset_card", "hive")
#: functions whose first argument is a module name to import (or to look up, which imports its parents)
IMPORTING_CALLS = {"import_module", "__import__", "find_spec", "find_loader", "resolve_name", "run_module",
                   "get_loader", "load_module"}


def _above(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in ABOVE


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _package_depth(filename: str) -> int:
    """How many packages deep ``filename`` is (``mixing/cli/x.py``: 2, mixing.cli)."""
    parts = Path(filename).parts
    return len(parts) - 1 - parts.index("mixing") if "mixing" in parts else 1


def upward_imports(source: str, filename: str) -> list[str]:
    """``line: what`` for every import of a floor above ``mixing`` in ``source`` (of ``filename``)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _above(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and _above(node.module):
                found.append(f"{node.lineno}: from {node.module} import ...")
            elif node.level > _package_depth(filename):  # a relative import that climbs out of mixing
                found.append(f"{node.lineno}: a relative import ({'.' * node.level}{node.module or ''}) out of mixing")
        elif isinstance(node, ast.Call) and _call_name(node.func) in IMPORTING_CALLS and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and _above(first.value):
                found.append(f"{node.lineno}: {_call_name(node.func)}({first.value!r})")
            elif isinstance(first, ast.JoinedStr) and first.values and isinstance(first.values[0], ast.Constant) \
                    and _above(str(first.values[0].value)):
                found.append(f"{node.lineno}: {_call_name(node.func)}(f{str(first.values[0].value)!r}...)")
    return found


def _mixing_modules() -> list[Path]:
    return sorted((ROOT / "mixing").rglob("*.py"))


def test_the_scan_covers_the_whole_ground_floor():
    modules = _mixing_modules()
    assert len(modules) > 60  # every module, subpackages included
    assert {p.parent.name for p in modules} >= {"mixing", "cli", "store", "synthesis", "evaluate"}


@pytest.mark.parametrize("path", _mixing_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_of_mixing_imports_a_floor_above(path):
    found = upward_imports(path.read_text(encoding="utf-8"), str(path))
    assert not found, f"{path.relative_to(ROOT)} imports a floor above mixing: {found}"


@pytest.mark.parametrize("snippet", [
    "import curation",
    "import dataset_card.card as card",
    "import hive",
    "from hive import stream_mixtures",
    "from curation.cli import mine",
    "def f():\n    from dataset_card.inspect import cli\n",
    "import importlib\nimportlib.import_module('curation.cli.mine')",
    "from importlib import import_module\nimport_module('dataset_card.demo')",
    "__import__('hive')",
    "import importlib.util\nimportlib.util.find_spec('dataset_card.inspect')",
    "import importlib\nname = 'mine'\nimportlib.import_module(f'curation.cli.{name}')",
    "from ... import hive",
])
def test_the_scan_finds_each_form_of_upward_import(snippet):
    assert upward_imports(textwrap.dedent(snippet), "mixing/cli/example.py"), snippet


@pytest.mark.parametrize("snippet", [
    "import mixing.cli",
    "from .errors import HiveError",
    "from ..errors import HiveError",
    "import importlib\nimportlib.import_module('mixing.render')",
    "GROUP = 'hive.commands'",
    "print('hive card writes the card')",
    "import hivemind",
])
def test_the_scan_passes_imports_within_the_ground_floor(snippet):
    assert upward_imports(snippet, "mixing/cli/example.py") == []


def test_importing_every_mixing_module_loads_no_floor_above():
    """At run time too (an import the scan cannot see): every module of ``mixing`` whose optional
    dependencies are installed is imported in a fresh interpreter, and the parser of ``hive`` is
    built (it reads each command's HELP without importing the command)."""
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
             for p in _mixing_modules() if p.name != "__main__.py"]
    code = textwrap.dedent(f"""
        import importlib, json, sys
        skipped = []
        for name in {names!r}:
            try:
                importlib.import_module(name)
            except ImportError as exc:  # an optional dependency (torch, matplotlib, ...) is missing
                if exc.name and exc.name.split('.')[0] in {list(ABOVE)!r}:
                    raise
                skipped.append(name)
        from mixing.cli import build_parser
        build_parser()
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in {list(ABOVE)!r})
        print(json.dumps({{"loaded": loaded, "skipped": skipped}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # hive --help finds a command module's source, which imports its parent packages (curation,
    # curation.cli, dataset_card, dataset_card.inspect) but no command module itself
    parents = {"curation", "curation.cli", "dataset_card", "dataset_card.inspect"}
    assert set(result["loaded"]) <= parents, result["loaded"]
    assert len(result["skipped"]) < len(names) / 4, result["skipped"]


# ---- the registry: commands come from the entry points that each floor declares ------------------

def test_every_floor_registers_its_own_commands():
    commands = {c.name: c.module for c in registry.source_tree_commands(ROOT)}
    assert {"inspect", "demo", "card"} <= set(commands)
    assert commands["inspect"] == "dataset_card.inspect.cli" and commands["demo"] == "dataset_card.demo"
    assert commands["mine"].startswith("curation.") and commands["render"].startswith("mixing.")
    for name, module in commands.items():  # each names a module that defines the command's functions
        loaded = registry.Command(name, module, "test").load()
        assert isinstance(loaded.HELP, str) and loaded.HELP


def test_the_source_tree_table_wins_over_stale_installed_metadata(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "hive-uss"\nversion = "9"\n[project.entry-points."hive.commands"]\n'
        'alpha = "pkg.alpha"\nbeta = "pkg.beta"\n')
    commands = registry.source_tree_commands(tmp_path)
    assert [(c.name, c.module) for c in commands] == [("alpha", "pkg.alpha"), ("beta", "pkg.beta")]
    assert "source tree" in commands[0].where and "pkg.alpha" in commands[0].where


@pytest.mark.parametrize("text", ['[project]\nname = "other"\n', "not = [toml", ""])
def test_a_folder_that_is_not_this_source_tree_declares_nothing(tmp_path, text):
    if text:
        (tmp_path / "pyproject.toml").write_text(text)
    assert registry.source_tree_commands(tmp_path) is None


def test_a_command_module_without_its_functions_is_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "halfcmd.py").write_text('HELP = "half a command"\n\ndef run(args):\n    return 0\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    command = registry.Command("half", "halfcmd", "plugin 1.0")
    assert command.help == "half a command"
    with pytest.raises(registry.CommandLoadError, match=r"halfcmd .*defines no add_arguments\(\), io\(\)"):
        command.load()
    with pytest.raises(registry.CommandLoadError, match=r"nosuchmodule_xyz \(group hive.commands\) of plugin 1.0 fails to import"):
        registry.Command("gone", "nosuchmodule_xyz", "plugin 1.0").load()


def test_hive_without_registered_commands_says_how_to_fix_it(monkeypatch, capsys):
    import mixing.cli as cli

    monkeypatch.setattr(registry, "source_tree_commands", lambda root=None: [])  # a table-less pyproject
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [])
    monkeypatch.setattr(cli, "SUBCOMMANDS", registry.Registry())
    assert cli.main(["render", "--help"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hive: error: no subcommand is registered") and "pyproject.toml" in err
    assert len(err.splitlines()) == 1
    monkeypatch.setattr(registry, "source_tree_commands", lambda root=None: None)  # an installed wheel
    monkeypatch.setattr(cli, "SUBCOMMANDS", registry.Registry())
    assert cli.main([]) == 2
    assert "reinstall hive-uss" in capsys.readouterr().err
