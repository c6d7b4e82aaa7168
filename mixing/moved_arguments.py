"""Keyword arguments of the Python API that moved into a config object (issue 20).

A call that still passes one gets a one-line :class:`MovedArgumentError` naming where it went
(e.g. ``api.render(..., num_workers=4)`` -> ``options=RenderOptions(num_workers=4)``), instead of
Python's bare "unexpected keyword argument". docs/python-api.md lists every move.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from .errors import HiveError

F = TypeVar("F", bound=Callable[..., Any])


class MovedArgumentError(HiveError, TypeError):
    """A keyword argument that moved into a config object was passed the old way."""


def moved(**where: str) -> Callable[[F], F]:
    """Decorate an API function whose keyword arguments ``where`` (old name -> new spelling)
    moved; the function's own signature is unchanged (``inspect.signature`` shows it)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            old = [k for k in kwargs if k in where]
            if old:
                raise MovedArgumentError(
                    f"{fn.__module__}.{fn.__qualname__}: " + "; ".join(f"{k}= moved to {where[k]}" for k in old)
                    + " (see docs/python-api.md, 'Migration')")
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate
