"""The Hub layout of the metadata: ``data/{config}/{split}-{i:05d}-of-{n:05d}.parquet``.

Configs: ``all`` (every mixture, the default) and ``2mix`` … ``5mix`` (mixtures with that many
sources). Every file is written by :func:`mixing.metadata_io.write_parquet` with the exact Hub
schema. Records are streamed; memory is bounded by ``rows_per_file`` records per (config, split)
buffer (a record sits in two buffers, ``all`` and its ``Nmix``, as the same object).

A file's final name holds the number of files of its split, known only at the end: parts are
written under hidden temporary names and renamed once every record is in; files of an earlier
run that this run does not produce are removed, so ``data/`` always describes one input.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq

from mixing.errors import InvalidRecordError
from mixing.metadata import SPLITS, MixtureRecord
from mixing.metadata_io import write_parquet

logger = logging.getLogger(__name__)

CONFIG_ALL = "all"
MIN_SOURCES, MAX_SOURCES = 2, 5
MIX_CONFIGS = tuple(f"{n}mix" for n in range(MIN_SOURCES, MAX_SOURCES + 1))
CONFIGS = (CONFIG_ALL,) + MIX_CONFIGS
DEFAULT_ROWS_PER_FILE = 50_000
_PART_PREFIX = ".part-"
#: the names this writer gives its data files; it never removes any other file
_OWN_FILE = re.compile(r"[A-Za-z0-9_]+-\d{5}-of-\d{5}\.parquet")


@dataclass
class SplitFiles:
    """What one (config, split) holds on disk."""

    num_examples: int = 0
    #: in-memory Arrow size, what ``datasets`` reports as a split's ``num_bytes``
    num_bytes: int = 0
    #: on-disk size of the Parquet files (``download_size``)
    file_bytes: int = 0
    files: list[str] = field(default_factory=list)  # relative to the output folder, POSIX


@dataclass
class Layout:
    """Rows, bytes and files per config and split, in config order then split order."""

    root: Path
    configs: dict[str, dict[str, SplitFiles]]

    def config_names(self) -> list[str]:
        return [c for c in CONFIGS if c in self.configs] + sorted(set(self.configs) - set(CONFIGS))

    def split_names(self, config: str) -> list[str]:
        return sort_splits(self.configs[config])

    def num_examples(self, config: str, split: str) -> int:
        return self.configs[config][split].num_examples

    def files(self) -> list[str]:
        return sorted(f for splits in self.configs.values() for s in splits.values() for f in s.files)


def sort_splits(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))


def config_of(rec: MixtureRecord) -> str:
    return rec.config_name


def data_pattern(config: str, split: str) -> str:
    """The ``data_files`` glob of one (config, split), relative to the folder."""
    return f"data/{config}/{split}-*"


def _check_split_name(rec: MixtureRecord) -> str:
    split = rec.split
    if not split or not all(c.isalnum() or c == "_" for c in split):
        raise InvalidRecordError(rec.mix_id, "split", split, "a split name of letters, digits or '_' (train, "
                                 "validation, test): it names the files of the Hub layout")
    return split


def _parquet_num_bytes(path: Path) -> int:
    """Arrow size of a written file, read one row group at a time (bounded memory)."""
    pf = pq.ParquetFile(path)
    return sum(pf.read_row_group(i).nbytes for i in range(pf.num_row_groups))


class LayoutWriter:
    """Buffer records per (config, split) and write Parquet parts; :meth:`close` names them."""

    def __init__(self, root: str | os.PathLike, rows_per_file: int = DEFAULT_ROWS_PER_FILE):
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file is {rows_per_file}; expected a positive number of rows per Parquet file")
        self.root = Path(root)
        self.data = self.root / "data"
        self.rows_per_file = rows_per_file
        self._buffers: dict[tuple[str, str], list[MixtureRecord]] = defaultdict(list)
        self._parts: dict[tuple[str, str], list[Path]] = defaultdict(list)
        self._splits: dict[tuple[str, str], SplitFiles] = defaultdict(SplitFiles)
        self._closed = False
        self.data.mkdir(parents=True, exist_ok=True)
        for stale in self.data.glob(f"*/{_PART_PREFIX}*"):  # parts of a killed earlier run
            stale.unlink()

    def add(self, rec: MixtureRecord) -> None:
        split = _check_split_name(rec)
        for config in (CONFIG_ALL, config_of(rec)):
            key = (config, split)
            buf = self._buffers[key]
            buf.append(rec)
            if len(buf) >= self.rows_per_file:
                self._flush(key)

    def _flush(self, key: tuple[str, str]) -> None:
        config, split = key
        buf = self._buffers.pop(key, [])
        if not buf:
            return
        part = self.data / config / f"{_PART_PREFIX}{split}-{len(self._parts[key]):05d}.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        n = write_parquet(buf, part)
        info = self._splits[key]
        info.num_examples += n
        info.num_bytes += _parquet_num_bytes(part)
        self._parts[key].append(part)

    def close(self) -> Layout:
        """Flush, give the parts their final names, remove files this run did not produce."""
        if self._closed:
            raise RuntimeError("LayoutWriter.close() called twice")
        self._closed = True
        for key in list(self._buffers):
            self._flush(key)
        produced: set[Path] = set()
        configs: dict[str, dict[str, SplitFiles]] = defaultdict(dict)
        for (config, split), parts in sorted(self._parts.items()):
            info = self._splits[(config, split)]
            for i, part in enumerate(parts):
                final = part.with_name(f"{split}-{i:05d}-of-{len(parts):05d}.parquet")
                os.replace(part, final)
                produced.add(final)
                info.files.append(final.relative_to(self.root).as_posix())
                info.file_bytes += final.stat().st_size
            configs[config][split] = info
        for old in sorted(self.data.rglob("*")):  # only files named as this writer names them
            if old.is_file() and old not in produced and _OWN_FILE.fullmatch(old.name):
                logger.info("removing %s (not produced by this run)", old)
                old.unlink()
        for folder in sorted(self.data.glob("*"), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        ordered = {c: configs[c] for c in CONFIGS if c in configs}
        ordered.update({c: configs[c] for c in sorted(set(configs) - set(CONFIGS))})
        return Layout(self.root, ordered)


def write_layout(records: Iterable[MixtureRecord], root: str | os.PathLike, *,
                 rows_per_file: int = DEFAULT_ROWS_PER_FILE) -> Layout:
    """Write ``root/data/{config}/{split}-{i:05d}-of-{n:05d}.parquet`` for every config."""
    writer = LayoutWriter(root, rows_per_file)
    for rec in records:
        writer.add(rec)
    return writer.close()

