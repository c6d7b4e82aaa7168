"""What ``hive inspect`` reads: a ``hive render`` output folder or metadata (+ dataset paths).

Two passes over the input. :meth:`InspectInput.records` streams every record (for the index's
statistics and for choosing mixtures); :meth:`InspectInput.load` returns the audio of the chosen
ones: decoded from the shards of a rendered folder (WebDataset ``DIR/{split}/{n}mix/tar_*.tar``
or Parquet ``part_*.parquet``), or rendered on the fly with :class:`mixing.render.Renderer` from
metadata and the local corpora. Only the chosen samples' audio is held in memory.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf

from mixing.audio import sf_read
from mixing.errors import CorpusError, HiveError
from mixing.memory_estimate import check_mixture_memory
from mixing.metadata import MixtureRecord, normalise_split
from mixing.rendered_reader import SHARD_PATTERNS, find_shards, iter_samples, parse_record


class InspectError(HiveError):
    """The input cannot be inspected (unknown layout, missing mixture, bad option)."""


@dataclass
class Inspected:
    """One chosen mixture: its record and, unless ``error`` says why not, its audio."""

    record: MixtureRecord
    origin: str  # shard (relative to the rendered folder) or "rendered from metadata"
    sample_rate: int = 0
    mix: np.ndarray | None = None
    stems: list[np.ndarray] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    #: local file of each source (metadata input with dataset paths), or why it has none
    local_paths: list[str] = field(default_factory=list)
    error: str | None = None


def rendered_shards(root: Path) -> dict[str, list[Path]]:
    """``format -> sorted shard files`` of a ``hive render`` folder."""
    out: dict[str, list[Path]] = {fmt: [] for fmt in SHARD_PATTERNS}
    for path, fmt in find_shards(root, error=InspectError):
        out[fmt].append(path)
    return out


def is_rendered_folder(path: Path) -> bool:
    return path.is_dir() and any(rendered_shards(path).values())


def _decode(data: bytes, where: str) -> tuple[np.ndarray, int]:
    try:
        x, sr = sf_read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InspectError(f"{where}: audio cannot be decoded ({exc}); run `hive verify` on the folder") from exc
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0], sr


class InspectInput:
    """Base: ``records()`` streams ``(record, origin)``; ``load(ids)`` returns the chosen audio."""

    kind = ""
    rendered_root: Path | None = None

    def records(self) -> Iterator[tuple[MixtureRecord, str]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, ids: set[str]) -> dict[str, Inspected]:  # pragma: no cover - abstract
        raise NotImplementedError


class RenderedInput(InspectInput):
    """A ``hive render`` output folder (WebDataset or Parquet shards)."""

    kind = "rendered"

    def __init__(self, root: str | os.PathLike, split: str | None = None, num_sources: int | None = None):
        self.root = self.rendered_root = Path(root)
        shards = rendered_shards(self.root)
        self.shards = [(p, fmt) for fmt, files in shards.items() for p in files
                       if (split is None or p.parent.parent.name == split)
                       and (num_sources is None or p.parent.name == f"{num_sources}mix")]

    def _rel(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix()

    def records(self) -> Iterator[tuple[MixtureRecord, str]]:
        for path, fmt in self.shards:
            rel = self._rel(path)
            for raw in iter_samples(path, fmt, rel, audio=False, error=InspectError):
                yield parse_record(raw.json, f"{rel} {raw.key}", raw.key, error=InspectError)[0], rel

    def load(self, ids: set[str]) -> dict[str, Inspected]:
        out: dict[str, Inspected] = {}
        for path, fmt in self.shards:
            rel = self._rel(path)
            for raw in iter_samples(path, fmt, rel, audio=ids, error=InspectError):
                if raw.key not in ids:
                    continue
                rec, prov = parse_record(raw.json, f"{rel} {raw.key}", raw.key, error=InspectError)
                if "mix" not in raw.audio:
                    raise InspectError(f"{rel} {raw.key}: no mix audio; run `hive verify` on the folder")
                rate = prov.get("sample_rate")
                rate = rate if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0 else rec.sample_rate
                check_mixture_memory("inspect", rec.mix_id, int(rec.target_duration * rate), rec.num_sources, rate)
                item = Inspected(rec, rel, provenance=prov)
                item.mix, item.sample_rate = _decode(raw.audio["mix"], f"{rel} {raw.key} mix")
                for i in range(1, rec.num_sources + 1):
                    if f"s{i}" not in raw.audio:
                        raise InspectError(f"{rel} {raw.key}: stem s{i} is missing; run `hive verify` on the folder")
                    item.stems.append(_decode(raw.audio[f"s{i}"], f"{rel} {raw.key} s{i}")[0])
                out[raw.key] = item
            if len(out) == len(ids):
                break
        return out


class MetadataInput(InspectInput):
    """Metadata (any form ``open_metadata`` reads) rendered on the fly from the local corpora
    and/or a source store."""

    kind = "metadata"

    def __init__(self, metadata: str, dataset_paths: str | None, *, split: str | None = None,
                 num_sources: int | None = None, revision: str | None = None, stems: str = "consistent",
                 store: str | None = None):
        from mixing.metadata_io import open_metadata

        self.source = open_metadata(metadata, revision=revision)  # a missing path fails here, clearly
        if not dataset_paths and not store:
            raise InspectError(f"{metadata} is metadata, not a `hive render` output folder (DIR/{{split}}/"
                               "{n}mix/tar_*.tar or part_*.parquet); pass --dataset-paths dataset_paths.json "
                               "and/or --store STORE so the chosen mixtures can be rendered")
        from mixing.corpora import DatasetPaths
        from mixing.recipe import RenderRecipe

        self.paths = DatasetPaths.from_json(dataset_paths) if dataset_paths else None
        self.recipe = RenderRecipe.make(self.paths, store=store, stems=stems)
        self.split = normalise_split(split) if split else None
        self.num_sources = num_sources
        self.stems = stems

    def records(self) -> Iterator[tuple[MixtureRecord, str]]:
        from mixing.metadata_io import iter_records

        origin = "rendered from metadata" + (" (source store)" if self.recipe.store else "")
        for rec in iter_records(self.source, split=self.split, num_sources=self.num_sources):
            yield rec, origin

    def load(self, ids: set[str]) -> dict[str, Inspected]:
        renderer = self.recipe.renderer()
        out: dict[str, Inspected] = {}
        for rec, origin in self.records():
            if rec.mix_id not in ids or rec.mix_id in out:
                continue
            item = Inspected(rec, origin)
            for src in rec.sources:
                if self.paths is None:
                    item.local_paths.append(f"(from the source store {self.recipe.store})")
                    continue
                try:
                    item.local_paths.append(str(self.paths.resolve(src.path)))
                except CorpusError as exc:
                    item.local_paths.append(f"(not resolved: {exc})")
            check_mixture_memory("inspect", rec.mix_id, int(rec.target_duration * rec.sample_rate), rec.num_sources,
                                 rec.sample_rate)
            try:
                r = renderer.render(rec)
            except (CorpusError, OSError, ValueError, HiveError) as exc:  # shown on the page and counted
                where = getattr(exc, "source_path", None)
                item.error = f"{type(exc).__name__}: {exc}" + (f" (source {where})" if where else "")
            else:
                item.mix, item.stems, item.sample_rate = r.mix, list(r.stems), r.sample_rate
                item.provenance = {"stem_mode": r.stem_mode, "sample_rate": r.sample_rate}
            out[rec.mix_id] = item
            if len(out) == len(ids):
                break
        return out


def open_input(location: str, dataset_paths: str | None = None, *, split: str | None = None,
               num_sources: int | None = None, revision: str | None = None, store: str | None = None) -> InspectInput:
    """A rendered folder when ``location`` holds ``hive render`` shards, else metadata (rendered
    from the corpora and/or a source store)."""
    path = Path(location).expanduser()
    if is_rendered_folder(path):
        return RenderedInput(path, normalise_split(split) if split else None, num_sources)
    return MetadataInput(location, dataset_paths, split=split, num_sources=num_sources, revision=revision,
                         store=store)
