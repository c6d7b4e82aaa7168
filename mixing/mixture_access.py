"""Mixtures by position: random access for a map-style dataset.

Two sources, one interface (``len``, ``mix_id(i)``, ``labels(i)``, ``example(i)`` giving the
stream's ``"all"`` example of numpy arrays):

* :class:`MetadataMixtures` — metadata (any form, in-memory included) held as one Arrow table of
  the Hub schema, rendered on demand with a :class:`~mixing.recipe.RenderRecipe` (a source store
  makes that a memory read);
* :class:`RenderedMixtures` — a ``hive render`` folder, indexed once: for WebDataset tars the byte
  offsets of each sample's members (one ``pread`` per member later), for Parquet the row group and
  row of each sample.

Both pickle small enough to travel into DataLoader workers (the Arrow table's buffers, or the index).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import EmptySelectionError, HiveError
from .label_filter import LabelFilter
from .metadata import normalise_split
from .queries import label_ids
from .recipe import RenderRecipe
from .streaming import array_example
from .validation import ValidationReport, parse_mixture


class MetadataMixtures:
    """Records of one split of some metadata (filtered), rendered on demand."""

    def __init__(self, metadata: Any, recipe: RenderRecipe, split: str, num_sources: int | None = None,
                 labels: LabelFilter | None = None):
        from .metadata_io import open_metadata

        self.recipe = recipe
        self.split = normalise_split(split)
        self.report = ValidationReport()
        source = open_metadata(metadata)
        batches = list(source.arrow_batches(self.split, num_sources, on_error="skip", report=self.report))
        from .metadata import HUB_ARROW_SCHEMA

        table = pa.Table.from_batches(batches, schema=HUB_ARROW_SCHEMA) if batches else HUB_ARROW_SCHEMA.empty_table()
        where = f"split {self.split!r} of {source.location}"
        if table.num_rows == 0:
            raise EmptySelectionError(f"{where} holds no valid mixture" + (f" with {num_sources} sources"
                                                                          if num_sources else "")
                                      + f" ({self.report.invalid} invalid records); check split and num_sources")
        all_labels = table.column("sources").combine_chunks().field("label")
        if labels is not None:
            keep = labels.keep_mask(all_labels)
            if not keep.any():
                from .label_filter import mixtures_per_label

                per, total = mixtures_per_label(all_labels.to_pylist())
                raise labels.nothing_selected(per, total, where)
            table = table.filter(pa.array(keep))
        self.table = table.combine_chunks()
        self._labels = self.table.column("sources").combine_chunks().field("label").to_pylist()
        self._ids = self.table.column("mix_id").to_pylist()

    def __len__(self) -> int:
        return self.table.num_rows

    def mix_id(self, i: int) -> str:
        return self._ids[i]

    def labels(self, i: int) -> list[str]:
        return self._labels[i]

    def record(self, i: int):
        return parse_mixture(self.table.slice(i, 1).to_pylist()[0])

    def example(self, i: int) -> dict[str, Any]:
        rec = self.record(i)
        try:
            rendered = self.recipe.renderer().render(rec)
        except Exception as exc:
            exc.add_note(f"while rendering mixture {rec.mix_id!r} (item {i} of a HiveMapDataset)")
            raise
        return array_example(rendered)


class RenderedMixtures:
    """The samples of one split of a ``hive render`` folder, by position (read through
    :mod:`mixing.rendered_reader`'s checks: regular files, safe JSON, records that validate)."""

    def __init__(self, folder: str | os.PathLike, split: str, num_sources: int | None = None,
                 labels: LabelFilter | None = None):
        from .evaluate.rendered import find_rendered

        self.root = Path(folder)
        self.split = normalise_split(split)
        self.items: list[tuple[str, str, Any]] = []  # (shard, format, location of the sample in it)
        self._labels: list[list[str]] = []
        self._ids: list[str] = []
        every: list[list[str]] = []
        for path, fmt in find_rendered(self.root, self.split):
            index = _tar_index(path) if fmt == "webdataset" else _parquet_index(path)
            for key, loc, rec in index:
                if num_sources is not None and rec.num_sources != num_sources:
                    continue
                every.append(rec.labels)
                if labels is not None and not labels.keeps(rec.labels):
                    continue
                self.items.append((str(path), fmt, loc))
                self._labels.append(rec.labels)
                self._ids.append(key)
        where = f"split {self.split!r} of the render {self.root}"
        if not every:
            raise EmptySelectionError(f"{where} holds no mixture" + (f" with {num_sources} sources" if num_sources
                                                                     else ""))
        if not self.items:
            from .label_filter import mixtures_per_label

            per, total = mixtures_per_label(every)
            raise labels.nothing_selected(per, total, where)  # type: ignore[union-attr]

    def __len__(self) -> int:
        return len(self.items)

    def mix_id(self, i: int) -> str:
        return self._ids[i]

    def labels(self, i: int) -> list[str]:
        return self._labels[i]

    def example(self, i: int) -> dict[str, Any]:
        from .evaluate.rendered import _sample
        from .rendered_reader import RawSample

        path, fmt, loc = self.items[i]
        key = self._ids[i]
        rel = os.path.relpath(path, self.root)
        if fmt == "webdataset":
            members = {name: _pread(path, off, size) for name, (off, size) in loc.items()}
            raw = RawSample(key, rel, members.pop("json", None), members)
        else:
            group, row = loc
            table = pq.ParquetFile(path).read_row_group(group, columns=["mix_id", "mix", "sources", "render_json"])
            r = table.slice(row, 1).to_pylist()[0]
            audio = {"mix": (r["mix"] or {}).get("bytes")}
            audio.update({f"s{k}": s["bytes"] for k, s in enumerate(r["sources"] or [], 1)})
            raw = RawSample(key, rel, r["render_json"], {k: v for k, v in audio.items() if v is not None})
        sample = _sample(raw)
        rec = sample.record
        return {
            "mix_id": rec.mix_id, "split": rec.split, "num_sources": rec.num_sources,
            "sample_rate": sample.sample_rate, "target_duration": rec.target_duration, "labels": rec.labels,
            "label_ids": label_ids(rec.labels), "source_ids": [s.source_id for s in rec.sources],
            "mix": sample.mix, "sources": sample.stems,
            "global_normalization_factor": rec.global_normalization_factor,
            "stem_scale": rec.global_normalization_factor if sample.stem_mode == "consistent" else 1.0,
        }


def _pread(path: str, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, size, offset)
    finally:
        os.close(fd)
    if len(data) != size:
        raise HiveError(f"{path}: the shard ended inside a member ({len(data)} of {size} bytes at {offset}); it changed "
                        "since it was indexed: run `hive verify` on the render and build the dataset again")
    return data


def _tar_index(path: Path) -> list[tuple[str, dict[str, tuple[int, int]], Any]]:
    """``(key, {member field: (offset, size)}, record)`` of every sample of a WebDataset tar."""
    from .evaluate.errors import EvalError
    from .rendered_reader import MEMBER, parse_record

    out: dict[str, dict[str, tuple[int, int]]] = {}
    records: dict[str, Any] = {}
    with tarfile.open(path) as tar:
        for m in tar:
            match = MEMBER.match(m.name) if m.isfile() else None
            if match is None:
                continue
            key, field = match.group(1), match.group(2)
            out.setdefault(key, {})[field] = (m.offset_data, m.size)
            if field == "json":
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                records[key] = parse_record(data, f"{path}: sample {key}", key, error=EvalError)[0]
    return [(k, loc, records[k]) for k, loc in out.items() if k in records]


def _parquet_index(path: Path) -> list[tuple[str, tuple[int, int], Any]]:
    from .evaluate.errors import EvalError
    from .rendered_reader import parse_record

    pf = pq.ParquetFile(path)
    out = []
    for g in range(pf.metadata.num_row_groups):
        t = pf.read_row_group(g, columns=["mix_id", "render_json"])
        for row, (key, meta) in enumerate(zip(t.column("mix_id").to_pylist(), t.column("render_json").to_pylist())):
            out.append((key, (g, row), parse_record(meta, f"{path}: sample {key}", key, error=EvalError)[0]))
    return out
