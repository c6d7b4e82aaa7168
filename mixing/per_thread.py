"""A cache of built objects, one per thread: what :func:`functools.lru_cache` gives per process.

The stream keeps one renderer (and dynamic mixing one sampler state) per settings, so that the
store index, buffers and decoded chunks are reused from mixture to mixture. Those objects are not
thread-safe (a renderer hands out reused output buffers), and ``datasets`` runs several work units
of one worker at once from threads: each thread gets its own.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def per_thread_cache(maxsize: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a function of hashable arguments: each thread keeps the results of its last
    ``maxsize`` distinct calls (least recently used dropped first)."""

    def decorate(build: Callable[..., T]) -> Callable[..., T]:
        local = threading.local()

        @functools.wraps(build)
        def cached(*args: Any) -> T:
            entries: OrderedDict | None = getattr(local, "entries", None)
            if entries is None:
                entries = local.entries = OrderedDict()
            if args in entries:
                entries.move_to_end(args)
                return entries[args]
            value = build(*args)
            entries[args] = value
            while len(entries) > maxsize:
                entries.popitem(last=False)
            return value

        return cached

    return decorate
