"""The options of the training stream (:func:`mixing.stream.stream_mixtures`,
:func:`mixing.stream.iter_mixtures`) in one checked, frozen object.

The stream functions take what is read and how it sounds directly (``metadata``,
``dataset_paths``, ``split``, ``store``, ``sample_rate``), what each mixture becomes
(``targets``: :class:`~mixing.queries.ExampleConfig`), which mixtures (``labels``:
:class:`~mixing.label_filter.LabelFilter`); everything else is a :class:`StreamOptions` field,
named as the ``datasets`` builder's :class:`hive.HiveConfig` names it. Every value is checked when
the object is made, so a bad one is refused before any work, in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from . import numbers
from .errors import HiveError
from .label_filter import LabelFilter
from .queries import ExampleConfig
from .ranks.world import Ranks
from .recipe import STEM_MODES, RenderRecipe
from .render_spec import FAILURE_POLICIES, RenderSpec
from .validation import MAX_SOURCES


class StreamOptionsError(HiveError, ValueError):
    """A stream option is out of range, of the wrong type, or not for this function."""


@dataclass(frozen=True)
class StreamOptions:
    """``num_sources``: only mixtures of this many sources (2..5; None: all).
    ``stems``: ``consistent`` (stems carry the global factor and sum to the mix) or ``reference``.
    ``store_only``: with a ``store``, a chunk the store lacks fails (``not_in_store``) instead of
    being decoded.
    ``on_failure``: ``skip`` (leave the mixture out, log and count the reason) or ``raise``;
    ``failure_dir``: also write a JSONL manifest of left-out mixtures per work unit there.
    ``revision`` / ``metadata_config``: Hub revision and README config of the metadata.
    ``num_units``: work units per split (default: a multiple of 240 >= the number of metadata
    files), the unit of DataLoader workers and ``split_dataset_by_node``.
    ``seed`` / ``shuffle_units``: shuffle the order of the work units (:func:`iter_mixtures`;
    shuffle a :func:`stream_mixtures` dataset with ``ds.shuffle(seed=..., buffer_size=...)``).
    ``rank`` / ``world_size``: this process takes every ``world_size``-th unit
    (:func:`iter_mixtures`; split a :func:`stream_mixtures` dataset with ``split_dataset_by_node``).
    """

    num_sources: int | None = None
    stems: str = "consistent"
    store_only: bool = False
    on_failure: str = "skip"
    failure_dir: str | None = None
    revision: str | None = None
    metadata_config: str | None = None
    num_units: int | None = None
    seed: int | None = None
    shuffle_units: bool = False
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        numbers.check_fields(self, {"num_units": numbers.COUNT, "seed": numbers.SEED},
                             where="stream option", error=StreamOptionsError)
        ranks = Ranks.of(self.rank, self.world_size, error=StreamOptionsError)  # the rank executor's rule
        object.__setattr__(self, "rank", ranks.rank)
        object.__setattr__(self, "world_size", ranks.world_size)
        if self.num_sources is not None:
            n = self.num_sources
            if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_SOURCES:
                raise StreamOptionsError(f"num_sources is {n!r}; expected None (all) or 2..{MAX_SOURCES}")
        if self.stems not in STEM_MODES:
            raise StreamOptionsError(f"stems is {self.stems!r}; expected one of {STEM_MODES}")
        if self.on_failure not in FAILURE_POLICIES:
            raise StreamOptionsError(f"on_failure is {self.on_failure!r}; expected 'skip' (leave the mixture out, "
                                     "count and log the reason) or 'raise'")
        for name in ("store_only", "shuffle_units"):
            if not isinstance(getattr(self, name), bool):
                raise StreamOptionsError(f"{name} is {getattr(self, name)!r}; expected True or False")
        if self.failure_dir is not None:
            if not isinstance(self.failure_dir, (str, os.PathLike)):
                raise StreamOptionsError(f"failure_dir is a {type(self.failure_dir).__name__}; expected a folder path")
            object.__setattr__(self, "failure_dir", os.fspath(self.failure_dir))

    @classmethod
    def coerce(cls, options: "StreamOptions | Mapping[str, Any] | None") -> "StreamOptions":
        """``options`` itself, the defaults for None, or ``StreamOptions(**options)`` for a mapping."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, Mapping):
            unknown = sorted(set(options) - set(cls.__dataclass_fields__))
            if unknown:
                raise StreamOptionsError(f"unknown stream option(s) {unknown}; StreamOptions has "
                                         f"{sorted(cls.__dataclass_fields__)}")
            return cls(**options)
        raise StreamOptionsError(f"options is a {type(options).__name__}; expected a StreamOptions (or a dict of "
                                 "its fields)")

    def render_spec(self, dataset_paths: Any, *, store: Any, sample_rate: int | None, targets: Any,
                    labels: Any) -> RenderSpec:
        """What every process of the stream needs besides its work units."""
        recipe = RenderRecipe.make(dataset_paths, store=store, stems=self.stems, sample_rate=sample_rate,
                                   store_only=self.store_only)
        return RenderSpec(recipe, num_sources=self.num_sources, on_failure=self.on_failure,  # type: ignore[arg-type]
                          failure_dir=self.failure_dir, labels=LabelFilter.make(labels),
                          examples=ExampleConfig.coerce(targets))
