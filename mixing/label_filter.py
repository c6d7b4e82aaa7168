"""Label subsets: which mixtures (and which of their sources) a training or evaluation run uses.

A :class:`LabelFilter` is a small frozen, checked object, the same for the stream, the builder,
dynamic mixing, :class:`~mixing.map_dataset.HiveMapDataset` and the ``hive render``, ``inspect``,
``eval`` and ``synthesize`` commands (``--labels``, ``--exclude-labels``, ``--labels-file``):

* ``labels`` — names or AudioSet mids of the labels to keep (None: every label);
* ``exclude_labels`` — names or mids of labels to leave out: a mixture with a source of one of
  them is never kept, whatever ``label_match`` says;
* ``include_descendants`` (default True) — a label also selects (or excludes) every descendant of
  it in the ontology (the Hive ontology by default: ``labels=["Musical instrument"]`` keeps
  pianos, violins, drums …);
* ``label_match`` — ``"all"`` (default): a mixture is kept when every source is selected;
  ``"any"``: when at least one is. The selected sources are the query targets of a query example
  (:mod:`mixing.queries`) and the sources ``hive eval`` queries;
* ``ontology`` — an ontology file instead of the shipped ones.

Names are checked when the filter is made: an unknown one is a one-line error with the closest
names. A filter that selects no mixture is an :class:`~mixing.errors.EmptySelectionError` listing
how many mixtures each label has (:meth:`LabelFilter.nothing_selected`).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .errors import EmptySelectionError, HiveError
from .label_index import LabelIndex, label_index

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

LABEL_MATCH = ("all", "any")


class LabelFilterError(HiveError, ValueError):
    """A label filter setting is malformed."""


def _names(value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
        raise LabelFilterError(f"{what} is {type(value).__name__}; expected a list of label names or mids "
                               "(e.g. ['Dog', '/m/07y_7'])")
    out = []
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise LabelFilterError(f"{what} holds {v!r}; expected non-empty label names or mids")
        out.append(v.strip())
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class LabelFilter:
    """Which labels a run uses (see the module docstring). Build with :meth:`make` or directly."""

    labels: tuple[str, ...] | None = None
    exclude_labels: tuple[str, ...] = ()
    include_descendants: bool = True
    label_match: str = "all"
    ontology: str | None = None

    def __post_init__(self) -> None:
        labels = _names(self.labels, "labels")
        exclude = _names(self.exclude_labels, "exclude_labels") or ()
        if labels is not None and not labels:
            raise LabelFilterError("labels is an empty list; give at least one label name or mid, or None for "
                                   "every label")
        if labels is None and not exclude:
            raise LabelFilterError("a label filter needs labels or exclude_labels; got neither")
        if self.label_match not in LABEL_MATCH:
            raise LabelFilterError(f"label_match is {self.label_match!r}; expected 'all' (every source selected) "
                                   "or 'any' (at least one)")
        if not isinstance(self.include_descendants, bool):
            raise LabelFilterError(f"include_descendants is {self.include_descendants!r}; expected True or False")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "exclude_labels", exclude)
        if self.ontology is not None:
            object.__setattr__(self, "ontology", str(Path(self.ontology).expanduser().absolute()))
        self.resolved()  # unknown names fail here, at once

    @classmethod
    def make(cls, labels: "LabelFilter | Sequence[str] | str | None" = None,
             exclude_labels: Sequence[str] | str | None = None, **settings: Any) -> "LabelFilter | None":
        """``labels`` as a filter: a :class:`LabelFilter` as it is (then nothing else may be given),
        names or mids with ``exclude_labels`` and ``settings`` (``include_descendants``,
        ``label_match``, ``ontology``), or None when there is nothing to filter."""
        if isinstance(labels, LabelFilter):
            extra = {k: v for k, v in settings.items() if v is not None}
            if exclude_labels or extra:
                raise LabelFilterError("labels is a LabelFilter; put exclude_labels and the other settings in it "
                                       f"(got also {sorted(extra) + (['exclude_labels'] if exclude_labels else [])})")
            return labels
        if labels is None and not exclude_labels:
            return None
        return cls(labels, exclude_labels or (), **{k: v for k, v in settings.items() if v is not None})

    # ---- resolution --------------------------------------------------------------------------
    @property
    def index(self) -> LabelIndex:
        return label_index(self.ontology)

    def resolved(self) -> "_Resolved":
        return _resolve(self)

    def describe(self) -> str:
        parts = []
        if self.labels is not None:
            parts.append(f"labels={list(self.labels)}")
        if self.exclude_labels:
            parts.append(f"exclude_labels={list(self.exclude_labels)}")
        parts.append(f"label_match={self.label_match!r}")
        if not self.include_descendants:
            parts.append("include_descendants=False")
        return ", ".join(parts)

    def identity(self) -> dict[str, Any]:
        """What changes a selection (for output folders that must not mix two selections)."""
        return {"labels": None if self.labels is None else sorted(self.labels),
                "exclude_labels": sorted(self.exclude_labels), "include_descendants": self.include_descendants,
                "label_match": self.label_match, "ontology": self.ontology}

    # ---- decisions ---------------------------------------------------------------------------
    def selected(self, label: str) -> bool:
        """Source label ``label`` is selected (in ``labels``, if given) and not excluded."""
        return not self.is_excluded(label) and self.is_included(label)

    def is_excluded(self, label: str) -> bool:
        r = self.resolved()
        return r.hit(r.excluded, label)

    def is_included(self, label: str) -> bool:
        """In ``labels`` (True for every label when ``labels`` is None); exclusion not considered."""
        r = self.resolved()
        return r.included is None or r.hit(r.included, label)

    def keep_mask(self, label_lists: Any) -> "np.ndarray":
        """:meth:`keeps` for every row of an Arrow list array of source labels, column-wise (a
        metadata split of millions of rows is decided without a Python object per row)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        lists = label_lists.combine_chunks() if isinstance(label_lists, pa.ChunkedArray) else label_lists
        n = len(lists)
        if n == 0:
            return np.zeros(0, dtype=bool)
        flat = lists.flatten()
        parents = np.asarray(pc.list_parent_indices(lists))
        enc = pc.fill_null(flat, "").dictionary_encode()
        codes = np.asarray(enc.indices)
        names = enc.dictionary.to_pylist()
        excluded = np.array([self.is_excluded(x) for x in names], dtype=np.float64)
        included = np.array([self.is_included(x) for x in names], dtype=np.float64)
        lengths = np.asarray(pc.fill_null(pc.list_value_length(lists), 0))
        any_excluded = np.bincount(parents, weights=excluded[codes], minlength=n) > 0
        hits = np.bincount(parents, weights=included[codes], minlength=n)
        chosen = hits >= lengths if self.label_match == "all" else hits > 0
        return ~any_excluded & chosen & (lengths > 0)

    def passing(self, labels: Sequence[str]) -> list[int]:
        """Indices of the selected sources of a mixture with these source labels."""
        return [i for i, lab in enumerate(labels) if self.selected(lab)]

    def keeps(self, labels: Sequence[str]) -> bool:
        """Whether a mixture with these source labels is kept."""
        r = self.resolved()
        if any(r.hit(r.excluded, lab) for lab in labels):
            return False
        if r.included is None:
            return True
        hits = (r.hit(r.included, lab) for lab in labels)
        return all(hits) if self.label_match == "all" else any(hits)

    def nothing_selected(self, per_label: Mapping[str, int], total: int, where: str,
                         unit: str = "mixtures") -> EmptySelectionError:
        """The error for a filter that keeps none of the ``total`` mixtures (or another ``unit``,
        e.g. pool clips) of ``where`` (``per_label``: how many there have each label)."""
        counts = Counter(per_label)
        shown = ", ".join(f"{lab!r} {n}" for lab, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:25])
        more = f" and {len(counts) - 25} more labels" if len(counts) > 25 else ""
        return EmptySelectionError(
            f"the label filter ({self.describe()}) selects none of the {total} {unit} of {where}; {unit} per "
            f"label there: {shown or 'none'}{more}; choose labels from these")


class _Resolved:
    """A filter's names resolved to sets of mids and lower-cased names."""

    def __init__(self, f: LabelFilter):
        index = f.index
        self.included = None if f.labels is None else self._expand(index, f.labels, "label", f.include_descendants)
        self.excluded = self._expand(index, f.exclude_labels, "excluded label", f.include_descendants)
        self._index = index
        self._cache: dict[tuple[int, str], bool] = {}

    @staticmethod
    def _expand(index: LabelIndex, names: Iterable[str], what: str, descendants: bool) -> frozenset[str]:
        out: set[str] = set()
        for name in names:
            index.resolve(name, what)
            for node in index.expand(name, descendants):
                out |= {node.mid, node.name.casefold()}
        return frozenset(out)

    def hit(self, keys: frozenset[str], label: str) -> bool:
        ck = (id(keys), label)
        got = self._cache.get(ck)
        if got is None:
            mid = self._index.mid(label)
            got = label.casefold() in keys or label in keys or bool(mid and mid in keys)
            if len(self._cache) < 1 << 16:
                self._cache[ck] = got
        return got

    def included_names(self) -> list[str]:
        """Canonical names of the selected labels (None-filter: empty)."""
        return [] if self.included is None else sorted({self._index.node(k).name for k in self.included
                                                         if k.startswith("/") and self._index.node(k)})


@functools.lru_cache(maxsize=32)
def _resolve(f: LabelFilter) -> _Resolved:
    return _Resolved(f)


def read_labels_file(path: str | os.PathLike) -> list[str]:
    """Label names or mids, one per line (blank lines and ``#`` comments skipped)."""
    from .input_files import read_text

    text = read_text(Path(path), "labels file", LabelFilterError)
    out = [line.strip() for line in text.splitlines()]
    out = [line for line in out if line and not line.startswith("#")]
    if not out:
        raise LabelFilterError(f"labels file {path} lists no label; expected one label name or mid per line")
    return out


def mixtures_per_label(label_lists: Iterable[Sequence[str]]) -> tuple[Counter, int]:
    """``(Counter[label -> mixtures with it], mixtures)`` of some mixtures' source labels."""
    per: Counter = Counter()
    total = 0
    for labels in label_lists:
        total += 1
        per.update(set(labels))
    return per, total
