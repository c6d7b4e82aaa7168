"""How audio columns are typed in ``datasets``: ``datasets.Audio`` where torch and torchcodec are
installed (``datasets`` 5 needs them even to store ``{"bytes", "path"}``), else the same Arrow data as
plain ``{bytes, path}`` structs (WAV/FLAC bytes, readable with soundfile)."""

from __future__ import annotations

import logging
from typing import Any

import datasets

log = logging.getLogger(__name__)


def audio_codec_available() -> bool:
    """Whether ``datasets.Audio`` can encode/decode here (datasets 5 needs torch + torchcodec even to
    store ``{"bytes", "path"}``)."""
    return bool(datasets.config.TORCH_AVAILABLE and datasets.config.TORCHCODEC_AVAILABLE)


def _audio_struct() -> dict[str, datasets.Value]:
    return {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}


def plain_audio_features(features: datasets.Features) -> datasets.Features:
    """``features`` with every ``datasets.Audio`` replaced by its storage struct ``{bytes, path}``:
    the same Arrow data, readable without torch/torchcodec; ``ds.cast_column(name, Audio())``
    turns a column back into Audio where torchcodec is installed."""

    def swap(feature: Any) -> Any:
        if isinstance(feature, datasets.Audio):
            return _audio_struct()
        if isinstance(feature, datasets.List):
            return datasets.List(swap(feature.feature), length=feature.length)
        if isinstance(feature, dict):
            return {k: swap(v) for k, v in feature.items()}
        return feature

    return datasets.Features({k: swap(v) for k, v in features.items()})


def choose_audio_features(features: datasets.Features, audio_feature: bool | None, what: str) -> datasets.Features:
    """``features`` as they are (``audio_feature`` True), with plain structs (False), or as the
    installed packages allow (None)."""
    if audio_feature is None:
        audio_feature = audio_codec_available()
        if not audio_feature:
            log.info("%s: torch/torchcodec not installed, so audio columns are {bytes, path} structs "
                     "(WAV bytes; read them with soundfile)", what)
    return features if audio_feature else plain_audio_features(features)
