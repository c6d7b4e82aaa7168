"""Running a separator: the batched interface on its device, or the per-source callable.

Two interfaces, told apart by the callable's signature (required positional parameters):

* **batched** (2): ``separate(mix: Tensor[B, T], queries: list[str]) -> Tensor[B, T]`` — ``B`` (mixture,
  query) pairs of one length, float32, on the separator's device: a ``torch.nn.Module``'s
  parameters' device, moved to ``device`` when one is given; a plain function gets ``device``
  (default CPU). The output must be a float32 (or float64) tensor of shape ``[B, T]`` on that
  device, finite. A batch whose output breaks a rule is named and counted (``hive eval`` then
  exits 1) and its sources get no estimate; the other batches go on.
* **per source** (3): ``separate(mix, sample_rate, query_label) -> estimate`` with ``mix`` a 1-D
  float32 NumPy array (:func:`~mixing.evaluate.estimates.call_separator`, as before).
* a **factory** (0): called once; what it returns is the separator (e.g. a model loaded from a
  checkpoint).

An attribute ``hive_interface = "batched"`` or ``"per_source"`` on the callable overrides the
signature. A separator that raises is an :class:`~mixing.evaluate.errors.EvalError` (exit 2),
as before.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import EvalError
from .estimates import call_separator

log = logging.getLogger(__name__)
INTERFACES = ("batched", "per_source")
#: failure reasons of one batch
WRONG_TYPE, WRONG_SHAPE, WRONG_DTYPE, WRONG_DEVICE, NON_FINITE = (
    "wrong_type", "wrong_shape", "wrong_dtype", "wrong_device", "non_finite")
_LOGGED_BATCHES = 5


def _required_positional(fn: Any) -> int | None:
    target = getattr(fn, "forward", None) if callable(getattr(fn, "forward", None)) else fn  # a torch module
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        return None
    return sum(1 for p in sig.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty)


def interface_of(fn: Any) -> str:
    """``"batched"`` or ``"per_source"`` (see the module docstring)."""
    declared = getattr(fn, "hive_interface", None)
    if declared is not None:
        if declared not in INTERFACES:
            raise EvalError(f"separator declares hive_interface={declared!r}; expected one of {INTERFACES}")
        return declared
    n = _required_positional(fn)
    if n == 2:
        return "batched"
    if n in (3, None):
        return "per_source"
    raise EvalError(f"the separator takes {n} required positional arguments; expected separate(mix[B, T], queries) "
                    "-> [B, T] (batched), separate(mix, sample_rate, query_label) -> estimate (per source), or a "
                    "factory without arguments that returns one of these")


@dataclass
class BatchFailure:
    batch: int
    reason: str
    message: str
    mix_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "reason": self.reason, "message": self.message, "mix_ids": self.mix_ids}


class SeparatorRunner:
    """Estimates for (mixture, query) pairs from one separator, batch by batch."""

    def __init__(self, fn: Callable[..., Any], device: str | None = None):
        if _required_positional(fn) == 0 and getattr(fn, "hive_interface", None) is None:
            try:
                fn = fn()  # a factory
            except SystemExit as exc:  # never end eval as if it succeeded
                raise EvalError(f"the separator factory called sys.exit({exc.code!r}); a factory returns the "
                                "separator") from None
            except Exception as exc:
                log.debug("separator factory failed", exc_info=True)
                raise EvalError(f"the separator factory raised {type(exc).__name__}: {exc}; run with -vv for the "
                                "traceback") from exc
            if not callable(fn):
                raise EvalError(f"the separator factory returned a {type(fn).__name__}; expected a callable separator")
        self.fn = fn
        self.interface = interface_of(fn)
        self.failures: list[BatchFailure] = []
        self.batches = 0
        self.device = None
        if self.interface == "batched":
            self.device = _place(fn, device)
        elif device not in (None, "cpu"):
            raise EvalError(f"--device {device}: the per-source separator (separate(mix, sample_rate, query)) gets "
                            "NumPy arrays; give a batched separator (separate(mix[B, T], queries)) to run on a device")

    def run(self, mixes: Sequence[np.ndarray], queries: Sequence[str], sample_rate: int,
            mix_ids: Sequence[str], whats: Sequence[str]) -> list[np.ndarray] | None:
        """Estimates (float64 ``[T]`` each) of one batch, or None when the batch failed (counted).
        ``whats`` names each pair in the per-source interface's errors."""
        self.batches += 1
        if self.interface == "per_source":
            return [call_separator(self.fn, m, sample_rate, q, w) for m, q, w in zip(mixes, queries, whats)]
        torch = _torch()
        batch = torch.from_numpy(np.stack(mixes).astype(np.float32, copy=False)).to(self.device)
        what = f"batch {self.batches} ({len(mixes)} queries of {', '.join(dict.fromkeys(mix_ids))})"
        try:
            with torch.no_grad():
                out = self.fn(batch, list(queries))
        except SystemExit as exc:  # never end eval as if it succeeded
            raise EvalError(f"{what}: the separator called sys.exit({exc.code!r}); a separator returns estimates, "
                            "it never exits") from None
        except Exception as exc:
            log.debug("separator failed on %s", what, exc_info=True)
            raise EvalError(f"{what}: the separator raised {type(exc).__name__}: {exc}; run with -vv for the "
                            "traceback") from exc
        problem = _check_output(out, tuple(batch.shape), self.device)
        if problem is not None:
            reason, detail = problem
            failure = BatchFailure(self.batches, reason, f"{what}: {detail}", list(dict.fromkeys(mix_ids)))
            self.failures.append(failure)
            if len(self.failures) <= _LOGGED_BATCHES:
                log.warning("separator output refused (%s): %s", reason, failure.message)
            return None
        arr = out.detach().to("cpu", torch.float64).numpy() if hasattr(out, "detach") else np.asarray(out, np.float64)
        return list(arr)


def _torch() -> Any:
    from .. import optional

    return optional.require("torch", "a batched separator (separate(mix[B, T], queries))", "eval",
                            alternative="or give a per-source separator separate(mix, sample_rate, query_label)")


def _place(fn: Any, device: str | None) -> Any:
    """The device a batched separator runs on (a module is moved to ``device`` when one is given)."""
    torch = _torch()

    try:
        wanted = None if device is None else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise EvalError(f"--device {device!r} is not a torch device ({exc}); expected e.g. cpu, cuda, cuda:1") from None
    params = getattr(fn, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    if first is None:
        return wanted or torch.device("cpu")
    if wanted is not None and first.device != wanted:
        try:
            fn.to(wanted)
        except (RuntimeError, AssertionError) as exc:
            raise EvalError(f"--device {device}: the separator cannot be moved there ({exc})") from None
        return wanted
    return first.device


def _check_output(out: Any, shape: tuple[int, ...], device: Any) -> tuple[str, str] | None:
    torch = _torch()

    if isinstance(out, np.ndarray):
        if device.type != "cpu":
            return WRONG_DEVICE, f"returned a NumPy array; expected a tensor on {device} (the input's device)"
        out = torch.from_numpy(out)
    if not isinstance(out, torch.Tensor):
        return WRONG_TYPE, f"returned a {type(out).__name__}; expected a torch.Tensor of shape {list(shape)}"
    if tuple(out.shape) != shape:
        return WRONG_SHAPE, f"returned shape {list(out.shape)}; expected {list(shape)} (one estimate per query)"
    if out.dtype not in (torch.float32, torch.float64):
        return WRONG_DTYPE, f"returned dtype {out.dtype}; expected torch.float32 (or float64)"
    if out.device != device:
        return WRONG_DEVICE, f"returned a tensor on {out.device}; expected {device} (the input's device)"
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        return NON_FINITE, f"returned {bad} NaN or infinite samples; expected finite audio"
    return None
