"""AudioSet tagger on sherpa-onnx ``AudioTagging`` (zipformer ONNX model + labels CSV).

The zipformer audio-tagging models of sherpa-onnx (e.g.
``sherpa-onnx-zipformer-audio-tagging-2024-04-09``) compute 80-bin fbank features at 16 kHz, so
this tagger declares ``sample_rate = 16000`` and the stage resamples clips to it before calling
:meth:`SherpaTagger.tag`. (The reference script fed 48 kHz audio to the same model; a clip is
checked here to be 1-D float audio, and the rate handed to sherpa-onnx is always 16 kHz.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from curation.models.audio_io import as_mono_float32
from curation.models.labels import LabelTable, read_labels_csv
from curation.models.spec import BackendSpecError, factory, require

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class SherpaTagger:
    """``Tagger`` backed by ``sherpa_onnx.AudioTagging``.

    Options: ``model`` (the zipformer ``model.onnx`` or ``model.int8.onnx``), ``labels``
    (``class_labels_indices.csv``), ``num_threads``, ``provider`` (``cpu``, ``cuda``, ...).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, model: str, labels: str, num_threads: int = 1, provider: str = "cpu"):
        if num_threads <= 0:
            raise BackendSpecError(f"sherpa tagger: num_threads={num_threads} must be > 0")
        self.model_path = str(model)
        self.labels_path = str(labels)
        self.num_threads = int(num_threads)
        self.provider = provider
        self.model_id = self.model_path
        self._tagger = None
        self._labels: LabelTable | None = None

    @property
    def provenance(self) -> dict[str, Any]:
        return {"backend": "sherpa-onnx", "model": self.model_path, "labels": self.labels_path,
                "sample_rate": self.sample_rate}

    @property
    def labels(self) -> LabelTable:
        if self._labels is None:
            self._labels = read_labels_csv(self.labels_path)
        return self._labels

    @property
    def model(self):
        """The ``sherpa_onnx.AudioTagging`` object (built on first use)."""
        if self._tagger is None:
            sherpa_onnx = require("sherpa_onnx", "sherpa tagger", "sherpa-onnx")
            if not Path(self.model_path).is_file():
                raise FileNotFoundError(
                    f"sherpa tagger: model file {self.model_path!r} does not exist; download a "
                    "zipformer audio-tagging model (sherpa-onnx-zipformer-audio-tagging-*) and "
                    "pass model=.../model.onnx")
            labels = self.labels  # validates the CSV before sherpa-onnx reads it
            config = sherpa_onnx.AudioTaggingConfig(
                model=sherpa_onnx.AudioTaggingModelConfig(
                    zipformer=sherpa_onnx.OfflineZipformerAudioTaggingModelConfig(
                        model=self.model_path),
                    num_threads=self.num_threads, provider=self.provider),
                labels=self.labels_path, top_k=min(5, len(labels)))
            if hasattr(config, "validate") and not config.validate():
                raise ValueError(f"sherpa tagger: sherpa-onnx rejects the config for model "
                                 f"{self.model_path} and labels {self.labels_path}")
            self._tagger = sherpa_onnx.AudioTagging(config)
        return self._tagger

    def tag(self, clips: list[np.ndarray], top_k: int) -> list[list[tuple[str, str, float]]]:
        """``(display name, mid, probability)`` best first, ``top_k`` per clip (16 kHz clips)."""
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {top_k}")
        tagger = self.model
        labels = self.labels
        k = min(int(top_k), len(labels))
        results = []
        for clip in clips:
            y = as_mono_float32(clip)
            stream = tagger.create_stream()
            stream.accept_waveform(self.sample_rate, y)
            events = tagger.compute(stream, top_k=k)
            tags = [(str(e.name), labels.mid_of(int(e.index), str(e.name)), float(e.prob))
                    for e in events]
            tags.sort(key=lambda t: -t[2])  # sherpa-onnx returns them best first; keep it so
            results.append(tags)
        return results


#: Factory for the stage runner's loader (``curation.stages.base.load_backend``).
create_tagger = factory(SherpaTagger, "sherpa", ignore=("device",))
