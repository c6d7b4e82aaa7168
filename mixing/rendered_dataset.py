"""Load ``hive render`` output (WebDataset or Parquet layout) with ``datasets.load_dataset`` and the
right features: :func:`load_rendered` (re-exported by ``hive.py``)."""

from __future__ import annotations

import glob as _glob
import json
import os
import re
import tarfile
from typing import Sequence

import datasets

from .audio_columns import audio_codec_available, choose_audio_features
from .metadata import SPLITS, normalise_split
from .shards import rendered_features


def _rendered_layout(root: str) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {"webdataset": {}, "parquet": {}}
    for fmt, pattern in (("webdataset", "tar_*.tar"), ("parquet", "part_*.parquet")):
        for path in sorted(_glob.glob(os.path.join(root, "*", "*mix", pattern))):
            split = os.path.basename(os.path.dirname(os.path.dirname(path)))
            found[fmt].setdefault(split, []).append(path)
    return found


def _webdataset_features(files: Sequence[str], decode: bool, use_audio: bool) -> datasets.Features:
    """Audio (or, without torchcodec, the raw file bytes) for ``mix.{ext}`` and ``s1..sN.{ext}``; the
    JSON sidecar's struct from one sample of each ``{n}mix`` group (so every group's fields are
    present; missing stems read as None)."""
    import pyarrow as pa
    from datasets.features.features import cast_to_python_objects

    firsts: dict[str, str] = {}
    for f in files:
        firsts.setdefault(os.path.dirname(f), f)
    ext, max_n, samples = None, 0, []
    for f in firsts.values():
        with tarfile.open(f) as tar:
            key = None
            for member in tar:
                stem, _, field = member.name.partition(".")
                if key is None:
                    key = stem
                if stem != key:
                    break
                m = re.fullmatch(r"(mix|s(\d+))\.(\w+)", field)
                if m:
                    ext = m.group(3)
                    max_n = max(max_n, int(m.group(2) or 0))
                elif field == "json":
                    samples.append(json.load(tar.extractfile(member)))  # type: ignore[arg-type]
    if ext is None or not samples:
        raise ValueError(f"no WebDataset sample with a mix and a .json member in {list(firsts.values())[:3]}")
    tables = [pa.Table.from_pylist(cast_to_python_objects([s], only_1d_for_numpy=True)) for s in samples]
    schema = pa.concat_tables(tables, promote_options="default").schema
    audio = datasets.Audio(decode=decode) if use_audio else datasets.Value("binary")
    feats = {f"mix.{ext}": audio}
    feats.update({f"s{i}.{ext}": audio for i in range(1, max_n + 1)})
    feats["json"] = datasets.Features.from_arrow_schema(schema)
    feats["__key__"] = datasets.Value("string")
    feats["__url__"] = datasets.Value("string")
    return datasets.Features(feats)


def load_rendered(directory: str | os.PathLike, split: str | None = None, format: str | None = None, *,
                  num_sources: int | None = None, streaming: bool = False, decode: bool = True,
                  audio_feature: bool | None = None, cache_dir: str | None = None):
    """Load ``hive render`` output with ``datasets.load_dataset``.

    ``DIR/{split}/{n}mix/tar_*.tar`` (``format="webdataset"``): columns ``mix.wav``, ``s1.wav`` …
    ``s5.wav`` (``datasets.Audio``; a stem a mixture does not have is None), ``json`` (the record
    and render provenance), ``__key__`` (= mix_id), ``__url__``.
    ``DIR/{split}/{n}mix/part_*.parquet`` (``format="parquet"``): the features of
    :func:`mixing.shards.rendered_features` (``mix`` Audio, ``sources`` list of Audio, ``labels``, …).

    ``format`` defaults to the one present; ``split=None`` returns a ``DatasetDict`` (or
    ``IterableDatasetDict`` with ``streaming=True``); ``num_sources`` loads one ``{n}mix`` group;
    ``decode=False`` keeps ``{"bytes", "path"}``. Without torch/torchcodec (or with
    ``audio_feature=False``) audio columns hold the WAV/FLAC bytes (WebDataset) or plain
    ``{bytes, path}`` structs (Parquet); read them with soundfile.
    """
    root = os.fspath(directory)
    layout = _rendered_layout(root)
    present = [f for f, v in layout.items() if v]
    if format is None:
        if len(present) != 1:
            raise ValueError(f"{root}: found {present or 'no'} rendered shards (DIR/{{split}}/{{n}}mix/"
                             "tar_*.tar or part_*.parquet); pass format='webdataset' or 'parquet'"
                             if present else f"{root} holds no hive render output (DIR/{{split}}/{{n}}mix/"
                             "tar_*.tar or part_*.parquet)")
        format = present[0]
    if format not in layout:
        raise ValueError(f"format is {format!r}; expected 'webdataset' or 'parquet'")
    data_files = {s: [f for f in files if num_sources is None or f"{os.sep}{num_sources}mix{os.sep}" in f]
                  for s, files in layout[format].items()}
    data_files = {s: f for s, f in data_files.items() if f}
    if split is not None:
        split = normalise_split(split)
        if split not in data_files:
            raise ValueError(f"{root}: no {format} shards for split {split!r}; found {sorted(data_files)}")
        data_files = {split: data_files[split]}
    if not data_files:
        raise ValueError(f"{root}: no {format} shards match num_sources={num_sources}")
    order = {s: i for i, s in enumerate(SPLITS)}
    data_files = dict(sorted(data_files.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))
    use_audio = audio_codec_available() if audio_feature is None else audio_feature
    if format == "webdataset":
        features = _webdataset_features([f for fs in data_files.values() for f in fs], decode, use_audio)
    else:
        features = choose_audio_features(rendered_features(decode=decode), use_audio, f"load_rendered({root})")
    return datasets.load_dataset(format, data_files=data_files, split=split, features=features,
                                 streaming=streaming, cache_dir=cache_dir)
