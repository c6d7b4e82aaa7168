"""The evaluation loop: rendered samples -> estimates per (mixture, source) -> metric rows.

For source ``i`` of a mixture the separator is queried with the mix and the label of source ``i``
(or the estimate ``s{i}`` is read from the folder). Two oracle systems are always evaluated:

* ``mixture``: the estimate is the mix itself, so its SI-SDRi is exactly 0 dB (a sanity row);
* ``irm``: the ideal ratio mask from the STFTs of the references (an upper bound for masking).

SI-SDRi = SI-SDR(estimate, ref) - SI-SDR(mix, ref); SDRi likewise with the BSS-eval v4 SDR.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EvalError
from .estimates import EstimatesFolder, MissingEstimateError, Separator, call_separator, load_separator
from .metrics import check_dependencies, irm_estimates, sdr, si_sdr
from .rendered import count_rendered, iter_from_metadata, iter_rendered
from ..memory_estimate import check_mixture_memory
from ..resume import atomic_write_text, remove_stale_tmp_of
from .report import ResultsWriter, Summary, markdown_table, plot_summary, write_summary_csv

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

    def markdown(self, per_label: bool = False) -> str:
        return markdown_table(self.summary.rows(per_label=per_label), sdr=self.sdr)


def _system_rows(system: str, sample, estimates: Any, indices: list[int], si_mix: list[float],
                 sdr_mix: np.ndarray | None, with_sdr: bool) -> list[dict[str, Any]]:
    """Metric rows of ``estimates[j]`` against the reference of source ``indices[j]`` (0-based),
    one source at a time (no array of every reference or estimate is copied)."""
    rows = []
    for j, i in enumerate(indices):
        ref = sample.stems[i]
        s = si_sdr(estimates[j], ref)
        d = float(sdr(estimates[j][None], ref[None])[0]) if with_sdr else float("nan")
        row = {"system": system, "split": sample.split, "mix_id": sample.mix_id,
               "num_sources": sample.num_sources, "source_index": i + 1, "label": sample.labels[i],
               "si_sdr": s, "si_sdr_mix": si_mix[i], "si_sdri": s - si_mix[i],
               "sdr": d, "sdr_mix": float("nan"), "sdri": float("nan")}
        if sdr_mix is not None:
            row["sdr_mix"] = float(sdr_mix[i])
            row["sdri"] = d - float(sdr_mix[i])
        rows.append(row)
    return rows


def evaluate(rendered: str | Path | None, output: str | Path, *, separator: Separator | str | None = None,
             estimates: str | Path | None = None, split: str | None = None, name: str | None = None,
             with_sdr: bool = True, allow_missing: bool = False, plot: bool = True,
             limit: int | None = None, progress: bool | None = None, metadata: Any = None,
             recipe: Any = None) -> EvalResult:
    """Evaluate a query-based separator on a ``hive render`` folder, or on metadata rendered on
    the fly (``metadata`` with a :class:`mixing.recipe.RenderRecipe`, e.g. from a source store).

    Args:
        rendered: the ``--output`` folder of ``hive render`` (WebDataset or Parquet shards); or
            None with ``metadata`` and ``recipe`` (mixtures that cannot be rendered are counted in
            ``result.render_failures``).
        output: folder for ``results.csv``, ``summary.csv``, ``summary.md`` and ``si_sdri.png``.
        separator: ``separate(mix, sample_rate, query_label) -> estimate`` or its ``"module:function"``.
        estimates: instead of ``separator``, a folder ``{split}/{mix_id}/s{i}.wav|flac``.
        split: only this split (default: every split in the folder).
        name: the evaluated system's name in the tables (default ``separator`` / ``estimates``).
        with_sdr: also compute BSS-eval v4 SDR and SDRi (needs torchmetrics).
        allow_missing: with ``estimates``, skip sources without an estimate file (counted in
            ``result.missing``) instead of raising.
        plot: write the PNG plot (matplotlib).
        limit: stop after this many mixtures (a quick look; default all).
        progress: tqdm bar (default: when stderr is a terminal).

    Only the oracle rows are computed when neither ``separator`` nor ``estimates`` is given.
    """
    if separator is not None and estimates is not None:
        raise EvalError("give a separator or an estimates folder, not both")
    check_dependencies(with_sdr, plot)
    fn = load_separator(separator) if isinstance(separator, str) else separator
    folder = EstimatesFolder(estimates) if estimates is not None else None
    if name is not None and fn is None and folder is None:
        raise EvalError(f"--name {name!r} names the evaluated system, but none is given: add --separator or "
                        "--estimates (without them only the oracle rows mixture and irm are computed)")
    system = name or ("separator" if fn is not None else "estimates" if folder is not None else None)
    if limit is not None and limit < 1:
        raise EvalError(f"limit is {limit}; expected a positive number of mixtures (or none for all)")
    if system in ("mixture", "irm"):
        raise EvalError(f"system name {system!r} is reserved for an oracle row; choose another --name")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    # temporaries of these outputs left by a killed earlier run (dead PIDs only; nothing else)
    remove_stale_tmp_of(*(out / name for name in OUTPUT_NAMES))
    result = EvalResult(out, sdr=with_sdr)
    writer = ResultsWriter(out / "results.csv")
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    if (rendered is None) == (metadata is None) or (metadata is not None and recipe is None):
        raise EvalError("give either a render output folder (--rendered) or metadata with a store and/or "
                        "dataset paths to render it on the fly (--metadata with --store/--dataset-paths)")
    def memory(rec, frames: int) -> None:  # before a sample is decoded or rendered: its peak under the cap
        check_mixture_memory("eval", rec.mix_id, frames, rec.num_sources, sdr=with_sdr)

    if rendered is not None:
        samples = iter_rendered(rendered, split, memory=memory)
        total = count_rendered(rendered, split)
    else:
        samples = iter_from_metadata(metadata, recipe, split, result.render_failures, memory=memory)
        total = None
    total = limit if total is None else total if limit is None else min(total, limit)
    bar = tqdm(total=total, unit="mix", desc="eval", disable=not show)
    try:
        for sample in samples:
            if limit is not None and result.mixtures >= limit:
                break
            refs = sample.stems  # float32 [n, T]; each metric converts one row at a time
            mix = sample.mix.astype(np.float64)
            n = sample.num_sources
            si_mix = [si_sdr(mix, r) for r in refs]
            mixes = np.broadcast_to(mix, (n, mix.shape[0]))  # the mixture as every source's estimate: a view
            sdr_mix = sdr(mixes, refs) if with_sdr else None
            everything = list(range(n))
            rows = _system_rows("mixture", sample, mixes, everything, si_mix, sdr_mix, with_sdr)
            irm = irm_estimates(mix, refs)
            rows += _system_rows("irm", sample, irm, everything, si_mix, sdr_mix, with_sdr)
            del irm
            if system is not None:
                ests, keep = [], []
                for i in range(n):
                    what = f"{sample.split}/{sample.mix_id} s{i + 1}"
                    if fn is not None:
                        ests.append(call_separator(fn, sample.mix, sample.sample_rate, sample.labels[i], what))
                        keep.append(i)
                        continue
                    try:
                        ests.append(folder.read(sample.split, sample.mix_id, i + 1, sample.sample_rate,
                                                mix.shape[0]))
                        keep.append(i)
                    except MissingEstimateError:
                        if not allow_missing:
                            raise
                        result.missing[sample.split] += 1
                if ests:
                    rows += _system_rows(system, sample, ests, keep, si_mix, sdr_mix, with_sdr)
                del ests
            for row in rows:
                writer.add(row)
                result.summary.add(row)
            result.mixtures += 1
            result.sources += n
            bar.update(1)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    result.files["results"] = writer.close()
    if result.mixtures == 0:
        where = f"--rendered {rendered}" if rendered is not None else f"--metadata {metadata}"
        failed = (f" ({sum(result.render_failures.values())} could not be rendered: "
                  + ", ".join(f"{k}={v}" for k, v in sorted(result.render_failures.items())) + ")"
                  if result.render_failures else "")
        raise EvalError(f"{where}: no mixture found{failed}; nothing to evaluate")
    rows = result.summary.rows(per_label=True)
    result.files["summary_csv"] = write_summary_csv(rows, out / "summary.csv")
    md = out / "summary.md"
    atomic_write_text(md, markdown_table(rows, sdr=with_sdr) + "\n")
    result.files["summary_md"] = md
    if plot:
        result.files["plot"] = plot_summary(result.summary, out / "si_sdri.png")
    log.info("evaluated %d mixtures (%d sources) into %s", result.mixtures, result.sources, out)
    return result
