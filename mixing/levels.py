"""Hive's level formulas, measured with the renderer's own code.

``rms_gain = target_rms / RMS(cropped, resampled source)``, ``applied_weight = rms_gain ·
10^(snr_db/20)``, ``global_normalization_factor = final_max_amplitude / peak(Σ weighted)``.
Because the measurement uses :class:`~mixing.render.Renderer`, rendering the resulting record
gives a mixture whose peak is ``final_max_amplitude`` and per-source RMS (before the global
factor) ``target_rms · 10^(snr_db/20)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

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
    segments = (renderer.source_segment(src, sr, T) for src in draft.sources)  # read as measured
    return measure_levels(draft, snr_db, segments, target_rms=target_rms, final_max_amplitude=final_max_amplitude,
                          silence_rms=silence_rms)


def measure_levels(draft: MixtureRecord, snr_db: list[float], segments: Iterable[np.ndarray], *,
                   target_rms: float = TARGET_RMS, final_max_amplitude: float = FINAL_MAX_AMPLITUDE,
                   silence_rms: float = SILENCE_RMS, work: np.ndarray | None = None) -> LevelResult:
    """The level formulas on the sources' unweighted crops (float64, or float32 read from a
    source store: the arithmetic is float64 either way, so both give the same record).
    ``work``: a float64 ``(3, T)`` scratch array to reuse (fresh memory costs page faults)."""
    T = int(draft.target_duration * draft.sample_rate)
    if work is None or work.shape != (3, T) or work.dtype != np.float64:
        work = np.empty((3, T), dtype=np.float64)
    total = work[0]  # sum of the weighted sources
    x = work[1]  # one source in float64 (converted once: numpy's mixed-type ufunc loops are
    tmp = work[2]  # slower than a copy plus float64 loops)
    sources = []
    for i, (src, snr, seg) in enumerate(zip(draft.sources, snr_db, segments, strict=True)):
        np.copyto(x, seg)
        np.multiply(x, x, out=tmp)
        rms = float(np.sqrt(tmp.mean()))
        if not rms >= silence_rms:
            return LevelResult(None, "silent_source", i)
        gain = target_rms / rms
        weight = gain * 10.0 ** (snr / 20.0)
        if i == 0:
            np.multiply(x, weight, out=total)
        else:
            x *= weight
            total += x
        sources.append(src.replace(rms_gain=gain, snr_db=float(snr), applied_weight=weight))
    peak = max(float(total.max()), -float(total.min())) if T else 0.0
    if not peak > 0:
        return LevelResult(None, "silent_mixture")
    rec = draft.replace(sources=tuple(sources), global_normalization_factor=final_max_amplitude / peak,
                        final_max_amplitude=final_max_amplitude)
    return LevelResult(rec)
