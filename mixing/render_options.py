"""The options of ``hive render`` / :func:`mixing.api.render`, in one checked object.

:class:`~mixing.recipe.RenderRecipe` says how a record becomes audio (corpora, store, stems,
sample rate, audio format); :class:`RenderOptions` says which mixtures, how the shards are laid
out and how the render runs on this machine. Every value is checked when the object is made
(:mod:`mixing.numbers`), so a bad number is refused before any work, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import numbers
from .errors import HiveError
from .label_filter import LabelFilter
from .ranks.world import Ranks

FORMATS = ("webdataset", "parquet")


@dataclass(frozen=True)
class RenderOptions:
    """``format``: ``webdataset`` (tar) or ``parquet``; ``shard_size``: mixtures per shard;
    ``num_sources``: only mixtures of this many sources; ``labels``: only the mixtures of a label
    subset (a :class:`~mixing.label_filter.LabelFilter`, or names/mids); ``num_workers``: processes
    on this machine; ``rank`` / ``world_size``: this process's share of the shards;
    ``overwrite``: discard a ledger made with other parameters; ``force``: start even if the size
    estimate exceeds the free space; ``progress``: a bar with ETA (None: when stderr is a
    terminal); ``on_estimate``: called with the :class:`~mixing.render_estimate.RenderEstimate`
    before rendering."""

    format: str = "webdataset"
    shard_size: int = 1000
    num_sources: int | None = None
    labels: LabelFilter | None = None
    num_workers: int = 1
    rank: int = 0
    world_size: int = 1
    overwrite: bool = False
    force: bool = False
    progress: bool | None = None
    on_estimate: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise HiveError(f"format is {self.format!r}; expected one of {FORMATS}")
        numbers.check_fields(self, {"shard_size": numbers.COUNT, "num_workers": numbers.WORKERS},
                             where="render option", optional=False)
        numbers.check_fields(self, {"num_sources": numbers.COUNT}, where="render option")
        ranks = Ranks.of(self.rank, self.world_size)  # the rank executor's rule
        object.__setattr__(self, "rank", ranks.rank)
        object.__setattr__(self, "world_size", ranks.world_size)
        if self.labels is not None and not isinstance(self.labels, LabelFilter):
            object.__setattr__(self, "labels", LabelFilter.make(self.labels))
        if self.on_estimate is not None and not callable(self.on_estimate):
            raise HiveError(f"on_estimate is {self.on_estimate!r}; expected a function of the render estimate")
