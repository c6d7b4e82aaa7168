"""Confusion pools: which labels the judge chooses among for one source, and in which order.

The pool of a source is its true label plus its ontology siblings (the children of each of its
parents, without the label itself and without any of its ancestors or descendants, which would
not be wrong answers). A pool may be capped at ``max_pool`` labels: the true label always stays,
the siblings kept are the ones with the smallest ``sha256(seed, mix_id, source_id, label)``.

The options are shown in a seeded permutation per (mix_id, source_id): labels sorted by
``sha256(seed, mix_id, source_id, "order", label)``. Hash ordering is a uniform random
permutation that does not depend on numpy's generator streams, so the true label's position
carries no information and is the same on every machine and every run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from mixing.ontology import Ontology, UnknownNodeError


def digest(*parts: object) -> str:
    """Hex sha256 of the parts joined by an ASCII unit separator (unambiguous for strings)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ConfusionPool:
    """The labels one source is judged among. ``labels[0]`` is the true label (canonical order:
    true label, then siblings in ontology order); ``options`` is the order shown to the judge."""

    label: str
    labels: tuple[str, ...]
    options: tuple[str, ...]

    @property
    def trivial(self) -> bool:
        """No sibling: nothing to confuse the label with."""
        return len(self.labels) <= 1

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def true_option(self) -> int:
        """1-based position of the true label among the shown options."""
        return self.options.index(self.label) + 1


class PoolBuilder:
    """Builds confusion pools from an ontology; sibling lists are computed once per label."""

    def __init__(self, ontology: Ontology, *, seed: int = 0, max_pool: int | None = None):
        if max_pool is not None and max_pool < 2:
            raise ValueError(f"max_pool is {max_pool}; expected None (no cap) or at least 2 "
                             "(the true label and one sibling)")
        self.ontology = ontology
        self.seed = seed
        self.max_pool = max_pool
        self._siblings = lru_cache(maxsize=None)(self._compute_siblings)

    def _compute_siblings(self, label: str) -> tuple[str, tuple[str, ...]]:
        """(canonical name of ``label``, names of its confusable siblings)."""
        onto = self.ontology
        node = onto.node(label)
        related = {n.id for n in onto.ancestors(node)} | {n.id for n in onto.descendants(node)}
        sibs = tuple(s.name for s in onto.siblings(node) if s.id not in related)
        return node.name, sibs

    def known(self, label: str) -> bool:
        return label in self.ontology

    def pool(self, mix_id: str, source_id: str, label: str) -> ConfusionPool:
        """The pool of one source. Raises :class:`UnknownNodeError` for a label the ontology
        does not have."""
        name, sibs = self._siblings(label)
        if self.max_pool is not None and len(sibs) > self.max_pool - 1:
            chosen = set(sorted(sibs, key=lambda s: digest(self.seed, mix_id, source_id, "pool", s))
                         [: self.max_pool - 1])
            sibs = tuple(s for s in sibs if s in chosen)
        labels = (name, *sibs)
        options = tuple(sorted(labels, key=lambda s: digest(self.seed, mix_id, source_id, "order", s)))
        return ConfusionPool(name, labels, options)


__all__ = ["ConfusionPool", "PoolBuilder", "UnknownNodeError", "digest"]
