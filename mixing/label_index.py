"""Label names, AudioSet mids and ontology relations, looked up in one place.

Hive's records carry a source's label as its AudioSet display name (``"Violin, fiddle"``). A
:class:`LabelIndex` answers, for such a label or for a mid (``"/m/07y_7"``):

* :meth:`LabelIndex.node` — its ontology node (the Hive ontology first, then the AudioSet
  ontology, then AudioSet's 527-row label index for a class neither ontology holds);
* :meth:`LabelIndex.mid` — its mid (``""`` for a label no source knows);
* :meth:`LabelIndex.names` — its own names: the display name split on commas, lower-cased
  (``"violin"``, ``"fiddle"``), the default text queries;
* :meth:`LabelIndex.related` — the node ids a negative query must avoid: the label itself, its
  ancestors, descendants and siblings (several parents are followed);
* :meth:`LabelIndex.expand` — a label and, on request, all its descendants;
* :meth:`LabelIndex.resolve` — a user's name or mid checked, with the closest names when unknown.

:func:`default_label_index` is the index of the shipped ontologies (built once per process);
an index over another ontology file is ``LabelIndex.for_ontology(path)``.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import os
from dataclasses import dataclass
from typing import Iterable

from .errors import HiveError
from .ontology import Ontology


class UnknownLabelError(HiveError, ValueError):
    """A label name or mid that no ontology and no AudioSet label knows."""


@dataclass(frozen=True)
class LabelNode:
    """A resolved label: its canonical name, mid, and which source knows it."""

    name: str
    mid: str
    #: "hive", "audioset" (ontology), "index" (AudioSet label index only) or "custom" (an ontology file)
    source: str


def split_names(label: str) -> tuple[str, ...]:
    """A label's own names: split on commas, stripped, lower-cased, empty parts dropped, order kept
    (``"Violin, fiddle"`` -> ``("violin", "fiddle")``); the whole label lower-cased if nothing is left."""
    parts = [p.strip().lower() for p in label.split(",")]
    out = tuple(dict.fromkeys(p for p in parts if p))
    return out or (label.strip().lower(),)


class LabelIndex:
    """Lookups over one or more ontologies (searched in order) and AudioSet's label index."""

    def __init__(self, ontologies: Iterable[tuple[str, Ontology]], label_csv: str | None = None):
        self.ontologies = list(ontologies)
        self._index: dict[str, tuple[str, str]] = {}  # casefold name or mid -> (name, mid)
        if label_csv is not None:
            for name, mid in _read_label_csv(label_csv):
                self._index.setdefault(name.casefold(), (name, mid))
                self._index.setdefault(mid, (name, mid))
        self._nodes: dict[str, tuple[LabelNode, Ontology | None] | None] = {}
        self._related: dict[str, frozenset[str]] = {}

    @classmethod
    def for_ontology(cls, path: str | os.PathLike) -> "LabelIndex":
        """An index over one ontology file (no AudioSet fall-back: the file is the vocabulary)."""
        return _custom_index(os.fspath(path))

    # ---- lookups -----------------------------------------------------------------------------
    def _lookup(self, key: str) -> tuple[LabelNode, Ontology | None] | None:
        if key in self._nodes:
            return self._nodes[key]
        found = None
        for source, onto in self.ontologies:
            if key in onto:
                node = onto.node(key)
                found = (LabelNode(node.name, node.id, source), onto)
                break
        if found is None:
            hit = self._index.get(key) or self._index.get(key.casefold())
            if hit is not None:
                found = (LabelNode(hit[0], hit[1], "index"), None)
        if len(self._nodes) < 1 << 16:
            self._nodes[key] = found
        return found

    def node(self, label: str) -> LabelNode | None:
        """The label (a name, case-insensitive, or a mid), or None when nothing knows it."""
        hit = self._lookup(label) if isinstance(label, str) and label else None
        return None if hit is None else hit[0]

    def mid(self, label: str) -> str:
        """The label's AudioSet mid; ``""`` when unknown."""
        node = self.node(label)
        return "" if node is None else node.mid

    def names(self, label: str) -> tuple[str, ...]:
        """The label's own names (its display name split on commas, lower-cased)."""
        return split_names(label)

    def related(self, label: str) -> frozenset[str]:
        """Node ids and lower-cased names a negative query must avoid for ``label``: itself, its
        ancestors, descendants and siblings (for a label no ontology holds: itself only)."""
        cached = self._related.get(label)
        if cached is not None:
            return cached
        hit = self._lookup(label)
        out = {label.casefold()}
        if hit is not None:
            node, onto = hit
            out |= {node.mid, node.name.casefold()}
            if onto is not None:
                for other in onto.ancestors(node.mid) + onto.descendants(node.mid) + onto.siblings(node.mid):
                    out |= {other.id, other.name.casefold()}
        result = frozenset(out)
        self._related[label] = result
        return result

    def expand(self, label: str, descendants: bool) -> list[LabelNode]:
        """The resolved label and, with ``descendants``, every descendant of it."""
        node = self.resolve(label)
        out = [node]
        if descendants:
            onto = self._lookup(label)[1]  # type: ignore[index]
            if onto is not None:
                out += [LabelNode(d.name, d.id, node.source) for d in onto.descendants(node.mid)]
        return out

    def resolve(self, label: str, what: str = "label") -> LabelNode:
        """``label`` resolved, or :class:`UnknownLabelError` with the closest known names."""
        if not isinstance(label, str) or not label.strip():
            raise UnknownLabelError(f"{what} {label!r} is not a label; expected a non-empty label name "
                                    "(e.g. 'Dog') or an AudioSet mid (e.g. '/m/0bt9lr')")
        node = self.node(label.strip())
        if node is None:
            raise UnknownLabelError(f"unknown {what} {label!r}: {self.suggest(label)}; expected a name or mid "
                                    f"of {self.describe()}")
        return node

    def suggest(self, label: str) -> str:
        by_fold: dict[str, str] = {}
        for n in self.all_names():  # whole names and each comma-separated part ("violin" -> "Violin, fiddle")
            by_fold.setdefault(n.casefold(), n)
            for part in split_names(n):
                by_fold.setdefault(part, n)
        hits = difflib.get_close_matches(str(label).casefold(), list(by_fold), n=6, cutoff=0.6)
        close = list(dict.fromkeys(by_fold[c] for c in hits))[:3]
        return f"closest names: {', '.join(repr(c) for c in close)}" if close else "no close name"

    def all_names(self) -> list[str]:
        names: dict[str, None] = {}
        for _, onto in self.ontologies:
            names.update((n.name, None) for n in onto)
        names.update((v[0], None) for k, v in self._index.items() if not k.startswith("/"))
        return list(names)

    def describe(self) -> str:
        known = {"hive": "the Hive ontology", "audioset": "the AudioSet ontology"}
        parts = [known.get(source, f"the ontology {onto.source}") for source, onto in self.ontologies]
        if self._index:
            parts.append("AudioSet's label index")
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]


def _read_label_csv(path: str) -> list[tuple[str, str]]:
    from .input_files import read_text

    text = read_text(path, "AudioSet label index", HiveError)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return [(r["display_name"], r["mid"]) for r in rows if r.get("display_name") and r.get("mid")]


@functools.lru_cache(maxsize=1)
def default_label_index() -> LabelIndex:
    """The shipped Hive ontology, then the AudioSet ontology, then AudioSet's label index."""
    from . import packaged

    return LabelIndex([("hive", packaged.hive_ontology()), ("audioset", packaged.audioset_ontology())],
                      str(packaged.audioset_labels_path()))


@functools.lru_cache(maxsize=8)
def _custom_index(path: str) -> LabelIndex:
    return LabelIndex([("custom", Ontology.from_json(path))])


def label_index(ontology: str | os.PathLike | None = None) -> LabelIndex:
    """The index of an ontology file, or :func:`default_label_index` for None."""
    return default_label_index() if ontology is None else LabelIndex.for_ontology(ontology)
