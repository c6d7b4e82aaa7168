# Over 400 lines: the decode path and the store path of one Renderer must give the same samples, so they sit side by side.
"""The render formula of the reference release, fast.

Per source *i* (``sr`` = the file's native rate, ``sample_rate`` = the output rate):
read frames ``[int(chunk_start*sr), int(chunk_end*sr))`` (≤ 10 frames past EOF tolerated), mean
over channels, resample to ``sample_rate`` (soxr HQ, as ``librosa.resample`` does), zero-pad to
``int(crop_end*sample_rate)``, take ``[int(crop_start*sample_rate), int(crop_end*sample_rate))``, pad/trim to
``int(target_duration*sample_rate)``, multiply by ``applied_weight``; mix = Σ sources ×
``global_normalization_factor``.

Speed comes from reading only the frames the crop needs plus a resampler margin, with the
window start aligned so that the resampled grid is the whole-chunk grid (the window's output is
then the whole-chunk output up to soxr's own float rounding). Where the window reaches the chunk
end it stops exactly there, reproducing the whole-chunk end effect.

The window is read straight from the file only where libsndfile's seek is sample-exact (WAV-like
containers holding PCM/float, FLAC: :func:`~mixing.audio.seek_is_exact`). Ogg Vorbis, Opus, MP3
and anything unknown are decoded as the reference decodes them: the file opened afresh, seeked to
the chunk start, the whole chunk read; the window is then cut from that decoded chunk (kept in a
small per-renderer cache, since a shard often reuses a chunk). Seeking inside such a chunk would
render another signal (measured before the weight: Vorbis up to 0.3 near the end of a file,
MP3 up to 0.9 anywhere; the issue's recorded Vorbis file: 8e-4).

Reads are float32 where that is exact: libsndfile's float32 of 8/16/24-bit PCM and float WAV is
the float64 value, a two-channel mean rounds the same way in either type, and soxr "HQ" works in
float32 internally (its output for a float64 input equals its output for that input rounded to
float32). So the fast path gives the reference's numbers while moving half the bytes. Files stored
as 32-bit PCM or double are read in float64.

Stem modes: ``consistent`` (default) stems carry the global factor and sum to the mixture;
``reference`` stems are written as the reference release wrote them (without the factor).

No output is ever non-finite: a NaN or infinity in a source's crop, or a weight or global factor
that overflows float64 or the float32 output, raises :class:`~mixing.errors.NonFiniteAudioError`
(failure reason ``non_finite``) naming the source and the cause.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import numbers
from .audio import (
    AudioInfo,
    chunk_frames,
    probe,
    read_frames,
    resample,
    resampled_length,
    seek_is_exact,
    to_mono,
)
from .corpora import DatasetPaths
from .errors import (
    CropBeyondChunkError,
    MissingSourceAudioError,
    NonFiniteAudioError,
    NotInStoreError,
    StoreRateError,
    StoreStaleError,
)
from .memory_estimate import check_mixture_memory
from .metadata import MixtureRecord, SourceRecord
from .source_chunk import _FLOAT32_EXACT, _mono

StemMode = Literal["consistent", "reference"]
#: the stem modes: ``consistent`` (stems carry the global factor and sum to the mix) or ``reference``
STEM_MODES: tuple[str, ...] = ("consistent", "reference")
#: input frames read on each side of the needed span (soxr HQ needs < 128)
RESAMPLER_MARGIN = 512
#: default budget of the decoded-chunk cache (compressed formats only), bytes
CHUNK_CACHE_BYTES = 64 << 20
#: seconds a renderer trusts a source file's size/mtime before it checks them against the store again
STAT_TTL_S = 60.0


class BufferPool:
    """Output arrays for renders from the store, reused once nobody references them any more.

    A render returns views (``mix`` = row 0, ``stems`` = rows 1..n) of one ``(n + 1, T)`` float32
    array; while the caller keeps either view (or anything made from it without a copy: a torch
    tensor from ``torch.from_numpy``, a pyarrow buffer, a ``memoryview``) the array is referenced and
    never handed out again. Reusing released arrays spares the page faults of fresh memory, which
    cost more than the render itself (~200 per mixture at 44.1 kHz, 4 s: 1.6x the speed). The pool
    grows to what the caller holds at once (a DataLoader batch), at most ``max_bytes``."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._arrays: list[np.ndarray] = []

    def take(self, shape: tuple[int, int]) -> np.ndarray:
        arrays = self._arrays
        for k in range(len(arrays)):
            # references: the list, and getrefcount's own argument; anything more is a user
            if arrays[k].shape == shape and sys.getrefcount(arrays[k]) == 2:
                return arrays[k]
        out = np.empty(shape, dtype=np.float32)
        free = [k for k in range(len(arrays)) if sys.getrefcount(arrays[k]) == 2]
        for k in reversed(free):  # released arrays of other shapes make room first
            if sum(a.nbytes for a in arrays) + out.nbytes <= self.max_bytes:
                break
            del arrays[k]
        if sum(a.nbytes for a in arrays) + out.nbytes <= self.max_bytes:
            arrays.append(out)
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


def crop_span(src: SourceRecord, sample_rate: int, num_frames: int) -> tuple[int, int]:
    """Output-sample span ``[c0, c0 + used)`` of the (padded) resampled chunk that lands in the
    output, before zero padding to ``num_frames``."""
    c0 = int(src.crop_start_second * sample_rate)
    c1 = int(src.crop_end_second * sample_rate)
    return c0, max(c0, min(c1, c0 + num_frames))


def segment_from_chunk(chunk: np.ndarray, src: SourceRecord, sample_rate: int, num_frames: int) -> np.ndarray:
    """The straightforward crop of a whole resampled chunk (reference semantics)."""
    c0 = int(src.crop_start_second * sample_rate)
    c1 = int(src.crop_end_second * sample_rate)
    if c1 > len(chunk):
        chunk = np.pad(chunk, (0, c1 - len(chunk)))
    seg = chunk[c0:c1]
    if len(seg) < num_frames:
        seg = np.pad(seg, (0, num_frames - len(seg)))
    return seg[:num_frames]


class Renderer:
    """Renders mixture records against local corpora. One instance per worker (not thread-safe).
    Build it through :meth:`mixing.recipe.RenderRecipe.renderer` (the one recipe every command
    shares); the constructor is for tests and benchmarks.

    ``store`` (a :class:`mixing.store.SourceStore` or its folder): source chunks are sliced from
    the store at memory speed; a chunk the store lacks is decoded as without a store and counted
    in ``store_stats["misses"]`` (``store_only=True``: it fails as ``not_in_store``). With a store
    the output rate is the store's (``sample_rate`` must agree). With ``dataset_paths`` each
    source file's size and mtime are compared with the store's (``store_stale`` when it changed;
    checked again after :data:`STAT_TTL_S`); with ``dataset_paths=None`` the store is trusted alone
    (render without the corpora on disk).

    ``method="window"`` resamples only what the crop needs (fast), reading only that from files
    whose seek is exact and the whole chunk from the others; ``method="full"`` reads and
    resamples the whole chunk like the reference script (slow, for comparison).
    ``chunk_cache_bytes``: memory for decoded chunks of compressed files (0: no cache).
    """

    def __init__(self, dataset_paths: DatasetPaths | dict | str | None, *, stems: StemMode = "consistent",
                 sample_rate: int | None = None, method: Literal["window", "full"] = "window",
                 info_cache_size: int = 65536, chunk_cache_bytes: int = CHUNK_CACHE_BYTES,
                 store: Any = None, store_only: bool = False):
        if stems not in STEM_MODES:
            raise ValueError(f"stem mode {stems!r} is not one of {STEM_MODES}")
        if method not in ("window", "full"):
            raise ValueError(f"method {method!r} is not 'window' or 'full'")
        sample_rate = numbers.SAMPLE_RATE.check_optional(sample_rate, "sample_rate", ValueError)  # the CLI's limits
        from .store.layout import check_rate
        from .store.reader import open_store

        self.store = open_store(store)
        if self.store is None and dataset_paths is None:
            raise ValueError("dataset_paths is None and no store is given; pass dataset_paths (corpus prefix -> "
                             "local folder), a source store, or both")
        self.paths = None if dataset_paths is None else DatasetPaths.coerce(dataset_paths)
        self.store_only = bool(store_only)
        if self.store is not None:
            check_rate(self.store.root, self.store.sample_rate, sample_rate)
            sample_rate = self.store.sample_rate
        self.stems = stems
        self.sample_rate = sample_rate
        self.method = method
        #: source chunks read from the store / decoded because the store lacks them
        self.store_stats = {"hits": 0, "misses": 0}
        self._buffers = BufferPool()
        self._store_files: dict[str, tuple[float, Any]] = {}
        self._info: OrderedDict[str, AudioInfo] = OrderedDict()
        self._info_cache_size = info_cache_size
        self._chunks: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._chunk_bytes = 0
        self.chunk_cache_bytes = chunk_cache_bytes
        #: decoded-chunk cache hits / misses (compressed formats)
        self.chunk_cache_stats = {"hits": 0, "misses": 0}

    # ---- files -------------------------------------------------------------------------------
    def info(self, local: str) -> AudioInfo:
        info = self._info.get(local)
        if info is None:
            info = probe(local)
            self._info[local] = info
            if len(self._info) > self._info_cache_size:
                self._info.popitem(last=False)
        return info

    def chunk_mono(self, local: str, start: int, stop: int) -> np.ndarray:
        """Mono float64 frames ``[start, stop)`` decoded the reference's way (seek to ``start``,
        read the chunk), from the cache when this chunk was decoded before. Read-only."""
        key = (local, start, stop)
        y = self._chunks.get(key)
        if y is not None:
            self._chunks.move_to_end(key)
            self.chunk_cache_stats["hits"] += 1
            return y
        self.chunk_cache_stats["misses"] += 1
        data, _ = read_frames(local, start, stop)
        y = _mono(data)
        if y.base is not None:
            y = y.copy()  # do not keep the multichannel array alive
        y.flags.writeable = False
        if y.nbytes <= self.chunk_cache_bytes:
            self._chunks[key] = y
            self._chunk_bytes += y.nbytes
            while self._chunk_bytes > self.chunk_cache_bytes:
                _, old = self._chunks.popitem(last=False)
                self._chunk_bytes -= old.nbytes
        return y

    # ---- one source --------------------------------------------------------------------------
    def source_segment(self, src: SourceRecord, sample_rate: int, num_frames: int,
                       out: np.ndarray | None = None) -> np.ndarray:
        """Unweighted, cropped, padded source at ``sample_rate`` (float64, length ``num_frames``),
        written into ``out`` when given (a float64 array of that length)."""
        if self.store is not None:
            row = self._store_row(src, sample_rate)
            if row is not None:
                if out is None:
                    out = np.empty(num_frames, dtype=np.float64)
                c0, e = self._store_span(src, row, sample_rate, num_frames)
                out[: e - c0] = self.store.read(row, c0, e)
                out[e - c0:] = 0.0
                return out
        return self._decode_segment(src, sample_rate, num_frames, out)

    def _decode_segment(self, src: SourceRecord, sample_rate: int, num_frames: int,
                        out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`source_segment` decoded from the source file (no store)."""
        local = str(self.paths.resolve(src.path))
        info = self.info(local)
        sr = info.samplerate
        start, stop = chunk_frames(src.chunk_start_second, src.chunk_end_second, sr, info.frames, local)
        if self.method == "full":
            data, _ = read_frames(local, start, stop)
            chunk = resample(to_mono(data), sr, sample_rate)
            seg = segment_from_chunk(chunk, src, sample_rate, num_frames)
            if out is None:
                return seg
            out[:] = seg
            return out
        exact = seek_is_exact(info)
        dtype = "float32" if info.subtype in _FLOAT32_EXACT else "float64"
        n = stop - start
        length = resampled_length(n, sr, sample_rate)
        c0, c_end = crop_span(src, sample_rate, num_frames)
        if out is None:
            out = np.empty(num_frames, dtype=np.float64)
        e = min(c_end, length)
        if e <= c0:
            if c0 >= length:  # wholly beyond the chunk: an all-zero stem is a record error
                raise CropBeyondChunkError.of(src, length, sample_rate)
            out[:] = 0.0
            return out  # the crop lies entirely in the zero padding

        def mono(a: int, b: int, exact_mean: bool = False) -> np.ndarray:
            """Mono frames ``[a, b)`` of the chunk (offsets from the chunk start)."""
            if exact:
                data, _ = read_frames(local, start + a, start + b, dtype)
                return _mono(data, exact=exact_mean)
            return self.chunk_mono(local, start, stop)[a:b]

        if sr == sample_rate:
            out[: e - c0] = mono(c0, e, exact_mean=True)
            out[e - c0:] = 0.0
            return out
        g = math.gcd(sr, sample_rate)
        step_in, step_out = sr // g, sample_rate // g  # grid period in input / output samples
        a = (int(c0 * sr / sample_rate) - RESAMPLER_MARGIN) // step_in * step_in
        a = max(0, a)
        b = min(n, int(math.ceil(e * sr / sample_rate)) + RESAMPLER_MARGIN)
        y = resample(mono(a, b), sr, sample_rate)
        offset = a // step_in * step_out
        lo, hi = c0 - offset, e - offset
        got = y[lo:hi]
        out[: len(got)] = got
        out[len(got):] = 0.0
        return out

    # ---- the source store ----------------------------------------------------------------------
    def _store_version(self, path: str) -> Any:
        """The store's version of ``path`` matching the file on disk (None: not in the store)."""
        store = self.store
        if self.paths is None:  # the store alone: its newest version of the file
            return store.latest(path)
        local = self.paths.resolve(path)
        try:
            st = os.stat(local)
        except FileNotFoundError:
            raise MissingSourceAudioError(
                f"audio file {local} does not exist (the store {store.root} may hold its chunks: to render "
                "from the store alone, leave out the dataset paths)") from None
        version = store.version(path, st.st_size, st.st_mtime_ns)
        if version is None and store.has_path(path):
            built = ", ".join(f"{v.size} B / mtime {v.mtime_ns}" for v in store.index.versions(path))
            raise StoreStaleError(
                f"{local} changed since the store {store.root} was built (now {st.st_size} B / mtime "
                f"{st.st_mtime_ns}; the store has {built}); its stored chunks are not served: run "
                "`hive store build` again (it adds the new version), or restore the file")
        return version

    def _store_row(self, src: SourceRecord, sample_rate: int) -> int | None:
        """The store row of ``src``'s chunk, or None when the store lacks it (then the chunk is
        decoded, unless ``store_only`` or no corpora: :class:`NotInStoreError`)."""
        if sample_rate != self.store.sample_rate:
            raise StoreRateError(f"source store {self.store.root} holds {self.store.sample_rate} Hz audio; this "
                                 f"render asks for {sample_rate} Hz: pass --sample-rate {self.store.sample_rate}")
        now = time.monotonic()
        cached = self._store_files.get(src.path)
        if cached is None or now - cached[0] > STAT_TTL_S:
            if len(self._store_files) > 1 << 18:
                self._store_files.clear()
            cached = (now, self._store_version(src.path))
            self._store_files[src.path] = cached
        version = cached[1]
        row = -1
        if version is not None:
            start, stop = chunk_frames(src.chunk_start_second, src.chunk_end_second, version.native_rate,
                                       version.frames, src.path)
            row = self.store.find(version, start, stop)
        if row >= 0:
            self.store_stats["hits"] += 1
            return row
        if self.store_only or self.paths is None:
            why = ("--store-only forbids decoding it" if self.paths is not None
                   else "no dataset paths were given to decode it")
            raise NotInStoreError(
                f"chunk [{src.chunk_start_second}, {src.chunk_end_second}) s of {src.path} is not in the source "
                f"store {self.store.root} and {why}; add it with `hive store build` for this metadata")
        self.store_stats["misses"] += 1
        return None

    def _store_span(self, src: SourceRecord, row: int, sample_rate: int, num_frames: int) -> tuple[int, int]:
        """Samples ``[c0, e)`` of the stored chunk that land in the output (the rest is zeros)."""
        c0, c_end = crop_span(src, sample_rate, num_frames)
        if c0 >= self.store.length(row):  # wholly beyond the chunk: an all-zero stem is a record error
            raise CropBeyondChunkError.of(src, self.store.length(row), sample_rate)
        e = min(c_end, self.store.length(row))
        return c0, max(c0, e)

    def _render_from_store(self, rec: MixtureRecord, sample_rate: int) -> RenderedMixture:
        """The render formula on stored chunks, in float32 at memory speed: each stem is read
        straight into the output array and scaled once (weight, and in consistent mode the global
        factor); the mix is their sum. Equal to the float64 formula within float32 rounding. The
        output arrays come from a :class:`BufferPool` (released ones are reused)."""
        out = self.store_buffer(rec)
        used = self.read_store_crops(rec, out[1:])
        return self.mix_store_crops(rec, out, used)

    def store_buffer(self, rec: MixtureRecord) -> np.ndarray:
        """A float32 ``(n + 1, T)`` array at the store rate for :meth:`read_store_crops` (rows
        1..n) and :meth:`mix_store_crops` (row 0 the mix), from the renderer's buffer pool."""
        return self._buffers.take((rec.num_sources + 1, int(rec.target_duration * self.store.sample_rate)))

    def read_store_crops(self, rec: MixtureRecord, stems: np.ndarray) -> list[int | None]:
        """Each source's unweighted crop, read from the store straight into ``stems`` (float32
        ``(n, T)``, zero padded; one read per source). Returns per source the number of samples
        read, or None for a chunk the store lacks, which is decoded and already *scaled* as
        :meth:`mix_store_crops` scales (with ``store_only`` or without corpora it raises
        :class:`NotInStoreError`). Dynamic mixing measures levels on these crops, then renders
        them with :meth:`mix_store_crops`: the same samples as :meth:`render` of the final record."""
        sample_rate = self.store.sample_rate
        T = stems.shape[1]
        consistent = self.stems == "consistent"
        used: list[int | None] = []
        for i, src in enumerate(rec.sources):
            try:
                row = self._store_row(src, sample_rate)
                if row is None:  # decoded (and counted as a miss)
                    with np.errstate(over="ignore", invalid="ignore"):
                        seg = self._decode_segment(src, sample_rate, T)
                        seg *= src.applied_weight * rec.global_normalization_factor if consistent \
                            else src.applied_weight
                        stems[i] = seg
                    used.append(None)
                    continue
                c0, e = self._store_span(src, row, sample_rate, T)
                k = e - c0
                if k > 0:
                    self.store.read_into(row, c0, stems[i, :k])
                stems[i, k:] = 0.0
                used.append(k)
            except Exception as exc:  # tag which source failed, then let the caller classify it
                exc.source_index = i  # type: ignore[attr-defined]
                exc.source_path = src.path  # type: ignore[attr-defined]
                raise
        return used

    def mix_store_crops(self, rec: MixtureRecord, out: np.ndarray, used: list[int | None]) -> RenderedMixture:
        """The render of ``rec`` from the crops :meth:`read_store_crops` read into ``out[1:]``
        (``used``: its return value): scaled in place (weight, and in consistent mode the global
        factor); the mix, their sum, goes to ``out[0]``."""
        sample_rate = self.store.sample_rate
        consistent = self.stems == "consistent"
        gnf = rec.global_normalization_factor
        mix, stems = out[0], out[1:]
        with np.errstate(over="ignore", invalid="ignore"):
            for i, src in enumerate(rec.sources):
                k = used[i]
                if k:
                    stems[i, :k] *= src.applied_weight * gnf if consistent else src.applied_weight
            np.add(stems[0], stems[1], out=mix) if rec.num_sources > 1 else np.copyto(mix, stems[0])
            for i in range(2, rec.num_sources):
                mix += stems[i]
            if not consistent:
                mix *= gnf
            # a NaN/inf anywhere reaches the mix and its energy (so does an energy beyond float32,
            # a false alarm that the exact path below settles): name the cause the float64 way
            finite = math.isfinite(float(np.dot(mix, mix)))
        if not finite:
            return self._render_decoded(rec)
        return RenderedMixture(rec, mix, stems, sample_rate, self.stems, gnf if consistent else 1.0)

    # ---- one mixture -------------------------------------------------------------------------
    def weighted_sources(self, rec: MixtureRecord) -> tuple[np.ndarray, int]:
        """``(n, T)`` float64 weighted sources (before the global factor) and the output rate.
        Raises :class:`NonFiniteAudioError` when a weighted source holds a NaN or an infinity."""
        sample_rate = self.sample_rate or rec.sample_rate
        T = int(rec.target_duration * sample_rate)
        arr = np.empty((rec.num_sources, T), dtype=np.float64)
        for i, src in enumerate(rec.sources):
            try:
                self.source_segment(src, sample_rate, T, out=arr[i])
                with np.errstate(over="ignore", invalid="ignore"):
                    arr[i] *= src.applied_weight
                if not np.isfinite(arr[i]).all():
                    raise _non_finite_source(rec, i, self.source_segment(src, sample_rate, T))
            except Exception as exc:  # tag which source failed, then let the caller classify it
                exc.source_index = i  # type: ignore[attr-defined]
                exc.source_path = src.path  # type: ignore[attr-defined]
                raise
        return arr, sample_rate

    def render(self, rec: MixtureRecord) -> RenderedMixture:
        sample_rate = self.sample_rate or rec.sample_rate  # the memory check, before anything is allocated
        check_mixture_memory("render", rec.mix_id, int(rec.target_duration * sample_rate), rec.num_sources, sample_rate)
        if self.store is not None:
            return self._render_from_store(rec, self.sample_rate)
        return self._render_decoded(rec)

    def _render_decoded(self, rec: MixtureRecord) -> RenderedMixture:
        weighted, sample_rate = self.weighted_sources(rec)
        gnf = rec.global_normalization_factor
        with np.errstate(over="ignore", invalid="ignore"):
            if self.stems == "consistent":
                weighted *= gnf  # in place: the stems carry the factor
                mix = weighted.sum(axis=0)
                scale = gnf
            else:
                mix = weighted.sum(axis=0)
                mix *= gnf
                scale = 1.0
            mix32 = mix.astype(np.float32)
            stems32 = weighted.astype(np.float32)
        if not (np.isfinite(mix32).all() and np.isfinite(stems32).all()):
            raise _non_finite_output(rec, stems32, self.stems)
        return RenderedMixture(rec, mix32, stems32, sample_rate, self.stems, scale)


def _non_finite_output(rec: MixtureRecord, stems32: np.ndarray, mode: str) -> NonFiniteAudioError:
    """The weighted sources are finite but a stem or the mix overflows (float64 after the global
    factor, or the float32 output): name the first such source, else the factor."""
    gnf = rec.global_normalization_factor
    big = float(np.finfo(np.float32).max)
    bad = np.flatnonzero(~np.isfinite(stems32).all(axis=1))
    if len(bad):
        i = int(bad[0])
        src = rec.sources[i]
        factor = f" times global_normalization_factor {gnf!r}" if mode == "consistent" else ""
        exc = NonFiniteAudioError(
            f"mixture {rec.mix_id!r}, source {src.source_id!r} ({src.path}): applied_weight "
            f"{src.applied_weight!r}{factor} makes the stem overflow float64 or the float32 output "
            f"(max {big:.3g}); expected levels that keep it near full scale: fix the record's levels")
        exc.source_index = i  # type: ignore[attr-defined]
        exc.source_path = src.path  # type: ignore[attr-defined]
        return exc
    return NonFiniteAudioError(
        f"mixture {rec.mix_id!r}: the stems are finite but the mix is not: global_normalization_factor "
        f"{gnf!r} times the sum of {rec.num_sources} sources overflows float64 or the float32 output "
        f"(max {big:.3g}); expected a factor that keeps the mixture near full scale: fix the record's levels")


def _non_finite_source(rec: MixtureRecord, i: int, segment: np.ndarray) -> NonFiniteAudioError:
    """Name why weighted source ``i`` is not finite: the audio itself, or the weight overflowing."""
    src = rec.sources[i]
    if not np.isfinite(segment).all():
        bad = int(np.count_nonzero(~np.isfinite(segment)))
        return NonFiniteAudioError(
            f"mixture {rec.mix_id!r}, source {src.source_id!r} ({src.path}): {bad} of the "
            f"{len(segment)} samples of the crop [{src.crop_start_second}, {src.crop_end_second}) s "
            f"of chunk [{src.chunk_start_second}, {src.chunk_end_second}) s are NaN or infinite "
            "(the file holds non-finite floats); expected finite audio: re-download or repair the file")
    peak = float(np.max(np.abs(segment)))
    return NonFiniteAudioError(
        f"mixture {rec.mix_id!r}, source {src.source_id!r} ({src.path}): applied_weight "
        f"{src.applied_weight!r} times the crop (peak {peak:.3g}) overflows float64; expected a "
        "weight that keeps the source near full scale: fix the record's levels")
