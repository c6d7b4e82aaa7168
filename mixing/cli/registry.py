"""The subcommands of ``hive``, found through entry points.

Each room registers its own commands in the ``hive.commands`` entry-point group of its
distribution (``[project.entry-points."hive.commands"]`` in ``pyproject.toml``): the name is the
subcommand, the value the module that implements it. A command module defines

* ``HELP`` – one line, shown by ``hive --help``;
* ``add_arguments(parser)`` – its flags;
* ``io(args)`` – what a run reads and writes (:class:`mixing.output_folder.CommandIO`), checked by
  the output-folder rule before it runs;
* ``run(args) -> int`` – the command (0 done, 1 ran with failures).

Where the entry points are read. ``pyproject.toml`` is the one declaration; an installed wheel
carries a copy of it in its metadata, which is what :mod:`importlib.metadata` reads. When ``mixing``
runs from a source tree (a checkout, or an editable install of one), that copy may be older than
the source (an editable install's metadata is written once, when it is installed), so the table
of the ``pyproject.toml`` beside the ``mixing`` package is read instead for this project's own
commands; other distributions' commands (plugins) always come from the installed metadata.

``mixing`` names no module of the floors above it: ``hive --help`` reads each module's ``HELP`` from
its source without importing it (the parent packages are imported to find it, nothing else), and a
module is imported only when its command runs or its own ``--help`` is asked. A command whose
module cannot be imported, or lacks one of the functions above, is refused with one line saying
which entry point, of which distribution, and what to do.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

from mixing.errors import HiveError

GROUP = "hive.commands"
#: the distribution whose commands these are (``[project] name`` in ``pyproject.toml``)
DISTRIBUTION = "hive-uss"
#: what every command module defines (besides ``HELP``)
REQUIRED = ("add_arguments", "io", "run")


class CommandLoadError(HiveError):
    """A registered command cannot be used: its module does not import, or lacks a function."""


@dataclass(frozen=True)
class Command:
    """One ``hive.commands`` entry point: ``name = module`` of ``distribution``."""

    name: str
    module: str
    distribution: str

    @property
    def where(self) -> str:
        return f"entry point {self.name} = {self.module} (group {GROUP}) of {self.distribution}"

    @functools.cached_property
    def help(self) -> str:
        """The module's ``HELP`` line, read from its source (the module is not imported)."""
        return _static_help(self.module) or f"(the module {self.module} cannot be found: run `hive {self.name}` for why)"

    def load(self) -> ModuleType:
        """The imported command module, or :class:`CommandLoadError`."""
        try:
            module = importlib.import_module(self.module)
        except Exception as exc:  # a plugin's import may fail in any way; say which one and why
            raise CommandLoadError(
                f"the command cannot be loaded: {self.where} fails to import ({type(exc).__name__}: {exc}); "
                f"reinstall {self.distribution} (e.g. `pip install -e .` in its source tree) or uninstall the "
                "package that registers it") from exc
        missing = [f for f in REQUIRED if not callable(getattr(module, f, None))]
        if missing:
            raise CommandLoadError(
                f"the command cannot be loaded: {self.where} defines no {', '.join(f + '()' for f in missing)}; "
                "a hive command module defines HELP, add_arguments(parser), io(args) and run(args)")
        return module


def _static_help(module: str) -> str | None:
    """``HELP = "..."`` of ``module``'s source (else the first line of its docstring), or None
    when its source cannot be found."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), spec.origin)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    doc = ast.get_docstring(tree)
    return doc.strip().splitlines()[0] if doc else ""


def source_tree_commands(root: Path | None = None) -> list[Command] | None:
    """This project's commands as its source tree declares them: the ``hive.commands`` table of the
    ``pyproject.toml`` beside the ``mixing`` package (``root``: the folder holding it), or None when
    ``mixing`` is not running from a source tree of this project (an installed wheel)."""
    root = Path(__file__).resolve().parents[2] if root is None else root
    try:
        with open(root / "pyproject.toml", "rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(project, dict) or project.get("name") != DISTRIBUTION:
        return None
    table = project.get("entry-points", {}).get(GROUP, {})
    where = f"{DISTRIBUTION} {project.get('version', '')} (source tree {root})"
    return [Command(str(name), str(value).strip(), where) for name, value in table.items()]


def _read_entry_points() -> tuple[dict[str, Command], dict[str, list[Command]]]:
    """Registered commands in registration order (this project's first), and the names that more
    than one distribution registers."""
    ours = source_tree_commands()
    found: dict[str, list[Command]] = {}
    for command in ours or []:
        found.setdefault(command.name, []).append(command)
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        if ours is not None and dist == DISTRIBUTION:
            continue  # the installed copy of the table just read from the source tree
        version = ep.dist.version if ep.dist is not None else ""
        command = Command(ep.name, ep.value.strip(), f"{dist} {version}".strip())
        others = found.setdefault(ep.name, [])
        if all(c.module != command.module for c in others):
            others.append(command)
    first = [n for n, cs in found.items() if cs[0].distribution.split()[0] == DISTRIBUTION]
    order = first + [n for n in found if n not in first]
    commands = {n: found[n][0] for n in order}
    clashes = {n: cs for n, cs in found.items() if len(cs) > 1}
    return commands, clashes


class Registry(Mapping):
    """name -> :class:`Command`, read from the entry points on first use."""

    @functools.cached_property
    def _read(self) -> tuple[dict[str, Command], dict[str, list[Command]]]:
        return _read_entry_points()

    def __getitem__(self, name: str) -> Command:
        return self._read[0][name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read[0])

    def __len__(self) -> int:
        return len(self._read[0])

    def load(self, name: str) -> ModuleType:
        """The module of command ``name`` (:class:`CommandLoadError` when two distributions
        register it, or it cannot be loaded)."""
        clash = self._read[1].get(name)
        if clash:
            raise CommandLoadError(f"the command is registered twice: {'; '.join(c.where for c in clash)}; "
                                   "uninstall one of these distributions")
        return self[name].load()

    def missing_message(self) -> str:
        if source_tree_commands() is not None:
            return (f"no subcommand is registered: the pyproject.toml of this source tree has no "
                    f"[project.entry-points.\"{GROUP}\"] table; restore it (git checkout pyproject.toml)")
        return (f"no subcommand is registered: the installed metadata of {DISTRIBUTION} has no {GROUP} entry "
                f"points (it is older than this code); reinstall {DISTRIBUTION} (`pip install hive-uss`, or "
                "`pip install -e .` in its source tree)")
