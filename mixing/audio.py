"""Audio reading and resampling with the reference release's semantics.

* frames ``[int(chunk_start*sr), int(chunk_end*sr))`` at the file's native rate; a chunk may end
  at most :data:`EOF_TOLERANCE_FRAMES` frames past the end of the file (clamped), beyond that it
  is an error;
* mean over channels;
* resampling equal to ``librosa.resample(y, orig_sr, target_sr, res_type="soxr_hq")`` (librosa
  0.11's default): soxr "HQ", output length ``ceil(len(y) * target_sr / orig_sr)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import ChunkOutOfRangeError, MissingSourceAudioError, UnreadableAudioError

EOF_TOLERANCE_FRAMES = 10
SOXR_QUALITY = "HQ"


@dataclass(frozen=True)
class AudioInfo:
    samplerate: int
    frames: int
    channels: int
    format: str = ""
    subtype: str = ""

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate


def probe(path: str | Path) -> AudioInfo:
    """Header of an audio file; typed errors for missing and unreadable files."""
    try:
        info = sf.info(str(path))
    except FileNotFoundError:
        raise MissingSourceAudioError(f"audio file {path} does not exist") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        if not Path(path).exists():
            raise MissingSourceAudioError(f"audio file {path} does not exist") from None
        raise UnreadableAudioError(f"audio file {path} cannot be opened by libsndfile ({exc}); "
                                   "re-download or convert it to WAV/FLAC") from exc
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels), info.format, info.subtype)


def chunk_frames(chunk_start: float, chunk_end: float, sr: int, total: int,
                 path: str | Path = "") -> tuple[int, int]:
    """Frame range of a chunk with the reference's clamping (≤ 10 frames past EOF tolerated)."""
    start = int(chunk_start * sr)
    stop = int(chunk_end * sr)
    if stop > total:
        if stop - total <= EOF_TOLERANCE_FRAMES:
            stop = total
        else:
            raise ChunkOutOfRangeError(
                f"chunk [{chunk_start}, {chunk_end}) s of {path} ends at frame {stop}, "
                f"{stop - total} frames past the end of the file ({total} frames at {sr} Hz); "
                f"at most {EOF_TOLERANCE_FRAMES} are tolerated. The local file differs from the one "
                "the metadata was made from: re-download it")
    start = max(0, min(start, total))
    return start, stop


def read_frames(path: str | Path, start: int, stop: int, dtype: str = "float64") -> tuple[np.ndarray, int]:
    """Frames ``[start, stop)`` as ``(frames, channels)`` and the native rate."""
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            f.seek(start)
            data = f.read(max(0, stop - start), dtype=dtype, always_2d=True)
    except FileNotFoundError:
        raise MissingSourceAudioError(f"audio file {path} does not exist") from None
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UnreadableAudioError(f"audio file {path} cannot be decoded ({exc}); re-download it") from exc
    if data.shape[0] != max(0, stop - start):
        raise UnreadableAudioError(
            f"audio file {path}: asked for frames [{start}, {stop}) but got {data.shape[0]}; the file is "
            "truncated or its header lies about its length: re-download it")
    return data, sr


def to_mono(data: np.ndarray) -> np.ndarray:
    """Mean over channels of a ``(frames, channels)`` array (no copy for mono)."""
    if data.ndim == 1:
        return data
    if data.shape[1] == 1:
        return data[:, 0]
    return data.mean(axis=1)


def resampled_length(n: int, orig_sr: int, target_sr: int) -> int:
    return int(math.ceil(n * float(target_sr) / orig_sr))


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=, target_sr=, res_type="soxr_hq")`` for 1-D ``y``."""
    if orig_sr == target_sr:
        return y
    out = soxr.resample(y, orig_sr, target_sr, quality=SOXR_QUALITY)
    n = resampled_length(len(y), orig_sr, target_sr)
    if len(out) > n:
        out = out[:n]
    elif len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    return np.asarray(out, dtype=y.dtype)
