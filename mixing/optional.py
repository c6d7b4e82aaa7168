"""Optional dependencies: one way to import them, one error naming the extra that installs them.

The core install (``pip install hive-uss``) has no torch, scipy or matplotlib; the extras add them
(``eval``: scipy, torch, torchmetrics, matplotlib; ``card``: matplotlib; ``models``: torch,
transformers, accelerate, sherpa-onnx, httpx; ``audio``: torch, torchcodec). Every lazy import of
one of them goes through :func:`require` (import it now) or :func:`require_available` (check it
before a long run, without importing anything heavy), so a missing package is always the same
one-line :class:`MissingDependencyError`, e.g.
``hive eval: error: the IRM oracle row needs the Python package 'scipy', which cannot be imported
(No module named 'scipy'); install it with: pip install 'hive-uss[eval]'``.
The ground floor: ``curation`` reuses this error and helper for its model backends.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import HiveError


class MissingDependencyError(HiveError, ImportError):
    """An optional dependency is not installed (the message names the extra that installs it)."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'hive-uss[EXTRA]'``."""
    return f"pip install 'hive-uss[{extra}]'"


def missing_dependency(what: str, package: str, extra: str, exc: BaseException | None = None,
                       alternative: str = "") -> MissingDependencyError:
    """The one error for a dependency that cannot be imported: who needs it, the package, why
    (the import error, if any) and the extra to install; ``alternative`` says how to do without."""
    why = f" ({exc})" if exc is not None else ""
    instead = f"; {alternative}" if alternative else ""
    err = MissingDependencyError(f"{what} needs the Python package {package!r}, which cannot be "
                                 f"imported{why}; install it with: {install_hint(extra)}{instead}")
    err.name = package
    return err


def available(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (its parent packages are imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without __spec__
        return False


def require(module: str, what: str, extra: str, package: str | None = None,
            alternative: str = "") -> ModuleType:
    """Import ``module`` (e.g. ``"scipy.signal"``) or raise :class:`MissingDependencyError`
    naming ``package`` (default: the top-level module) and ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if isinstance(exc, HiveError):
            raise
        raise missing_dependency(what, package or module.split(".")[0], extra, exc, alternative) from exc


def require_available(module: str, what: str, extra: str, package: str | None = None,
                      alternative: str = "") -> None:
    """Refuse before any work when ``module`` cannot be found (nothing heavy is imported)."""
    if not available(module):
        raise missing_dependency(what, package or module.split(".")[0], extra, alternative=alternative)
