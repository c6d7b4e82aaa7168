"""AudioSet tagger on a local transformers Audio Spectrogram Transformer checkpoint.

Loads ``ASTForAudioClassification`` and ``ASTFeatureExtractor`` from a folder (e.g. a download
of ``MIT/ast-finetuned-audioset-10-10-0.4593``); scores are ``sigmoid(logits)`` (AudioSet is
multi-label); names come from the model's ``id2label`` and mids from an optional labels CSV.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from curation.models.audio_io import as_mono_float32
from curation.models.labels import LabelTable, read_labels_csv
from curation.models.lazy import LazyModel, auto_device, existing
from curation.models.registry import BackendSpecError

log = logging.getLogger(__name__)


class ASTTagger(LazyModel):
    """``Tagger`` backed by ``transformers.ASTForAudioClassification``.

    Options: ``path`` (checkpoint folder), ``labels`` (optional ``class_labels_indices.csv``
    giving each class its AudioSet mid; without it mids are empty), ``device`` (``auto``, ``cpu``,
    ``cuda:N``), ``batch_size``, ``sample_rate`` (0 = the feature extractor's, 16 kHz for AST).
    """

    backend = "ast tagger"
    requires = {"torch": "torch", "transformers": "transformers"}

    def __init__(self, path: str, labels: str = "", device: str = "auto", batch_size: int = 16,
                 sample_rate: int = 0):
        if batch_size <= 0 or sample_rate < 0:
            raise BackendSpecError("ast tagger: batch_size must be > 0 and sample_rate >= 0")
        self.path = str(path)
        self.labels_path = labels
        self.device = device
        self.batch_size = int(batch_size)
        self._rate = int(sample_rate)
        self.model_id = self.path

    @property
    def sample_rate(self) -> int:
        """The rate clips must have; read from the checkpoint's feature extractor config."""
        if self._rate:
            return self._rate
        if self._loaded is not None:
            return int(self._loaded["feature_extractor"].sampling_rate)
        import json
        cfg = Path(self.path) / "preprocessor_config.json"
        if cfg.is_file():
            self._rate = int(json.loads(cfg.read_text()).get("sampling_rate", 16000))
        else:
            self._rate = 16000
        return self._rate

    @property
    def provenance(self) -> dict[str, Any]:
        return {"backend": "ast", "path": self.path, "labels": self.labels_path or None,
                "sample_rate": self.sample_rate, "score": "sigmoid"}

    def load(self, torch, transformers) -> dict[str, Any]:
        existing(self.path, "ast tagger", "model folder",
                 "download e.g. MIT/ast-finetuned-audioset-10-10-0.4593 to a folder and pass path=DIR")
        device = auto_device(torch, self.device)
        model = transformers.ASTForAudioClassification.from_pretrained(self.path).to(device).eval()
        fe = transformers.ASTFeatureExtractor.from_pretrained(self.path)
        if self._rate and self._rate != fe.sampling_rate:
            raise BackendSpecError(f"ast tagger: sample_rate={self._rate} but the feature "
                                   f"extractor of {self.path} expects {fe.sampling_rate}")
        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        table: LabelTable | None = read_labels_csv(self.labels_path) if self.labels_path else None
        names = [id2label.get(i, f"LABEL_{i}") for i in range(model.config.num_labels)]
        mids = [table.mid_of(i, name) if table is not None else "" for i, name in enumerate(names)]
        if table is not None and sum(1 for m in mids if m) < len(names):
            log.warning("ast tagger: %d of %d classes of %s have no mid in %s",
                        sum(1 for m in mids if not m), len(names), self.path, self.labels_path)
        return {"torch": torch, "model": model, "feature_extractor": fe,
                "device": device, "names": names, "mids": mids}

    def scores(self, clips: list[np.ndarray]) -> np.ndarray:
        """``(len(clips), num_labels)`` sigmoid scores."""
        st = self.state()
        torch, fe, model = st["torch"], st["feature_extractor"], st["model"]
        out = []
        for start in range(0, len(clips), self.batch_size):
            batch = [as_mono_float32(c) for c in clips[start:start + self.batch_size]]
            feats = fe(batch, sampling_rate=fe.sampling_rate, return_tensors="pt")
            with torch.inference_mode():
                logits = model(input_values=feats["input_values"].to(st["device"])).logits
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
        if not out:
            return np.zeros((0, len(st["names"])), dtype=np.float32)
        return np.concatenate(out, axis=0)

    def tag(self, clips: list[np.ndarray], top_k: int) -> list[list[tuple[str, str, float]]]:
        """``(display name, mid, score)`` best first, ``top_k`` per clip."""
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {top_k}")
        if not clips:
            return []
        st = self.state()
        scores = self.scores(clips)
        k = min(int(top_k), scores.shape[1])
        results = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:k]
            results.append([(st["names"][i], st["mids"][i], float(row[i])) for i in order])
        return results

