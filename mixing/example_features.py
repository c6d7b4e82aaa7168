"""Query examples as ``datasets`` rows: their features and their encoding (WAV/FLAC bytes).

The ``datasets`` builder (``hive.py``) with ``targets="each"``/``"one"`` writes these rows; whole
mixtures keep :func:`mixing.shards.rendered_features` / :func:`mixing.streaming.encoded_example`.
"""

from __future__ import annotations

from typing import Any, Mapping

from .shards import AUDIO_FORMATS, encode_audio


def query_features(decode: bool = True):
    """``datasets.Features`` of a query example: the mixture, the text query and the target stem."""
    import datasets

    return datasets.Features({
        "mix_id": datasets.Value("string"),
        "split": datasets.Value("string"),
        "num_sources": datasets.Value("int32"),
        "sample_rate": datasets.Value("int32"),
        "target_duration": datasets.Value("float64"),
        "mix": datasets.Audio(decode=decode),
        "query": datasets.Value("string"),
        "target": datasets.Audio(decode=decode),
        "label": datasets.Value("string"),
        "label_id": datasets.Value("string"),
        "source_index": datasets.Value("int32"),
        "negative": datasets.Value("bool"),
    })


def encoded_query_example(ex: Mapping[str, Any], audio_format: str = "wav") -> dict[str, Any]:
    """A query example (numpy arrays, :mod:`mixing.queries`) with its audio encoded."""
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format is {audio_format!r}; expected one of {AUDIO_FORMATS}")
    key, sr, ext = ex["mix_id"], int(ex["sample_rate"]), audio_format
    which = "neg" if ex["negative"] else f"s{int(ex['source_index']) + 1}"
    return {
        "mix_id": key, "split": ex["split"], "num_sources": int(ex["num_sources"]), "sample_rate": sr,
        "target_duration": float(ex["target_duration"]),
        "mix": {"bytes": encode_audio(ex["mix"], sr, ext, f"{key} mix"), "path": f"{key}.mix.{ext}"},
        "query": ex["query"],
        "target": {"bytes": encode_audio(ex["target"], sr, ext, f"{key} {which}"), "path": f"{key}.{which}.{ext}"},
        "label": ex["label"], "label_id": ex["label_id"], "source_index": int(ex["source_index"]),
        "negative": bool(ex["negative"]),
    }
