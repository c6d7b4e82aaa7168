"""Which mixtures ``hive inspect`` shows: named ids, or a seeded sample.

The sample is a pure function of the set of mix ids and the seed: each id gets the key
``sha256(f"{seed}:{mix_id}")`` and the ``n`` smallest keys win. It does not depend on the order
of the input, on its sharding, or on any global random state, and it streams (a heap of ``n``).
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Iterable, Sequence


def sample_key(mix_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{mix_id}".encode("utf-8")).digest()[:8], "big")


class Selector:
    """Feed every mix id with :meth:`see`; :meth:`chosen` returns the selection."""

    def __init__(self, mix_ids: Sequence[str] | None = None, sample: int | None = None, seed: int = 0):
        if (mix_ids is None) == (sample is None):
            raise ValueError("give exactly one of mix_ids and sample")
        if sample is not None and sample < 1:
            raise ValueError(f"sample is {sample}; expected a positive number of mixtures")
        self.wanted = list(dict.fromkeys(mix_ids)) if mix_ids is not None else None
        self.sample = sample
        self.seed = seed
        self._heap: list[tuple[int, str]] = []  # max-heap by key via negation
        self._seen_wanted: set[str] = set()
        self._seen_sample: set[str] = set()

    def see(self, mix_id: str) -> None:
        if self.wanted is not None:
            if mix_id in self.wanted:
                self._seen_wanted.add(mix_id)
            return
        if mix_id in self._seen_sample:
            return
        key = sample_key(mix_id, self.seed)
        if len(self._heap) < self.sample:
            heapq.heappush(self._heap, (-key, mix_id))
            self._seen_sample.add(mix_id)
        elif -self._heap[0][0] > key:
            _, dropped = heapq.heapreplace(self._heap, (-key, mix_id))
            self._seen_sample.discard(dropped)
            self._seen_sample.add(mix_id)

    def missing(self) -> list[str]:
        """Named ids the input does not hold (in the order given)."""
        return [] if self.wanted is None else [m for m in self.wanted if m not in self._seen_wanted]

    def chosen(self) -> list[str]:
        """Named ids in the order given, or the sample sorted by key (stable for a seed)."""
        if self.wanted is not None:
            return [m for m in self.wanted if m in self._seen_wanted]
        return [m for _, m in sorted((-k, m) for k, m in self._heap)]


def choose(mix_ids: Iterable[str], *, ids: Sequence[str] | None = None, sample: int | None = None,
           seed: int = 0) -> list[str]:
    """Convenience: the selection from an iterable of ids."""
    sel = Selector(ids, sample, seed)
    for m in mix_ids:
        sel.see(m)
    return sel.chosen()
