"""Corpora resolution: ``dataset_paths.json`` maps a metadata path prefix to a local root.

The JSON key *is* the prefix used in metadata paths (``BBC_Sound_Effects``, ``DCASE_real``,
``DCASE_synth``, ...); two keys may share a root. Resolution of untrusted metadata paths stays
strictly inside the root: the path is checked lexically (no absolute path, no ``..``) and the
resolved file must lie under the resolved root (a root that is itself a symlink is fine; a
symlink *inside* a root that points elsewhere is refused unless ``allow_symlinks_outside``).
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from .errors import DatasetPathsError, InvalidRecordError, PathEscapesRootError, UnknownPrefixError, short_repr
from .input_files import load_json_file
from .validation import check_metadata_path


@dataclass
class DatasetPaths:
    """Prefix -> local corpus root."""

    roots: dict[str, Path]
    allow_symlinks_outside: bool = False
    _resolved_roots: dict[str, Path] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.roots, Mapping) or not self.roots:
            raise DatasetPathsError(
                f"dataset paths are {self.roots!r}; expected a non-empty mapping of corpus prefix "
                "(e.g. 'AudioSet') to a local folder")
        clean: dict[str, Path] = {}
        for key, root in self.roots.items():
            if not isinstance(key, str) or not key or "/" in key or "\\" in key or key in (".", ".."):
                raise DatasetPathsError(
                    f"dataset paths key {short_repr(key)} is not a corpus prefix; expected the first segment of "
                    "metadata paths, e.g. 'BBC_Sound_Effects'")
            if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
                raise DatasetPathsError(f"dataset paths entry {key!r} is {short_repr(root)}; expected a folder path")
            if "\x00" in key or "\x00" in os.fspath(root):
                raise DatasetPathsError(f"dataset paths entry {short_repr(key)}: {short_repr(os.fspath(root))} holds a "
                                        "NUL character; expected a folder path; fix dataset_paths.json")
            clean[key] = Path(root).expanduser()
        self.roots = clean

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_json(cls, path: str | os.PathLike, **kw) -> "DatasetPaths":
        """Load ``dataset_paths.json``; relative roots are taken relative to the file's folder."""
        path = Path(path)
        data = load_json_file(path, "dataset paths file", "a JSON object mapping each corpus prefix to its "
                              "local folder", DatasetPathsError)
        if not isinstance(data, dict):
            raise DatasetPathsError(f"dataset paths file {path} holds a {type(data).__name__}; "
                                    "expected a JSON object {prefix: folder}")
        base = path.resolve().parent
        roots = {}
        for k, v in data.items():
            if isinstance(v, str) and v and not os.path.isabs(os.path.expanduser(v)):
                v = str(base / v)
            roots[k] = v
        return cls(roots, **kw)

    @classmethod
    def coerce(cls, value: "DatasetPaths | Mapping[str, str] | str | os.PathLike") -> "DatasetPaths":
        if isinstance(value, DatasetPaths):
            return value
        if isinstance(value, Mapping):
            return cls(dict(value))
        return cls.from_json(value)

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps({k: str(v) for k, v in self.roots.items()}, indent=2) + "\n")

    # ---- resolution --------------------------------------------------------------------------
    @property
    def prefixes(self) -> list[str]:
        return sorted(self.roots)

    def root(self, prefix: str) -> Path:
        if prefix not in self.roots:
            close = difflib.get_close_matches(prefix, self.prefixes, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise UnknownPrefixError(
                f"corpus prefix {prefix!r} is not in dataset_paths.json (known prefixes: "
                f"{', '.join(self.prefixes)}).{hint} Add '{prefix}': '/path/to/its/root' to the file.")
        return self.roots[prefix]

    def _resolved_root(self, prefix: str) -> Path:
        r = self._resolved_roots.get(prefix)
        if r is None:
            r = self._resolved_roots[prefix] = self.root(prefix).resolve()
        return r

    def split(self, meta_path: str) -> tuple[str, str]:
        """``'<prefix>/<rel>'`` -> (prefix, rel) after the lexical safety checks."""
        try:
            check_metadata_path(meta_path)
        except InvalidRecordError as exc:
            raise PathEscapesRootError(
                f"metadata path {meta_path!r} is not a safe '<prefix>/<relative path>' "
                f"({exc.expected}); the record is refused") from None
        prefix, rel = meta_path.split("/", 1)
        return prefix, rel

    def resolve(self, meta_path: str) -> Path:
        """Local file for a metadata path, guaranteed to lie inside its corpus root."""
        prefix, rel = self.split(meta_path)
        root = self.root(prefix)
        candidate = root / rel
        if self.allow_symlinks_outside:
            return candidate
        real_root = self._resolved_root(prefix)
        try:
            real = candidate.resolve()
        except (OSError, RuntimeError) as exc:  # symlink loop (RuntimeError before Python 3.13)
            raise PathEscapesRootError(
                f"metadata path {meta_path!r} cannot be resolved inside the corpus root {real_root} "
                f"({exc}); the record is refused") from None
        if real != real_root and real_root not in real.parents:
            raise PathEscapesRootError(
                f"metadata path {meta_path!r} resolves to {real}, outside the corpus root {real_root} "
                "(a symlink inside the root points elsewhere); move the file into the root or pass "
                "allow_symlinks_outside=True if you trust this corpus")
        return candidate

    def __iter__(self) -> Iterator[str]:
        return iter(self.prefixes)
