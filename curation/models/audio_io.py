"""Small audio helpers shared by the backends (numpy, soundfile, soxr only)."""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf

from mixing.audio import resample


def as_mono_float32(y: np.ndarray) -> np.ndarray:
    """A 1-D float32 copy-free view of a clip; ``(frames, channels)`` input is averaged."""
    arr = np.asarray(y)
    if arr.ndim == 2:
        arr = arr.mean(axis=1) if arr.shape[1] > 1 else arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"expected a mono clip of shape (frames,) or (frames, channels), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def to_rate(y: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Mono float32 at ``target_sr`` (soxr HQ, length ``ceil(len * target / sr)``)."""
    y = as_mono_float32(y)
    if int(sr) == int(target_sr):
        return y
    return resample(y, int(sr), int(target_sr)).astype(np.float32, copy=False)


def wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    """A complete WAV file in memory (``PCM_16`` clips at ±1; ``FLOAT`` keeps the samples)."""
    buf = io.BytesIO()
    data = as_mono_float32(y)
    if subtype.upper().startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)
    sf.write(buf, data, int(sr), format="WAV", subtype=subtype.upper())
    return buf.getvalue()


def wav_data_url(y: np.ndarray, sr: int, subtype: str = "PCM_16") -> str:
    """``data:audio/wav;base64,...`` of the clip, as OpenAI-style ``audio_url`` content takes."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(y, sr, subtype)).decode("ascii")
