"""Separation metrics of one estimate against one reference (1-D float signals, same length).

* :func:`si_sdr`: scale-invariant SDR (Le Roux et al., 2019) without mean removal, in float64:
  ``alpha = <est, ref> / ||ref||^2``, ``SI-SDR = 10 log10(||alpha ref||^2 / ||est - alpha ref||^2)``.
* :func:`sdr`: BSS-eval v4 style SDR of a single source (the estimate may differ from the reference
  by a 512-tap FIR filter), computed with torchmetrics' ``signal_distortion_ratio`` (the
  fast-bss-eval algorithm). torch and torchmetrics come with the optional extra ``eval``.
* :func:`irm_estimates`: the ideal ratio mask oracle, ``|S_i| / sum_j |S_j|`` on the STFTs of the
  references, applied to the STFT of the mixture and inverted (scipy, extra ``eval``).

:func:`check_dependencies` refuses before any work when what a run needs is not installed.
"""

from __future__ import annotations

import numpy as np

from .. import optional
from .errors import EvalError

EXTRA = "eval"
NO_SDR = "or pass --no-sdr to compute SI-SDR and SI-SDRi only"

#: SI-SDR / SDR are capped here (a perfect estimate would be +inf)
MAX_DB = 200.0
_EPS = 1e-20
#: diagonal loading of the (unit-norm) reference autocorrelation when it is singular
LOAD_DIAG = 1e-8
#: largest |sample| evaluated (full scale is 1; an int16-scale output still passes): beyond it
#: the input is not audio, and energies could overflow float64
MAX_ABS_SAMPLE = 1e6


def check_audio(x: np.ndarray, what: str, fix: str) -> None:
    """Raise :class:`EvalError` when ``x`` holds NaN, infinity or a sample beyond
    :data:`MAX_ABS_SAMPLE` (metrics of such input are NaN or meaningless, never a result)."""
    if not x.size:
        return
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(x.size - np.count_nonzero(finite))
        raise EvalError(f"{what}: {bad} of {x.size} samples are NaN or infinite; expected finite audio; {fix}")
    peak = float(np.max(np.abs(x)))
    if peak > MAX_ABS_SAMPLE:
        raise EvalError(f"{what}: samples up to {peak:.3g}; expected audio within ±{MAX_ABS_SAMPLE:g} "
                        f"(full scale is 1); {fix}")


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB; NaN when the reference is silent (undefined), capped at
    :data:`MAX_DB` for a perfect estimate and at ``-MAX_DB`` for a silent estimate."""
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.shape != ref.shape or est.ndim != 1:
        raise ValueError(f"si_sdr needs two 1-D signals of one length; got {est.shape} and {ref.shape}")
    ref_energy = float(np.dot(ref, ref))
    if ref_energy <= 0.0:
        return float("nan")
    alpha = float(np.dot(est, ref)) / ref_energy
    target = alpha * ref
    noise = est - target
    t, n = float(np.dot(target, target)), float(np.dot(noise, noise))
    if t <= _EPS * ref_energy:
        return -MAX_DB
    if n <= 0.0:
        return MAX_DB
    return float(np.clip(10.0 * np.log10(t / n), -MAX_DB, MAX_DB))


def sdr_available() -> bool:
    return optional.available("torch") and optional.available("torchmetrics")


def check_dependencies(with_sdr: bool = True, plot: bool = False) -> None:
    """Refuse (:class:`~mixing.optional.MissingDependencyError`, naming the ``eval`` extra) when
    a package the run needs is not installed: scipy (the IRM oracle row, always computed), torch
    and torchmetrics (SDR), matplotlib (the plot). Nothing heavy is imported."""
    optional.require_available("scipy", "the IRM oracle row", EXTRA)
    if with_sdr:
        for module in ("torch", "torchmetrics"):
            optional.require_available(module, "SDR (BSS-eval v4)", EXTRA, alternative=NO_SDR)
    if plot:
        optional.require_available("matplotlib", "the si_sdri.png plot", EXTRA,
                                   alternative="or pass --no-plot")


def sdr(estimates: np.ndarray, references: np.ndarray, filter_length: int = 512) -> np.ndarray:
    """BSS-eval v4 style SDR (dB) of each row of ``estimates`` (``[n, T]``) against the same row of
    ``references``; NaN where the reference is silent or the signals are shorter than the filter.
    Rows are computed one at a time (the filter estimation needs several copies of a row; all
    rows of a 10-minute mixture at once needed gigabytes), each in float64."""
    torch = optional.require("torch", "SDR (BSS-eval v4)", EXTRA, alternative=NO_SDR)
    audio = optional.require("torchmetrics.functional.audio", "SDR (BSS-eval v4)", EXTRA, alternative=NO_SDR)
    signal_distortion_ratio = audio.signal_distortion_ratio
    est = np.atleast_2d(estimates)
    ref = np.atleast_2d(references)
    if est.shape != ref.shape:
        raise ValueError(f"sdr needs estimates and references of one shape; got {est.shape} and {ref.shape}")
    values = np.full(est.shape[0], np.nan)
    if est.shape[1] < filter_length:  # shorter than the distortion filter: BSS-eval SDR is undefined
        return values
    for i in range(est.shape[0]):
        # copies (np.array): the inputs may be read-only views (memory-mapped shards), torch needs writable
        r64 = np.array(ref[i], dtype=np.float64, order="C")[None]
        if float(np.dot(r64[0], r64[0])) <= 0.0:
            continue  # a silent reference: undefined
        e, r = torch.from_numpy(np.array(est[i], dtype=np.float64, order="C")[None]), torch.from_numpy(r64)
        try:
            out = signal_distortion_ratio(e, r, filter_length=filter_length)
        except RuntimeError:  # singular autocorrelation (e.g. a pure tone): diagonal loading, as fast-bss-eval
            out = signal_distortion_ratio(e, r, filter_length=filter_length, load_diag=LOAD_DIAG)
        values[i] = float(np.clip(out.numpy().astype(np.float64)[0], -MAX_DB, MAX_DB))
        del e, r, out
    return values


#: STFT frames processed at a time by :func:`irm_estimates` (bounds its working memory)
IRM_BLOCK_FRAMES = 256


def irm_estimates(mix: np.ndarray, references: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """Ideal-ratio-mask estimates (``[n, T]`` float64) of each reference row from ``mix`` (``[T]``).

    The STFT and its inverse are those of ``scipy.signal.stft``/``istft`` with their defaults
    (periodic Hann window, ``nperseg = n_fft``, zero boundary padding of ``n_fft // 2`` on both
    sides, end padded to whole frames, overlap-add divided by the summed squared window), computed
    :data:`IRM_BLOCK_FRAMES` frames at a time: memory is the output plus a few blocks, instead of
    several full complex spectrograms per source (scipy's whole-signal STFT of one 10-minute
    48 kHz mixture of two sources peaked at 11 GB). The results equal scipy's to float rounding."""
    get_window = optional.require("scipy.signal", "the IRM oracle row", EXTRA).get_window

    mix = np.asarray(mix, dtype=np.float64)
    refs = np.atleast_2d(references)  # rows are converted to float64 block by block
    n, length = refs.shape[0], mix.shape[0]
    if length == 0:
        return np.zeros((n, 0))
    nperseg = min(n_fft, length)  # a mixture shorter than one frame is one short frame
    noverlap = nperseg - hop if nperseg == n_fft else nperseg // 2
    step = nperseg - noverlap
    half = nperseg // 2
    win = get_window("hann", nperseg)
    padded = length + 2 * half
    padded += (-(padded - nperseg) % step) % nperseg  # whole frames, as scipy's padded=True
    frames = (padded - nperseg) // step + 1
    out = np.zeros((n, padded))
    norm = np.zeros(padded)

    def framed(x: np.ndarray, f0: int, f1: int) -> np.ndarray:
        """Windowed frames f0..f1 of the boundary-padded float64 signal ``x``: ``[f1 - f0, nperseg]``."""
        a, b = f0 * step - half, (f1 - 1) * step + nperseg - half  # span in unpadded coordinates
        seg = np.zeros(b - a)
        lo, hi = max(a, 0), min(b, length)
        if hi > lo:
            seg[lo - a:hi - a] = x[lo:hi]
        view = np.lib.stride_tricks.sliding_window_view(seg, nperseg)[::step]
        return view * win

    def overlap_add(target: np.ndarray, y: np.ndarray, f0: int) -> None:
        """Add frames ``y`` (``[..., nb, nperseg]``) starting at frame ``f0`` into ``target``."""
        nb = y.shape[-2]
        if nperseg % step == 0:  # a frame is whole hops: one slice per hop offset
            for j in range(nperseg // step):
                a = (f0 + j) * step
                target[..., a:a + nb * step] += y[..., j * step:(j + 1) * step].reshape(*y.shape[:-2], nb * step)
        else:  # short signals only (odd nperseg)
            for k in range(nb):
                target[..., (f0 + k) * step:(f0 + k) * step + nperseg] += y[..., k, :]

    for f0 in range(0, frames, IRM_BLOCK_FRAMES):
        f1 = min(f0 + IRM_BLOCK_FRAMES, frames)
        X = np.fft.rfft(framed(mix, f0, f1), axis=-1)
        mag = np.stack([np.abs(np.fft.rfft(framed(np.asarray(refs[i], dtype=np.float64), f0, f1), axis=-1))
                        for i in range(n)])
        total = mag[0].copy()
        for m in mag[1:]:  # in source order, as numpy's sum over the first axis
            total += m
        mask = np.divide(mag, total, out=np.full_like(mag, 1.0 / n), where=total > 0)
        overlap_add(out, np.fft.irfft(mask * X, n=nperseg, axis=-1) * win, f0)
        overlap_add(norm, np.broadcast_to(win ** 2, (f1 - f0, nperseg)), f0)
    out = out[:, half:half + length]
    out /= np.where(norm[half:half + length] > 1e-10, norm[half:half + length], 1.0)
    return out
