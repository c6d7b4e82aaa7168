"""The evaluation loop: samples -> estimates per (mixture, query) -> metric rows.

For source ``i`` of a mixture the separator is queried with the mix and the label of source ``i``
(or the estimate ``s{i}`` is read from the folder). A batched separator gets ``batch_size``
(mixture, query) pairs at a time on its device (:mod:`.separator`); the per-source callable one
pair at a time. Two oracle systems are always evaluated:

* ``mixture``: the estimate is the mix itself, so its SI-SDRi is exactly 0 dB (a sanity row);
* ``irm``: the ideal ratio mask from the STFTs of the references (an upper bound for masking).

SI-SDRi = SI-SDR(estimate, ref) - SI-SDR(mix, ref); SDRi likewise with the BSS-eval v4 SDR. The
metrics of each mixture are computed inline or in ``num_workers`` processes (:mod:`.scoring`).
With ``num_sources`` / a label filter only those mixtures, and only the selected sources, are scored.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import EvalError
from .estimates import EstimatesFolder, MissingEstimateError, Separator, load_separator
from .metrics import check_dependencies
from .options import EvalOptions
from .rendered import count_rendered, iter_from_metadata, iter_rendered
from ..memory_estimate import check_mixture_memory
from ..moved_arguments import moved
from ..resume import atomic_write_text, remove_stale_tmp_of
from .report import ResultsWriter, Summary, markdown_table, plot_summary, write_summary_csv
from .scoring import Scorer, ScoreTask
from .separator import SeparatorRunner

#: the files ``hive eval`` writes into its output folder
OUTPUT_NAMES = ("results.csv", "summary.csv", "summary.md", "si_sdri.png")

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    output: Path
    mixtures: int = 0
    sources: int = 0
    summary: Summary = field(default_factory=Summary)
    missing: Counter = field(default_factory=Counter)
    #: mixtures left out because they could not be rendered on the fly, by reason
    render_failures: Counter = field(default_factory=Counter)
    files: dict[str, Path] = field(default_factory=dict)
    sdr: bool = True
    #: batches whose separator output was refused (shape, dtype, device, NaN): their sources have no estimate
    failed_batches: list[dict[str, Any]] = field(default_factory=list)
    #: "batched" or "per_source" (None without a separator)
    interface: str | None = None

    def markdown(self, per_label: bool = False) -> str:
        return markdown_table(self.summary.rows(per_label=per_label), sdr=self.sdr)


@dataclass
class _Pending:
    """A mixture waiting for its estimates."""

    sample: Any
    indices: list[int]
    got: dict[int, np.ndarray | None] = field(default_factory=dict)
    waiting: int = 0

    def task(self, system: str | None, with_sdr: bool) -> ScoreTask:
        done = [i for i in self.indices if self.got.get(i) is not None]
        ests = np.stack([self.got[i] for i in done]) if done else None
        return ScoreTask(self.sample, self.indices, system, ests, done, with_sdr)


class _Batcher:
    """Collects (mixture, source) pairs into batches of one length and runs the separator."""

    def __init__(self, runner: SeparatorRunner, size: int):
        self.runner, self.size = runner, size
        self.pairs: list[tuple[_Pending, int]] = []

    def add(self, item: _Pending, i: int) -> None:
        if self.pairs and (len(self.pairs) >= self.size or
                           self.pairs[0][0].sample.mix.shape != item.sample.mix.shape or
                           self.pairs[0][0].sample.sample_rate != item.sample.sample_rate):
            self.flush()
        item.waiting += 1
        self.pairs.append((item, i))

    def flush(self) -> None:
        if not self.pairs:
            return
        pairs, self.pairs = self.pairs, []
        s0 = pairs[0][0].sample
        ests = self.runner.run([p.sample.mix for p, _ in pairs], [p.sample.labels[i] for p, i in pairs],
                               s0.sample_rate, [p.sample.mix_id for p, _ in pairs],
                               [f"{p.sample.split}/{p.sample.mix_id} s{i + 1}" for p, i in pairs])
        for k, (p, i) in enumerate(pairs):
            p.got[i] = None if ests is None else _as_estimate(ests[k], p.sample)
            p.waiting -= 1


def _as_estimate(x: np.ndarray, sample: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(sample.mix.shape[0])


def _selected(samples: Iterator[Any], opts: EvalOptions, seen: Counter, counts: list[int]) -> Iterator[tuple[Any, list[int]]]:
    """Samples of ``num_sources`` that the label filter keeps, with the indices of the sources to
    score; ``seen`` counts the mixtures per label and ``counts[0]`` the mixtures looked at."""
    lf = opts.labels
    for sample in samples:
        if opts.num_sources is not None and sample.num_sources != opts.num_sources:
            continue
        counts[0] += 1
        seen.update(set(sample.labels))
        if lf is not None and not lf.keeps(sample.labels):
            continue
        yield sample, (list(range(sample.num_sources)) if lf is None else lf.passing(sample.labels))


@moved(**{k: "options=EvalOptions(...)" for k in ("name", "with_sdr", "allow_missing", "limit", "plot", "progress")})
def evaluate(rendered: str | Path | None, output: str | Path, *, separator: Separator | str | None = None,
             estimates: str | Path | None = None, split: str | None = None, metadata: Any = None,
             recipe: Any = None, options: EvalOptions | None = None) -> EvalResult:
    """Evaluate a query-based separator on a ``hive render`` folder, or on metadata rendered on
    the fly (``metadata`` with a :class:`mixing.recipe.RenderRecipe`, e.g. from a source store).

    Args:
        rendered: the ``--output`` folder of ``hive render`` (WebDataset or Parquet shards); or
            None with ``metadata`` and ``recipe`` (mixtures that cannot be rendered are counted in
            ``result.render_failures``).
        output: folder for ``results.csv``, ``summary.csv``, ``summary.md`` and ``si_sdri.png``.
        separator: a batched ``separate(mix[B, T], queries) -> [B, T]``, a per-source
            ``separate(mix, sample_rate, query_label) -> estimate``, a factory of either, or its
            ``"module:function"`` (see :mod:`mixing.evaluate.separator`).
        estimates: instead of ``separator``, a folder ``{split}/{mix_id}/s{i}.wav|flac``.
        split: only this split (default: every split in the folder).
        metadata, recipe: instead of ``rendered``, metadata (any form ``--metadata`` takes, or an
            in-memory table) and the :class:`~mixing.recipe.RenderRecipe` that renders it.
        options: :class:`~mixing.evaluate.options.EvalOptions`: batch size, device, metric
            workers, number of sources, label filter, the system's ``name``, ``with_sdr`` (BSS-eval
            v4 SDR and SDRi, needs torchmetrics), ``allow_missing`` (with ``estimates``: sources
            without a file are counted in ``result.missing`` instead of raising), ``limit``
            (mixtures), ``plot`` (the PNG, matplotlib) and ``progress``.

    Only the oracle rows are computed when neither ``separator`` nor ``estimates`` is given.
    A batch of a batched separator whose output is refused is listed in ``result.failed_batches``.
    """
    opts = options or EvalOptions()
    name, with_sdr, allow_missing, limit = opts.name, opts.with_sdr, opts.allow_missing, opts.limit
    if separator is not None and estimates is not None:
        raise EvalError("give a separator or an estimates folder, not both")
    check_dependencies(with_sdr, opts.plot)
    fn = load_separator(separator) if isinstance(separator, str) else separator
    folder = EstimatesFolder(estimates) if estimates is not None else None
    if name is not None and fn is None and folder is None:
        raise EvalError(f"--name {name!r} names the evaluated system, but none is given: add --separator or "
                        "--estimates (without them only the oracle rows mixture and irm are computed)")
    system = name or ("separator" if fn is not None else "estimates" if folder is not None else None)
    if (rendered is None) == (metadata is None) or (metadata is not None and recipe is None):
        raise EvalError("give either a render output folder (--rendered) or metadata with a store and/or "
                        "dataset paths to render it on the fly (--metadata with --store/--dataset-paths)")
    runner = SeparatorRunner(fn, opts.device) if fn is not None else None
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    # temporaries of these outputs left by a killed earlier run (dead PIDs only; nothing else)
    remove_stale_tmp_of(*(out / name for name in OUTPUT_NAMES))
    result = EvalResult(out, sdr=with_sdr, interface=None if runner is None else runner.interface)
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if opts.progress is None else opts.progress

    def memory(rec, frames: int) -> None:  # before a sample is decoded or rendered: its peak under the cap
        check_mixture_memory("eval", rec.mix_id, frames, rec.num_sources, sdr=with_sdr)

    seen: Counter = Counter()
    looked = [0]
    if rendered is not None:
        samples = iter_rendered(rendered, split, memory=memory)
        total = count_rendered(rendered, split) if opts.num_sources is None and opts.labels is None else None
    else:
        lf = opts.labels
        samples = iter_from_metadata(metadata, recipe, split, result.render_failures, memory=memory,
                                     num_sources=opts.num_sources,
                                     keep=None if lf is None else lambda rec: _seen(rec, lf, seen, looked))
        total = None
    total = limit if total is None else total if limit is None else min(total, limit)
    writer = ResultsWriter(out / "results.csv")
    bar = tqdm(total=total, unit="mix", desc="eval", disable=not show)
    batcher = _Batcher(runner, opts.batch_size) if runner is not None else None
    pending: deque[_Pending] = deque()

    def emit(scorer: Scorer, final: bool = False) -> None:
        while pending and (final or pending[0].waiting == 0):
            item = pending.popleft()
            for rows in scorer.submit(item.task(system, with_sdr)):
                _write(rows, writer, result, bar)
        if final:
            for rows in scorer.drain():
                _write(rows, writer, result, bar)

    try:
        with Scorer(opts.num_workers) as scorer:
            counted = (seen, looked) if rendered is not None else (Counter(), [0])  # metadata: counted before rendering
            for sample, indices in _selected(samples, opts, *counted):
                if limit is not None and result.mixtures + len(pending) >= limit:
                    break
                item = _Pending(sample, indices)
                for i in indices:
                    if batcher is not None:
                        batcher.add(item, i)
                    elif folder is not None:
                        try:
                            item.got[i] = folder.read(sample.split, sample.mix_id, i + 1, sample.sample_rate,
                                                      sample.mix.shape[0])
                        except MissingEstimateError:
                            if not allow_missing:
                                raise
                            result.missing[sample.split] += 1
                pending.append(item)
                result.sources += len(indices)
                emit(scorer)
            if batcher is not None:
                batcher.flush()
            emit(scorer, final=True)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    result.files["results"] = writer.close()
    if runner is not None:
        result.failed_batches = [f.to_dict() for f in runner.failures]
    if result.mixtures == 0:
        where = f"--rendered {rendered}" if rendered is not None else f"--metadata {metadata}"
        if opts.labels is not None and looked[0]:
            raise opts.labels.nothing_selected(seen, looked[0], where)
        failed = (f" ({sum(result.render_failures.values())} could not be rendered: "
                  + ", ".join(f"{k}={v}" for k, v in sorted(result.render_failures.items())) + ")"
                  if result.render_failures else "")
        which = f" with {opts.num_sources} sources" if opts.num_sources is not None else ""
        raise EvalError(f"{where}: no mixture found{which}{failed}; nothing to evaluate")
    rows = result.summary.rows(per_label=True)
    result.files["summary_csv"] = write_summary_csv(rows, out / "summary.csv")
    md = out / "summary.md"
    atomic_write_text(md, markdown_table(rows, sdr=with_sdr) + "\n")
    result.files["summary_md"] = md
    if opts.plot:
        result.files["plot"] = plot_summary(result.summary, out / "si_sdri.png")
    log.info("evaluated %d mixtures (%d sources) into %s", result.mixtures, result.sources, out)
    return result


def _seen(rec: Any, lf: Any, seen: Counter, looked: list[int]) -> bool:
    """Count a record's labels (for the empty-selection message) and say whether the filter keeps it."""
    looked[0] += 1
    seen.update(set(rec.labels))
    return lf.keeps(rec.labels)


def _write(rows: list[dict[str, Any]], writer: ResultsWriter, result: EvalResult, bar: Any) -> None:
    for row in rows:
        writer.add(row)
        result.summary.add(row)
    result.mixtures += 1
    bar.update(1)
