"""The render recipe: how a mixture record becomes audio, in one frozen, picklable object.

Every command and API that renders (``hive render``, the training stream, the ``datasets``
builder, ``hive inspect``, ``hive eval``, ``hive curate``, synthesis levels, the toy corpus)
describes its rendering with a :class:`RenderRecipe` and gets its
:class:`~mixing.render.Renderer` from :meth:`RenderRecipe.renderer`, the one way to build one:

* ``corpora`` — corpus prefix -> local folder (``dataset_paths.json``); ``None`` renders from the
  store alone;
* ``stems`` — ``consistent`` (stems carry the global factor and sum to the mix) or ``reference``;
* ``sample_rate`` — output rate (``None``: each record's own; with a store: the store's);
* ``audio_format`` — how encoded outputs hold the audio (``wav`` float32, ``flac`` 24-bit, ``pcm16``);
* ``store`` / ``store_only`` — read source chunks from a source store (:mod:`mixing.store`); with
  ``store_only`` a chunk the store lacks fails as ``not_in_store`` instead of being decoded.

A recipe is small and hashable: it travels into process pools, ``datasets`` ``gen_kwargs``
(as a scalar) and DataLoader workers; each process builds its renderer once and keeps it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .corpora import DatasetPaths
from .errors import HiveError
from .per_thread import per_thread_cache
from .render import STEM_MODES
from .validation import MAX_SAMPLE_RATE

if TYPE_CHECKING:  # pragma: no cover
    from .render import Renderer

AUDIO_FORMATS = ("wav", "flac", "pcm16")


def check_sample_rate(value: Any, what: str = "sample_rate") -> int | None:
    """``value`` as a sample rate in 1..:data:`MAX_SAMPLE_RATE` Hz, or None; else a one-line error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAMPLE_RATE:
        raise HiveError(f"{what} is {value!r}; expected an integer rate in Hz from 1 to {MAX_SAMPLE_RATE} "
                        "(e.g. 44100, 16000), or None for each record's own rate")
    return int(value)


@dataclass(frozen=True)
class RenderRecipe:
    """How records become audio (see the module docstring). Build with :meth:`make`."""

    corpora: tuple[tuple[str, str], ...] | None = None
    allow_symlinks_outside: bool = False
    stems: str = "consistent"
    sample_rate: int | None = None
    audio_format: str = "wav"
    store: str | None = None
    store_only: bool = False

    def __post_init__(self) -> None:
        if self.stems not in STEM_MODES:
            raise HiveError(f"stems is {self.stems!r}; expected one of {STEM_MODES}")
        if self.audio_format not in AUDIO_FORMATS:
            raise HiveError(f"audio_format is {self.audio_format!r}; expected one of {AUDIO_FORMATS}")
        check_sample_rate(self.sample_rate)
        if self.corpora is None and self.store is None:
            raise HiveError("a render needs the corpora (dataset_paths: corpus prefix -> local folder), a source "
                            "store, or both; got neither")
        if self.store_only and self.store is None:
            raise HiveError("store_only is set but no store is given; pass store=STORE (a `hive store build` "
                            "output folder) or drop store_only")

    @classmethod
    def make(cls, dataset_paths: "DatasetPaths | Mapping[str, str] | str | os.PathLike | None" = None, *,
             store: "str | os.PathLike | Any | None" = None, stems: str = "consistent",
             sample_rate: int | None = None, audio_format: str = "wav", store_only: bool = False) -> "RenderRecipe":
        """A checked recipe. With a ``store``, its manifest is read now: a store of another rate
        than ``sample_rate`` is refused (:class:`~mixing.errors.StoreRateError`), and without a
        ``sample_rate`` the recipe renders at the store's rate."""
        corpora, allow = None, False
        if dataset_paths is not None:
            paths = DatasetPaths.coerce(dataset_paths)
            corpora = tuple(sorted((k, str(v)) for k, v in paths.roots.items()))
            allow = paths.allow_symlinks_outside
        store_path = None
        sample_rate = check_sample_rate(sample_rate)
        if store is not None:
            from .store.layout import check_rate, read_manifest
            from .store.reader import SourceStore

            root = store.root if isinstance(store, SourceStore) else store  # an open store or its folder
            store_path = str(Path(root).expanduser().absolute())
            rate = read_manifest(store_path)["sample_rate"]
            check_rate(store_path, rate, sample_rate)
            sample_rate = rate
        return cls(corpora, allow, stems, sample_rate, audio_format, store_path, bool(store_only))

    @classmethod
    def coerce(cls, value: "RenderRecipe | DatasetPaths | Mapping[str, str] | str | os.PathLike") -> "RenderRecipe":
        """``value`` itself when it is a recipe, else the default recipe over those dataset paths
        (``dataset_paths.json``, its mapping or a :class:`~mixing.corpora.DatasetPaths`): what the
        API's ``recipe`` arguments accept, so ``api.render(meta, "dataset_paths.json", out)`` works."""
        if isinstance(value, cls):
            return value
        if value is None:
            raise HiveError("a render needs a recipe: RenderRecipe.make(dataset_paths, store=...) or the "
                            "dataset_paths.json (corpus prefix -> local folder); got None")
        if not isinstance(value, (str, os.PathLike, Mapping, DatasetPaths)):
            raise HiveError(f"recipe is a {type(value).__name__}; expected a RenderRecipe (RenderRecipe.make("
                            "dataset_paths, store=..., stems=..., sample_rate=...)) or dataset paths (a "
                            "dataset_paths.json file or its prefix -> folder mapping)")
        return cls.make(value)

    def with_(self, **changes: Any) -> "RenderRecipe":
        return replace(self, **changes)

    @property
    def dataset_paths(self) -> DatasetPaths | None:
        if self.corpora is None:
            return None
        return DatasetPaths(dict(self.corpora), allow_symlinks_outside=self.allow_symlinks_outside)

    def identity(self) -> dict[str, Any]:
        """What changes the rendered samples (the store does not: it holds the same samples)."""
        return {"stems": self.stems, "sample_rate": self.sample_rate, "audio_format": self.audio_format}

    def renderer(self) -> "Renderer":
        """This thread's renderer for this recipe (built once per thread of a process and kept, so
        its file caches and open store survive across calls and epochs; a renderer is not shared
        between threads: :mod:`mixing.per_thread`)."""
        return _renderer(self)

    def fresh_renderer(self) -> "Renderer":
        """A renderer of its own (not shared), e.g. for a thread."""
        return _build(self)


def _build(recipe: RenderRecipe) -> "Renderer":
    from .render import Renderer

    return Renderer(recipe.dataset_paths, stems=recipe.stems, sample_rate=recipe.sample_rate,  # type: ignore[arg-type]
                    store=recipe.store, store_only=recipe.store_only)


@per_thread_cache(maxsize=4)
def _renderer(recipe: RenderRecipe) -> "Renderer":
    return _build(recipe)
