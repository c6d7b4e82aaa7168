"""Where the judge's audio comes from: the stems of one mixture, ``(n, T)`` float32 + rate.

* :class:`RenderedStems` renders them on the fly with the render recipe (from a source store
  when one is given; consistent stems: each carries the global factor, as heard in the mixture);
* :class:`TarStems` reads them from ``hive render`` output,
  ``DIR/{split}/{n}mix/tar_*.tar`` members ``{mix_id}.s{i}.{wav,flac}``. The tars of one
  (split, n) group are indexed (member headers only) the first time a mixture of it is needed.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Protocol

import numpy as np

from mixing.audio import sf_read
from mixing.errors import HiveError
from mixing.input_files import open_input
from mixing.metadata import MixtureRecord
from mixing.rendered_reader import find_shards


class NotRenderedError(HiveError, FileNotFoundError):
    """A mixture or one of its stems is missing from the ``--rendered`` folder."""


class StemSource(Protocol):
    def stems(self, rec: MixtureRecord) -> tuple[np.ndarray, int]: ...


class RenderedStems:
    """Stems rendered on the fly from the local corpora (the renderer is built lazily)."""

    def __init__(self, dataset_paths, sample_rate: int | None = None, store=None, store_only: bool = False):
        from mixing.recipe import RenderRecipe

        self.recipe = RenderRecipe.make(dataset_paths, store=store, stems="consistent", sample_rate=sample_rate,
                                        store_only=store_only)

    def stems(self, rec: MixtureRecord) -> tuple[np.ndarray, int]:
        r = self.recipe.renderer().render(rec)
        return r.stems, r.sample_rate


class TarStems:
    """Stems read from WebDataset shards written by ``hive render``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NotRenderedError(f"--rendered folder {self.folder} does not exist; give the --output "
                                   "folder of a finished `hive render --format webdataset` run")
        self._index: dict[tuple[str, int], dict[str, tuple[Path, dict[str, tarfile.TarInfo]]]] = {}

    def _group(self, split: str, n: int) -> dict[str, tuple[Path, dict[str, tarfile.TarInfo]]]:
        group = self._index.get((split, n))
        if group is None:
            group = {}
            for tar_path, fmt in find_shards(self.folder, split, n, error=NotRenderedError):  # regular files only
                if fmt != "webdataset":
                    continue
                try:
                    with open_input(tar_path, "shard", NotRenderedError) as fh, tarfile.open(fileobj=fh) as tar:
                        for info in tar.getmembers():
                            key = info.name.split(".", 1)[0]
                            group.setdefault(key, (tar_path, {}))[1][info.name] = info
                except (tarfile.TarError, EOFError) as exc:
                    raise NotRenderedError(f"{tar_path}: the tar cannot be read ({exc}); re-render it or "
                                           "run 'hive verify' on the folder") from None
            self._index[(split, n)] = group
        return group

    def stems(self, rec: MixtureRecord) -> tuple[np.ndarray, int]:
        found = self._group(rec.split, rec.num_sources).get(rec.mix_id)
        if found is None:
            raise NotRenderedError(f"mixture {rec.mix_id} is not in {self.folder}/{rec.split}/"
                                   f"{rec.num_sources}mix/tar_*.tar; render it, or curate without --rendered")
        tar_path, members = found
        from mixing.memory_estimate import check_memory

        check_memory(sum(m.size for m in members.values()) * 3, f"mixture {rec.mix_id} of {tar_path}",
                     "curate mixtures rendered at a lower --sample-rate")
        out, rate = [], None
        with open(tar_path, "rb") as fh:
            for i in range(1, rec.num_sources + 1):
                info = next((members[f"{rec.mix_id}.s{i}.{ext}"] for ext in ("wav", "flac")
                             if f"{rec.mix_id}.s{i}.{ext}" in members), None)
                if info is None:
                    raise NotRenderedError(f"{tar_path}: mixture {rec.mix_id} has no stem s{i}; "
                                           "re-render that shard")
                fh.seek(info.offset_data)
                y, sr = sf_read(io.BytesIO(fh.read(info.size)), dtype="float32", always_2d=True)
                out.append(y.mean(axis=1))
                if rate is not None and sr != rate:
                    raise NotRenderedError(f"{tar_path}: stems of {rec.mix_id} have rates {rate} and {sr}")
                rate = sr
        length = max(len(y) for y in out)
        stems = np.zeros((len(out), length), dtype=np.float32)
        for i, y in enumerate(out):
            stems[i, : len(y)] = y
        return stems, int(rate)
