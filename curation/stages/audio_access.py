"""Audio access for mining stages: item paths resolved through ``dataset_paths.json``, a clip's
frames read, read errors named."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from mixing.audio import chunk_frames, probe, read_frames, to_mono
from mixing.corpora import DatasetPaths
from mixing.errors import HiveError
from mixing.failures import UNREADABLE_AUDIO, reason_of


from .items import Item


def read_error_reason(exc: BaseException) -> str:
    """The drop reason of an error met reading an item's audio, in the vocabulary every command
    shares (:func:`mixing.failures.reason_of`); any other read error (soundfile's
    ``RuntimeError``, an ``OSError``) is ``unreadable_audio``."""
    return reason_of(exc, default=UNREADABLE_AUDIO)


class AudioAccess:
    """Resolves item paths (``<prefix>/<rel>`` through ``dataset_paths.json``, else as a local
    path) and reads a clip's frames."""

    def __init__(self, dataset_paths: str | DatasetPaths | None = None):
        self.paths = None if dataset_paths is None else DatasetPaths.coerce(dataset_paths)

    def resolve(self, path: str) -> Path:
        if self.paths is not None and not Path(path).is_absolute():
            return self.paths.resolve(path)
        return Path(path)

    def read(self, item: Item, mono: bool = True, dtype: str = "float32") -> tuple[np.ndarray, int]:
        """The item's frames (mono 1-D, or ``(frames, channels)``) and the file's rate."""
        local = self.resolve(item.path)
        info = probe(local)
        end = item.chunk_end_second if item.chunk_end_second is not None else info.frames / info.samplerate
        start, stop = chunk_frames(item.chunk_start_second, end, info.samplerate, info.frames, item.path)
        data, sr = read_frames(local, start, stop, dtype=dtype)
        if mono:
            data = np.ascontiguousarray(to_mono(data), dtype=dtype)
        return data, sr


AUDIO_ERRORS = (HiveError, OSError, RuntimeError)


def frames_to_seconds(n: int, sr: int) -> float:
    """``n / sr``, nudged up so that ``int(seconds * sr) == n`` (the renderer's frame formula)."""
    x = n / sr
    while int(x * sr) < n:
        x = math.nextafter(x, math.inf)
    return x
