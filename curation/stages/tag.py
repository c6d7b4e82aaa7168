"""Stage 4, ``tag``: an AudioSet tagger assigns the label.

Each clip is reduced to one channel and resampled to the tagger's own rate
(``tagger.sample_rate``: 16 kHz for the zipformer tagger) before tagging. The channel is the
file's first one by default, as the reference script (``04_audioset_label_audiotag.py``, which
tags ``wave[0]``) does; ``--channels mean`` tags the mean over channels instead. The top-k classes with their scores are recorded; the
best becomes ``label``/``label_id`` (the weak label is kept in the provenance). With
``threshold``, clips whose best score is below it are dropped as ``low_confidence``. A tagger
call that fails is retried clip by clip; a clip that still fails is dropped as ``tagger_failed``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from mixing import numbers
from mixing.audio import resample

from .base import AUDIO_ERRORS, Drop, Item, Result, Stage, StageError, load_backend, opt, read_error_reason

log = logging.getLogger(__name__)

CHANNEL_MODES = ("first", "mean")


def one_channel(data: np.ndarray, mode: str) -> np.ndarray:
    """``(frames, channels)`` or ``(frames,)`` to one channel: the first one, or the mean."""
    if data.ndim == 1:
        return data
    if mode == "first" or data.shape[1] == 1:
        return data[:, 0]
    if mode == "mean":
        return data.mean(axis=1)
    raise StageError(f"--channels is {mode!r}; expected one of {', '.join(CHANNEL_MODES)}")


@dataclass
class TagStage(Stage):
    name = "tag"
    description = "label clips with an AudioSet tagger (top-k with scores recorded)"
    default_batch_size = 16

    tagger: str | None = opt(None, "tagger backend: NAME[:key=value,...], e.g. "
                             "sherpa-onnx:model=/m/model.onnx,labels=/m/labels.csv or ast:path=/local/ast",
                             required=True)
    top_k: int = opt(5, "classes recorded per clip", type=numbers.COUNT)
    channels: str = opt("first", "first (default, the reference): tag the first channel of a "
                        "multichannel file; mean: the mean over channels", choices=CHANNEL_MODES)
    threshold: float | None = opt(None, "drop clips whose best score is below this as 'low_confidence'",
                                  type=numbers.FINITE)

    def setup(self) -> None:
        if not self.tagger:
            raise StageError("the tag stage needs --tagger NAME[:options]")
        if self.channels not in CHANNEL_MODES:
            raise StageError(f"--channels is {self.channels!r}; expected one of {', '.join(CHANNEL_MODES)}")
        if self.top_k < 1:
            raise StageError(f"--top-k is {self.top_k}; expected at least 1")
        self._tagger = load_backend("tagger", self.tagger, self.device)
        rate = getattr(self._tagger, "sample_rate", None)
        if not isinstance(rate, int) or rate <= 0:
            raise StageError(f"tagger {self._tagger.model_id} has sample_rate={rate!r}; expected a positive int")

    def models(self) -> dict:
        t = getattr(self, "_tagger", None)
        return {"tagger": {"spec": self.tagger, "model_id": getattr(t, "model_id", None),
                           "sample_rate": getattr(t, "sample_rate", None)}}

    def thresholds(self) -> dict:
        return {"threshold": self.threshold, "top_k": self.top_k, "channels": self.channels}

    def _tag(self, clips: list[np.ndarray]) -> list[list | str]:
        """Tags per clip, or an error string; a failing batch is retried clip by clip."""
        def checked(res, n):
            if not isinstance(res, (list, tuple)) or len(res) != n:
                raise StageError(f"tagger returned {type(res).__name__} for {n} clips")
            return list(res)
        try:
            return checked(self._tagger.tag(clips, self.top_k), len(clips))
        except Exception as exc:  # noqa: BLE001 - recorded per clip below
            if len(clips) == 1:
                return [f"{type(exc).__name__}: {exc}"[:300]]
            log.warning("tagger batch of %d failed (%s); tagging clip by clip", len(clips), exc)
        out: list[list | str] = []
        for clip in clips:
            try:
                out.extend(checked(self._tagger.tag([clip], self.top_k), 1))
            except Exception as exc:  # noqa: BLE001
                out.append(f"{type(exc).__name__}: {exc}"[:300])
        return out

    def process_batch(self, items: list[Item]) -> list[Result]:
        rate = self._tagger.sample_rate
        results: list[Result] = [[] for _ in items]
        clips, where = [], []
        for i, item in enumerate(items):
            try:
                y, sr = self.audio.read(item, mono=False)
            except AUDIO_ERRORS as exc:
                results[i] = [Drop.of(item, read_error_reason(exc), str(exc))]
                continue
            y = np.ascontiguousarray(one_channel(y, self.channels), dtype=np.float32)
            clips.append(np.ascontiguousarray(resample(y, sr, rate), dtype=np.float32))
            where.append(i)
        tags = self._tag(clips) if clips else []
        for i, found in zip(where, tags):
            item = items[i]
            if isinstance(found, str):
                results[i] = [Drop.of(item, "tagger_failed", found)]
                continue
            try:
                top = [(str(n), str(m), float(s)) for n, m, s in list(found)[: self.top_k]]
            except (TypeError, ValueError) as exc:
                results[i] = [Drop.of(item, "tagger_failed", f"malformed tags {found!r:.200}: {exc}")]
                continue
            record = {"tagger": self._tagger.model_id, "sample_rate": rate, "channels": self.channels,
                      "top_k": [[n, m, round(s, 6)] for n, m, s in top],
                      "source_label": item.label, "source_label_id": item.label_id}
            if not top:
                results[i] = [Drop.of(item, "no_tag", "the tagger returned no class", tag=record)]
                continue
            name, mid, score = top[0]
            if self.threshold is not None and not (math.isfinite(score) and score >= self.threshold):
                results[i] = [Drop.of(item, "low_confidence", f"best score {score:.4g} for {name!r} < "
                                      f"{self.threshold:g}", tag=record)]
                continue
            out = item.replace(label=name, label_id=mid)
            out.provenance["tag"] = record
            results[i] = [out]
        return results
