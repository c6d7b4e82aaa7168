"""Which labels may sound together: ontology rules and an optional label-pair compatibility matrix.

:class:`LabelRules` is built once per synthesis run over the labels of one split and holds

* ``allowed`` — an ``L x L`` boolean matrix (``False`` on the diagonal: labels are distinct);
* ``forbidden`` — per label, the set of label indices it may not meet (fast rejection tests);
* ``weights`` — an ``L x L`` matrix of pair weights when the compatibility file has weights other
  than 0 and 1 (the next label is then drawn with probability ∝ base · Π weight(chosen, label)),
  else ``None``;
* ``pair_counts`` — how many label pairs each rule forbids (for the summary).

Rules: ``exclude_ancestors`` forbids a label with any of its ontology ancestors or descendants
(several parents are followed); ``exclude_siblings`` forbids two labels with a common parent;
two pool labels that name the same ontology class are always forbidden together; a
compatibility weight of 0 forbids the pair.

Compatibility files (labels by name, exactly as in the pool):

* CSV matrix: header ``,A,B,…``; each row ``A,w,w,…``;
* CSV list: header ``label_a,label_b,weight``; one pair per row;
* JSON: ``{"labels": [...], "weights": [[...]]}`` or nested ``{"A": {"B": w}}``.

A pair given in both directions takes the smaller weight; pairs not given take
``compatibility_default``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import HiveError
from ..ontology import Ontology, UnknownNodeError


class CompatibilityFileError(HiveError, ValueError):
    """The label-pair compatibility file is malformed."""


def _weight(value: Any, where: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise CompatibilityFileError(f"{where}: weight {value!r} is not a number; expected a weight >= 0 "
                                     "(0 = forbidden pair)") from None
    if not (math.isfinite(w) and w >= 0):
        raise CompatibilityFileError(f"{where}: weight {value!r}; expected a finite weight >= 0")
    return w


def load_compatibility(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """Read a compatibility file into ``{(label_a, label_b): weight}`` (both orders, min weight)."""
    path = Path(path)
    raw: list[tuple[str, str, float]] = []
    if path.suffix.lower() == ".json":
        from ..input_files import load_json_file

        data = load_json_file(path, "compatibility file", "a JSON object (labels/weights or nested "
                              "{label: {label: weight}})", CompatibilityFileError)
        if isinstance(data, dict) and "labels" in data and "weights" in data:
            labels, rows = data["labels"], data["weights"]
            if not isinstance(labels, list) or not isinstance(rows, list) or len(rows) != len(labels):
                raise CompatibilityFileError(f"{path}: expected 'labels' (list) and 'weights' (one row per label)")
            for a, row in zip(labels, rows):
                if not isinstance(row, list) or len(row) != len(labels):
                    raise CompatibilityFileError(f"{path}: row {a!r} has {len(row) if isinstance(row, list) else row!r} "
                                                 f"weights; expected {len(labels)}")
                raw.extend((str(a), str(b), _weight(w, f"{path} [{a!r}][{b!r}]")) for b, w in zip(labels, row))
        elif isinstance(data, dict):
            for a, row in data.items():
                if not isinstance(row, dict):
                    raise CompatibilityFileError(f"{path}: entry {a!r} is not an object {{label: weight}}")
                raw.extend((str(a), str(b), _weight(w, f"{path} [{a!r}][{b!r}]")) for b, w in row.items())
        else:
            raise CompatibilityFileError(f"{path}: expected a JSON object (labels/weights or nested)")
    else:
        from ..input_files import iter_csv, read_text

        text = read_text(path, "compatibility file", CompatibilityFileError)
        rows = [r for r in iter_csv(text, f"compatibility file {path}", CompatibilityFileError)
                if r and any(c.strip() for c in r)]
        if not rows:
            raise CompatibilityFileError(f"compatibility file {path} is empty")
        header = [c.strip() for c in rows[0]]
        if [h.lower() for h in header[:3]] == ["label_a", "label_b", "weight"]:
            for i, r in enumerate(rows[1:], 2):
                if len(r) < 3:
                    raise CompatibilityFileError(f"{path}:{i}: expected label_a,label_b,weight")
                raw.append((r[0].strip(), r[1].strip(), _weight(r[2], f"{path}:{i}")))
        else:
            labels = header[1:]
            for i, r in enumerate(rows[1:], 2):
                if len(r) != len(labels) + 1:
                    raise CompatibilityFileError(f"{path}:{i}: {len(r) - 1} weights; expected {len(labels)} "
                                                 "(one per label of the header row)")
                a = r[0].strip()
                raw.extend((a, b, _weight(w, f"{path}:{i} [{b!r}]")) for b, w in zip(labels, r[1:]))
    out: dict[tuple[str, str], float] = {}
    for a, b, w in raw:
        for key in ((a, b), (b, a)):
            out[key] = min(w, out.get(key, math.inf))
    return out


def resolve_label_nodes(labels: Sequence[str], label_ids: Mapping[str, str],
                        ontology: Ontology) -> dict[str, str | None]:
    """Ontology id of each label (its pool ``label_id`` when the ontology knows it, else its name)."""
    out: dict[str, str | None] = {}
    for lab in labels:
        node = None
        for key in (label_ids.get(lab) or "", lab):
            if key and key in ontology:
                try:
                    node = ontology.node(key).id
                    break
                except UnknownNodeError:  # pragma: no cover - __contains__ said yes
                    pass
        out[lab] = node
    return out


@dataclass
class LabelRules:
    labels: list[str]
    allowed: np.ndarray  # (L, L) bool
    forbidden: list[frozenset[int]]
    weights: np.ndarray | None = None  # (L, L) float, 0 where forbidden
    pair_counts: dict[str, int] = field(default_factory=dict)

    def is_allowed(self, a: str, b: str) -> bool:
        ia, ib = self.labels.index(a), self.labels.index(b)
        return bool(self.allowed[ia, ib])


def build_label_rules(labels: Sequence[str], *, nodes: Mapping[str, str | None] | None = None,
                      ontology: Ontology | None = None, exclude_ancestors: bool = True,
                      exclude_siblings: bool = False,
                      compatibility: Mapping[tuple[str, str], float] | None = None,
                      compatibility_default: float = 1.0) -> LabelRules:
    """Rules over ``labels`` (the indices of every output refer to this order)."""
    labels = list(labels)
    L = len(labels)
    allowed = np.ones((L, L), dtype=bool)
    np.fill_diagonal(allowed, False)
    counts: dict[str, int] = defaultdict(int)

    def forbid(i: int, j: int, rule: str) -> None:
        if i != j and allowed[i, j]:
            allowed[i, j] = allowed[j, i] = False
            counts[rule] += 1

    if ontology is not None:
        nodes = dict(nodes or {})
        by_node: dict[str, list[int]] = defaultdict(list)
        for i, lab in enumerate(labels):
            nid = nodes.get(lab)
            if nid is not None:
                by_node[nid].append(i)
        for idx in by_node.values():  # two pool labels naming one class
            for a in idx:
                for b in idx:
                    forbid(a, b, "same_class")
        if exclude_ancestors:
            for nid, idx in by_node.items():
                for anc in ontology.ancestors(nid):
                    for b in by_node.get(anc.id, ()):
                        for a in idx:
                            forbid(a, b, "ancestor")
        if exclude_siblings:
            for nid, idx in by_node.items():
                for sib in ontology.siblings(nid):
                    for b in by_node.get(sib.id, ()):
                        for a in idx:
                            forbid(a, b, "sibling")
    weights = None
    if compatibility is not None:
        index = {lab: i for i, lab in enumerate(labels)}
        w = np.full((L, L), float(compatibility_default))
        for (a, b), val in compatibility.items():
            ia, ib = index.get(a), index.get(b)
            if ia is not None and ib is not None:
                w[ia, ib] = val
        w = np.minimum(w, w.T)
        zero = (w <= 0) & allowed
        for a, b in zip(*np.nonzero(np.triu(zero, 1))):
            forbid(int(a), int(b), "compatibility")
        w[~allowed] = 0.0
        if np.any((w > 0) & (w != 1.0)):
            weights = w
    forbidden = [frozenset(np.flatnonzero(~allowed[i]).tolist()) for i in range(L)]
    return LabelRules(labels, allowed, forbidden, weights, dict(counts))
