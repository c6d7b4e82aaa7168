"""One builder for the entries of every failure manifest, and one writer of the manifests.

Every command lists what it left out, one JSON object a line, with the same fields for the same
thing: ``reason`` (a name of :mod:`mixing.failures`; from an exception through
:func:`mixing.failures.reason_of`), ``message`` (one line, at most :data:`MESSAGE_CHARS`
characters), and what was left out (``mix_id``, ``split``, ``num_sources``, ``source``, ``path``
for a mixture; ``path`` and the chunk bounds for a store chunk; ``mix_id`` and ``source_id`` for a
curated source). The files keep the fields users read: ``hive render``'s ``_failures.jsonl``, the
stream's ``failure_dir``, ``hive store build``'s ``_failures.jsonl``, ``hive curate``'s
``failures.jsonl``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

from ..errors import InvalidRecordError
from ..failures import reason_of
from ..resume import atomic_open

#: longest message kept in a failure entry
MESSAGE_CHARS = 500


def one_line(text: Any, limit: int = MESSAGE_CHARS) -> str:
    """``text`` with its white space folded to single spaces, cut to ``limit`` characters."""
    return " ".join(str(text).split())[:limit]


def failure_record(cause: BaseException | str, message: Any = None, **fields: Any) -> dict[str, Any]:
    """A manifest entry: ``fields``, the ``reason`` (``cause`` itself, or the reason of the
    exception ``cause``) and the ``message`` (``message``, else the exception's text)."""
    if isinstance(cause, BaseException):
        reason, text = reason_of(cause), cause if message is None else message
    else:
        reason, text = cause, message
    entry = {**fields, "reason": reason}
    if text is not None:
        entry["message"] = one_line(text)
    return entry


def mixture_failure(rec: Any, cause: BaseException | str, message: Any = None, **fields: Any) -> dict[str, Any]:
    """A mixture left out: ``mix_id, split, num_sources, source, path, reason, message``; the
    source (its ``source_id``) and path are those the exception names, if any."""
    i = getattr(cause, "source_index", None)
    return failure_record(cause, message, mix_id=rec.mix_id, split=rec.split, num_sources=rec.num_sources,
                          source=None if i is None else rec.sources[i].source_id,
                          path=getattr(cause, "source_path", None), **fields)


def invalid_record_failure(err: InvalidRecordError, **fields: Any) -> dict[str, Any]:
    """A metadata record that breaks the schema: ``mix_id, field, value, expected, reason, message``."""
    described = {k: v for k, v in err.to_dict().items() if k != "reason"}
    return failure_record(err, **described, **fields)


def write_manifest(path: str | os.PathLike, entries: Iterable[dict[str, Any]]) -> None:
    """Write a failure (or warning) manifest atomically: one JSON object a line, keys sorted."""
    with atomic_open(path) as fh:
        for entry in entries:
            fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
