"""The whole of ``hive inspect``: choose mixtures, write their audio, spectrograms and pages.

Output folder::

    index.html                      statistics of the whole input + links to the pages
    assets/*.png                    label / source-count / SNR / chunk-duration plots
    mixtures/{slug}.html            one page per chosen mixture
    media/{slug}/{mix,s1..sN}.wav   browser-playable audio (16-bit PCM, float when it would clip)
    media/{slug}/{mix,s1..sN}.png   log-magnitude spectrograms
    _inspect.json                   what was chosen and the statistics (machine-readable)

The folder is built under a temporary name beside ``output`` and renamed into place; an
existing ``output`` is replaced only when it is an earlier ``hive inspect`` output (it holds
``_inspect.json``) or empty.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from mixing import numbers, optional
from mixing.moved_arguments import moved
from mixing.resume import remove_stale_tmp_of

from .html import Media, MixturePage, index_html, mixture_html
from .input import InspectError, InspectInput, Inspected, open_input
from .media import stft_db, write_spectrogram, write_wav
from .select import Selector
from .stats import InspectStats, plot_chunk_durations

logger = logging.getLogger(__name__)

MARKER = "_inspect.json"
DEFAULT_SAMPLE = 8


@dataclass
class InspectResult:
    output: Path
    index: Path
    pages: list[Path]
    chosen: list[str]
    failed: list[str]  # mixtures whose audio could not be produced (the page says why)
    stats: InspectStats


def slug(i: int, mix_id: str) -> str:
    """A file-name-safe, unique name for the ``i``-th page (mix ids are untrusted)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", mix_id).strip("_")[:60] or "mixture"
    return f"{i:04d}_{safe}"


def _check_matplotlib() -> None:
    optional.require_available("matplotlib", "drawing spectrograms and histograms", "card")


#: the top-level names ``hive inspect`` writes; replacing an earlier output never removes anything else
OWN_NAMES = ("index.html", "assets", "mixtures", "media", MARKER, ".hive-output.json")


def _prepare_output(output: Path, input_path: Path, dataset_paths: str | None) -> Path:
    """The temporary folder the pages are built in, after the output-folder rule: ``output`` neither
    is, lies inside nor contains an input; an existing ``output`` is an earlier ``hive inspect``
    output (or empty) holding nothing else, since it is replaced as a whole."""
    from mixing.output_folder import check_overlap, foreign_entries, read_owner

    check_overlap(output, "--output", [("the input", input_path), ("--dataset-paths", dataset_paths)])
    if output.exists():
        if not output.is_dir():
            raise InspectError(f"--output {output} exists and is not a folder; choose a new folder")
        owner = read_owner(output)
        if owner not in (None, "inspect"):
            raise InspectError(f"--output {output} is the output of `hive {owner}`; choose a new or empty folder")
        if owner is None and any(output.iterdir()) and not (output / MARKER).is_file():
            raise InspectError(f"--output {output} is a non-empty folder that is not an earlier `hive inspect` "
                               f"output (no {MARKER}); choose a new or empty folder")
        foreign = foreign_entries(output, OWN_NAMES)
        if foreign:
            shown = ", ".join(foreign[:3]) + (" …" if len(foreign) > 3 else "")
            raise InspectError(f"--output {output} is an earlier `hive inspect` output that also holds {shown}, "
                               "which `hive inspect` did not write; the folder is replaced as a whole, so move "
                               "those out or choose another folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _mark_owned(folder: Path) -> None:
    from mixing.output_folder import MARKER as OUTPUT_MARKER

    (folder / OUTPUT_MARKER).write_text(json.dumps({"command": "inspect", "written_by": "hive inspect"}) + "\n",
                                        encoding="utf-8")


def _swap_in(tmp: Path, output: Path) -> None:
    """Put the new pages in place of an earlier output: that one is renamed aside first, and
    removed only once the new folder is in place (it holds only what inspect wrote: checked by
    :func:`_prepare_output`)."""
    if not output.exists():
        os.replace(tmp, output)
        return
    old = output.parent / f".{output.name}.old-{os.getpid()}"
    os.replace(output, old)
    try:
        os.replace(tmp, output)
    except BaseException:
        os.replace(old, output)
        raise
    shutil.rmtree(old)


def _write_mixture_media(item: Inspected, folder: Path, rel: str) -> list[Media]:
    """WAV + spectrogram of the mix and each stem; one colour scale per mixture."""
    signals = [("mix", item.mix)] + [(f"s{i}", s) for i, s in enumerate(item.stems, 1)]
    specs = [(name, stft_db(x)) for name, x in signals]
    vmax = max(float(np.max(db)) for _, db in specs)
    vmax = max(vmax, -100.0)
    media = []
    for (name, x), (_, db) in zip(signals, specs):
        wav = write_wav(x, item.sample_rate, folder / f"{name}.wav")
        png = folder / f"{name}.png"
        write_spectrogram(db, item.sample_rate, png, title=f"{name} · log-magnitude STFT", vmax=vmax)
        media.append(Media(name, f"{rel}/{name}.wav", f"{rel}/{name}.png", wav.encoding, wav.peak, wav.rms_dbfs))
    return media


@dataclass(frozen=True)
class InspectChoice:
    """Which mixtures get pages: the ``mix_ids`` given, or ``sample`` of them drawn with ``seed``
    (neither: :data:`DEFAULT_SAMPLE`)."""

    mix_ids: Sequence[str] | None = None
    sample: int | None = None
    seed: int = 0


@moved(mix_ids="choice=InspectChoice(mix_ids=...)", sample="choice=InspectChoice(sample=...)",
       seed="choice=InspectChoice(seed=...)")
def inspect(location: str | os.PathLike, output: str | os.PathLike, *, dataset_paths: str | None = None,
            store: str | None = None, choice: InspectChoice | None = None, split: str | None = None,
            num_sources: int | None = None, revision: str | None = None, progress: bool | None = None,
            labels: Any = None) -> InspectResult:
    """Write the inspection pages of ``location`` (rendered folder or metadata) into ``output``;
    ``choice`` picks the mixtures, ``labels`` (a :class:`mixing.label_filter.LabelFilter` or
    names) keeps a label subset."""
    choice = choice if choice is not None else InspectChoice()
    mix_ids, sample, seed = choice.mix_ids, choice.sample, choice.seed
    if mix_ids is not None and sample is not None:
        raise InspectError("give either --mix-id or --sample, not both")
    if mix_ids is None and sample is None:
        sample = DEFAULT_SAMPLE
    sample = numbers.COUNT.check_optional(sample, "--sample", InspectError)
    seed = numbers.SEED.check(seed, "--seed", InspectError)
    num_sources = numbers.COUNT.check_optional(num_sources, "--num-sources", InspectError)
    _check_matplotlib()
    source: InspectInput = open_input(os.fspath(location), dataset_paths, split=split, num_sources=num_sources,
                                      revision=revision, store=store)
    output = Path(output)
    selector = Selector(list(mix_ids) if mix_ids is not None else None, sample, seed)
    stats = InspectStats()
    disable = not progress if progress is not None else None
    from collections import Counter

    from mixing.label_filter import LabelFilter

    label_filter = LabelFilter.make(labels)
    per_label: Counter = Counter()  # mixtures per label, for a filter that keeps nothing
    looked = 0
    for rec, _ in tqdm(source.records(), desc="reading records", unit="mix", disable=disable, leave=False):
        if label_filter is not None:
            looked += 1
            per_label.update(set(rec.labels))
            if not label_filter.keeps(rec.labels):
                continue
        stats.add(rec)
        selector.see(rec.mix_id)
    if stats.card.num_mixtures == 0 and looked:
        raise label_filter.nothing_selected(per_label, looked, str(location))  # type: ignore[union-attr]
    if stats.card.num_mixtures == 0:
        raise InspectError(f"{location} holds no mixture" + (f" of split {split!r}" if split else "")
                           + (f" with {num_sources} sources" if num_sources else "") + "; nothing to inspect")
    missing = selector.missing()
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InspectError(f"{len(missing)} of the --mix-id values are not in {location}: {shown}; "
                           "check the ids (the index of a --sample run lists valid ones)")
    chosen = selector.chosen()
    if source.rendered_root is not None:
        stats.measure_folder(source.rendered_root)
    remove_stale_tmp_of(output)  # the temporary folder of a killed earlier run (dead PID only)
    tmp = _prepare_output(output, Path(location).expanduser(), dataset_paths)
    try:
        loaded = source.load(set(chosen))
        pages: list[tuple[str, MixturePage]] = []
        slugs = [slug(i, m) for i, m in enumerate(chosen, 1)]
        for name, mid in tqdm(list(zip(slugs, chosen)), desc="writing pages", unit="mix", disable=disable,
                              leave=False):
            item = loaded[mid]
            page = MixturePage(item.record, item.origin, item.sample_rate, local_paths=item.local_paths,
                               provenance=item.provenance, error=item.error)
            if item.error is None:
                page.media = _write_mixture_media(item, tmp / "media" / name, f"../media/{name}")
            pages.append((f"mixtures/{name}.html", page))
        (tmp / "mixtures").mkdir(exist_ok=True)
        for i, (link, page) in enumerate(pages):
            prev = pages[i - 1][0].split("/", 1)[1] if i > 0 else None
            nxt = pages[i + 1][0].split("/", 1)[1] if i + 1 < len(pages) else None
            (tmp / link).write_text(mixture_html(page, "../index.html", prev, nxt), encoding="utf-8")
        plots = _write_index_plots(stats, tmp / "assets")
        if mix_ids is not None:
            selection = f"{len(chosen)} mixture(s) chosen by --mix-id."
        else:
            selection = (f"{len(chosen)} mixture(s) sampled with seed {seed} (the same ids for the same input "
                         "and seed). Statistics cover the whole input.")
        desc = (f"{source.kind}: {location}" + (f" (split {split})" if split else "")
                + (f" ({num_sources} sources)" if num_sources else ""))
        (tmp / "index.html").write_text(index_html("hive inspect", desc, stats, pages, plots, selection),
                                        encoding="utf-8")
        failed = [p.record.mix_id for _, p in pages if p.error]
        summary = {"input": os.fspath(location), "kind": source.kind, "seed": seed, "chosen": chosen,
                   "failed": failed, "pages": [link for link, _ in pages], "stats": stats.to_dict()}
        (tmp / MARKER).write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        _mark_owned(tmp)
        _swap_in(tmp, output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("wrote %s: %d pages", output, len(pages))
    return InspectResult(output, output / "index.html", [output / link for link, _ in pages], chosen, failed, stats)


def _write_index_plots(stats: InspectStats, assets: Path) -> dict[str, str]:
    from ..plots import plot_label_distribution, plot_snr_histogram, plot_source_counts

    assets.mkdir(parents=True, exist_ok=True)
    # labels are untrusted: every plot draws text literally (mixing.plotting.literal_text)
    plot_label_distribution(stats.card, assets / "labels.png", top=30)
    plot_source_counts(stats.card, assets / "source_counts.png")
    plot_snr_histogram(stats.card, assets / "snr.png")
    out = {"labels": "assets/labels.png", "source_counts": "assets/source_counts.png", "snr": "assets/snr.png"}
    if stats.num_chunks:
        plot_chunk_durations(stats, assets / "chunk_durations.png")
        out["chunks"] = "assets/chunk_durations.png"
    return out
