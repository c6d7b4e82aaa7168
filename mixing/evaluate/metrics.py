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

EXTRA = "eval"
NO_SDR = "or pass --no-sdr to compute SI-SDR and SI-SDRi only"

#: SI-SDR / SDR are capped here (a perfect estimate would be +inf)
MAX_DB = 200.0
_EPS = 1e-20
#: diagonal loading of the (unit-norm) reference autocorrelation when it is singular
LOAD_DIAG = 1e-8


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
    ``references``; NaN where the reference is silent."""
    torch = optional.require("torch", "SDR (BSS-eval v4)", EXTRA, alternative=NO_SDR)
    audio = optional.require("torchmetrics.functional.audio", "SDR (BSS-eval v4)", EXTRA, alternative=NO_SDR)
    signal_distortion_ratio = audio.signal_distortion_ratio
    est = np.atleast_2d(np.asarray(estimates, dtype=np.float64))
    ref = np.atleast_2d(np.asarray(references, dtype=np.float64))
    if est.shape != ref.shape:
        raise ValueError(f"sdr needs estimates and references of one shape; got {est.shape} and {ref.shape}")
    silent = np.einsum("ij,ij->i", ref, ref) <= 0.0
    values = np.full(est.shape[0], np.nan)
    live = np.flatnonzero(~silent)
    if live.size:
        e, r = torch.from_numpy(est[live]), torch.from_numpy(ref[live])
        try:
            out = signal_distortion_ratio(e, r, filter_length=filter_length)
        except RuntimeError:  # singular autocorrelation (e.g. a pure tone): diagonal loading, as fast-bss-eval
            out = signal_distortion_ratio(e, r, filter_length=filter_length, load_diag=LOAD_DIAG)
        values[live] = np.clip(out.numpy().astype(np.float64), -MAX_DB, MAX_DB)
    return values


def irm_estimates(mix: np.ndarray, references: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """Ideal-ratio-mask estimates (``[n, T]``) of each reference row from ``mix`` (``[T]``)."""
    signal = optional.require("scipy.signal", "the IRM oracle row", EXTRA)
    istft, stft = signal.istft, signal.stft

    mix = np.asarray(mix, dtype=np.float64)
    refs = np.atleast_2d(np.asarray(references, dtype=np.float64))
    length = mix.shape[0]
    if length < 16:  # shorter than the smallest STFT frame: mask a zero-padded copy, keep the length
        if length == 0:
            return np.zeros((refs.shape[0], 0))
        pad = 16 - length
        return irm_estimates(np.pad(mix, (0, pad)), np.pad(refs, [(0, 0), (0, pad)]), n_fft, hop)[:, :length]
    nperseg = min(n_fft, max(16, length))
    noverlap = nperseg - hop if nperseg == n_fft else nperseg // 2
    _, _, X = stft(mix, nperseg=nperseg, noverlap=noverlap)
    _, _, S = stft(refs, nperseg=nperseg, noverlap=noverlap, axis=-1)
    mag = np.abs(S)
    total = mag.sum(axis=0)
    mask = np.divide(mag, total, out=np.full_like(mag, 1.0 / refs.shape[0]), where=total > 0)
    _, y = istft(mask * X[None], nperseg=nperseg, noverlap=noverlap, input_onesided=True)
    y = np.asarray(y)[..., :length]
    if y.shape[-1] < length:
        y = np.pad(y, [(0, 0), (0, length - y.shape[-1])])
    return y
