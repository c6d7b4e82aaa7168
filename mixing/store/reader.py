"""Reading a source store: look a chunk up by its content key, read any span of its samples.

Samples are read with ``pread`` straight into the caller's float32 buffer (one copy from the page
cache, no intermediate array), so a reader's memory is what it asks for: streaming from a store
much larger than RAM keeps the resident set bounded (the page cache is the kernel's to evict).
:meth:`SourceStore.chunk` also offers a zero-copy read-only ``numpy.memmap`` view of a whole
chunk.

A :class:`SourceStore` pickles as its folder path and reopens lazily on the other side, so it
travels into DataLoader workers, ``datasets`` jobs and process pools.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..errors import StoreCorruptError, StoreFormatError
from ..input_files import file_kind
from ..resume import is_tmp_name
from .index import ChunkIndex, FileVersion, concat, read_table
from .layout import DTYPE, INDEX, INDEX_PARTS, SEGMENTS, read_manifest

log = logging.getLogger(__name__)

#: open segment files kept per process
MAX_OPEN_SEGMENTS = 256
_ITEM = np.dtype(DTYPE).itemsize
PARTS_KEY = b"hive_parts"


def index_part_names(root: Path) -> list[str]:
    folder = root / INDEX_PARTS
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.parquet") if not is_tmp_name(p.name))


def merged_part_names(path: Path) -> list[str]:
    """The part names a merged index was made from (its Parquet metadata)."""
    import json

    try:
        meta = pq.read_schema(path).metadata or {}
        return list(json.loads(meta.get(PARTS_KEY, b"[]")))
    except (OSError, ValueError):
        return []


def load_index(root: Path) -> tuple[ChunkIndex, list[str]]:
    """The index of the store at ``root``: the merged index plus any part not merged yet (a build
    that stopped before its merge). Returns the index and the names of the unmerged parts."""
    tables, merged = [], set()
    path = root / INDEX
    if path.is_file():
        tables.append(read_table(path))
        merged = set(merged_part_names(path))
    extra = [name for name in index_part_names(root) if name not in merged]
    tables.extend(read_table(root / INDEX_PARTS / name) for name in extra)
    return ChunkIndex(concat(tables)), extra


class SourceStore:
    """A source store opened for reading (see :mod:`mixing.store.layout` for the files)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()
        self.manifest = read_manifest(self.root)
        self.sample_rate: int = int(self.manifest["sample_rate"])
        self.index, unmerged = load_index(self.root)
        #: index parts a build wrote but did not merge yet (they are used as they are)
        self.unmerged_parts = len(unmerged)
        if unmerged:
            log.info("source store %s: %d index part(s) not merged yet (a build did not finish); they are "
                     "used as they are", self.root, len(unmerged))
        if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
            raise StoreFormatError("source stores hold little-endian float32; this machine is big-endian")
        idx = self.index
        self._needed = np.zeros(len(idx.segments), dtype=np.int64)
        if idx.num_chunks:
            np.maximum.at(self._needed, idx.segment_id, (idx.offset + idx.length) * _ITEM)
        #: open segment descriptors (a forked child inherits them: ``pread`` has no shared offset)
        self._fds: OrderedDict[int, int] = OrderedDict()

    # ---- pickling: the path travels, the file handles do not ---------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"root": str(self.root)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"])

    def __repr__(self) -> str:
        return f"SourceStore({str(self.root)!r}, {self.sample_rate} Hz, {self.index.num_chunks} chunks)"

    # ---- lookups -----------------------------------------------------------------------------
    @property
    def num_chunks(self) -> int:
        return self.index.num_chunks

    def has_path(self, path: str) -> bool:
        return path in self.index.files

    def version(self, path: str, size: int, mtime_ns: int) -> FileVersion | None:
        return self.index.version(path, size, mtime_ns)

    def latest(self, path: str) -> FileVersion | None:
        return self.index.latest(path)

    def find(self, version: FileVersion, start: int, stop: int) -> int:
        return self.index.find(version, start, stop)

    def length(self, row: int) -> int:
        """Samples of chunk ``row`` at the store rate."""
        return int(self.index.length[row])

    # ---- samples -----------------------------------------------------------------------------
    def needed_bytes(self, seg: int) -> int:
        """Bytes segment ``seg`` must have for every chunk the index places in it."""
        return int(self._needed[seg])

    def segment_path(self, seg: int) -> Path:
        return self.root / SEGMENTS / self.index.segments[seg]

    def _fd(self, seg: int) -> int:
        fd = self._fds.get(seg)
        if fd is not None:
            self._fds.move_to_end(seg)
            return fd
        path = self.segment_path(seg)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO in its place must not block the open
        except FileNotFoundError:
            raise StoreCorruptError(f"store segment {path} is missing; run `hive store verify` and build the "
                                    "store again (`hive store build` re-adds what is missing)") from None
        st = os.fstat(fd)
        kind = file_kind(st.st_mode)
        if kind is not None:  # the one reader's rule: regular files only
            os.close(fd)
            raise StoreCorruptError(f"store segment {path} is {kind}, not a regular file; delete it and its index "
                                    f"part {INDEX_PARTS}/{Path(path).stem}.parquet, then run `hive store build` again")
        size = st.st_size
        if size < self._needed[seg]:
            os.close(fd)
            raise StoreCorruptError(f"store segment {path} has {size} bytes but its index needs "
                                    f"{int(self._needed[seg])}: it is truncated; delete it and its index part "
                                    f"{INDEX_PARTS}/{Path(path).stem}.parquet, then run `hive store build` again")
        self._fds[seg] = fd
        while len(self._fds) > MAX_OPEN_SEGMENTS:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def read_into(self, row: int, first: int, out: np.ndarray) -> None:
        """Samples ``[first, first + len(out))`` of chunk ``row`` into ``out`` (contiguous float32);
        the span must lie inside the chunk."""
        n = out.shape[0]
        if n == 0:
            return
        length = int(self.index.length[row])
        if first < 0 or first + n > length:
            raise ValueError(f"samples [{first}, {first + n}) are outside chunk {row} of {length} samples")
        seg = int(self.index.segment_id[row])
        fd = self._fd(seg)
        pos = (int(self.index.offset[row]) + first) * _ITEM
        view = memoryview(out).cast("B")
        got = os.preadv(fd, [view], pos)
        while got < len(view):  # a short read is legal for pread; only 0 means the end of the file
            more = os.preadv(fd, [view[got:]], pos + got)
            if more <= 0:
                raise StoreCorruptError(f"store segment {self.segment_path(seg)} ends inside chunk {row}: it was "
                                        "truncated after it was opened; run `hive store verify`")
            got += more

    def read(self, row: int, first: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``[first, stop)`` of chunk ``row`` as a new float32 array."""
        stop = int(self.index.length[row]) if stop is None else stop
        out = np.empty(max(0, stop - first), dtype=np.float32)
        self.read_into(row, first, out)
        return out

    def chunk(self, row: int) -> np.ndarray:
        """A read-only memory-mapped view of the whole chunk ``row`` (no copy)."""
        seg = int(self.index.segment_id[row])
        self._fd(seg)  # the size check
        return np.memmap(self.segment_path(seg), dtype=DTYPE, mode="r",
                         offset=int(self.index.offset[row]) * _ITEM, shape=(int(self.index.length[row]),))

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order
        try:
            self.close()
        except Exception:
            pass


def open_store(store: "SourceStore | str | os.PathLike | None") -> "SourceStore | None":
    """``store`` as an open :class:`SourceStore` (None stays None)."""
    if store is None or isinstance(store, SourceStore):
        return store
    return SourceStore(store)
