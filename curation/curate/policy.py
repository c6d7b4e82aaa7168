"""The keep policy: which scored mixtures survive curation.

* ``top_fraction`` (``--keep F``): within each (split, num_sources) group, across the whole
  split (every rank's mixtures together), the scored mixtures are ranked by score, best first,
  ties broken by ``sha256(mix_id)`` (then ``mix_id``); the first ``floor(F * n + 0.5)`` are kept,
  ``n`` being the number of *scored* mixtures in the group.
* ``min_score`` (``--min-score X``): every scored mixture with ``score >= X`` is kept.
* ``reference`` (``--keep-rule reference``): the reference ``mix_data_curation.py`` rule. Per
  shard (the tar the reference render wrote: the k-th ``shard_size`` block of a
  (split, num_sources) group in input order, as ``hive render --shard-size`` cuts it), the
  scored mixtures are sorted by score, best first, ties in shard order (a stable sort), and the
  first ``len // 2`` are kept: a shard of one mixture keeps none.

Unscored mixtures (no source could be scored: judge failures, missing audio) take no place in
the ranking and do not count in ``n``. ``unscored="drop"`` (default) leaves them out of the
refreshed metadata, ``"keep"`` keeps them as they are; either way they are listed with status
``unscored`` in the scores table and counted in the summary, so they can be curated again later.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

UNSCORED_POLICIES = ("drop", "keep")


@dataclass(frozen=True, slots=True)
class Decision:
    kept: bool
    #: kept_top_fraction | below_cut | kept_min_score | below_min_score | unscored_dropped | unscored_kept
    reason: str
    rank: int | None  # 1-based rank within its group (scored mixtures only)


@dataclass(frozen=True, slots=True)
class Candidate:
    mix_id: str
    split: str
    num_sources: int
    score: float | None
    #: position of the mixture in its (split, num_sources) group, in input order (reference rule)
    position: int | None = None


KEEP_RULES = ("fraction", "reference")


def tie_break(mix_id: str) -> str:
    return hashlib.sha256(mix_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeepPolicy:
    keep: float | None = 0.5
    min_score: float | None = None
    unscored: str = "drop"
    #: ``fraction`` (``keep`` or ``min_score``) or ``reference`` (per shard, ``len // 2``)
    rule: str = "fraction"
    shard_size: int = 1000

    def __post_init__(self) -> None:
        if self.rule not in KEEP_RULES:
            raise ValueError(f"keep rule is {self.rule!r}; expected one of {KEEP_RULES}")
        if self.shard_size < 1:
            raise ValueError(f"shard size is {self.shard_size}; expected >= 1")
        if self.rule == "reference":
            if self.min_score is not None:
                raise ValueError("the reference keep rule keeps the top len // 2 of each shard; it "
                                 "takes no min_score (drop --min-score, or use --keep-rule fraction)")
        elif (self.keep is None) == (self.min_score is None):
            raise ValueError("give exactly one of keep (a fraction) and min_score (a threshold)")
        if self.keep is not None and not (0.0 <= self.keep <= 1.0):
            raise ValueError(f"keep is {self.keep}; expected a fraction in [0, 1]")
        if self.min_score is not None and not (0.0 <= self.min_score <= 1.0):
            raise ValueError(f"min_score is {self.min_score}; expected a score in [0, 1]")
        if self.unscored not in UNSCORED_POLICIES:
            raise ValueError(f"unscored policy is {self.unscored!r}; expected one of {UNSCORED_POLICIES}")

    @property
    def name(self) -> str:
        if self.rule == "reference":
            return "reference_per_shard"
        return "top_fraction" if self.keep is not None else "min_score"

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "unscored": self.unscored,
                             "score": "mean over scored and trivial sources of (judge picked the true label)"}
        if self.rule == "reference":
            d.update(shard_size=self.shard_size, group_by=["split", "num_sources", "shard"],
                     shard="position_in_group // shard_size (input order, as hive render shards)",
                     count="scored_in_shard // 2",
                     order="score descending, ties in input order (stable sort)")
        elif self.keep is not None:
            d.update(keep=self.keep, group_by=["split", "num_sources"],
                     count="floor(keep * scored_in_group + 0.5)",
                     order="score descending, then sha256(mix_id) ascending, then mix_id")
        else:
            d.update(min_score=self.min_score)
        return d

    def select(self, candidates: Iterable[Candidate]) -> dict[str, Decision]:
        out: dict[str, Decision] = {}
        groups: dict[tuple[str, int], list[Candidate]] = defaultdict(list)
        for c in candidates:
            if c.score is None:
                keep = self.unscored == "keep"
                out[c.mix_id] = Decision(keep, "unscored_kept" if keep else "unscored_dropped", None)
            else:
                groups[(c.split, c.num_sources)].append(c)
        if self.rule == "reference":
            return self._select_reference(groups, out)
        for members in groups.values():
            members.sort(key=lambda c: (-c.score, tie_break(c.mix_id), c.mix_id))
            if self.keep is not None:
                n_keep = math.floor(self.keep * len(members) + 0.5)
                for r, c in enumerate(members, 1):
                    kept = r <= n_keep
                    out[c.mix_id] = Decision(kept, "kept_top_fraction" if kept else "below_cut", r)
            else:
                for r, c in enumerate(members, 1):
                    kept = c.score >= self.min_score - 1e-12
                    out[c.mix_id] = Decision(kept, "kept_min_score" if kept else "below_min_score", r)
        return out

    def _select_reference(self, groups: dict[tuple[str, int], list[Candidate]],
                          out: dict[str, Decision]) -> dict[str, Decision]:
        for members in groups.values():
            missing = [c.mix_id for c in members if c.position is None]
            if missing:
                raise ValueError(f"the reference keep rule needs each mixture's position in its group; "
                                 f"{len(missing)} candidate(s) have none (e.g. {missing[0]!r})")
            shards: dict[int, list[Candidate]] = defaultdict(list)
            for c in members:
                shards[c.position // self.shard_size].append(c)
            for shard in shards.values():
                shard.sort(key=lambda c: c.position)
                shard.sort(key=lambda c: -c.score)  # stable: ties stay in shard order
                n_keep = len(shard) // 2
                for r, c in enumerate(shard, 1):
                    kept = r <= n_keep
                    out[c.mix_id] = Decision(kept, "kept_reference_half" if kept else "below_cut", r)
        return out
