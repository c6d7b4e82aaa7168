"""The render formula of the reference release, fast.

Per source *i* (``sr`` = the file's native rate, ``SR`` = the output rate):
read frames ``[int(chunk_start*sr), int(chunk_end*sr))`` (≤ 10 frames past EOF tolerated), mean
over channels, resample to ``SR`` (soxr HQ, as ``librosa.resample`` does), zero-pad to
``int(crop_end*SR)``, take ``[int(crop_start*SR), int(crop_end*SR))``, pad/trim to
``int(target_duration*SR)``, multiply by ``applied_weight``; mix = Σ sources ×
``global_normalization_factor``.

Speed comes from reading only the frames the crop needs plus a resampler margin, with the
window start aligned so that the resampled grid is the whole-chunk grid (the window's output is
then the whole-chunk output up to soxr's own float rounding). Where the window reaches the chunk
end it stops exactly there, reproducing the whole-chunk end effect.

Reads are float32 where that is exact: libsndfile's float32 of 8/16/24-bit PCM and float WAV is
the float64 value, a two-channel mean rounds the same way in either type, and soxr "HQ" works in
float32 internally (its output for a float64 input equals its output for that input rounded to
float32). So the fast path gives the reference's numbers while moving half the bytes. Files stored
as 32-bit PCM or double are read in float64.

Stem modes: ``consistent`` (default) stems carry the global factor and sum to the mixture;
``reference`` stems are written as the reference release wrote them (without the factor).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .audio import AudioInfo, chunk_frames, probe, read_frames, resample, resampled_length, to_mono
from .corpora import DatasetPaths
from .metadata import MixtureRecord, SourceRecord

StemMode = Literal["consistent", "reference"]
STEM_MODES = ("consistent", "reference")
#: input frames read on each side of the needed span (soxr HQ needs < 128)
RESAMPLER_MARGIN = 512
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


@dataclass
class RenderedMixture:
    record: MixtureRecord
    mix: np.ndarray  # (T,) float32
    stems: np.ndarray  # (n, T) float32
    sample_rate: int
    stem_mode: str
    #: factor the stems carry relative to weighted sources (gnf in consistent mode, else 1)
    stem_scale: float


def crop_span(src: SourceRecord, out_sr: int, num_frames: int) -> tuple[int, int]:
    """Output-sample span ``[c0, c0 + used)`` of the (padded) resampled chunk that lands in the
    output, before zero padding to ``num_frames``."""
    c0 = int(src.crop_start_second * out_sr)
    c1 = int(src.crop_end_second * out_sr)
    return c0, max(c0, min(c1, c0 + num_frames))


def segment_from_chunk(chunk: np.ndarray, src: SourceRecord, out_sr: int, num_frames: int) -> np.ndarray:
    """The straightforward crop of a whole resampled chunk (reference semantics)."""
    c0 = int(src.crop_start_second * out_sr)
    c1 = int(src.crop_end_second * out_sr)
    if c1 > len(chunk):
        chunk = np.pad(chunk, (0, c1 - len(chunk)))
    seg = chunk[c0:c1]
    if len(seg) < num_frames:
        seg = np.pad(seg, (0, num_frames - len(seg)))
    return seg[:num_frames]


class Renderer:
    """Renders mixture records against local corpora. One instance per worker (not thread-safe).

    ``method="window"`` reads only what the crop needs (fast); ``method="full"`` reads and
    resamples the whole chunk like the reference script (slow, for comparison).
    """

    def __init__(self, dataset_paths: DatasetPaths | dict | str, *, stems: StemMode = "consistent",
                 sample_rate: int | None = None, method: Literal["window", "full"] = "window",
                 info_cache_size: int = 65536):
        if stems not in STEM_MODES:
            raise ValueError(f"stem mode {stems!r} is not one of {STEM_MODES}")
        if method not in ("window", "full"):
            raise ValueError(f"method {method!r} is not 'window' or 'full'")
        if sample_rate is not None and (not isinstance(sample_rate, int) or sample_rate <= 0):
            raise ValueError(f"sample_rate is {sample_rate!r}; expected a positive integer (Hz) or None")
        self.paths = DatasetPaths.coerce(dataset_paths)
        self.stems = stems
        self.sample_rate = sample_rate
        self.method = method
        self._info: OrderedDict[str, AudioInfo] = OrderedDict()
        self._info_cache_size = info_cache_size

    # ---- files -------------------------------------------------------------------------------
    def info(self, local: str) -> AudioInfo:
        info = self._info.get(local)
        if info is None:
            info = probe(local)
            self._info[local] = info
            if len(self._info) > self._info_cache_size:
                self._info.popitem(last=False)
        return info

    # ---- one source --------------------------------------------------------------------------
    def source_segment(self, src: SourceRecord, out_sr: int, num_frames: int,
                       out: np.ndarray | None = None) -> np.ndarray:
        """Unweighted, cropped, padded source at ``out_sr`` (float64, length ``num_frames``),
        written into ``out`` when given (a float64 array of that length)."""
        local = str(self.paths.resolve(src.path))
        info = self.info(local)
        sr = info.samplerate
        start, stop = chunk_frames(src.chunk_start_second, src.chunk_end_second, sr, info.frames, local)
        if self.method == "full":
            data, _ = read_frames(local, start, stop)
            chunk = resample(to_mono(data), sr, out_sr)
            seg = segment_from_chunk(chunk, src, out_sr, num_frames)
            if out is None:
                return seg
            out[:] = seg
            return out
        dtype = "float32" if info.subtype in _FLOAT32_EXACT else "float64"
        n = stop - start
        length = resampled_length(n, sr, out_sr)
        c0, c_end = crop_span(src, out_sr, num_frames)
        if out is None:
            out = np.empty(num_frames, dtype=np.float64)
        e = min(c_end, length)
        if e <= c0:
            out[:] = 0.0
            return out  # the crop lies entirely in the zero padding
        if sr == out_sr:
            data, _ = read_frames(local, start + c0, start + e, dtype)
            out[: e - c0] = _mono(data, exact=True)
            out[e - c0:] = 0.0
            return out
        g = math.gcd(sr, out_sr)
        step_in, step_out = sr // g, out_sr // g  # grid period in input / output samples
        a = (int(c0 * sr / out_sr) - RESAMPLER_MARGIN) // step_in * step_in
        a = max(0, a)
        b = min(n, int(math.ceil(e * sr / out_sr)) + RESAMPLER_MARGIN)
        data, _ = read_frames(local, start + a, start + b, dtype)
        y = resample(_mono(data), sr, out_sr)
        offset = a // step_in * step_out
        lo, hi = c0 - offset, e - offset
        got = y[lo:hi]
        out[: len(got)] = got
        out[len(got):] = 0.0
        return out

    # ---- one mixture -------------------------------------------------------------------------
    def weighted_sources(self, rec: MixtureRecord) -> tuple[np.ndarray, int]:
        """``(n, T)`` float64 weighted sources (before the global factor) and the output rate."""
        out_sr = self.sample_rate or rec.sample_rate
        T = int(rec.target_duration * out_sr)
        arr = np.empty((rec.num_sources, T), dtype=np.float64)
        for i, src in enumerate(rec.sources):
            try:
                self.source_segment(src, out_sr, T, out=arr[i])
            except Exception as exc:  # tag which source failed, then let the caller classify it
                exc.source_index = i  # type: ignore[attr-defined]
                exc.source_path = src.path  # type: ignore[attr-defined]
                raise
            arr[i] *= src.applied_weight
        return arr, out_sr

    def render(self, rec: MixtureRecord) -> RenderedMixture:
        weighted, out_sr = self.weighted_sources(rec)
        gnf = rec.global_normalization_factor
        if self.stems == "consistent":
            weighted *= gnf  # in place: the stems carry the factor
            mix = weighted.sum(axis=0)
            scale = gnf
        else:
            mix = weighted.sum(axis=0)
            mix *= gnf
            scale = 1.0
        return RenderedMixture(rec, mix.astype(np.float32), weighted.astype(np.float32), out_sr,
                               self.stems, scale)
