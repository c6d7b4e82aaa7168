"""``hive inspect``: static HTML pages to listen to and look at mixtures, and an index with the
statistics of the whole input.

* :mod:`.cli` – the subcommand (flags, ``io(args)``, ``run(args)``); registered as the ``inspect``
  entry point of ``hive.commands``;
* :mod:`.run` – :func:`inspect`, the whole command as one function;
* :mod:`.input` – what is inspected (a ``hive render`` folder, or metadata rendered on the fly);
* :mod:`.select` – which mixtures (ids, or a seeded sample);
* :mod:`.media` – WAV files and spectrograms; :mod:`.html` – the pages; :mod:`.stats` – the index's
  statistics.

:func:`inspect` is imported on first use, so the subcommand's ``--help`` loads none of this.
"""

from __future__ import annotations

from typing import Any

__all__ = ["inspect"]


def __getattr__(name: str) -> Any:
    if name == "inspect":
        from .run import inspect

        return inspect
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
