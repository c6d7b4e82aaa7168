"""The source store: every distinct source chunk decoded and resampled once, kept as float32
mono in large memory-mappable segment files with a Parquet index, so that rendering, streaming
and every other consumer reads samples at memory speed instead of decoding again.

* :class:`SourceStore` / :func:`open_store` — read (``mixing.store.reader``);
* :func:`build_store` / :class:`StoreBuildConfig` — build or extend (``mixing.store.build``);
* :func:`store_info`, :func:`verify_store` — describe and check (``mixing.store.info``,
  ``mixing.store.verify``).

The files are described in :mod:`mixing.store.layout`.
"""

from .build import StoreBuildConfig, StoreBuildSummary, StoreLockedError, build_store
from .reader import SourceStore, open_store

__all__ = ["SourceStore", "open_store", "StoreBuildConfig", "StoreBuildSummary", "StoreLockedError", "build_store"]
