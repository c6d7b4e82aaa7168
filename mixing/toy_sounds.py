"""Procedural single-event sounds for the toy corpus: one small generator per class.

Each generator takes a seeded ``numpy.random.Generator``, a rate and a duration and returns a
mono float64 signal with peak about 0.5. The classes carry real AudioSet names and ids (all
leaves of the Hive ontology); the sounds only need to be distinct and deterministic.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Generator = Callable[[np.random.Generator, int, float], np.ndarray]


def _t(sr: int, dur: float) -> np.ndarray:
    return np.arange(int(sr * dur)) / sr


def _env(n: int, attack: float, decay: float, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _place(out: np.ndarray, ev: np.ndarray, at: int) -> None:
    end = min(len(out), at + len(ev))
    if end > at:
        out[at:end] += ev[: end - at]


def _lowpass(x: np.ndarray, alpha: float) -> np.ndarray:
    # one-pole smoother, vectorised via cumulative trick would be unstable; use FFT filter
    spec = np.fft.rfft(x)
    f = np.linspace(0, 1, len(spec))
    return np.fft.irfft(spec / (1 + (f / alpha) ** 4), n=len(x))


def _bandpass(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.linspace(0, 1, len(spec))
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n=len(x))


def _norm(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    m = np.max(np.abs(x))
    return x * (peak / m) if m > 0 else x


def _events(rng, sr, dur, rate_hz, make) -> np.ndarray:
    out = np.zeros(int(sr * dur))
    t = rng.uniform(0, 0.3)
    while t < dur:
        _place(out, make(), int(t * sr))
        t += rng.exponential(1 / rate_hz) + 0.05
    return out


def dog(rng, sr, dur):
    def bark():
        n = int(sr * rng.uniform(0.12, 0.25))
        t = np.arange(n) / sr
        f0 = rng.uniform(350, 650) * (1 - 0.4 * t / t[-1])
        ph = 2 * np.pi * np.cumsum(f0) / sr
        sig = sum(np.sin(k * ph) / k for k in range(1, 8)) + 0.3 * rng.standard_normal(n)
        return sig * _env(n, 0.01, 0.06, sr)
    return _norm(_events(rng, sr, dur, 1.5, bark))


def church_bell(rng, sr, dur):
    t = _t(sr, dur)
    f = rng.uniform(180, 320)
    out = np.zeros_like(t)
    period = rng.uniform(1.5, 2.5)
    for start in np.arange(0, dur, period):
        tt = np.clip(t - start, 0, None)
        on = t >= start
        for ratio, amp, dec in ((0.5, 0.6, 3.0), (1.0, 1.0, 2.0), (1.19, 0.5, 1.5), (1.5, 0.4, 1.2), (2.0, 0.3, 0.9), (2.74, 0.2, 0.6)):
            out += on * amp * np.sin(2 * np.pi * f * ratio * tt) * np.exp(-tt / dec)
    return _norm(out)


def rain(rng, sr, dur):
    n = int(sr * dur)
    base = _lowpass(rng.standard_normal(n), 0.35) * 0.3
    drops = np.zeros(n)
    idx = rng.integers(0, n, size=int(dur * 120))
    drops[idx] = rng.uniform(-1, 1, size=len(idx))
    drops = np.convolve(drops, np.exp(-np.arange(int(0.004 * sr)) / (0.001 * sr)), mode="same")
    return _norm(base + drops)


def bird(rng, sr, dur):
    def chirp():
        n = int(sr * rng.uniform(0.05, 0.15))
        t = np.arange(n) / sr
        f = rng.uniform(2500, 4500) + rng.uniform(-1500, 1500) * t / t[-1]
        f = np.minimum(f, 0.45 * sr)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(n)
    return _norm(_events(rng, sr, dur, 4.0, chirp))


def piano(rng, sr, dur):
    def note():
        n = int(sr * 1.2)
        t = np.arange(n) / sr
        f = 440 * 2 ** (rng.integers(-12, 12) / 12)
        sig = sum(np.sin(2 * np.pi * f * k * t) * np.exp(-t * (1.5 + k)) / k for k in range(1, 7))
        return sig * np.minimum(1, t / 0.003)
    return _norm(_events(rng, sr, dur, 2.5, note))


def violin(rng, sr, dur):
    t = _t(sr, dur)
    f0 = 440 * 2 ** (rng.integers(-5, 10) / 12)
    vib = 1 + 0.006 * np.sin(2 * np.pi * 5.5 * t)
    ph = 2 * np.pi * np.cumsum(f0 * vib) / sr
    saw = sum(np.sin(k * ph) / k for k in range(1, 12))
    env = np.minimum(1, t / 0.15) * (0.7 + 0.3 * np.sin(2 * np.pi * 0.4 * t))
    return _norm(saw * env)


def drum(rng, sr, dur):
    def hit():
        n = int(sr * 0.35)
        t = np.arange(n) / sr
        f = rng.uniform(60, 120) * (1 + 1.5 * np.exp(-t / 0.02))
        return (np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.2 * rng.standard_normal(n) * np.exp(-t / 0.01)) * np.exp(-t / 0.08)
    return _norm(_events(rng, sr, dur, 3.0, hit))


def doorbell(rng, sr, dur):
    out = np.zeros(int(sr * dur))
    f1 = rng.uniform(600, 800)
    for start in np.arange(rng.uniform(0, 0.3), dur, 2.5):
        for j, f in enumerate((f1, f1 * 0.8)):
            n = int(sr * 1.0)
            t = np.arange(n) / sr
            _place(out, (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * np.exp(-t / 0.4), int((start + 0.5 * j) * sr))
    return _norm(out)


def clock(rng, sr, dur):
    out = np.zeros(int(sr * dur))
    click = _bandpass(rng.standard_normal(int(0.01 * sr)), 0.2, 0.6) * np.exp(-np.arange(int(0.01 * sr)) / (0.002 * sr))
    for k, start in enumerate(np.arange(rng.uniform(0, 0.2), dur, 0.5)):
        _place(out, click * (1.0 if k % 2 else 0.7), int(start * sr))
    return _norm(out)


def water_tap(rng, sr, dur):
    n = int(sr * dur)
    x = _bandpass(rng.standard_normal(n), 0.05, 0.3)
    am = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(3, 9) * _t(sr, dur))
    return _norm(x * am)


def cough(rng, sr, dur):
    def one():
        n = int(sr * rng.uniform(0.25, 0.4))
        x = _bandpass(rng.standard_normal(n), 0.02, 0.25)
        return x * _env(n, 0.005, 0.08, sr)
    return _norm(_events(rng, sr, dur, 1.2, one))


def cricket(rng, sr, dur):
    t = _t(sr, dur)
    f = min(rng.uniform(4000, 5500), 0.45 * sr)
    pulses = (np.sin(2 * np.pi * 30 * t) > 0.3) * (np.sin(2 * np.pi * 0.8 * t) > -0.2)
    return _norm(np.sin(2 * np.pi * f * t) * pulses)


def engine(rng, sr, dur):
    t = _t(sr, dur)
    f = rng.uniform(25, 45)
    ph = 2 * np.pi * np.cumsum(f * (1 + 0.05 * np.sin(2 * np.pi * 0.3 * t))) / sr
    x = sum(np.sin(k * ph) / k ** 0.7 for k in range(1, 20)) + 0.2 * _lowpass(rng.standard_normal(len(t)), 0.05)
    return _norm(x)


def flute(rng, sr, dur):
    t = _t(sr, dur)
    f0 = 660 * 2 ** (rng.integers(-3, 8) / 12)
    breath = 0.05 * _bandpass(rng.standard_normal(len(t)), 0.05, 0.4)
    x = np.sin(2 * np.pi * f0 * t) + 0.15 * np.sin(4 * np.pi * f0 * t) + breath
    return _norm(x * np.minimum(1, t / 0.08))


def wind(rng, sr, dur):
    n = int(sr * dur)
    x = _lowpass(rng.standard_normal(n), 0.03)
    am = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * _t(sr, dur) + rng.uniform(0, 6))
    return _norm(x * am)


def hammer(rng, sr, dur):
    def hit():
        n = int(sr * 0.12)
        t = np.arange(n) / sr
        f = rng.uniform(900, 1600)
        return (np.sin(2 * np.pi * f * t) + 0.5 * rng.standard_normal(n) * np.exp(-t / 0.005)) * np.exp(-t / 0.03)
    return _norm(_events(rng, sr, dur, 2.0, hit))


#: (AudioSet name, AudioSet id, generator) — names and ids as in the AudioSet ontology
TOY_CLASSES: tuple[tuple[str, str, Generator], ...] = (
    ("Dog", "/m/0bt9lr", dog),
    ("Church bell", "/m/03w41f", church_bell),
    ("Rain", "/m/06mb1", rain),
    ("Bird", "/m/015p6", bird),
    ("Piano", "/m/05r5c", piano),
    ("Violin, fiddle", "/m/07y_7", violin),
    ("Drum", "/m/026t6", drum),
    ("Doorbell", "/m/03wwcy", doorbell),
    ("Clock", "/m/01x3z", clock),
    ("Water tap, faucet", "/m/02jz0l", water_tap),
    ("Cough", "/m/01b_21", cough),
    ("Cricket", "/m/09xqv", cricket),
    ("Engine", "/m/02mk9", engine),
    ("Flute", "/m/0l14j_", flute),
    ("Wind", "/m/03m9d0z", wind),
    ("Hammer", "/m/03l9g", hammer),
)
