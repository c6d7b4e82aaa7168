"""Where the estimates come from: a Python separator callable, or a folder of audio files.

Separator: ``"package.module:function"`` or ``"path/to/file.py:function"``; the function is called
as ``separate(mix, sample_rate, query_label) -> estimate`` with ``mix`` a 1-D float32 NumPy array,
and must return a 1-D array-like (NumPy array, list, or a tensor with ``.numpy()``) of the mixture's
length (a ``[1, T]`` or ``[T, 1]`` array is accepted).

Estimates folder: ``DIR/{split}/{mix_id}/s{i}.wav`` (or ``.flac``), ``i`` = 1 .. num_sources in
the order of the record's sources (the same numbering as the rendered stems ``s{i}``); mono (or
multi-channel, averaged), at the mixture's sample rate, exactly the mixture's length.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf

from ..audio import sf_read
from .errors import EvalError
from .metrics import check_audio

log = logging.getLogger(__name__)

Separator = Callable[[np.ndarray, int, str], Any]
ESTIMATE_EXTENSIONS = (".wav", ".flac")


class MissingEstimateError(EvalError):
    """No estimate file for one source."""


def load_separator(spec: str) -> Separator:
    """Import ``module:function`` (or ``file.py:function``) and return the callable."""
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise EvalError(f"--separator {spec!r}: expected MODULE:FUNCTION (e.g. mypkg.sep:separate) or "
                        "FILE.py:FUNCTION")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise EvalError(f"--separator {spec!r}: file {path} does not exist")
            mod_spec = importlib.util.spec_from_file_location(f"_hive_separator_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
            sys.modules[mod_spec.name] = module  # type: ignore[union-attr]
            mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(module_name)
    except EvalError:
        raise
    except ImportError as exc:
        raise EvalError(f"--separator {spec!r}: cannot import {module_name!r} ({exc}); put its folder on "
                        "PYTHONPATH or give FILE.py:FUNCTION") from exc
    except SyntaxError as exc:
        raise EvalError(f"--separator {spec!r}: {exc.filename or module_name} does not compile (SyntaxError "
                        f"at line {exc.lineno}: {exc.msg}); fix the file") from None
    except SystemExit as exc:
        raise EvalError(f"--separator {spec!r}: importing {module_name} called sys.exit({exc.code!r}); a "
                        "separator module must only define separate(mix, sample_rate, query_label)") from None
    except Exception as exc:  # the user's module failed while importing: name it, keep the cause for -vv
        log.debug("importing the separator failed", exc_info=True)
        raise EvalError(f"--separator {spec!r}: importing {module_name} raised {type(exc).__name__}: {exc}; "
                        "run with -vv for the traceback") from exc
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise EvalError(f"--separator {spec!r}: {module_name} has no callable {func_name!r}; expected "
                        "separate(mix, sample_rate, query_label) -> estimate")
    return fn


def as_estimate(value: Any, length: int, what: str) -> np.ndarray:
    """Validate one estimate (1-D of ``length`` samples, finite) and return it as float64."""
    try:
        if hasattr(value, "detach"):  # a torch tensor; bfloat16 (and other types NumPy lacks) via float32
            value = value.detach().cpu()
            if hasattr(value, "float") and not getattr(value.dtype, "is_complex", False):
                value = value.float()
            value = value.numpy()
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise EvalError(f"{what}: got {type(value).__name__}, expected a 1-D array of {length} samples") from exc
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.shape != (length,):
        raise EvalError(f"{what}: shape {arr.shape}, expected ({length},) (mono, the mixture's length)")
    check_audio(arr, what, "fix the estimate")
    return arr


def call_separator(fn: Separator, mix: np.ndarray, sr: int, label: str, what: str) -> np.ndarray:
    """``fn(mix, sr, label)`` validated; an exception inside the separator becomes an :class:`EvalError`
    naming the mixture and query (the original traceback is logged at debug level, ``-vv``)."""
    try:
        value = fn(mix.copy(), sr, label)
    except SystemExit as exc:  # sys.exit() in the user's code must not end eval as if it succeeded
        raise EvalError(f"{what}: the separator called sys.exit({exc.code!r}) (query {label!r}); a separator "
                        "returns an estimate, it never exits") from None
    except Exception as exc:  # the user's code: report where it failed, keep the cause chained
        log.debug("separator failed on %s", what, exc_info=True)
        raise EvalError(f"{what}: the separator raised {type(exc).__name__}: {exc} (query {label!r}, "
                        f"{mix.shape[0]} samples at {sr} Hz); run with -vv for the traceback") from exc
    return as_estimate(value, mix.shape[0], f"{what} (separator output for query {label!r})")


class EstimatesFolder:
    """Reads ``root/{split}/{mix_id}/s{i}.wav|flac`` and checks rate and length."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise EvalError(f"--estimates {root}: not a folder; expected DIR/{{split}}/{{mix_id}}/s{{i}}.wav")

    def path(self, split: str, mix_id: str, index: int) -> Path | None:
        for ext in ESTIMATE_EXTENSIONS:
            p = self.root / split / mix_id / f"s{index}{ext}"
            if p.is_file():
                return p
        return None

    def read(self, split: str, mix_id: str, index: int, sample_rate: int, length: int) -> np.ndarray:
        p = self.path(split, mix_id, index)
        if p is None:
            raise MissingEstimateError(
                f"no estimate {self.root / split / mix_id / f's{index}.wav'} (or .flac) for source {index} of "
                f"{mix_id}; expected DIR/{{split}}/{{mix_id}}/s{{i}}.wav for every source, or pass --allow-missing "
                "to skip (and count) missing ones")
        try:
            x, sr = sf_read(p, dtype="float64", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise EvalError(f"estimate {p}: unreadable audio ({exc}); expected a WAV or FLAC file") from exc
        if sr != sample_rate:
            raise EvalError(f"estimate {p}: {sr} Hz, expected {sample_rate} Hz (the mixture's rate); resample it")
        return as_estimate(x.mean(axis=1), length, f"estimate {p}")
