"""Super-resolution of mined clips to 44.1 kHz: plain resampling, or the Apollo restoration model.

``resample`` upsamples with soxr (HQ) and nothing else. ``apollo`` upsamples the same way and then
runs Apollo (a band-split audio restoration model, JusperLee/Apollo) on the 44.1 kHz signal. Its
code is not a package on PyPI, so the backend loads the user's local checkout: the ``code`` folder
is put on ``sys.path`` and the model class imported by name (``module:Class`` or
``module.Class``; default ``look2hear.models.apollo:Apollo``), built with the ``model`` section of
an optional YAML config (as the reference's ``config_apollo_uni.yaml``) and given the weights of
``checkpoint`` (a look2hear/Lightning checkpoint with a ``state_dict``, or a bare state dict).

Inference is chunked overlap-add; the model sees ``(batch, 1, samples)`` and returns the same
shape. Two windowings (``windowing=``):

``reference`` (default), as the reference script ``06_superres_apollo.py``: ``chunk``-second
  windows (10 s) every ``chunk // 2`` samples (5 s). A clip longer than two half-windows is first
  reflect-padded by ``chunk - hop`` samples on both sides (cropped off at the end). A window cut
  short by the end is reflect-padded to full length if it holds more than half a window plus one
  sample, else zero-padded, so the model always sees full windows. Each window's weight is 1
  except its last ``tail`` seconds (3 s), which weigh 0, unless the window reaches the end and
  is not the first one; the sum is divided by the summed weights (0/0 gives 0).
``crossfade``: ``chunk``-second windows advancing by ``chunk - overlap`` seconds, each faded in
  and out linearly over the ``overlap`` (1 s) it shares with its neighbours, so the weights sum
  to 1; a clip shorter than a window goes through whole, unpadded.

The output has exactly ``ceil(len * 44100 / sr)`` samples, like :func:`mixing.audio.resample`.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curation.models.audio_io import to_rate
from curation.models.lazy import LazyModel, auto_device
from curation.models.registry import BackendSpecError

log = logging.getLogger(__name__)

TARGET_SR = 44100
DEFAULT_CLASS = "look2hear.models.apollo:Apollo"
_PREFIXES = ("module.", "model.", "audio_model.", "generator.")


class ResampleSuperResolver:
    """``SuperResolver`` that only resamples to 44.1 kHz (soxr HQ); no model."""

    def __init__(self, target_sr: int = TARGET_SR):
        if target_sr <= 0:
            raise BackendSpecError(f"resample: target_sr={target_sr} must be > 0")
        self.target_sr = int(target_sr)
        self.model_id = f"soxr-hq-resample-{self.target_sr}"

    @property
    def provenance(self) -> dict[str, Any]:
        return {"backend": "resample", "quality": "soxr_hq", "target_sr": self.target_sr}

    def process(self, y: np.ndarray, sr: int) -> np.ndarray:
        return to_rate(y, sr, self.target_sr)


def chunk_starts(n: int, chunk: int, hop: int) -> list[int]:
    """Window starts every ``hop`` samples until a window reaches the end of ``n`` samples."""
    starts = [0]
    while starts[-1] + chunk < n:
        starts.append(starts[-1] + hop)
    return starts


WINDOWINGS = ("reference", "crossfade")


def reference_plan(n: int, chunk: int) -> tuple[int, int, list[int]]:
    """``(border, padded_length, starts)`` of the reference windowing of ``n`` samples."""
    hop = chunk // 2
    border = chunk - hop
    padded = n + 2 * border if (n > 2 * border and border > 0) else n
    return (border if padded != n else 0), padded, list(range(0, padded, hop))


def reference_window(chunk: int, tail: int, first: bool, reaches_end: bool) -> np.ndarray:
    """Weights of one reference window: 1, and 0 over the last ``tail`` samples unless the
    window reaches the end and is not the first one (the first always keeps its zero tail)."""
    w = np.ones(chunk, dtype=np.float64)
    if tail and (first or not reaches_end):
        w[chunk - tail:] = 0.0
    return w


def crossfade_windows(starts: list[int], chunk: int, overlap: int, n: int) -> list[np.ndarray]:
    """Weights of each window: linear fades over the ``overlap`` shared with each neighbour.

    With windows every ``chunk - overlap`` samples, the fade-out of one window and the fade-in of
    the next add up to 1 sample by sample; the clip's first and last samples are not faded.
    """
    ramp = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap if overlap else np.zeros(0)
    windows = []
    for i, start in enumerate(starts):
        w = np.ones(min(chunk, n - start), dtype=np.float64)
        if i > 0:
            w[:overlap] *= ramp
        if i < len(starts) - 1:
            w[len(w) - overlap:] *= ramp[::-1]
        windows.append(w)
    return windows


@dataclass(frozen=True)
class ApolloSettings:
    """The options of :class:`ApolloSuperResolver` (the spec keys), checked when made.

    ``code`` (local checkout of the Apollo code), ``checkpoint`` (weights file), ``config``
    (optional YAML whose ``model`` section gives the constructor arguments; a ``_target_`` there
    names the class), ``class`` (``module:Class``; the field ``class_name``), ``windowing``
    (``reference``, default, or ``crossfade``), ``chunk`` (seconds, both), ``tail`` (seconds of
    zero weight, reference) and ``overlap`` (seconds, crossfade), ``batch_size`` (windows per
    forward pass), ``device`` (``auto``, ``cpu``, ``cuda:N``), ``unsafe_load`` (``true`` to
    unpickle a checkpoint holding arbitrary objects; only for files you trust)."""

    code: str
    checkpoint: str
    config: str = ""
    class_name: str = field(default="", metadata={"spec_key": "class"})
    chunk: float = 10.0
    overlap: float = 1.0
    batch_size: int = 4
    device: str = "auto"
    unsafe_load: bool = False
    windowing: str = "reference"
    tail: float = 3.0

    def __post_init__(self) -> None:
        chunk, overlap, tail = self.chunk, self.overlap, self.tail
        if chunk <= 0 or overlap < 0 or overlap * 2 > chunk:
            raise BackendSpecError(f"apollo: chunk={chunk} s and overlap={overlap} s; expected "
                                   "chunk > 0 and 0 <= overlap <= chunk / 2")
        if self.batch_size <= 0:
            raise BackendSpecError(f"apollo: batch_size={self.batch_size} must be > 0")
        if self.windowing not in WINDOWINGS:
            raise BackendSpecError(f"apollo: windowing={self.windowing!r}; expected one of "
                                   f"{', '.join(WINDOWINGS)}")
        if self.windowing == "reference" and not 0 <= tail * 2 <= chunk:
            raise BackendSpecError(f"apollo: tail={tail} s with chunk={chunk} s; expected "
                                   "0 <= tail <= chunk / 2 (the next window must cover the tail)")


class ApolloSuperResolver(LazyModel):
    """``SuperResolver``: soxr upsampling to 44.1 kHz, then Apollo restoration, chunked; built
    from its :class:`ApolloSettings` (``ApolloSuperResolver.Settings``; the spec keys, e.g.
    ``apollo:code=/src/Apollo,checkpoint=/models/apollo.bin``)."""

    backend = "apollo super-resolution"
    requires = {"torch": "torch"}
    Settings = ApolloSettings

    def __init__(self, settings: ApolloSettings):
        if not isinstance(settings, ApolloSettings):
            raise BackendSpecError(f"apollo: settings is a {type(settings).__name__}; expected "
                                   "ApolloSuperResolver.Settings(code=..., checkpoint=..., ...) or build it from a "
                                   "spec with curation.models.registry.make_superres('apollo:code=...,checkpoint=...')")
        self.settings = settings
        self.windowing = settings.windowing
        self.tail_s = float(settings.tail)
        self.code = str(settings.code)
        self.checkpoint = str(settings.checkpoint)
        self.config = str(settings.config)
        self.class_name = settings.class_name
        self.chunk_s = float(settings.chunk)
        self.overlap_s = float(settings.overlap)
        self.batch_size = int(settings.batch_size)
        self.device = settings.device
        self.unsafe_load = bool(settings.unsafe_load)
        self.model_id = f"apollo:{Path(self.checkpoint).name}"

    @property
    def provenance(self) -> dict[str, Any]:
        return {"backend": "apollo", "checkpoint": self.checkpoint, "config": self.config or None,
                "class": self._resolved_class_name(), "windowing": self.windowing,
                "chunk_s": self.chunk_s,
                **({"tail_s": self.tail_s} if self.windowing == "reference"
                   else {"overlap_s": self.overlap_s}),
                "resampler": "soxr_hq", "target_sr": TARGET_SR}

    # -- loading ------------------------------------------------------------------------------
    def _model_kwargs(self) -> tuple[dict[str, Any], str]:
        if not self.config:
            return {}, ""
        from mixing.input_files import load_yaml_file

        path = Path(self.config)
        if not path.is_file():
            raise FileNotFoundError(f"apollo: config {self.config!r} does not exist")
        data = load_yaml_file(path, "apollo config", "a mapping with a 'model' section", BackendSpecError) or {}
        section = data.get("model", data) if isinstance(data, dict) else None
        if not isinstance(section, dict):
            raise BackendSpecError(f"apollo: config {path} has no 'model' mapping of constructor "
                                   "arguments")
        target = str(section.get("_target_", ""))
        return {k: v for k, v in section.items() if not str(k).startswith("_")}, target

    def _resolved_class_name(self) -> str:
        if self.class_name:
            return self.class_name
        try:
            return self._model_kwargs()[1] or DEFAULT_CLASS
        except (OSError, ValueError):
            return DEFAULT_CLASS

    def _import_class(self, name: str):
        if ":" in name:
            module_name, _, attr = name.partition(":")
        else:
            module_name, _, attr = name.rpartition(".")
        if not module_name or not attr:
            raise BackendSpecError(f"apollo: class {name!r}; expected 'module:Class'")
        code = str(Path(self.code).resolve())
        if not Path(code).is_dir():
            raise FileNotFoundError(
                f"apollo: code folder {self.code!r} does not exist; clone the Apollo repository "
                "(JusperLee/Apollo) and pass code=ITS_FOLDER")
        if code not in sys.path:
            sys.path.insert(0, code)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"apollo: cannot import {module_name!r} from {code} ({exc}); check "
                              "code= and class=, and install the checkout's requirements") from exc
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ImportError(f"apollo: module {module_name!r} has no {attr!r}") from None

    def _state_dict(self, torch, model) -> dict[str, Any]:
        path = Path(self.checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"apollo: checkpoint {self.checkpoint!r} does not exist")
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=not self.unsafe_load)
        except Exception as exc:  # noqa: BLE001 - torch raises several types for refused pickles
            if self.unsafe_load:
                raise
            raise RuntimeError(
                f"apollo: {path} cannot be loaded as plain tensors ({type(exc).__name__}: {exc}); "
                "if you trust the file, add unsafe_load=true to the spec") from exc
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            state = obj["state_dict"]
        elif isinstance(obj, dict) and obj and all(hasattr(v, "shape") for v in obj.values()):
            state = obj
        else:
            raise RuntimeError(f"apollo: {path} holds no state_dict (found "
                               f"{type(obj).__name__} with keys {list(obj)[:5] if isinstance(obj, dict) else ''})")
        wanted = set(model.state_dict())
        for prefix in _PREFIXES:
            if not (set(state) & wanted) and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        return state

    def load(self, torch) -> dict[str, Any]:
        """The restoration model, in eval mode on its device."""
        kwargs, target = self._model_kwargs()
        cls = self._import_class(self.class_name or target or DEFAULT_CLASS)
        model = cls(**kwargs)
        missing, unexpected = model.load_state_dict(self._state_dict(torch, model), strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"apollo: checkpoint {self.checkpoint} does not fit {cls.__name__}({kwargs}): "
                f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}; check config=")
        device = auto_device(torch, self.device)
        model = model.to(device).eval()
        return {"torch": torch, "model": model, "device": device}

    # -- inference ----------------------------------------------------------------------------
    def _run(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        st = self.state()
        torch, model = st["torch"], st["model"]
        x = torch.from_numpy(np.stack(windows)[:, None, :]).to(st["device"])
        with torch.inference_mode():
            out = model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = out.float().cpu().numpy()
        out = out.reshape(out.shape[0], -1) if out.ndim == 3 and out.shape[1] == 1 else out
        if out.ndim != 2 or out.shape[0] != len(windows):
            raise RuntimeError(f"apollo: the model returned shape {tuple(out.shape)} for input "
                               f"{tuple(x.shape)}; expected (batch, 1, samples)")
        length = windows[0].shape[0]
        if out.shape[1] != length:  # STFT models may round the length: align to the input
            out = out[:, :length] if out.shape[1] > length else np.pad(
                out, ((0, 0), (0, length - out.shape[1])))
        return list(out)

    def process(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Restored mono float32 at 44.1 kHz, ``ceil(len(y) * 44100 / sr)`` samples."""
        x = to_rate(y, sr, TARGET_SR)
        n = x.shape[0]
        if n == 0:
            return x
        if self.windowing == "reference":
            return self._process_reference(x)
        chunk = max(1, int(round(self.chunk_s * TARGET_SR)))
        overlap = int(round(self.overlap_s * TARGET_SR))
        starts = chunk_starts(n, chunk, chunk - overlap)
        padded = x if n <= chunk else np.pad(x, (0, max(0, starts[-1] + chunk - n)))
        length = n if n <= chunk else chunk
        pieces = [padded[s:s + length] for s in starts]
        outputs: list[np.ndarray] = []
        for b in range(0, len(pieces), self.batch_size):
            outputs.extend(self._run(pieces[b:b + self.batch_size]))
        weights = crossfade_windows(starts, chunk, overlap, n)
        acc = np.zeros(n, dtype=np.float64)
        norm = np.zeros(n, dtype=np.float64)
        for start, w, out in zip(starts, weights, outputs):
            acc[start:start + len(w)] += w * out[:len(w)]
            norm[start:start + len(w)] += w
        result = acc / np.maximum(norm, 1e-12)
        np.nan_to_num(result, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return result.astype(np.float32)


    def _model_windows(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        outputs: list[np.ndarray] = []
        for b in range(0, len(pieces), self.batch_size):
            outputs.extend(self._run(pieces[b:b + self.batch_size]))
        return outputs

    def _process_reference(self, x: np.ndarray) -> np.ndarray:
        """The reference script's windowing (see the module docstring)."""
        n = x.shape[0]
        chunk = max(2, int(round(self.chunk_s * TARGET_SR)))
        tail = int(round(self.tail_s * TARGET_SR))
        border, total, starts = reference_plan(n, chunk)
        padded = np.pad(x, (border, border), mode="reflect") if border else x
        pieces, lengths = [], []
        for start in starts:
            part = padded[start:start + chunk]
            length = part.shape[0]
            if length < chunk:
                mode = "reflect" if length > chunk // 2 + 1 else "constant"
                part = np.pad(part, (0, chunk - length), mode=mode)
            pieces.append(np.ascontiguousarray(part, dtype=np.float32))
            lengths.append(length)
        outputs = self._model_windows(pieces)
        acc = np.zeros(total, dtype=np.float64)
        norm = np.zeros(total, dtype=np.float64)
        for k, (start, length, out) in enumerate(zip(starts, lengths, outputs)):
            w = reference_window(chunk, tail, k == 0, start + chunk >= total)[:length]
            acc[start:start + length] += w * out[:length]
            norm[start:start + length] += w
        with np.errstate(invalid="ignore", divide="ignore"):
            result = acc / norm
        np.nan_to_num(result, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if border:
            result = result[border:total - border]
        return result.astype(np.float32)

