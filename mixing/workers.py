"""Worker processes that die with their parent: the one process pool of every command.

A ``ProcessPoolExecutor``'s workers block on a queue whose pipe they hold both ends of, so when
the parent is killed (``kill -9``, the OOM killer) they never see end-of-file and live on, each
holding its memory and open files. Every command that starts worker processes (``render``,
``synthesize``, ``verify``) makes its pool with :func:`process_pool`, whose workers first call
:func:`die_with_parent`: the kernel's parent-death signal on Linux, and a watchdog thread polling
``getppid`` elsewhere (and for a parent that died before the worker got this far).
:func:`map_unordered` runs a list of jobs over such a pool (in this process for one worker).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence, TypeVar

__all__ = ["die_with_parent", "map_unordered", "process_pool"]

T = TypeVar("T")


def die_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """Make this (worker) process exit when ``parent`` dies, even by ``kill -9``."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="hive-parent-watchdog", daemon=True).start()


def _start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def process_pool(max_workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = (),
                 mp_context: Any = None) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` whose workers die with this process, then run ``initializer``
    (a module-level function, as the pool needs)."""
    return ProcessPoolExecutor(max_workers, mp_context=mp_context, initializer=_start_worker,
                               initargs=(os.getpid(), initializer, tuple(initargs)))


def map_unordered(fn: Callable[[Any], T], jobs: Sequence[Any], num_workers: int) -> Iterator[T]:
    """``fn(job)`` of every job, in the order they finish: over :func:`process_pool` with at most
    ``2 * num_workers`` jobs in flight (memory stays bounded), or here, in order, for one worker
    or one job. ``fn`` is a module-level function, as the pool needs."""
    if num_workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    with process_pool(num_workers) as pool:
        pending: set = set()
        for job in jobs:
            pending.add(pool.submit(fn, job))
            if len(pending) >= 2 * num_workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    yield f.result()
        for f in pending:
            yield f.result()
