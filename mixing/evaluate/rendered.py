"""Stream the samples of a ``hive render`` folder (WebDataset or Parquet), one mixture at a time,
or render them on the fly from metadata (:func:`iter_from_metadata`, e.g. from a source store).

``DIR/{split}/{n}mix/tar_*.tar`` or ``part_*.parquet``; each sample gives the mix, the reference
stems (``s1 .. sN``, in the order of the record's sources) and the record (labels, ids).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf

from ..audio import sf_read
from ..input_files import load_json_file
from ..metadata import MixtureRecord
from ..rendered_reader import RawSample, find_shards, iter_samples, parse_record
from .errors import EvalError
from .metrics import check_audio


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
    found = find_shards(root, split, error=EvalError)
    if not found:
        splits = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise EvalError(f"--rendered {root}: no shards{'' if split is None else f' of split {split!r}'} "
                        f"(expected {split or '{split}'}/{{n}}mix/tar_*.tar or part_*.parquet; splits found: "
                        f"{splits or 'none'}); run 'hive render' first or check --split")
    return found


def _decode(data: bytes, what: str) -> tuple[np.ndarray, int]:
    try:
        x, sr = sf_read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError) as exc:
        raise EvalError(f"{what}: undecodable audio ({exc}); re-render this shard") from exc
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0], int(sr)


#: ``memory(record, frames)`` is called before a sample's audio is decoded (the memory check)
MemoryCheck = Callable[[MixtureRecord, int], None]


def _sample(raw: RawSample, memory: MemoryCheck | None = None) -> RenderedSample:
    where = f"{raw.shard}: sample {raw.key}"
    if "mix" not in raw.audio:
        raise EvalError(f"{where}: has no mix; run 'hive verify' on it")
    rec, prov = parse_record(raw.json, where, raw.key, error=EvalError)
    stems = {int(name[1:]): data for name, data in raw.audio.items() if name != "mix"}
    if sorted(stems) != list(range(1, rec.num_sources + 1)):
        raise EvalError(f"{where}: stems {sorted(stems)} but the record has {rec.num_sources} sources; "
                        "run 'hive verify' on it")
    if memory is not None:
        rate = prov.get("sample_rate")
        rate = rate if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0 else rec.sample_rate
        memory(rec, int(rec.target_duration * rate))
    m, sr = _decode(raw.audio["mix"], f"{where} mix")
    if m.shape[0] == 0:
        raise EvalError(f"{where}: the mix has no samples (target_duration {rec.target_duration:g} s at {sr} Hz "
                        "is shorter than one sample); nothing to evaluate: drop such mixtures from the metadata")
    fix = "re-render it and run 'hive verify' on the folder"
    check_audio(m, f"{where} mix", fix)
    refs = np.empty((rec.num_sources, m.shape[0]), dtype=np.float32)  # filled row by row: no second copy
    for i in range(1, rec.num_sources + 1):
        s, ssr = _decode(stems[i], f"{where} s{i}")
        if ssr != sr or s.shape != m.shape:
            raise EvalError(f"{where}: stem s{i} is {s.shape[0]} frames at {ssr} Hz; the mix is {m.shape[0]} "
                            f"frames at {sr} Hz")
        check_audio(s, f"{where} s{i}", fix)
        refs[i - 1] = s
        del s
    return RenderedSample(rec.mix_id, rec.split, sr, rec, m, refs, str(prov.get("stem_mode", "consistent")),
                          raw.shard)


def iter_rendered(root: str | Path, split: str | None = None, *,
                  memory: MemoryCheck | None = None) -> Iterator[RenderedSample]:
    """Every rendered sample under ``root`` (one split, or all), shard by shard; memory: one sample
    (WebDataset) or 16 rows (Parquet)."""
    root = Path(root)
    for path, fmt in find_rendered(root, split):
        rel = str(path.relative_to(root))
        for raw in iter_samples(path, fmt, rel, error=EvalError):
            sample = _sample(raw, memory)
            del raw  # the encoded bytes are not kept while the sample is used
            yield sample


def count_rendered(root: str | Path, split: str | None = None) -> int | None:
    """Mixtures in the render (from ``_summary.json``) for the progress bar; None if unknown."""
    try:
        summary = load_json_file(Path(root) / "_summary.json", "render summary", "an object", EvalError,
                                 expect=dict, max_bytes=16 << 20)
        groups = summary["mixtures_per_group"]
        return sum(int(n) for g, n in groups.items() if split is None or g.split("/")[0] == split)
    except (EvalError, KeyError, TypeError, ValueError, AttributeError):
        return None


def iter_from_metadata(metadata: Any, recipe: Any, split: str | None = None,
                       failures: "Counter | None" = None, revision: str | None = None,
                       memory: MemoryCheck | None = None, num_sources: int | None = None,
                       keep: Any = None) -> Iterator[RenderedSample]:
    """Samples rendered on the fly from metadata with a :class:`mixing.recipe.RenderRecipe` (a
    source store makes this as fast as reading a render); a mixture that cannot be rendered is
    left out and its reason counted in ``failures``. ``num_sources`` and ``keep(record) -> bool``
    choose mixtures before they are rendered."""
    from ..failures import reason_of
    from ..metadata_io import open_metadata
    from ..streaming import RENDER_ERRORS

    renderer = recipe.renderer()
    source = open_metadata(metadata, revision=revision)
    where = "source store" if recipe.store else "corpora"
    for rec in source.records(split, num_sources, on_error="skip"):
        if keep is not None and not keep(rec):
            continue
        if memory is not None:  # over the cap: refused (one line), not counted as a render failure
            memory(rec, int(rec.target_duration * (recipe.sample_rate or rec.sample_rate)))
        try:
            r = renderer.render(rec)
        except RENDER_ERRORS as exc:
            if failures is not None:
                failures[reason_of(exc)] += 1
            continue
        yield RenderedSample(rec.mix_id, rec.split, r.sample_rate, rec, r.mix, r.stems, r.stem_mode,
                             f"rendered from the {where}")
