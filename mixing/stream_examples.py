"""The forms of one rendered mixture: arrays for training (:func:`array_example`, then query
examples by :func:`iter_examples`), or the encoded row ``hive render --format parquet`` writes
(:func:`encoded_example`)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from .queries import label_ids
from .render import RenderedMixture
from .render_spec import RenderSpec
from .shards import AUDIO_FORMATS, encode_audio, sample_json


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
