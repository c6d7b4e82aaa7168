"""``HiveMapDataset``: a map-style (``__len__``/``__getitem__``) torch dataset of Hive mixtures.

For loaders that want indices (Lightning, Asteroid, samplers with weights or distributed
samplers): over metadata rendered on demand (from a source store at memory speed, or the corpora)
with :meth:`HiveMapDataset.from_metadata`, or over a ``hive render`` folder with
:meth:`HiveMapDataset.from_rendered`. The examples are the stream's, in every form
(``targets="all"``, ``"each"``, ``"one"``, an :class:`~mixing.queries.ExampleConfig`), with the
same label filters; batch them with :func:`mixing.collate.collate_mixtures`.

* ``"all"`` and ``"one"``: item ``i`` is mixture ``i``; ``"each"``: one item per selected source of
  every mixture (and its negative, when ``negative_rate`` gives it one; fixed per seed), so
  ``len()`` is fixed.
* :meth:`HiveMapDataset.set_epoch` changes the per-epoch choices (the ``"one"`` source, query
  templates, negative labels) — call it before each epoch's iterator is made.

torch is optional: the class works without it (a plain sequence); with torch installed it is a
``torch.utils.data.Dataset``. ``import mixing`` never imports this module.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from . import optional
from .errors import HiveError
from .label_filter import LabelFilter
from .queries import ExampleConfig, QueryMaker, has_negative

# a torch Dataset where torch is installed (the "audio" extra), a plain class elsewhere
_Base: Any = (optional.require("torch.utils.data", "HiveMapDataset", "audio").Dataset
              if optional.available("torch") else object)

#: rendered mixtures kept per process ("each" reads every source of a mixture in turn)
_CACHE = 8


class HiveMapDataset(_Base):  # type: ignore[misc,valid-type]
    """Examples by index (see the module docstring). Build with :meth:`from_metadata` or
    :meth:`from_rendered`."""

    def __init__(self, mixtures: Any, targets: str | ExampleConfig = "all", labels: LabelFilter | None = None):
        self.mixtures = mixtures
        self.examples = ExampleConfig.coerce(targets)
        self.labels = labels
        self.epoch = 0
        self._maker: QueryMaker | None = None
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        #: "each": (mixture, source index or -1 for the negative) of every item
        self.index: np.ndarray | None = None
        if self.examples.targets == "each":
            maker = self.maker()
            pairs: list[tuple[int, int]] = []
            for j in range(len(mixtures)):
                pairs += [(j, k) for k in maker.targets_of(mixtures.labels(j))]
                if has_negative(self.examples, mixtures.mix_id(j)):
                    pairs.append((j, -1))
            self.index = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_metadata(cls, metadata: Any, store: Any = None, dataset_paths: Any = None, *, split: str = "train",
                      num_sources: int | None = None, targets: str | ExampleConfig = "all",
                      labels: Sequence[str] | LabelFilter | None = None, exclude_labels: Sequence[str] | None = None,
                      sample_rate: int | None = None) -> "HiveMapDataset":
        """Metadata (a Hub id, file or folder, or an in-memory ``datasets.Dataset`` / ``pyarrow.Table`` /
        ``DataFrame``) rendered on demand from a source ``store`` and/or the corpora
        (``dataset_paths``). The split's rows are read once (Arrow, in memory)."""
        from .mixture_access import MetadataMixtures
        from .recipe import RenderRecipe

        if store is None and dataset_paths is None:
            raise HiveError("HiveMapDataset.from_metadata needs a source store (store=STORE), the corpora "
                            "(dataset_paths=...) or both to render the mixtures")
        lf = LabelFilter.make(labels, exclude_labels)
        recipe = RenderRecipe.make(dataset_paths, store=store, sample_rate=sample_rate)
        return cls(MetadataMixtures(metadata, recipe, split, num_sources, lf), targets, lf)

    @classmethod
    def from_rendered(cls, folder: str | os.PathLike, *, split: str = "train", num_sources: int | None = None,
                      targets: str | ExampleConfig = "all", labels: Sequence[str] | LabelFilter | None = None,
                      exclude_labels: Sequence[str] | None = None) -> "HiveMapDataset":
        """The samples of a ``hive render`` folder (WebDataset or Parquet), indexed once."""
        from .mixture_access import RenderedMixtures

        lf = LabelFilter.make(labels, exclude_labels)
        return cls(RenderedMixtures(folder, split, num_sources, lf), targets, lf)

    # ---- the protocol ------------------------------------------------------------------------
    def maker(self) -> QueryMaker:
        if self._maker is None:
            from .render_spec import shared_query_maker

            self._maker = shared_query_maker(self.examples, self.labels)
        return self._maker

    def set_epoch(self, epoch: int) -> None:
        """Per-epoch choices (the ``"one"`` source, templates, negative labels) of epoch ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.mixtures) if self.index is None else len(self.index)

    def _mixture(self, j: int) -> dict[str, Any]:
        ex = self._cache.get(j)
        if ex is None:
            ex = self.mixtures.example(j)
            self._cache[j] = ex
            while len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(j)
        return ex

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self)
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"HiveMapDataset index is {type(i).__name__}; expected an integer")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a HiveMapDataset of {n} examples")
        i = int(i) % n
        if not self.examples.queries:
            return self._mixture(i)
        if self.index is None:  # "one"
            got = self.maker().examples(self._mixture(i), self.epoch)
            if not got:
                raise HiveError(f"mixture {self.mixtures.mix_id(i)} has no selected source to query")
            return got[0]
        j, k = (int(x) for x in self.index[i])
        for ex in self.maker().examples(self._mixture(j), self.epoch):
            if ex["source_index"] == k:
                return ex
        raise HiveError(f"mixture {self.mixtures.mix_id(j)}: no label of the negative vocabulary is unrelated to "
                        f"its labels {self.mixtures.labels(j)}; give ExampleConfig(negative_labels=[...]) a wider "
                        "vocabulary")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()  # a worker renders its own
        state["_maker"] = None
        return state

    @staticmethod
    def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """:func:`mixing.collate.collate_mixtures` (``DataLoader(ds, collate_fn=ds.collate)``)."""
        from .collate import collate_mixtures

        return collate_mixtures(batch)
