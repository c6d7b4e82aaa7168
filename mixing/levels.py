"""Hive's level formulas, measured with the renderer's own code.

``rms_gain = target_rms / RMS(cropped, resampled source)``, ``applied_weight = rms_gain ·
10^(snr_db/20)``, ``global_normalization_factor = final_max_amplitude / peak(Σ weighted)``.
Because the measurement uses :class:`~mixing.render.Renderer`, rendering the resulting record
gives a mixture whose peak is ``final_max_amplitude`` and per-source RMS (before the global
factor) ``target_rms · 10^(snr_db/20)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metadata import MixtureRecord
from .render import Renderer

TARGET_RMS = 0.1
FINAL_MAX_AMPLITUDE = 0.95
#: a crop whose RMS is below this (about -60 dBFS) counts as silent
SILENCE_RMS = 1e-3


@dataclass
class LevelResult:
    record: MixtureRecord | None
    reason: str | None = None  # "silent_source" | "silent_mixture" when record is None
    source_index: int | None = None


def apply_levels(draft: MixtureRecord, snr_db: list[float], renderer: Renderer, *,
                 target_rms: float = TARGET_RMS, final_max_amplitude: float = FINAL_MAX_AMPLITUDE,
                 silence_rms: float = SILENCE_RMS) -> LevelResult:
    """Fill ``rms_gain``, ``snr_db``, ``applied_weight`` and the global factor of ``draft``.

    ``draft`` must have its paths, chunks and crops set; its level fields are ignored. The
    renderer must render at the record's own rate (``sample_rate=None``).
    """
    if renderer.sample_rate not in (None, draft.sample_rate):
        raise ValueError("levels must be measured at the record's own sample rate")
    sr = draft.sample_rate
    T = int(draft.target_duration * sr)
    total = np.zeros(T, dtype=np.float64)
    sources = []
    for i, (src, snr) in enumerate(zip(draft.sources, snr_db, strict=True)):
        seg = renderer.source_segment(src, sr, T)
        rms = float(np.sqrt(np.mean(seg * seg)))
        if not rms >= silence_rms:
            return LevelResult(None, "silent_source", i)
        gain = target_rms / rms
        weight = gain * 10.0 ** (snr / 20.0)
        total += seg * weight
        sources.append(src.replace(rms_gain=gain, snr_db=float(snr), applied_weight=weight))
    peak = float(np.max(np.abs(total)))
    if not peak > 0:
        return LevelResult(None, "silent_mixture")
    rec = draft.replace(sources=tuple(sources), global_normalization_factor=final_max_amplitude / peak,
                        final_max_amplitude=final_max_amplitude)
    return LevelResult(rec)
