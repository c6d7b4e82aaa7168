"""Browser-playable WAV files and log-magnitude spectrogram PNGs for ``hive inspect``.

WAV: 16-bit PCM (every browser plays it; half the size of float). A signal whose peak exceeds
1.0 would clip in PCM, so it is written as 32-bit float WAV instead (lossless; Chromium plays it)
and the page says so. Both are byte-identical run to run (no PEAK chunk, no timestamp).

Spectrogram: magnitude of a Hann-windowed STFT in dB relative to full scale (a full-scale sine
reads about 0 dB), drawn on the matplotlib Agg canvas (no pyplot global state), with labelled
axes and a colour bar. One mixture's mix and stems share a colour scale so they compare.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from mixing.plotting import literal_text, new_figure
from mixing.resume import atomic_write_bytes
from mixing.shards import float_wav_bytes

N_FFT = 1024
HOP = 256
_BLOCK_FRAMES = 4096
#: spectrogram columns drawn at most (the figure is 800 px wide; matplotlib copies what it draws
#: several times, so a 10-minute clip's 112 000 frames took 4 GB)
MAX_DRAWN_FRAMES = 2048
#: dynamic range shown below the loudest bin of a mixture
DYNAMIC_RANGE_DB = 80.0
_PNG_METADATA = {"Software": None}


@dataclass(frozen=True)
class WavInfo:
    encoding: str  # "PCM_16" or "FLOAT"
    peak: float
    rms_dbfs: float
    bytes: int


def write_wav(x: np.ndarray, sample_rate: int, path: str | os.PathLike) -> WavInfo:
    """Mono WAV, 16-bit PCM unless the peak exceeds 1.0 (then 32-bit float)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    rms_dbfs = 20.0 * np.log10(rms) if rms > 0 else float("-inf")
    if peak > 1.0:
        data, encoding = float_wav_bytes(x, sample_rate), "FLOAT"
    else:
        buf = io.BytesIO()
        sf.write(buf, x, sample_rate, format="WAV", subtype="PCM_16")
        data, encoding = buf.getvalue(), "PCM_16"
    atomic_write_bytes(path, data)
    return WavInfo(encoding, peak, float(rms_dbfs), len(data))


def stft_db(x: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """``(n_fft // 2 + 1, frames)`` magnitude in dB re full scale (floor -200 dB)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    window = np.hanning(n_fft)
    frames = 1 + (len(x) - n_fft) // hop
    out = np.empty((n_fft // 2 + 1, frames))
    view = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]  # no copy
    scale = 2.0 / window.sum()  # a full-scale sine -> 1.0
    for f0 in range(0, frames, _BLOCK_FRAMES):  # blocks: memory is the output, not 4 copies of it
        spec = np.abs(np.fft.rfft(view[f0:f0 + _BLOCK_FRAMES] * window, axis=1)).T
        spec *= scale
        out[:, f0:f0 + spec.shape[1]] = 20.0 * np.log10(np.maximum(spec, 1e-10))
    return out


def _figure(width: float, height: float):
    return new_figure(width, height, 'drawing spectrograms')


@literal_text
def write_spectrogram(db: np.ndarray, sample_rate: int, path: str | os.PathLike, *, title: str,
                      vmax: float, hop: int = HOP) -> Path:
    """Draw ``db`` (from :func:`stft_db`) with time and frequency axes and a dB colour bar."""
    fig = _figure(8.0, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    seconds = db.shape[1] * hop / sample_rate
    if db.shape[1] > MAX_DRAWN_FRAMES:  # far more columns than pixels: keep each pixel's loudest frame
        pool = -(-db.shape[1] // MAX_DRAWN_FRAMES)
        pad = -db.shape[1] % pool
        db = np.pad(db, ((0, 0), (0, pad)), constant_values=-np.inf) if pad else db
        db = db.reshape(db.shape[0], -1, pool).max(axis=2)
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(0.0, seconds, 0.0, sample_rate / 2000.0),
                      vmin=vmax - DYNAMIC_RANGE_DB, vmax=vmax)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="dBFS", pad=0.01)
    fig.tight_layout()
    out = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=_PNG_METADATA)
    atomic_write_bytes(out, buf.getvalue())
    return out
