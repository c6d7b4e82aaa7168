"""The reference release's render formula written plainly: the "straightforward implementation"
the benchmarks compare against (per mixture, per source, no caching, nothing shared)."""

from __future__ import annotations

import numpy as np


def reference_stems(rec, paths, sample_rate: int | None = None) -> np.ndarray:
    """Float64 ``(n, T)`` consistent stems of ``rec`` (weight x global factor; they sum to the mix):
    per source, read the whole chunk (``sf.read`` from its first frame), mean over channels,
    ``librosa.resample(soxr_hq)`` to the output rate, crop, zero pad. ``paths``: a
    :class:`mixing.corpora.DatasetPaths`; ``sample_rate``: the output rate (default the record's)."""
    import librosa
    import soundfile as sf

    sr_out = sample_rate or rec.sample_rate
    T = int(rec.target_duration * sr_out)
    stems = []
    for src in rec.sources:
        local = str(paths.resolve(src.path))
        info = sf.info(local)
        sr = info.samplerate
        a, b = int(src.chunk_start_second * sr), int(src.chunk_end_second * sr)
        b = min(b, info.frames) if b - info.frames <= 10 else b
        y, _ = sf.read(local, start=a, stop=b, dtype="float64", always_2d=True)
        y = librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=sr_out, res_type="soxr_hq")
        c0, c1 = int(src.crop_start_second * sr_out), int(src.crop_end_second * sr_out)
        y = np.pad(y, (0, max(0, c1 - len(y))))[c0:c1]
        y = np.pad(y, (0, max(0, T - len(y))))[:T]
        stems.append(y * src.applied_weight * rec.global_normalization_factor)
    return np.stack(stems)
