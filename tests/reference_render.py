"""The reference release's render formula written plainly, independently of ``mixing.render``:
what the project's renderers (window, full, source store) are compared with."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from mixing.corpora import DatasetPaths
from mixing.metadata import MixtureRecord, SourceRecord

SR = 44100


class ReferenceRenderer:
    """The reference release's algorithm, written plainly: whole chunk read at the native rate in
    float64, ≤ 10 frames past EOF clamped, mean over channels, librosa soxr_hq resampling, pad,
    crop, pad/trim, weight. Resampled chunks are cached (same result, less time)."""

    def __init__(self, dataset_paths):
        import librosa

        self.librosa = librosa
        self.paths = DatasetPaths.coerce(dataset_paths)
        self.cache: dict[tuple[str, float, float, int], np.ndarray] = {}

    def chunk(self, src: SourceRecord, out_sr: int) -> np.ndarray:
        key = (src.path, src.chunk_start_second, src.chunk_end_second, out_sr)
        if key not in self.cache:
            local = str(self.paths.resolve(src.path))
            info = sf.info(local)
            sr = info.samplerate
            a, b = int(src.chunk_start_second * sr), int(src.chunk_end_second * sr)
            if b > info.frames:
                assert b - info.frames <= 10
                b = info.frames
            y, _ = sf.read(local, start=a, stop=b, dtype="float64", always_2d=True)
            y = y.mean(axis=1)
            if sr != out_sr:
                y = self.librosa.resample(y, orig_sr=sr, target_sr=out_sr, res_type="soxr_hq")
            self.cache[key] = y
        return self.cache[key]

    def render(self, rec: MixtureRecord, out_sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
        """(mix, stems without the global factor)."""
        T = int(rec.target_duration * out_sr)
        stems = []
        for src in rec.sources:
            y = self.chunk(src, out_sr)
            c0, c1 = int(src.crop_start_second * out_sr), int(src.crop_end_second * out_sr)
            if len(y) < c1:
                y = np.pad(y, (0, c1 - len(y)))
            seg = y[c0:c1]
            seg = np.pad(seg, (0, T - len(seg))) if len(seg) < T else seg[:T]
            stems.append(seg * src.applied_weight)
        stems_arr = np.stack(stems)
        return stems_arr.sum(axis=0) * rec.global_normalization_factor, stems_arr
