"""The one output-folder rule of every ``hive`` command.

Each command declares what it reads and what it writes (:class:`CommandIO`, from the command
module's ``io(args)``); :func:`claim` checks it before the command does any work:

* **An output never overlaps an input.** An output that *is* an input, lies *inside* an input
  folder, or *contains* an input (file or folder) is refused; paths are compared resolved
  (symlinks, ``..``). A command never writes into what it reads, and never deletes it.
* **An output folder belongs to one command.** The first run writes a marker,
  ``<output>/.hive-output.json`` (hidden: the Hub layout, ``datasets`` and ``hive publish`` skip
  it), naming the command. A rerun of the same command into its own folder goes on (resume,
  overwrite of its own files); a folder written by another command is refused, and so is a
  non-empty folder that no hive command wrote (no marker, and none of the files an earlier
  version of that command left there: :attr:`Output.signature`). An empty or new folder is taken.
* **An output file** (``--report``) may replace only an earlier output of the same kind
  (:attr:`Output.signature`: JSON keys that report always has), never another file.
* A command refused *after* the claim (bad input found later) leaves no trace: :meth:`Claim.release`
  removes the marker, and the folder if the claim created it and nothing else was written.

Commands delete only files they name themselves (their own shard, part and temporary names);
see :func:`remove_own_files`. Nothing here reads an input's contents except a ``dataset_paths.json``
for its corpus roots (through :mod:`mixing.input_files`, so a FIFO is never opened).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from .errors import HiveError
from .resume import atomic_write_json, is_tmp_name

MARKER = ".hive-output.json"
#: a marker bigger than this is not ours
_MARKER_BYTES = 64 << 10


class OutputFolderError(HiveError, ValueError):
    """An output overlaps an input, belongs to another command, or is a foreign non-empty folder."""


@dataclass(frozen=True)
class Output:
    """One output of a command: ``path`` given as ``flag``.

    ``signature``: for a folder, names (globs) whose presence shows an output of this command
    written before markers existed; for a file, JSON keys every earlier output of this kind has.
    ``create=False``: the folder must already be this command's output (e.g. ``mine merge``).
    """

    path: str | os.PathLike
    flag: str = "--output"
    kind: Literal["folder", "file"] = "folder"
    signature: tuple[str, ...] = ()
    create: bool = True
    #: what an earlier output is called in messages (default: an earlier `hive <command>` output)
    called: str = ""


@dataclass
class CommandIO:
    """What one run of a command reads (``(flag, path)``; None entries ignored) and writes."""

    inputs: list[tuple[str, Any]] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)


def resolved(path: str | os.PathLike) -> Path:
    """``path`` made absolute with symlinks and ``..`` resolved as far as it exists."""
    try:
        return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))
    except (OSError, ValueError):
        return Path(os.path.abspath(os.fspath(path)))


def _is_local(path: Any) -> bool:
    if path is None or path == "":
        return False
    try:
        return os.path.lexists(os.path.expanduser(os.fspath(path)))
    except (TypeError, ValueError):
        return False


def dataset_paths_inputs(path: Any, flag: str = "--dataset-paths") -> list[tuple[str, Any]]:
    """``dataset_paths.json`` and the corpus roots it names, as inputs (a file that cannot be read
    gives just itself: the command reports why when it reads it)."""
    if not _is_local(path):
        return [(flag, path)]
    out: list[tuple[str, Any]] = [(flag, path)]
    from .input_files import load_json_file

    try:
        data = load_json_file(path, "dataset paths file", "an object", max_bytes=1 << 20)
    except HiveError:
        return out
    if isinstance(data, dict):
        base = resolved(path).parent
        for key, root in data.items():
            if isinstance(root, str) and root and "\x00" not in root:
                root = os.path.expanduser(root)
                out.append((f"the corpus root of {key!r} in {flag}", root if os.path.isabs(root) else base / root))
    return out


def separator_input(spec: Any) -> list[tuple[str, Any]]:
    """The file of a ``FILE.py:FUNCTION`` separator spec, as an input."""
    if not isinstance(spec, str) or ":" not in spec:
        return []
    module = spec.rsplit(":", 1)[0]
    return [("--separator", module)] if module.endswith(".py") else []


def _overlap(output: Output, inputs: Iterable[tuple[str, Any]]) -> None:
    out = resolved(output.path)
    for flag, path in inputs:
        if not _is_local(path):
            continue
        src = resolved(path)
        shown_out, shown_in = os.fspath(output.path), os.fspath(path)
        if out == src:
            raise OutputFolderError(f"{output.flag} {shown_out} is the input {flag} {shown_in}; an output never "
                                    "replaces an input: choose another path")
        if src in out.parents:
            raise OutputFolderError(f"{output.flag} {shown_out} lies inside the input {flag} {shown_in}; inputs are "
                                    "read, never written: choose an output outside it")
        if out in src.parents:
            raise OutputFolderError(f"{output.flag} {shown_out} contains the input {flag} {shown_in}; an output "
                                    "folder never holds the inputs (they could be replaced or removed): choose "
                                    "a folder that does not contain them")


def read_owner(folder: str | os.PathLike) -> str | None:
    """The command named by ``folder``'s marker, or None (no marker, or not one of ours)."""
    from .input_files import is_readable_file

    marker = Path(folder) / MARKER
    if not is_readable_file(marker):
        return None
    try:
        if marker.stat().st_size > _MARKER_BYTES:
            return None
        info = json.loads(marker.read_bytes())
    except (OSError, ValueError):
        return None
    owner = info.get("command") if isinstance(info, dict) else None
    return owner if isinstance(owner, str) else None


def _entries(folder: Path) -> list[str]:
    """Names in ``folder`` other than the marker and temporary files of our atomic writes."""
    return sorted(n for n in os.listdir(folder) if n != MARKER and not is_tmp_name(n))


def _shown(names: list[str]) -> str:
    from .input_files import shown_path

    head = ", ".join(shown_path(n) for n in names[:3])
    return head + (f" and {len(names) - 3} more" if len(names) > 3 else "")


@dataclass
class Claim:
    """A claimed output: :meth:`release` undoes a claim whose command did nothing."""

    output: Output
    command: str
    created_folder: bool = False
    wrote_marker: bool = False

    def release(self) -> None:
        """Remove what the claim made when nothing else was written: the marker, then the folder if
        the claim created it. Called when the command is refused after the claim."""
        folder = Path(self.output.path)
        if self.output.kind != "folder" or not self.wrote_marker or not folder.is_dir():
            return
        try:
            if _entries(folder) or read_owner(folder) != self.command:
                return
            (folder / MARKER).unlink(missing_ok=True)
            if self.created_folder and not os.listdir(folder):
                folder.rmdir()
        except OSError:  # best effort: a refusal is reported either way
            pass


def _matches(folder: Path, signature: tuple[str, ...]) -> bool:
    """Whether ``folder`` holds one of the ``signature`` names, or the temporary file of one
    (``.<name>.tmp-<PID>``: a run killed while writing it)."""
    return any(any(folder.glob(pattern)) or any(folder.glob(f".{pattern}.tmp-*")) for pattern in signature)


def _claim_folder(output: Output, command: str) -> Claim:
    folder = Path(output.path)
    shown = os.fspath(output.path)
    claim = Claim(output, command)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise OutputFolderError(f"{output.flag} {shown}: a file is where a folder is expected; remove that "
                                    "file or choose another output path")
        owner = read_owner(folder)
        if owner is not None and owner != command:
            raise OutputFolderError(f"{output.flag} {shown} is the output of `hive {owner}`; `hive {command}` does "
                                    "not write into another command's folder: choose a new or empty folder")
        if owner is None:
            names = _entries(folder)
            if names and not _matches(folder, output.signature):
                called = output.called or f"an earlier `hive {command}` output"
                raise OutputFolderError(
                    f"{output.flag} {shown} is a non-empty folder and not {called} (it holds {_shown(names)}); "
                    "nothing in it is replaced or removed: choose a new or empty folder")
            if not names and not output.create:
                raise OutputFolderError(f"{output.flag} {shown} is empty, not an output of `hive {command}`; give "
                                        "the folder an earlier run wrote")
    elif not output.create:
        raise OutputFolderError(f"{output.flag} {shown} does not exist; give the output folder of an earlier "
                                f"`hive {command}` run")
    else:
        try:
            folder.mkdir(parents=True)
            claim.created_folder = True
        except FileExistsError:  # another rank made it meanwhile
            pass
    if read_owner(folder) is None:
        atomic_write_json(folder / MARKER, {"command": command, "written_by": f"hive {command}",
                                            "note": "this folder is an output of hive; reruns of the same "
                                                    "command may replace the files it wrote here"})
        claim.wrote_marker = True
    return claim


def _check_file(output: Output, command: str) -> Claim:
    path = Path(output.path)
    shown = os.fspath(output.path)
    if path.is_dir():
        raise OutputFolderError(f"{output.flag} {shown} is a folder; expected a file name")
    if path.exists() or path.is_symlink():
        from .input_files import is_readable_file, parse_json_bytes

        info: Any = None
        if is_readable_file(path) and path.stat().st_size <= (256 << 20):
            try:
                info = parse_json_bytes(path.read_bytes(), shown, "a report")
            except (HiveError, OSError):
                info = None
        if not (isinstance(info, dict) and all(k in info for k in output.signature)):
            raise OutputFolderError(f"{output.flag} {shown} exists and is not an earlier `hive {command}` report; "
                                    "it is never overwritten: choose a new file name")
    return Claim(output, command)


def claim(command: str, io: CommandIO) -> list[Claim]:
    """Apply the rule to every output of ``io`` (see the module docstring); returns the claims
    (pass them to :func:`release_all` when the command is refused afterwards)."""
    inputs = [(flag, path) for flag, path in io.inputs if _is_local(path)]
    for output in io.outputs:
        if output.path is None or output.path == "":
            continue
        # an output folder this same command wrote may also be named as an input (the --output-root of
        # `hive mine superres` named in dataset_paths.json so that later stages read it): it is its own
        own = (output.kind == "folder" and os.path.isdir(output.path) and read_owner(output.path) == command)
        _overlap(output, [(f, p) for f, p in inputs if not (own and resolved(p) == resolved(output.path))])
    claims: list[Claim] = []
    try:
        for output in io.outputs:
            if output.path is None or output.path == "":
                continue
            claims.append(_claim_folder(output, command) if output.kind == "folder" else _check_file(output, command))
    except BaseException:
        release_all(claims)
        raise
    return claims


def release_all(claims: Iterable[Claim]) -> None:
    for c in claims:
        c.release()


def check_overlap(output: str | os.PathLike, flag: str, inputs: Iterable[tuple[str, Any]]) -> None:
    """Only the overlap part of the rule (for library calls that write into ``output``)."""
    _overlap(Output(output, flag), [(f, p) for f, p in inputs if _is_local(p)])


def foreign_entries(folder: str | os.PathLike, own: Iterable[str]) -> list[str]:
    """Top-level names in ``folder`` that are not in ``own`` (the names a command writes there),
    the marker and temporary files excepted: what a command that replaces ``folder`` as a whole
    would destroy."""
    own = set(own)
    return [n for n in _entries(Path(folder)) if n not in own]


def remove_own_files(folder: str | os.PathLike, patterns: Iterable[str], keep: Iterable[Path] = ()) -> list[Path]:
    """Delete the files under ``folder`` that match one of ``patterns`` (globs of names the command
    itself gives its files) and are not in ``keep``; then the folders this left empty. Nothing
    else is touched. Returns what was removed."""
    root = Path(folder)
    keep = {Path(k) for k in keep}
    removed: list[Path] = []
    for pattern in patterns:
        for p in sorted(root.glob(pattern)):
            if p.is_file() and not p.is_symlink() and p not in keep:
                p.unlink()
                removed.append(p)
    for parent in sorted({p.parent for p in removed}, key=lambda p: len(p.parts), reverse=True):
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
    return removed
