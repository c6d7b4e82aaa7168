"""Batches of examples, every form: mixtures with all their stems, and query examples.

* :func:`stack_examples` — numpy: the ``"all"`` form becomes ``mix (B, T)``, ``sources (B, N, T)``
  zero-padded, ``source_mask (B, N)`` (:func:`pad_sources`); the query form
  (``targets="each"``/``"one"``) becomes ``mix (B, T)``, ``target (B, T)``, ``source_index (B,)``,
  ``negative (B,)``; other fields become lists (``query``, ``label``, ``label_id``, ``mix_id`` …).
* :func:`collate_mixtures` — the same as torch tensors, for ``DataLoader(collate_fn=...)``; in a
  DataLoader worker the batch is built directly in shared memory (handed over without a copy).
  torch is imported only when it is called.

Examples of one batch must share rate and duration (batch one split at one sample rate).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import optional

Alloc = Callable[[str, tuple[int, ...], Any], np.ndarray]
#: stacked per example in the query form (the rest become lists)
_QUERY_ARRAYS = ("mix", "target", "source_index", "negative")


def _empty(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.empty(shape, dtype=dtype)  # every element is written


def is_query_form(example: Mapping[str, Any]) -> bool:
    return "target" in example and "query" in example


def stack_queries(examples: Sequence[Mapping[str, Any]], alloc: Alloc | None = None) -> dict[str, Any]:
    """Query examples as ``mix (B, T)``, ``target (B, T)``, ``source_index (B,)``, ``negative (B,)``."""
    alloc = alloc or _empty
    lengths = {np.shape(e["mix"])[-1] for e in examples} | {np.shape(e["target"])[-1] for e in examples}
    if len(lengths) != 1:
        raise ValueError(f"query examples have different lengths {sorted(lengths)}; batch one split (one target "
                         "duration) at one sample rate")
    t = lengths.pop()
    b = len(examples)
    mix = alloc("mix", (b, t), np.float32)
    target = alloc("target", (b, t), np.float32)
    index = alloc("source_index", (b,), np.int64)
    negative = alloc("negative", (b,), np.bool_)
    for k, e in enumerate(examples):
        mix[k] = e["mix"]
        target[k] = e["target"]
        index[k] = int(e["source_index"])
        negative[k] = bool(e["negative"])
    out: dict[str, Any] = {key: [e[key] for e in examples] for key in examples[0] if key not in _QUERY_ARRAYS}
    out.update(mix=mix, target=target, source_index=index, negative=negative)
    return out


def pad_sources(examples: Sequence[Mapping[str, Any]], max_sources: int | None = None,
                alloc: Any = None) -> dict[str, Any]:
    """Stack examples of one rate and duration into ``mix (B, T)``, ``sources (B, N, T)`` zero-padded
    to the largest count (or ``max_sources``), and ``source_mask (B, N)``; other keys as lists.
    ``alloc(name, shape, dtype) -> ndarray`` lets a caller provide the output buffers (e.g.
    shared memory in a DataLoader worker); they need not be zeroed: every element is written once."""
    if alloc is None:
        def alloc(name, shape, dtype):
            return np.empty(shape, dtype=dtype)
    if not examples:
        raise ValueError("pad_sources got no examples")
    lengths = {np.shape(e["mix"])[-1] for e in examples}
    if len(lengths) != 1:
        raise ValueError(f"examples have different lengths {sorted(lengths)}; batch one split (one "
                         "target duration) at one sample rate")
    n = max_sources or max(int(np.shape(e["sources"])[0]) for e in examples)
    t = lengths.pop()
    mix = alloc("mix", (len(examples), t), np.float32)
    sources = alloc("sources", (len(examples), n, t), np.float32)
    mask = alloc("source_mask", (len(examples), n), np.bool_)
    for b, e in enumerate(examples):
        s = np.asarray(e["sources"], dtype=np.float32)
        if s.shape[0] > n:
            raise ValueError(f"{e.get('mix_id')}: {s.shape[0]} sources > max_sources={n}")
        mix[b] = e["mix"]
        sources[b, : s.shape[0]] = s
        sources[b, s.shape[0]:] = 0.0
        mask[b, : s.shape[0]] = True
        mask[b, s.shape[0]:] = False
    out: dict[str, Any] = {k: [e[k] for e in examples] for k in examples[0] if k not in ("mix", "sources")}
    out.update(mix=mix, sources=sources, source_mask=mask)
    return out


def stack_examples(examples: Sequence[Mapping[str, Any]], max_sources: int | None = None,
                   alloc: Alloc | None = None) -> dict[str, Any]:
    """A batch of numpy arrays from examples of one form (see the module docstring)."""
    if not examples:
        raise ValueError("a batch needs at least one example")
    forms = {is_query_form(e) for e in examples}
    if len(forms) != 1:
        raise ValueError("a batch mixes query examples (targets 'each'/'one') with whole mixtures ('all'); "
                         "use one form per stream")
    if forms.pop():
        return stack_queries(examples, alloc)
    return pad_sources(examples, max_sources, alloc=alloc)


def collate_mixtures(batch: Sequence[Mapping[str, Any]], max_sources: int | None = None) -> dict[str, Any]:
    """``DataLoader(collate_fn=collate_mixtures)`` for every example form: the arrays of
    :func:`stack_examples` as torch tensors (float32, int64, bool), other fields as lists.
    Whole mixtures: ``mix (B, T)``, ``sources (B, N, T)`` zero-padded to the largest number of
    sources in the batch (or ``max_sources``), ``source_mask (B, N)``. Query examples:
    ``mix (B, T)``, ``target (B, T)``, ``source_index (B,)``, ``negative (B,)``, ``query`` (list)."""
    torch = optional.require("torch", "collate_mixtures", "audio")
    in_worker = torch.utils.data.get_worker_info() is not None
    tensors: dict[str, Any] = {}
    dtypes = {np.float32: torch.float32, np.bool_: torch.bool, np.int64: torch.int64}

    def alloc(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        tdtype = dtypes[dtype]
        if in_worker:  # fill shared memory directly: the DataLoader then hands it over without a copy
            numel = int(np.prod(shape))
            storage = torch.empty(0, dtype=tdtype)._typed_storage()._new_shared(numel)
            t = torch.empty(0, dtype=tdtype).new(storage).resize_(*shape)
        else:
            t = torch.empty(shape, dtype=tdtype)  # stack_examples writes every element
        tensors[name] = t
        return t.numpy()

    plain = [{k: (v.numpy() if hasattr(v, "numpy") and not isinstance(v, np.ndarray) else v) for k, v in e.items()}
             for e in batch]
    out = stack_examples(plain, max_sources, alloc=alloc)
    out.update(tensors)
    return out
