"""A single-event pool from a simple labelled list (ESC-50-style CSV: path + one label [+ split]).

Each listed file is probed (soundfile header: rate, frames, channels) and cut into *virtual*
chunks of ``chunk_seconds`` (10 s) with a hop of ``hop_seconds`` (5 s); a trailing piece shorter
than a chunk is kept when it lasts at least ``min_last_seconds`` (5 s); a file shorter than one
chunk gives one whole-file chunk when it lasts at least ``min_file_seconds``. Chunk ends are
rounded down to the millisecond, so they never pass the end of the file.

Splits: taken from the list's split column when it has one, else assigned per original file
(or per ``group_column`` value, e.g. ESC-50's ``src_file``, so takes of one recording stay
together) by :func:`mixing.synthesis.splits.assign_split`. Either way all chunks of one file share
one split. Files that cannot be used are dropped with a counted, named reason.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import numbers
from ..corpora import DatasetPaths
from ..audio import probe
from ..errors import CorpusError, HiveError
from ..failures import reason_of
from ..metadata import normalise_split
from ..moved_arguments import moved
from ..ontology import Ontology
from ..pool import PoolEntry
from .splits import assign_split

PATH_COLUMNS = ("audio_path", "path", "filename", "file", "fname")
LABEL_COLUMNS = ("text_label", "label", "category", "class")
SPLIT_COLUMNS = ("split", "subset")


class LabelledListError(HiveError, ValueError):
    """The labelled list cannot be read as path + label rows, or a setting of its reading is wrong."""


#: a length in seconds that may be zero (the shortest last piece or file kept)
_LENGTH = numbers.real(0.0, numbers.MAX_SECONDS, what="a number of seconds")


@dataclass
class LabelledPool:
    entries: list[PoolEntry]
    dropped: Counter = field(default_factory=Counter)
    dropped_examples: list[dict[str, Any]] = field(default_factory=list)
    #: kept, but worth knowing (e.g. ``label_not_in_ontology``)
    warnings: Counter = field(default_factory=Counter)
    num_files: int = 0

    def drop(self, reason: str, **detail: Any) -> None:
        self.dropped[reason] += 1
        if len(self.dropped_examples) < 20:
            self.dropped_examples.append({"reason": reason, **detail})


def cut_chunks(duration: float, chunk_seconds: float = 10.0, hop_seconds: float = 5.0,
               min_last_seconds: float = 5.0, min_file_seconds: float = 1.0) -> list[tuple[float, float]]:
    """``[(start, end)]`` chunks of a file lasting ``duration`` seconds (ends floored to ms)."""
    if not (chunk_seconds > 0 and hop_seconds > 0):
        raise ValueError("chunk_seconds and hop_seconds must be positive")
    end_of_file = math.floor(duration * 1000) / 1000
    if end_of_file <= 0:
        return []
    if end_of_file <= chunk_seconds:
        return [(0.0, end_of_file)] if end_of_file >= min_file_seconds else []
    out = []
    k = 0
    while True:
        start = round(k * hop_seconds, 6)
        end = min(round(start + chunk_seconds, 6), end_of_file)
        if end - start >= min(chunk_seconds, min_last_seconds) - 1e-9:
            out.append((start, end))
        if end >= end_of_file:
            break
        k += 1
    return out


def _column(header: list[str], wanted: str | None, candidates: tuple[str, ...], what: str,
            required: bool, where: str) -> str | None:
    if wanted:
        if wanted not in header:
            raise LabelledListError(f"{where}: no column {wanted!r} ({what}); columns are {header}")
        return wanted
    lower = {h.lower(): h for h in header}
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        raise LabelledListError(f"{where}: no {what} column (looked for {list(candidates)}); columns are "
                                f"{header}; name it with the matching option")
    return None


def _clip_id(path: str, k: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path).strip("_")[-180:]
    digest = hashlib.blake2b(path.encode("utf-8"), digest_size=4).hexdigest()
    return f"{stem}_{digest}_c{k:03d}"


@dataclass(frozen=True)
class LabelledListConfig:
    """How a labelled list is read and cut (see the module docstring).

    ``prefix``: the list's paths are relative to this corpus prefix (ESC-50's ``filename`` column
    with ``prefix="ESC50/audio"``); None: they are ``<prefix>/<relative>`` metadata paths.
    ``path_column`` / ``label_column`` / ``split_column``: column names (None: the usual names,
    :data:`PATH_COLUMNS`, :data:`LABEL_COLUMNS`, :data:`SPLIT_COLUMNS`); ``group_column``: files
    of one value share a split (ESC-50's ``src_file``). ``split_ratios`` (None: train 0.8,
    validation 0.1, test 0.1) and ``seed``: the split of a file without a split column.
    ``chunk_seconds``, ``hop_seconds``, ``min_last_seconds``, ``min_file_seconds``: the cut."""

    prefix: str | None = None
    path_column: str | None = None
    label_column: str | None = None
    split_column: str | None = None
    group_column: str | None = None
    split_ratios: Mapping[str, float] | None = None
    seed: int = 0
    chunk_seconds: float = 10.0
    hop_seconds: float = 5.0
    min_last_seconds: float = 5.0
    min_file_seconds: float = 1.0

    def __post_init__(self) -> None:
        numbers.check_fields(self, {"seed": numbers.SEED, "chunk_seconds": numbers.SECONDS,
                                    "hop_seconds": numbers.SECONDS, "min_last_seconds": _LENGTH,
                                    "min_file_seconds": _LENGTH}, where="labelled list setting",
                             error=LabelledListError, optional=False)
        if self.split_ratios is not None:
            ratios = dict(self.split_ratios)
            if not ratios or any(numbers.NON_NEGATIVE_REAL.problem(r) for r in ratios.values()) \
                    or sum(ratios.values()) <= 0:
                raise LabelledListError(f"labelled list setting split_ratios is {ratios!r}; expected split name -> "
                                        "non-negative ratio with a positive sum, e.g. {'train': 0.8, 'test': 0.2}")


@moved(**{k: "config=LabelledListConfig(...)" for k in (
    "prefix", "path_column", "label_column", "split_column", "group_column", "split_ratios", "seed", "chunk_seconds",
    "hop_seconds", "min_last_seconds", "min_file_seconds")})
def build_pool_from_labels(listing: str | os.PathLike, dataset_paths: DatasetPaths | Mapping | str,
                           config: LabelledListConfig | None = None, *,
                           ontology: Ontology | None = None) -> LabelledPool:
    """Pool entries for every usable row of ``listing``, read and cut as ``config`` says
    (:class:`LabelledListConfig`; None: the defaults).

    With an ``ontology``, labels are matched to its classes (case-insensitively, ``_`` read as a
    space) and ``label_id`` filled; unknown labels keep an empty ``label_id`` (counted as
    ``label_not_in_ontology``, not dropped).
    """
    cfg = config if config is not None else LabelledListConfig()
    if not isinstance(cfg, LabelledListConfig):
        raise LabelledListError(f"config is a {type(cfg).__name__}; expected a LabelledListConfig(prefix=..., "
                                "path_column=..., ...) or None")
    prefix, path_column, label_column = cfg.prefix, cfg.path_column, cfg.label_column
    split_column, group_column, seed, split_ratios = cfg.split_column, cfg.group_column, cfg.seed, cfg.split_ratios
    paths = DatasetPaths.coerce(dataset_paths)
    listing = Path(listing)
    where = str(listing)
    from ..input_files import iter_csv, read_text

    table = [r for r in iter_csv(read_text(listing, "labelled list", LabelledListError), where, LabelledListError) if r]
    header = table[0] if table else []
    pcol = _column(header, path_column, PATH_COLUMNS, "path", True, where)
    lcol = _column(header, label_column, LABEL_COLUMNS, "label", True, where)
    scol = _column(header, split_column, SPLIT_COLUMNS, "split", False, where)
    gcol = _column(header, group_column, (), "group", False, where) if group_column else None
    rows = [dict(zip(header, r)) for r in table[1:]]
    out = LabelledPool([])
    seen: set[str] = set()
    for lineno, row in enumerate(rows, 2):
        raw_path = (row.get(pcol) or "").strip()
        label = (row.get(lcol) or "").strip()
        if not raw_path or not label:
            out.drop("missing_path_or_label", line=lineno)
            continue
        meta_path = f"{prefix.rstrip('/')}/{raw_path.lstrip('/')}" if prefix else raw_path
        if meta_path in seen:
            out.drop("duplicate_path", line=lineno, path=meta_path)
            continue
        seen.add(meta_path)
        try:
            info = probe(paths.resolve(meta_path))
        except CorpusError as exc:
            out.drop(reason_of(exc, default=type(exc).__name__), line=lineno, path=meta_path, message=str(exc)[:200])
            continue
        label_id = ""
        if ontology is not None:
            for key in (label, label.replace("_", " ")):
                if key in ontology:
                    node = ontology.node(key)
                    label, label_id = node.name, node.id
                    break
            else:
                out.warnings["label_not_in_ontology"] += 1
        if scol and (row.get(scol) or "").strip():
            split = normalise_split(row[scol].strip())
        else:
            group = (row.get(gcol) or "").strip() if gcol else ""
            split = assign_split(group or meta_path, seed, split_ratios)
        chunks = cut_chunks(info.duration, cfg.chunk_seconds, cfg.hop_seconds, cfg.min_last_seconds, cfg.min_file_seconds)
        if not chunks:
            out.drop("too_short", line=lineno, path=meta_path, seconds=info.duration)
            continue
        out.num_files += 1
        for k, (cs, ce) in enumerate(chunks):
            out.entries.append(PoolEntry(_clip_id(meta_path, k), meta_path, cs, ce, label, label_id,
                                         info.samplerate, info.channels, split))
    return out
