"""Split rules: a clip, and every clip cut from the same original file, lies in one split only.

* :func:`assign_split` gives an original file its split deterministically (a keyed hash of the
  file path and a seed, compared with cumulative ratios), so a file never straddles splits and
  the assignment does not depend on the order or the number of files;
* :func:`check_pool_splits` proves it for a pool;
* :func:`check_metadata_splits` proves it for produced mixture metadata (optionally against the
  pool the metadata was drawn from).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from ..errors import HiveError
from ..metadata import MixtureRecord
from ..pool import PoolEntry

DEFAULT_RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


class SplitLeakError(HiveError, ValueError):
    """An original file is used in more than one split."""


def split_fraction(key: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) that depends only on ``key`` and ``seed``."""
    h = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=str(int(seed)).encode()).digest()
    return int.from_bytes(h, "big") / 2.0 ** 64


def assign_split(key: str, seed: int = 0, ratios: Mapping[str, float] | None = None) -> str:
    """Split of an original file: the hash of its path against the cumulative ``ratios``."""
    ratios = dict(DEFAULT_RATIOS if ratios is None else ratios)
    total = sum(ratios.values())
    if not ratios or total <= 0 or any(r < 0 for r in ratios.values()):
        raise ValueError(f"split ratios {ratios!r}; expected non-negative ratios with a positive sum")
    u = split_fraction(key, seed) * total
    acc = 0.0
    last = None
    for name, r in ratios.items():
        if r <= 0:
            continue
        acc += r
        last = name
        if u < acc:
            return name
    return last  # float rounding at the very top


@dataclass
class SplitCheck:
    """Result of a disjointness check: which original files appear in which splits."""

    files_by_split: dict[str, int] = field(default_factory=dict)
    leaks: dict[str, list[str]] = field(default_factory=dict)  # original file -> splits

    @property
    def ok(self) -> bool:
        return not self.leaks

    def raise_if_leaky(self, what: str) -> None:
        if self.leaks:
            examples = "; ".join(f"{f} in {s}" for f, s in list(self.leaks.items())[:5])
            raise SplitLeakError(
                f"{what}: {len(self.leaks)} original files are used in more than one split (e.g. {examples}); "
                "expected every file in one split only. Rebuild the pool's splits per original file "
                "(mixing.synthesis.splits.assign_split) and synthesize again")

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "files_by_split": self.files_by_split, "num_leaks": len(self.leaks),
                "leak_examples": dict(list(self.leaks.items())[:20])}


def _check(pairs: Iterable[tuple[str, str]]) -> SplitCheck:
    splits_of: dict[str, set[str]] = defaultdict(set)
    for f, s in pairs:
        splits_of[f].add(s)
    by_split: dict[str, int] = defaultdict(int)
    leaks = {}
    for f, ss in splits_of.items():
        for s in ss:
            by_split[s] += 1
        if len(ss) > 1:
            leaks[f] = sorted(ss)
    return SplitCheck(dict(sorted(by_split.items())), leaks)


def check_pool_splits(entries: Iterable[PoolEntry]) -> SplitCheck:
    """Every original file of the pool lies in exactly one split."""
    return _check((e.original_file, e.split) for e in entries)


def check_metadata_splits(records: Iterable[MixtureRecord],
                          pool: Iterable[PoolEntry] | None = None) -> SplitCheck:
    """Every source file of the metadata is used in one split only; with ``pool``, also that each
    source's file belongs to the record's split in the pool (a file the pool does not hold counts
    under the split name ``<not in pool>``)."""
    file_of: dict[str, str] = {}
    pool_split: dict[str, str] = {}
    if pool is not None:
        for e in pool:
            file_of[e.path] = e.original_file
            pool_split[e.original_file] = e.split

    def pairs() -> Iterator[tuple[str, str]]:  # one pass, nothing kept per source
        for rec in records:
            for s in rec.sources:
                f = file_of.get(s.path, s.path)
                yield f, rec.split
                if pool is not None:
                    yield f, pool_split.get(f, "<not in pool>")

    return _check(pairs())
