"""One source chunk the reference's way, as the source store holds it and the renderer reads it.

:func:`resampled_chunk`: open the file afresh, seek to the chunk's first frame, read the chunk,
take the mean over channels and resample the whole chunk with soxr HQ to the output rate. The
store (:mod:`mixing.store`) builds and verifies its chunks with it; :mod:`mixing.render` uses it
and the channel mean on its decode path.
"""

from __future__ import annotations

import numpy as np

from .audio import AudioInfo, probe, read_frames, resample

__all__ = ["resampled_chunk"]

#: subtypes whose samples float32 holds exactly (others are read in float64)
_FLOAT32_EXACT = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "FLOAT", "ULAW", "ALAW"}

def _mono(data: np.ndarray, exact: bool = False) -> np.ndarray:
    """Mean over the channels of ``(frames, channels)``: the same numbers as ``data.mean(axis=1)``
    (for two channels bit for bit), an order of magnitude faster than numpy's strided reduction.
    ``exact``: sum float32 channels in float64 (the mean of float32 values is not always a
    float32; soxr rounds its input to float32 anyway, so only the no-resampling path needs it)."""
    c = data.shape[1]
    if c == 1:
        return data[:, 0]
    out = data[:, 0].astype(np.float64) if exact else data[:, 0].copy()
    out += data[:, 1]
    for k in range(2, c):
        out += data[:, k]
    out /= c
    return out


def resampled_chunk(local: str, start: int, stop: int, sample_rate: int, info: AudioInfo | None = None) -> np.ndarray:
    """The reference's whole-chunk step, as float32 mono at ``sample_rate``: open the file afresh, seek
    to frame ``start``, read ``[start, stop)``, mean over channels, resample the whole chunk with
    soxr HQ. This is what a source store holds for each chunk. Samples of 8/16/24-bit PCM and
    float files are read as float32 (exact; see the module docstring), others as float64."""
    info = probe(local) if info is None else info
    dtype = "float32" if info.subtype in _FLOAT32_EXACT else "float64"
    data, sr = read_frames(local, start, stop, dtype)
    if sr == sample_rate:
        return _mono(data, exact=True).astype(np.float32)
    y = resample(_mono(data), sr, sample_rate)
    return y.astype(np.float32, copy=False)
