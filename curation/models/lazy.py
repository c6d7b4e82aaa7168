"""What every model backend shares: heavy dependencies imported on first use, and a lazy model.

A backend subclasses :class:`LazyModel`, names its heavy dependencies in ``requires`` and builds
its state in :meth:`LazyModel.load`; the state (a dict with at least ``"model"``) is built once,
on first use inside the worker, never at import time or in ``__init__``. A dependency that
cannot be imported raises the registry's one :class:`MissingDependencyError`, naming the extra.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from curation.models.registry import EXTRA
from mixing import optional

_LOCKS_LOCK = threading.Lock()


def require(module: str, backend: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install
    (:func:`mixing.optional.require` with the ``models`` extra)."""
    return optional.require(module, f"the {backend} backend", EXTRA, package)


def auto_device(torch: Any, device: str) -> str:
    """``auto``: this rank's GPU (``LOCAL_RANK`` modulo the visible GPUs) when CUDA is available,
    else ``cpu``; any other value as given."""
    if device != "auto":
        return device
    if torch.cuda.is_available():
        from mixing.numbers import RANK, env_number

        return f"cuda:{env_number('LOCAL_RANK', RANK, 0) % torch.cuda.device_count()}"
    return "cpu"


def existing(path: str, backend: str, what: str, fix: str, folder: bool = True) -> Path:
    """``path`` if it is an existing folder (or file), else a ``FileNotFoundError`` saying how to
    get it."""
    p = Path(path)
    if not (p.is_dir() if folder else p.is_file()):
        raise FileNotFoundError(f"{backend}: {what} {path!r} does not exist; {fix}")
    return p


class LazyModel:
    """Mixin of the backends: ``model`` and :meth:`state` load on first use, once.

    ``requires`` maps the modules :meth:`load` gets as keyword arguments to their pip package
    names; ``backend`` names the backend in messages; a load error of a type in ``remember`` is
    kept and raised again without retrying (a broken model file is not retried per clip).
    """

    backend: ClassVar[str] = "model"
    requires: ClassVar[dict[str, str]] = {}
    remember: ClassVar[tuple[type[BaseException], ...]] = ()

    _loaded: dict[str, Any] | None = None
    _load_error: BaseException | None = None

    def load(self, **modules: ModuleType) -> dict[str, Any]:
        """Build the state (``{"model": ..., ...}``) from the imported ``requires`` modules."""
        raise NotImplementedError

    def _state_lock(self) -> threading.RLock:
        with _LOCKS_LOCK:
            lock = self.__dict__.get("_lazy_lock")
            if lock is None:
                lock = self.__dict__["_lazy_lock"] = threading.RLock()
            return lock

    def state(self) -> dict[str, Any]:
        """The loaded state (loads it on first use; thread-safe)."""
        if self._loaded is not None:
            return self._loaded
        with self._state_lock():
            if self._load_error is not None:
                raise self._load_error
            if self._loaded is None:
                modules = {name: require(name, self.backend, package)
                           for name, package in self.requires.items()}
                try:
                    self._loaded = self.load(**modules)
                except self.remember as exc:
                    self._load_error = exc
                    raise
            return self._loaded

    @property
    def model(self) -> Any:
        """The loaded model (loads it on first use)."""
        return self.state()["model"]

    def unload(self) -> dict[str, Any] | None:
        """Forget the loaded state (the next use loads again); returns what was loaded."""
        with self._state_lock():
            loaded, self._loaded = self._loaded, None
            return loaded

    def close(self) -> None:
        """Release the model (backends holding connections or files override this)."""
        self.unload()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
