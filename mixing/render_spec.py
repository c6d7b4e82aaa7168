"""What a process of the stream or the builder needs besides its work units: :class:`RenderSpec`."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from .corpora import DatasetPaths
from .label_filter import LabelFilter
from .queries import ExampleConfig, QueryMaker
from .recipe import RenderRecipe
from .render import Renderer
from .validation import MAX_SOURCES

FailurePolicy = Literal["skip", "raise"]
FAILURE_POLICIES = ("skip", "raise")


@dataclass(frozen=True)
class RenderSpec:
    """Everything a worker needs besides its units: the render recipe, which mixtures (number of
    sources, a :class:`~mixing.label_filter.LabelFilter`), what each becomes
    (:class:`~mixing.queries.ExampleConfig`), and what to do with failures. Hashable and small: it
    is copied into every job of ``gen_kwargs`` (a scalar, not a list, so ``datasets`` never splits it)."""

    recipe: RenderRecipe
    num_sources: int | None = None
    on_failure: FailurePolicy = "skip"
    failure_dir: str | None = None
    max_sources: int = MAX_SOURCES
    labels: LabelFilter | None = None
    examples: ExampleConfig = ExampleConfig()

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, RenderRecipe):
            raise TypeError(f"recipe is a {type(self.recipe).__name__}; expected a RenderRecipe")
        if self.labels is not None and not isinstance(self.labels, LabelFilter):
            raise TypeError(f"labels is a {type(self.labels).__name__}; expected a LabelFilter or None")
        if not isinstance(self.examples, ExampleConfig):
            raise TypeError(f"examples is a {type(self.examples).__name__}; expected an ExampleConfig")
        if self.on_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_failure is {self.on_failure!r}; expected 'skip' (leave the mixture "
                             "out, count and log the reason) or 'raise'")
        if self.num_sources is not None and not (2 <= self.num_sources <= self.max_sources):
            raise ValueError(f"num_sources is {self.num_sources!r}; expected None (all) or 2..{self.max_sources}")

    @classmethod
    def make(cls, dataset_paths: DatasetPaths | Mapping[str, str] | str | os.PathLike | None = None, *,
             stems: str = "consistent", sample_rate: int | None = None, audio_format: str = "wav",
             store: Any = None, store_only: bool = False, **kw: Any) -> "RenderSpec":
        recipe = RenderRecipe.make(dataset_paths, store=store, stems=stems, sample_rate=sample_rate,
                                   audio_format=audio_format, store_only=store_only)
        return cls(recipe, **kw)

    def renderer(self) -> Renderer:
        """This process's renderer (cached: the file-header cache and the store survive epochs)."""
        return self.recipe.renderer()

    def query_maker(self) -> QueryMaker | None:
        """This process's maker of query examples (None for whole mixtures)."""
        return shared_query_maker(self.examples, self.labels) if self.examples.queries else None


@functools.lru_cache(maxsize=8)
def shared_query_maker(examples: ExampleConfig, labels: LabelFilter | None,
                 vocabulary: tuple[str, ...] | None = None) -> QueryMaker:
    """One :class:`QueryMaker` per process and settings (the label filter's selection is the
    default vocabulary of negative queries)."""
    if vocabulary is None and labels is not None and labels.labels is not None:
        vocabulary = tuple(labels.resolved().included_names()) or None
    return QueryMaker(examples, selected=None if labels is None else labels.passing, vocabulary=vocabulary)
