"""Stream the samples of a ``hive render`` folder (WebDataset or Parquet), one mixture at a time,
or render them on the fly from metadata (:func:`iter_from_metadata`, e.g. from a source store).

``DIR/{split}/{n}mix/tar_*.tar`` or ``part_*.parquet``; each sample gives the mix, the reference
stems (``s1 .. sN``, in the order of the record's sources) and the record (labels, ids).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf

from ..audio import sf_read
from ..metadata import MixtureRecord
from ..validation import parse_mixture
from .errors import EvalError

_MEMBER = re.compile(r"^([^.]+)\.(mix|s\d+|json)(?:\.(\w+))?$")


@dataclass
class RenderedSample:
    mix_id: str
    split: str
    sample_rate: int
    record: MixtureRecord
    mix: np.ndarray  # [T] float32
    stems: np.ndarray  # [N, T] float32, the references
    stem_mode: str
    shard: str

    @property
    def labels(self) -> list[str]:
        return self.record.labels

    @property
    def num_sources(self) -> int:
        return self.record.num_sources


def find_rendered(root: str | Path, split: str | None = None) -> list[tuple[Path, str]]:
    """``(shard, format)`` of ``root/{split}/{n}mix/*``, sorted; raises :class:`EvalError` if none."""
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"--rendered {root}: not a folder; expected the --output folder of 'hive render'")
    found = []
    for pattern, fmt in (("tar_*.tar", "webdataset"), ("part_*.parquet", "parquet")):
        for p in sorted(root.glob(f"{split or '*'}/*mix/{pattern}")):
            if not p.parent.parent.name.startswith("_"):
                found.append((p, fmt))
    if not found:
        splits = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise EvalError(f"--rendered {root}: no shards{'' if split is None else f' of split {split!r}'} "
                        f"(expected {split or '{split}'}/{{n}}mix/tar_*.tar or part_*.parquet; splits found: "
                        f"{splits or 'none'}); run 'hive render' first or check --split")
    return sorted(found, key=lambda t: str(t[0]))


def _decode(data: bytes, what: str) -> tuple[np.ndarray, int]:
    try:
        x, sr = sf_read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise EvalError(f"{what}: undecodable audio ({exc}); re-render this shard") from exc
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0], int(sr)


def _sample(key: str, shard: str, mix: bytes | None, stems: dict[int, bytes], meta: Any) -> RenderedSample:
    where = f"{shard}: sample {key}"
    if mix is None or meta is None:
        raise EvalError(f"{where}: has no {'mix' if mix is None else 'JSON record'}; run 'hive verify' on it")
    obj = json.loads(meta) if isinstance(meta, (str, bytes)) else meta
    prov = obj.get("hive_render") or {}
    rec = parse_mixture(obj)
    if sorted(stems) != list(range(1, rec.num_sources + 1)):
        raise EvalError(f"{where}: stems {sorted(stems)} but the record has {rec.num_sources} sources; "
                        "run 'hive verify' on it")
    m, sr = _decode(mix, f"{where} mix")
    refs = []
    for i in range(1, rec.num_sources + 1):
        s, ssr = _decode(stems[i], f"{where} s{i}")
        if ssr != sr or s.shape != m.shape:
            raise EvalError(f"{where}: stem s{i} is {s.shape[0]} frames at {ssr} Hz; the mix is {m.shape[0]} "
                            f"frames at {sr} Hz")
        refs.append(s)
    return RenderedSample(rec.mix_id, rec.split, sr, rec, m, np.stack(refs), prov.get("stem_mode", "consistent"),
                          shard)


def _iter_tar(path: Path, rel: str) -> Iterator[RenderedSample]:
    key, mix, stems, meta = None, None, {}, None
    with tarfile.open(path, mode="r|*") as tar:
        for m in tar:
            match = _MEMBER.match(m.name) if m.isfile() else None
            if match is None:
                continue
            k, field = match.group(1), match.group(2)
            if k != key:
                if key is not None:
                    yield _sample(key, rel, mix, stems, meta)
                key, mix, stems, meta = k, None, {}, None
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            if field == "mix":
                mix = data
            elif field == "json":
                meta = data
            else:
                stems[int(field[1:])] = data
    if key is not None:
        yield _sample(key, rel, mix, stems, meta)


def _iter_parquet(path: Path, rel: str) -> Iterator[RenderedSample]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=16, columns=["mix_id", "mix", "sources", "render_json"]):
        for row in batch.to_pylist():
            stems = {i: s["bytes"] for i, s in enumerate(row["sources"] or [], 1)}
            yield _sample(row["mix_id"], rel, (row["mix"] or {}).get("bytes"), stems, row["render_json"])


def iter_rendered(root: str | Path, split: str | None = None) -> Iterator[RenderedSample]:
    """Every rendered sample under ``root`` (one split, or all), shard by shard; memory: one sample
    (WebDataset) or 16 rows (Parquet)."""
    root = Path(root)
    for path, fmt in find_rendered(root, split):
        rel = str(path.relative_to(root))
        try:
            yield from (_iter_tar if fmt == "webdataset" else _iter_parquet)(path, rel)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise EvalError(f"{rel}: unreadable shard ({exc}); run 'hive verify {root}'") from exc


def count_rendered(root: str | Path, split: str | None = None) -> int | None:
    """Mixtures in the render (from ``_summary.json``) for the progress bar; None if unknown."""
    try:
        summary = json.loads((Path(root) / "_summary.json").read_text())
        groups = summary["mixtures_per_group"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sum(int(n) for g, n in groups.items() if split is None or g.split("/")[0] == split)


def iter_from_metadata(metadata: Any, recipe: Any, split: str | None = None,
                       failures: "Counter | None" = None, revision: str | None = None) -> Iterator[RenderedSample]:
    """Samples rendered on the fly from metadata with a :class:`mixing.recipe.RenderRecipe` (a
    source store makes this as fast as reading a render); a mixture that cannot be rendered is
    left out and its reason counted in ``failures``."""
    from ..failures import reason_of
    from ..metadata_io import open_metadata
    from ..streaming import RENDER_ERRORS

    renderer = recipe.renderer()
    source = open_metadata(metadata, revision=revision)
    where = "source store" if recipe.store else "corpora"
    for rec in source.records(split, on_error="skip"):
        try:
            r = renderer.render(rec)
        except RENDER_ERRORS as exc:
            if failures is not None:
                failures[reason_of(exc)] += 1
            continue
        yield RenderedSample(rec.mix_id, rec.split, r.sample_rate, rec, r.mix, r.stems, r.stem_mode,
                             f"rendered from the {where}")
