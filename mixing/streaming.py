"""On-the-fly rendering of mixture metadata, cut into work units that ``datasets`` can split.

The ``datasets`` builder (``hive.py``) and the training stream (:mod:`mixing.stream`) both come
down to three steps:

1. :func:`~mixing.metadata_splits.resolve_metadata` – the metadata files of each split;
2. :func:`~mixing.work_units.plan_units` – ``num_units`` :class:`~mixing.work_units.WorkUnit`
   objects per split (the list in ``gen_kwargs``: each unit is rendered by exactly one process);
3. :func:`iter_rendered` (here) – validated records of some units, rendered with one cached
   :class:`~mixing.render.Renderer` per process; failures are skipped with a named, counted reason
   (or raised), logged, and optionally written to ``{failure_dir}/{split}-{unit:05d}.jsonl``.

What each process needs besides its units is a :class:`~mixing.render_spec.RenderSpec`; the forms
of a rendered mixture are in :mod:`mixing.stream_examples`. The names of those modules are
re-exported here. Everything is plain Python + numpy: no torch, no torchcodec, no audio encoding.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import HiveError, InvalidRecordError
from .metadata import MixtureRecord
from .metadata_splits import resolve_metadata
from .ranks.failure_records import (
    invalid_record_failure,
    mixture_failure,
    write_manifest,
)
from .render import RenderedMixture
from .render_spec import FAILURE_POLICIES, FailurePolicy, RenderSpec
from .stream_examples import array_example, encoded_example, iter_examples
from .unit_rows import iter_piece_rows
from .validation import parse_mixture
from .work_units import AUTO_UNIT_MULTIPLE, Piece, WorkUnit, auto_num_units, plan_units

__all__ = [
    "AUTO_UNIT_MULTIPLE", "FAILURE_POLICIES", "FailurePolicy", "Piece", "RENDER_ERRORS", "RenderSpec",
    "StreamReport", "WorkUnit", "array_example", "auto_num_units", "encoded_example", "generate_arrays",
    "iter_examples", "iter_piece_rows", "iter_rendered", "iter_unit_records", "plan_units",
    "read_failure_manifest", "resolve_metadata",
]

log = logging.getLogger(__name__)

#: errors a render may raise for one mixture (typed corpus errors, I/O, decoding)
RENDER_ERRORS = (HiveError, OSError, ValueError, RuntimeError)
_LOGGED_FAILURES_PER_UNIT = 5


@dataclass
class StreamReport:
    """What one process rendered and left out (in-process; see ``failure_dir`` for a manifest)."""

    rendered: int = 0
    failures: Counter = field(default_factory=Counter)
    #: source chunks read from the store / decoded because the store lacks them
    store_hits: int = 0
    store_misses: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    max_examples: int = 100

    def add(self, entry: dict[str, Any]) -> None:
        self.failures[entry["reason"]] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(entry)

    @property
    def num_failures(self) -> int:
        return sum(self.failures.values())


def _failure_entry(rec: MixtureRecord | None, exc: BaseException) -> dict[str, Any]:
    """The stream's failure_dir entry, from the one builder of failure-manifest entries."""
    if isinstance(exc, InvalidRecordError):
        return invalid_record_failure(exc, split=None, num_sources=None, source=None, path=None)
    return mixture_failure(rec, exc)


def iter_unit_records(unit: WorkUnit, spec: RenderSpec, failures: list[dict[str, Any]]) -> Iterator[MixtureRecord]:
    """Validated records of one unit; invalid ones are appended to ``failures`` (or raised)."""
    for piece in unit.pieces:
        for raw in iter_piece_rows(piece, unit.split, spec.num_sources):
            try:
                if isinstance(raw, dict) and "__bad_json__" in raw:
                    raise InvalidRecordError(None, "<json>", raw["__bad_json__"], "one JSON object per line")
                rec = parse_mixture(raw, max_sources=spec.max_sources)
            except InvalidRecordError as err:
                if spec.on_failure == "raise":
                    err.add_note(f"in metadata {piece.file.location} (work unit {unit.name})")
                    raise
                failures.append(_failure_entry(None, err))
                continue
            if rec.split != unit.split:
                continue
            if spec.num_sources is not None and rec.num_sources != spec.num_sources:
                continue
            if spec.labels is not None and not spec.labels.keeps(rec.labels):
                continue
            yield rec


def _write_failures(spec: RenderSpec, unit: WorkUnit, failures: list[dict[str, Any]]) -> None:
    if not spec.failure_dir:
        return
    folder = Path(spec.failure_dir)
    path = folder / f"{unit.name}.jsonl"
    if not failures:
        path.unlink(missing_ok=True)  # a rerun after the corpus was fixed
        return
    write_manifest(path, failures)


def _close_unit(unit: WorkUnit, spec: RenderSpec, failures: list[dict[str, Any]],
                report: StreamReport | None) -> None:
    if report is not None:
        for entry in failures:
            report.add(entry)
    _write_failures(spec, unit, failures)
    if failures:
        counts = Counter(f["reason"] for f in failures)
        log.warning("work unit %s: %d mixture(s) left out (%s)%s", unit.name, len(failures),
                    ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
                    f"; manifest {Path(spec.failure_dir) / (unit.name + '.jsonl')}" if spec.failure_dir else "")


def iter_rendered(units: Sequence[WorkUnit], spec: RenderSpec, *,
                  report: StreamReport | None = None) -> Iterator[tuple[int, int, RenderedMixture]]:
    """``(position of the unit in units, row within the unit, rendered mixture)`` for every
    renderable record, in order. A mixture that fails is left out with a named reason (policy
    ``skip``) or its error is raised with the mixture id attached (``raise``)."""
    renderer = spec.renderer()
    stats = renderer.store_stats
    for pos, unit in enumerate(units):
        failures: list[dict[str, Any]] = []
        row = 0
        for rec in iter_unit_records(unit, spec, failures):
            hits, misses = stats["hits"], stats["misses"]
            try:
                rendered = renderer.render(rec)
            except RENDER_ERRORS as exc:
                if spec.on_failure == "raise":
                    exc.add_note(f"while rendering mixture {rec.mix_id!r} (work unit {unit.name})")
                    raise
                entry = _failure_entry(rec, exc)
                failures.append(entry)
                if len(failures) <= _LOGGED_FAILURES_PER_UNIT:
                    log.warning("mixture %s left out (%s): %s", rec.mix_id, entry["reason"], entry["message"])
                continue
            if report is not None:
                report.rendered += 1
                report.store_hits += stats["hits"] - hits
                report.store_misses += stats["misses"] - misses
            yield pos, row, rendered
            row += 1
        _close_unit(unit, spec, failures, report)


def generate_arrays(units: Sequence[WorkUnit], spec: RenderSpec) -> Iterator[dict[str, Any]]:
    """The generator behind :func:`mixing.stream.stream_mixtures` (``IterableDataset.from_generator``
    with ``gen_kwargs={"units": [...], "spec": spec}``): a module-level function, so datasets and
    DataLoader workers can pickle it by reference."""
    yield from iter_examples((r for _, _, r in iter_rendered(units, spec)), spec)


def read_failure_manifest(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Entries of every ``*.jsonl`` under ``folder`` (sorted by unit name); empty if none."""
    folder = Path(folder)
    out: list[dict[str, Any]] = []
    if folder.is_dir():
        for p in sorted(folder.glob("*.jsonl")):
            with open(p, encoding="utf-8") as fh:
                out.extend(json.loads(line) for line in fh if line.strip())
    return out
