"""On-the-fly rendering of mixture metadata, cut into work units that ``datasets`` can shard.

The ``datasets`` builder (``hive.py``) and the training stream both come down to three steps:

1. :func:`resolve_metadata` – the metadata files of each split, found by
   :mod:`mixing.metadata_source` (the one place that knows metadata locations): a Hub id is
   resolved the way ``datasets`` resolves it (``load_dataset_builder(...).config.data_files``, so
   Parquet files on the Hub are read with range requests); a local folder in the Hub layout whose
   ``README.md`` declares YAML ``configs`` by its README, with the same config choice; other
   folders and files by their layout.
2. :func:`plan_units` – ``num_shards`` :class:`WorkUnit` objects per split. A unit is a tuple of
   :class:`Piece` objects: a contiguous row range of a Parquet file (only the row groups it needs
   are read) or every ``step``-th row of another file. Units are what goes into the *list* in
   ``gen_kwargs``, so ``num_proc``, ``split_dataset_by_node`` and DataLoader workers divide the work
   by unit, and each unit is rendered by exactly one process.
3. :func:`iter_rendered` – validated records of some units, rendered with one cached
   :class:`~mixing.render.Renderer` per process; failures are skipped with a named, counted reason
   (or raised), logged, and optionally written to ``{failure_dir}/{split}-{unit:05d}.jsonl``.

Everything here is plain Python + numpy: no torch, no torchcodec, no audio encoding.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .corpora import DatasetPaths
from .errors import HiveError, InvalidRecordError, MetadataSourceError
from .failures import reason_of
from .label_filter import LabelFilter
from .metadata import SPLITS, MixtureRecord, normalise_split
from .metadata_io import MetadataSource, filter_batch, iter_raw_rows, open_metadata
from .metadata_memory import is_in_memory, memory_batches
from .metadata_memory import num_rows as memory_num_rows
from .metadata_source import MetadataShard, classify_location, hub_split_files
from .queries import ExampleConfig, QueryMaker, label_ids
from .recipe import RenderRecipe
from .render import Renderer, RenderedMixture
from .resume import atomic_open
from .shards import AUDIO_FORMATS, encode_audio, sample_json
from .validation import MAX_SOURCES, parse_mixture

log = logging.getLogger(__name__)

FailurePolicy = Literal["skip", "raise"]
FAILURE_POLICIES = ("skip", "raise")
#: default number of work units per split is a multiple of this (divisible by 1-6, 8, 10, 12,
#: 15, 16, 20, 24, 30, 40, 48, 60, 80, 120, 240 nodes x workers), so ``split_dataset_by_node``
#: can give whole units to each node instead of skipping examples
AUTO_SHARD_MULTIPLE = 240
#: errors a render may raise for one mixture (typed corpus errors, I/O, decoding)
RENDER_ERRORS = (HiveError, OSError, ValueError, RuntimeError)
_BATCH = 1024
_LOGGED_FAILURES_PER_UNIT = 5


# ---- work units ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """Rows ``[start:stop:step]`` of one metadata file (Parquet: file rows; others: raw rows)."""

    shard: MetadataShard
    start: int = 0
    stop: int | None = None
    step: int = 1


@dataclass(frozen=True)
class WorkUnit:
    """One element of the ``gen_kwargs`` list: the pieces of metadata one process renders."""

    index: int
    split: str
    pieces: tuple[Piece, ...]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}"


@dataclass(frozen=True)
class RenderSpec:
    """Everything a worker needs besides its units: the render recipe, which mixtures (number of
    sources, a :class:`~mixing.label_filter.LabelFilter`), what each becomes
    (:class:`~mixing.queries.ExampleConfig`), and what to do with failures. Hashable and small: it
    is copied into every job of ``gen_kwargs`` (a scalar, not a list, so ``datasets`` never splits it)."""

    recipe: RenderRecipe
    num_sources: int | None = None
    on_failure: FailurePolicy = "skip"
    failure_dir: str | None = None
    max_sources: int = MAX_SOURCES
    labels: LabelFilter | None = None
    examples: ExampleConfig = ExampleConfig()

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, RenderRecipe):
            raise TypeError(f"recipe is a {type(self.recipe).__name__}; expected a RenderRecipe")
        if self.labels is not None and not isinstance(self.labels, LabelFilter):
            raise TypeError(f"labels is a {type(self.labels).__name__}; expected a LabelFilter or None")
        if not isinstance(self.examples, ExampleConfig):
            raise TypeError(f"examples is a {type(self.examples).__name__}; expected an ExampleConfig")
        if self.on_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_failure is {self.on_failure!r}; expected 'skip' (leave the mixture "
                             "out, count and log the reason) or 'raise'")
        if self.num_sources is not None and not (2 <= self.num_sources <= self.max_sources):
            raise ValueError(f"num_sources is {self.num_sources!r}; expected None (all) or 2..{self.max_sources}")

    @classmethod
    def make(cls, dataset_paths: DatasetPaths | Mapping[str, str] | str | os.PathLike | None = None, *,
             stems: str = "consistent", sample_rate: int | None = None, audio_format: str = "wav",
             store: Any = None, store_only: bool = False, **kw: Any) -> "RenderSpec":
        recipe = RenderRecipe.make(dataset_paths, store=store, stems=stems, sample_rate=sample_rate,
                                   audio_format=audio_format, store_only=store_only)
        return cls(recipe, **kw)

    def renderer(self) -> Renderer:
        """This process's renderer (cached: the file-header cache and the store survive epochs)."""
        return self.recipe.renderer()

    def query_maker(self) -> QueryMaker | None:
        """This process's maker of query examples (None for whole mixtures)."""
        return _query_maker(self.examples, self.labels) if self.examples.queries else None


@functools.lru_cache(maxsize=8)
def _query_maker(examples: ExampleConfig, labels: LabelFilter | None,
                 vocabulary: tuple[str, ...] | None = None) -> QueryMaker:
    """One :class:`QueryMaker` per process and settings (the label filter's selection is the
    default vocabulary of negative queries)."""
    if vocabulary is None and labels is not None and labels.labels is not None:
        vocabulary = tuple(labels.resolved().included_names()) or None
    return QueryMaker(examples, selected=None if labels is None else labels.passing, vocabulary=vocabulary)


# ---- resolving metadata ----------------------------------------------------------------------
def _scan_splits(shard: MetadataShard) -> set[str]:
    if shard.kind == "memory":
        found = set()
        for batch in memory_batches(shard, columns=["split"]):
            if "split" not in batch.schema.names:
                raise MetadataSourceError(f"{shard.location} has no 'split' column; expected Hive's metadata "
                                          "columns (mix_id, split, sources, ...)")
            found |= {normalise_split(x) for x in pc.unique(batch.column("split")).to_pylist() if isinstance(x, str)}
        return found
    if shard.kind == "parquet":
        table = pq.read_table(shard.location, columns=["split"])
        return {normalise_split(s) for s in pc.unique(table.column("split")).to_pylist() if isinstance(s, str)}
    found = set()
    for raw in iter_raw_rows(shard):
        if isinstance(raw, Mapping):
            s = raw.get("split")
            if s is None and isinstance(raw.get("dataset_info"), Mapping):
                s = raw["dataset_info"].get("split")
            if isinstance(s, str):
                found.add(normalise_split(s))
    return found


def resolve_metadata(metadata: str | os.PathLike | MetadataSource, *, revision: str | None = None,
                     config: str | None = None, num_sources: int | None = None) -> dict[str, list[MetadataShard]]:
    """``{split: [metadata files]}`` in split order train, validation, test (then others).

    ``config`` names a YAML config of a Hub id / Hub-layout folder; by default the ``{n}mix`` config
    when ``num_sources`` is given and the repository has it, else its declared default, else
    ``all``, else the first (:func:`mixing.metadata_source.choose_config`).
    """
    if is_in_memory(metadata):
        metadata = open_metadata(metadata)
    loc = None if isinstance(metadata, MetadataSource) else classify_location(metadata)
    if isinstance(metadata, MetadataSource) and metadata.kind == "hub":
        location = metadata.location
        first = metadata.shards()[0] if metadata.shards() else None
        revision = revision or (first.revision if first else None)
        config = config or (first.config if first else None)
        out = hub_split_files(location, revision=revision, config=config, num_sources=num_sources)
    elif loc is not None and loc.kind == "hub":
        out = hub_split_files(loc.location, revision=revision, config=config, num_sources=num_sources)
    else:
        source = metadata if isinstance(metadata, MetadataSource) else open_metadata(
            loc, revision=revision, config=config, num_sources=num_sources)
        out = {}
        unknown = [s for s in source.shards() if s.split is None]
        names = set(source.splits())
        for s in unknown:
            names |= _scan_splits(s)
        for split in names:
            out[split] = source.shards(split)
    order = {s: i for i, s in enumerate(SPLITS)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


# ---- planning --------------------------------------------------------------------------------
def _is_local(location: str) -> bool:
    return "://" not in location


def _open_parquet(location: str) -> tuple[pq.ParquetFile, Any]:
    """A ParquetFile for a local path or an fsspec URL (``hf://datasets/...``), and its handle."""
    try:
        if _is_local(location):
            return pq.ParquetFile(location), None
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(location)
        handle = fs.open(path, "rb")
        return pq.ParquetFile(handle), handle
    except (OSError, pa.ArrowInvalid) as exc:
        raise MetadataSourceError(f"{location}: not a readable Parquet file ({exc}); re-download it") from exc


def _parquet_rows(location: str) -> int:
    pf, handle = _open_parquet(location)
    try:
        return pf.metadata.num_rows
    finally:
        if handle is not None:
            handle.close()


def auto_num_shards(num_files: int) -> int:
    """The default number of units of a split with ``num_files`` metadata files."""
    return AUTO_SHARD_MULTIPLE * max(1, math.ceil(num_files / AUTO_SHARD_MULTIPLE))


def plan_units(files: Sequence[MetadataShard], split: str, num_shards: int | None = None) -> list[WorkUnit]:
    """Cut the metadata files of ``split`` into exactly ``num_shards`` units (default
    :func:`auto_num_shards`), in metadata order: concatenating the units' rows in index order
    gives every row of the split once.

    Fewer units than files: consecutive files are grouped. More: each file is cut into parts, a
    Parquet file into contiguous row ranges (only those row groups are read), another file into
    interleaved rows (each part re-reads the file but parses only its own rows).
    """
    files = list(files)
    if not files:
        return []
    n = auto_num_shards(len(files)) if num_shards is None else int(num_shards)
    if n < 1:
        raise ValueError(f"num_shards is {num_shards!r}; expected a positive number of work units")
    split = normalise_split(split)
    f = len(files)
    if n <= f:
        return [WorkUnit(u, split, tuple(Piece(s) for s in files[f * u // n: f * (u + 1) // n])) for u in range(n)]
    units: list[WorkUnit] = []
    for i, shard in enumerate(files):
        parts = n // f + (1 if i < n % f else 0)
        if shard.kind in ("parquet", "memory"):
            rows = _parquet_rows(shard.location) if shard.kind == "parquet" else memory_num_rows(shard)
            pieces = [Piece(shard, rows * p // parts, rows * (p + 1) // parts) for p in range(parts)]
        else:
            pieces = [Piece(shard, p, None, parts) for p in range(parts)]
        units.extend(WorkUnit(len(units), split, (piece,)) for piece in pieces)
    return units


# ---- reading ---------------------------------------------------------------------------------
class _RowGroupCache:
    """The last few row groups this process decoded (work units cut a file's row groups into
    row ranges, and one process often renders consecutive units of one file: each row group is
    then decoded once, not once per unit). Local files only; keyed by path, size and mtime."""

    def __init__(self, size: int = 4):
        self.size = size
        self._tables: dict[tuple, pa.Table] = {}
        self._files: dict[tuple, pq.ParquetFile] = {}

    def _key(self, location: str) -> tuple:
        st = os.stat(location)
        return (location, st.st_size, st.st_mtime_ns, os.getpid())

    def file(self, location: str) -> pq.ParquetFile:
        key = self._key(location)
        pf = self._files.get(key)
        if pf is None:
            pf, _ = _open_parquet(location)
            if len(self._files) >= 16:
                self._files.pop(next(iter(self._files)))
            self._files[key] = pf
        return pf

    def row_group(self, location: str, g: int, split: str | None,
                  num_sources: int | None) -> tuple[pa.Table, np.ndarray]:
        """Row group ``g`` pre-filtered like :func:`~mixing.metadata_io.filter_batch`, and the
        positions (within the row group) of the rows kept."""
        key = (*self._key(location), g, split, num_sources)
        entry = self._tables.pop(key, None)
        if entry is None:
            try:
                table = self.file(location).read_row_group(g)
            except (OSError, pa.ArrowInvalid) as exc:
                raise MetadataSourceError(f"{location}: row group {g} is not readable ({exc}); re-download it") from exc
            table = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
            batch = table.combine_chunks().to_batches()
            kept = pa.Table.from_batches([filter_batch(b, split, num_sources) for b in batch], schema=table.schema) \
                if batch else table
            entry = (kept.drop_columns(["__row"]), kept.column("__row").to_numpy())
        self._tables[key] = entry  # most recent last
        while len(self._tables) > self.size:
            self._tables.pop(next(iter(self._tables)))
        return entry


_ROW_GROUPS = _RowGroupCache()


def _iter_parquet_range(location: str, start: int, stop: int | None, split: str | None,
                        num_sources: int | None) -> Iterator[Any]:
    """Raw rows of file rows ``[start, stop)``, pre-filtered like :mod:`mixing.metadata_io`
    (split aliases, number of sources; null values kept for validation to report)."""
    if stop is not None and stop <= start:
        return
    if _is_local(location):
        yield from _iter_local_parquet_range(location, start, stop, split, num_sources)
        return
    pf, handle = _open_parquet(location)
    try:
        md = pf.metadata
        stop = md.num_rows if stop is None else min(stop, md.num_rows)
        offset = 0
        for g in range(md.num_row_groups):
            size = md.row_group(g).num_rows
            if offset + size <= start:
                offset += size
                continue
            if offset >= stop:
                break
            for batch in pf.iter_batches(batch_size=_BATCH, row_groups=[g]):
                lo, hi = max(start - offset, 0), min(stop - offset, batch.num_rows)
                offset += batch.num_rows
                if hi <= lo:
                    continue
                batch = filter_batch(batch.slice(lo, hi - lo), split, num_sources)
                yield from batch.to_pylist()
                if offset >= stop:
                    return
    finally:
        if handle is not None:
            handle.close()


def _iter_local_parquet_range(location: str, start: int, stop: int | None, split: str | None,
                              num_sources: int | None) -> Iterator[Any]:
    md = _ROW_GROUPS.file(location).metadata
    stop = md.num_rows if stop is None else min(stop, md.num_rows)
    offset = 0
    for g in range(md.num_row_groups):
        size = md.row_group(g).num_rows
        lo, hi = max(start - offset, 0), min(stop - offset, size)
        offset += size
        if hi <= lo:
            if offset >= stop:
                return
            continue
        table, rows = _ROW_GROUPS.row_group(location, g, split, num_sources)
        i0, i1 = int(np.searchsorted(rows, lo)), int(np.searchsorted(rows, hi))
        for first in range(i0, i1, _BATCH):
            yield from table.slice(first, min(_BATCH, i1 - first)).to_pylist()
        if offset >= stop:
            return


def iter_piece_rows(piece: Piece, split: str | None, num_sources: int | None) -> Iterator[Any]:
    shard = piece.shard
    if shard.kind == "memory" and piece.step == 1:
        from .metadata_io import _iter_memory_rows

        return _iter_memory_rows(shard, split, num_sources, piece.start, piece.stop)
    if shard.kind == "parquet" and piece.step == 1:
        return _iter_parquet_range(shard.location, piece.start, piece.stop, split, num_sources)
    if shard.kind == "parquet":
        rows: Iterable[Any] = _iter_parquet_range(shard.location, 0, None, split, num_sources)
    else:
        rows = iter_raw_rows(shard, split, num_sources)
    return itertools.islice(rows, piece.start, piece.stop, piece.step)


@dataclass
class StreamReport:
    """What one process rendered and left out (in-process; see ``failure_dir`` for a manifest)."""

    rendered: int = 0
    failures: Counter = field(default_factory=Counter)
    #: source chunks read from the store / decoded because the store lacks them
    store_hits: int = 0
    store_misses: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    max_examples: int = 100

    def add(self, entry: dict[str, Any]) -> None:
        self.failures[entry["reason"]] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(entry)

    @property
    def num_failures(self) -> int:
        return sum(self.failures.values())


def _failure_entry(rec: MixtureRecord | None, exc: BaseException, raw: Any = None) -> dict[str, Any]:
    if isinstance(exc, InvalidRecordError):
        return {**exc.to_dict(), "split": None, "num_sources": None, "source": None, "path": None,
                "message": str(exc)[:500]}
    i = getattr(exc, "source_index", None)
    return {"mix_id": rec.mix_id, "split": rec.split, "num_sources": rec.num_sources,
            "source": None if i is None or rec is None else rec.sources[i].source_id,
            "path": getattr(exc, "source_path", None), "reason": reason_of(exc), "message": str(exc)[:500]}


def iter_unit_records(unit: WorkUnit, spec: RenderSpec, failures: list[dict[str, Any]]) -> Iterator[MixtureRecord]:
    """Validated records of one unit; invalid ones are appended to ``failures`` (or raised)."""
    for piece in unit.pieces:
        for raw in iter_piece_rows(piece, unit.split, spec.num_sources):
            try:
                if isinstance(raw, dict) and "__bad_json__" in raw:
                    raise InvalidRecordError(None, "<json>", raw["__bad_json__"], "one JSON object per line")
                rec = parse_mixture(raw, max_sources=spec.max_sources)
            except InvalidRecordError as err:
                if spec.on_failure == "raise":
                    err.add_note(f"in metadata {piece.shard.location} (work unit {unit.name})")
                    raise
                failures.append(_failure_entry(None, err))
                continue
            if rec.split != unit.split:
                continue
            if spec.num_sources is not None and rec.num_sources != spec.num_sources:
                continue
            if spec.labels is not None and not spec.labels.keeps(rec.labels):
                continue
            yield rec


def _write_failures(spec: RenderSpec, unit: WorkUnit, failures: list[dict[str, Any]]) -> None:
    if not spec.failure_dir:
        return
    folder = Path(spec.failure_dir)
    path = folder / f"{unit.name}.jsonl"
    if not failures:
        path.unlink(missing_ok=True)  # a rerun after the corpus was fixed
        return
    with atomic_open(path, "w") as fh:
        for entry in failures:
            fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")


def _close_unit(unit: WorkUnit, spec: RenderSpec, failures: list[dict[str, Any]],
                report: StreamReport | None) -> None:
    if report is not None:
        for entry in failures:
            report.add(entry)
    _write_failures(spec, unit, failures)
    if failures:
        counts = Counter(f["reason"] for f in failures)
        log.warning("work unit %s: %d mixture(s) left out (%s)%s", unit.name, len(failures),
                    ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
                    f"; manifest {Path(spec.failure_dir) / (unit.name + '.jsonl')}" if spec.failure_dir else "")


def iter_rendered(units: Sequence[WorkUnit], spec: RenderSpec, *,
                  report: StreamReport | None = None) -> Iterator[tuple[int, int, RenderedMixture]]:
    """``(position of the unit in units, row within the unit, rendered mixture)`` for every
    renderable record, in order. A mixture that fails is left out with a named reason (policy
    ``skip``) or its error is raised with the mixture id attached (``raise``)."""
    renderer = spec.renderer()
    stats = renderer.store_stats
    for pos, unit in enumerate(units):
        failures: list[dict[str, Any]] = []
        row = 0
        for rec in iter_unit_records(unit, spec, failures):
            hits, misses = stats["hits"], stats["misses"]
            try:
                rendered = renderer.render(rec)
            except RENDER_ERRORS as exc:
                if spec.on_failure == "raise":
                    exc.add_note(f"while rendering mixture {rec.mix_id!r} (work unit {unit.name})")
                    raise
                entry = _failure_entry(rec, exc)
                failures.append(entry)
                if len(failures) <= _LOGGED_FAILURES_PER_UNIT:
                    log.warning("mixture %s left out (%s): %s", rec.mix_id, entry["reason"], entry["message"])
                continue
            if report is not None:
                report.rendered += 1
                report.store_hits += stats["hits"] - hits
                report.store_misses += stats["misses"] - misses
            yield pos, row, rendered
            row += 1
        _close_unit(unit, spec, failures, report)


# ---- example layouts -------------------------------------------------------------------------
def array_example(r: RenderedMixture) -> dict[str, Any]:
    """A training example of numpy arrays: no encoding, no copies beyond the render's own."""
    rec = r.record
    return {
        "mix_id": rec.mix_id,
        "split": rec.split,
        "num_sources": rec.num_sources,
        "sample_rate": r.sample_rate,
        "target_duration": rec.target_duration,
        "labels": rec.labels,
        "label_ids": label_ids(rec.labels),
        "source_ids": [s.source_id for s in rec.sources],
        "mix": r.mix,
        "sources": r.stems,
        "global_normalization_factor": rec.global_normalization_factor,
        "stem_scale": r.stem_scale,
    }


def encoded_example(r: RenderedMixture, audio_format: str = "wav") -> dict[str, Any]:
    """The row ``hive render --format parquet`` writes (features: ``mixing.shards.rendered_features``)."""
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format is {audio_format!r}; expected one of {AUDIO_FORMATS}")
    rec = r.record
    key = rec.mix_id
    ext = audio_format
    return {
        "mix_id": key, "split": rec.split, "num_sources": rec.num_sources, "sample_rate": r.sample_rate,
        "target_duration": rec.target_duration, "labels": rec.labels,
        "mix": {"bytes": encode_audio(r.mix, r.sample_rate, ext, f"{key} mix"), "path": f"{key}.mix.{ext}"},
        "sources": [{"bytes": encode_audio(s, r.sample_rate, ext, f"{key} s{i}"), "path": f"{key}.s{i}.{ext}"}
                    for i, s in enumerate(r.stems, 1)],
        "source_metadata": rec.to_hub_row()["sources"],
        "global_normalization_factor": rec.global_normalization_factor,
        "final_max_amplitude": rec.final_max_amplitude,
        "render_json": sample_json(r, ext).decode("utf-8"),
    }


def iter_examples(rendered: Iterable[RenderedMixture], spec: RenderSpec, epoch: int = 0) -> Iterator[dict[str, Any]]:
    """The training examples of rendered mixtures in the form ``spec.examples`` asks for."""
    maker = spec.query_maker()
    for r in rendered:
        ex = array_example(r)
        if maker is None:
            yield ex
        else:
            yield from maker.examples(ex, epoch)


def generate_arrays(shards: Sequence[WorkUnit], spec: RenderSpec) -> Iterator[dict[str, Any]]:
    """The generator behind ``hive.stream_mixtures`` (``IterableDataset.from_generator``): a
    module-level function, so datasets and DataLoader workers can pickle it by reference."""
    yield from iter_examples((r for _, _, r in iter_rendered(shards, spec)), spec)


def read_failure_manifest(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Entries of every ``*.jsonl`` under ``folder`` (sorted by unit name); empty if none."""
    folder = Path(folder)
    out: list[dict[str, Any]] = []
    if folder.is_dir():
        for p in sorted(folder.glob("*.jsonl")):
            with open(p, encoding="utf-8") as fh:
                out.extend(json.loads(line) for line in fh if line.strip())
    return out


def pad_sources(examples: Sequence[Mapping[str, Any]], max_sources: int | None = None,
                alloc: Any = None) -> dict[str, Any]:
    """Stack examples of one rate and duration into ``mix (B, T)``, ``sources (B, N, T)`` zero-padded
    to the largest count (or ``max_sources``), and ``source_mask (B, N)``; other keys as lists.
    ``alloc(name, shape, dtype) -> ndarray`` lets a caller provide the output buffers (e.g.
    shared memory in a DataLoader worker); they need not be zeroed: every element is written once."""
    if alloc is None:
        def alloc(name, shape, dtype):
            return np.empty(shape, dtype=dtype)
    if not examples:
        raise ValueError("pad_sources got no examples")
    lengths = {np.shape(e["mix"])[-1] for e in examples}
    if len(lengths) != 1:
        raise ValueError(f"examples have different lengths {sorted(lengths)}; batch one split (one "
                         "target duration) at one sample rate")
    n = max_sources or max(int(np.shape(e["sources"])[0]) for e in examples)
    t = lengths.pop()
    mix = alloc("mix", (len(examples), t), np.float32)
    sources = alloc("sources", (len(examples), n, t), np.float32)
    mask = alloc("source_mask", (len(examples), n), np.bool_)
    for b, e in enumerate(examples):
        s = np.asarray(e["sources"], dtype=np.float32)
        if s.shape[0] > n:
            raise ValueError(f"{e.get('mix_id')}: {s.shape[0]} sources > max_sources={n}")
        mix[b] = e["mix"]
        sources[b, : s.shape[0]] = s
        sources[b, s.shape[0]:] = 0.0
        mask[b, : s.shape[0]] = True
        mask[b, s.shape[0]:] = False
    out: dict[str, Any] = {k: [e[k] for e in examples] for k in examples[0] if k not in ("mix", "sources")}
    out.update(mix=mix, sources=sources, source_mask=mask)
    return out
