"""Confusion pools: which labels the judge chooses among for one source, and in which order.

Two pool rules (``--confusion-pool``):

* ``reference`` (default, the reference ``mix_data_curation.py``): the true label plus the other
  children of its *last* parent, the last node in ontology file order that lists it among its
  ``child_ids`` (the reference builds a child -> parent map by walking the nodes in file order,
  so a later parent overwrites an earlier one). 24 Hive nodes have several parents; their
  other parents' children are not offered. No other filtering.
* ``union``: the true label plus the children of *every* parent (parent order, then child
  order, first occurrence kept), without the label's ancestors and descendants, which would not
  be wrong answers.

A pool may be capped at ``max_pool`` labels: the true label always stays,
the siblings kept are the ones with the smallest ``sha256(seed, mix_id, source_id, label)``.

Two option orders (``--option-order``):

* ``shuffled`` (default): a seeded permutation per (mix_id, source_id): labels sorted by
  ``sha256(seed, mix_id, source_id, "order", label)``. Hash ordering is a uniform random
  permutation that does not depend on numpy's generator streams, so the true label's position
  carries no information and is the same on every machine and every run.
* ``reference``: the pool as built, true label first (the reference's order). A judge that
  always answers "1" then scores every source correct, which is why it is not the default.
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


POOL_RULES = ("reference", "union")
OPTION_ORDERS = ("shuffled", "reference")


class PoolBuilder:
    """Builds confusion pools from an ontology; sibling lists are computed once per label."""

    def __init__(self, ontology: Ontology, *, seed: int = 0, max_pool: int | None = None,
                 rule: str = "reference", order: str = "shuffled"):
        if max_pool is not None and max_pool < 2:
            raise ValueError(f"max_pool is {max_pool}; expected None (no cap) or at least 2 "
                             "(the true label and one sibling)")
        if rule not in POOL_RULES:
            raise ValueError(f"confusion pool rule is {rule!r}; expected one of {POOL_RULES}")
        if order not in OPTION_ORDERS:
            raise ValueError(f"option order is {order!r}; expected one of {OPTION_ORDERS}")
        self.ontology = ontology
        self.seed = seed
        self.max_pool = max_pool
        self.rule = rule
        self.order = order
        self._siblings = lru_cache(maxsize=None)(self._compute_siblings)

    def _compute_siblings(self, label: str) -> tuple[str, tuple[str, ...]]:
        """(canonical name of ``label``, names of its confusable siblings)."""
        onto = self.ontology
        node = onto.node(label)
        if self.rule == "reference":
            parents = onto.parents(node)
            if not parents:
                return node.name, ()
            return node.name, tuple(c.name for c in onto.children(parents[-1]) if c.id != node.id)
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
        if self.order == "reference":
            options = labels
        else:
            options = tuple(sorted(labels, key=lambda s: digest(self.seed, mix_id, source_id, "order", s)))
        return ConfusionPool(name, labels, options)


__all__ = ["ConfusionPool", "OPTION_ORDERS", "POOL_RULES", "PoolBuilder", "UnknownNodeError", "digest"]
