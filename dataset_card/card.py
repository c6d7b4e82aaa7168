# Over 400 lines: the card's YAML header and body tables are one document and are checked together.
"""The dataset card: YAML header (configs, dataset_info, licence, tags) and a body with statistics.

:func:`write_card_folder` is the whole of ``hive card``: one streaming pass over the metadata
writes the Hub layout (:mod:`.layout`) and accumulates the statistics (:mod:`.stats`); then the
plots (:mod:`.plots`) and ``README.md`` are written. The card is built as a
``huggingface_hub.DatasetCard`` and checked offline (:func:`check_card`): its YAML parses, every
``data_files`` pattern matches files, and ``dataset_info`` states the row counts on disk.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from huggingface_hub import DatasetCard, DatasetCardData

import mixing
from mixing import optional
from mixing.citation import CITATION, REFERENCE
from mixing.errors import HiveError
from mixing.metadata import MixtureRecord, hub_features
from mixing.metadata_io import MetadataSource, iter_records, open_metadata
from mixing.resume import atomic_write_text, remove_stale_tmp, remove_stale_tmp_of

from .layout import CONFIG_ALL, DEFAULT_ROWS_PER_FILE, Layout, LayoutWriter, data_pattern
from .plots import LABEL_PLOT, SNR_PLOT, SOURCE_COUNT_PLOT, write_plots
from .stats import CardStats

logger = logging.getLogger(__name__)

DEFAULT_REPO_ID = "ShandaAI/Hive"
TASK_CATEGORIES = ["audio-to-audio"]
TAGS = ["audio", "sound-separation", "universal-sound-separation", "query-based-separation",
        "text-queried-separation", "metadata-only"]
#: the metadata mixes material under many licences; the body lists them
DEFAULT_LICENSE = "other"
DEFAULT_LICENSE_NAME = "hive-mixed-source-licences"


class CardError(HiveError, ValueError):
    """The card or its layout cannot be built, or does not check."""


@dataclass(frozen=True)
class Corpus:
    name: str
    licence: str
    #: lower-case alphanumeric starts of corpus prefixes that belong to this corpus
    prefixes: tuple[str, ...]


#: The twelve source corpora and their licences (the audio keeps its corpus's licence).
CORPORA: tuple[Corpus, ...] = (
    Corpus("BBC Sound Effects", "Remix License (BBC Sound Effects)", ("bbc",)),
    Corpus("AudioSet", "CC BY 4.0", ("audioset",)),
    Corpus("VGGSound", "CC BY 4.0", ("vggsound",)),
    Corpus("MUSIC21", "YouTube standard licence", ("music21", "music")),
    Corpus("FreeSound", "CC0 / CC BY / CC BY-NC, per clip", ("freesound",)),
    Corpus("ClothoV2", "non-commercial research (per-clip Freesound licences)", ("clotho",)),
    Corpus("Voicebank-DEMAND", "CC BY 4.0", ("voicebank", "vctk", "demand")),
    Corpus("AVE", "CC BY-NC-SA", ("ave",)),
    Corpus("SoundBible", "CC BY 4.0, per clip", ("soundbible",)),
    Corpus("DCASE 2024 Task 9", "academic use", ("dcase",)),
    Corpus("ESC-50", "CC BY-NC 3.0", ("esc50", "esc")),
    Corpus("FSD50K", "Creative Commons, per clip", ("fsd50k", "fsd")),
)


def corpus_of(prefix: str) -> Corpus | None:
    """The corpus a path prefix belongs to (``DCASE_synth`` -> DCASE 2024 Task 9), or None."""
    key = re.sub(r"[^a-z0-9]", "", prefix.lower())
    best = None
    for corpus in CORPORA:
        for start in corpus.prefixes:
            if key.startswith(start) and (best is None or len(start) > best[0]):
                best = (len(start), corpus)
    return best[1] if best else None


@dataclass
class CardConfig:
    """Everything the card says that does not come from the metadata itself."""

    repo_id: str = DEFAULT_REPO_ID
    parent_revision: str | None = None
    #: synthesis / curation parameters (a JSON object), shown under Provenance
    provenance: dict[str, Any] = field(default_factory=dict)
    license: str = DEFAULT_LICENSE
    license_name: str | None = DEFAULT_LICENSE_NAME
    top_labels: int = 30
    #: revision shown in the usage examples
    example_revision: str = "main"
    #: where the metadata came from, as shown in the card (never a local absolute path)
    source_description: str | None = None
    rows_per_file: int = DEFAULT_ROWS_PER_FILE
    #: draw the plots (matplotlib) into ``assets/`` and show them; False writes the same card without them
    plots: bool = True


@dataclass
class CardResult:
    output: Path
    layout: Layout
    stats: CardStats
    card: DatasetCard
    plots: dict[str, Path]


# ---- small formatting helpers ------------------------------------------------------------------
def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
              (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T")]
    for bound, name in bounds:
        if n < bound:
            return name
    return "n>1T"


def _hours(h: float) -> str:
    return f"{h:,.3f}" if h < 10 else f"{h:,.1f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: Iterable[list[Any]], align: list[str] | None = None) -> str:
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- YAML header -----------------------------------------------------------------------------
def features_yaml() -> list[dict[str, Any]]:
    """``hub_features()`` in the YAML form ``datasets`` writes into ``dataset_info``."""
    return hub_features()._to_yaml_list()


def configs_yaml(layout: Layout) -> list[dict[str, Any]]:
    out = []
    for config in layout.config_names():
        entry: dict[str, Any] = {
            "config_name": config,
            "data_files": [{"split": s, "path": data_pattern(config, s)} for s in layout.split_names(config)],
        }
        if config == CONFIG_ALL:
            entry["default"] = True
        out.append(entry)
    return out


def dataset_info_yaml(layout: Layout) -> list[dict[str, Any]]:
    out = []
    for config in layout.config_names():
        splits = [layout.configs[config][s] for s in layout.split_names(config)]
        out.append({
            "config_name": config,
            "features": features_yaml(),  # a fresh list per config: no YAML anchors/aliases
            "splits": [{"name": s, "num_bytes": info.num_bytes, "num_examples": info.num_examples}
                       for s, info in zip(layout.split_names(config), splits)],
            "download_size": sum(i.file_bytes for i in splits),
            "dataset_size": sum(i.num_bytes for i in splits),
        })
    return out


def card_data(stats: CardStats, layout: Layout, options: CardConfig) -> DatasetCardData:
    extra: dict[str, Any] = {}
    if options.license == "other" and options.license_name:
        extra["license_name"] = options.license_name
    return DatasetCardData(
        license=options.license,
        task_categories=list(TASK_CATEGORIES),
        tags=list(TAGS),
        size_categories=[size_category(stats.num_mixtures)],
        pretty_name="Hive",
        configs=configs_yaml(layout),
        dataset_info=dataset_info_yaml(layout),
        **extra,
    )


# ---- body ------------------------------------------------------------------------------------
def _summary(stats: CardStats) -> str:
    rates = ", ".join(f"{r} Hz" for r in sorted(stats.sample_rates))
    durations = "; ".join(
        f"{s}: " + ", ".join(f"{d:g} s" for (sp, d) in sorted(stats.durations) if sp == s) for s in stats.splits())
    counts = stats.source_counts()
    return (f"**{stats.num_mixtures:,} mixtures, {_hours(stats.hours)} hours**, "
            f"{counts[0]}–{counts[-1]} sources each ({stats.num_sources_total:,} sources, "
            f"{len(stats.labels):,} labels, {len(stats.corpora):,} corpus prefixes); "
            f"sample rate {rates}; mixture durations {durations}.")


def _config_rows(layout: Layout, splits: list[str]) -> tuple[str, str, str]:
    header = " | ".join(splits)
    rule = "---:|" * len(splits)
    rows = []
    for config in layout.config_names():
        what = "all mixtures (default)" if config == CONFIG_ALL else f"mixtures with {config[:-3]} sources"
        cells = [f"{layout.configs[config][s].num_examples:,}" if s in layout.configs[config] else "–" for s in splits]
        rows.append(f"| `{config}` | {what} | " + " | ".join(cells) + " |")
    return header, rule, "\n".join(rows)


def _mixture_table(stats: CardStats) -> str:
    counts = stats.source_counts()
    splits = stats.splits()
    rows = []
    for split in splits:
        cells = []
        for n in counts:
            c = stats.mixtures.get((split, n), 0)
            cells.append(f"{c:,} ({_hours(stats.seconds.get((split, n), 0.0) / 3600)})" if c else "–")
        total, hours = stats.split_total(split)
        rows.append([split] + cells + [f"**{total:,} ({_hours(hours)})**"])
    totals = [f"**{stats.count_total(n)[0]:,} ({_hours(stats.count_total(n)[1])})**" for n in counts]
    rows.append(["**total**"] + totals + [f"**{stats.num_mixtures:,} ({_hours(stats.hours)})**"])
    return _table(["split"] + [f"{n} sources" for n in counts] + ["total"], rows)


def _source_count_table(stats: CardStats) -> str:
    counts = stats.source_counts()
    rows = []
    for split in stats.splits():
        total = stats.split_total(split)[0]
        rows.append([split] + [f"{100.0 * stats.mixtures.get((split, n), 0) / total:.1f} %" for n in counts])
    return _table(["split"] + [f"{n} sources" for n in counts], rows)


def _label_table(stats: CardStats, top: int) -> str:
    total = stats.num_sources_total
    rows = [[i + 1, label, f"{c:,}", f"{100.0 * c / total:.2f} %"] for i, (label, c) in enumerate(stats.top_labels(top))]
    rest = len(stats.labels) - len(rows)
    if rest > 0:
        shown = sum(c for *_, c in stats.top_labels(top))
        rows.append(["", f"*{rest:,} other labels*", f"{total - shown:,}", f"{100.0 * (total - shown) / total:.2f} %"])
    return _table(["#", "label", "sources", "share"], rows, ["---:", "---", "---:", "---:"])


def _corpus_table(stats: CardStats) -> str:
    rows = []
    for prefix, c in sorted(stats.corpora.items(), key=lambda kv: (-kv[1].sources, kv[0])):
        corpus = corpus_of(prefix)
        rows.append([f"`{prefix}`", corpus.name if corpus else "(unknown)", f"{c.sources:,}",
                     _hours(c.seconds / 3600.0), corpus.licence if corpus else "see the corpus"])
    return _table(["prefix", "corpus", "sources", "hours", "licence"], rows, ["---", "---", "---:", "---:", "---"])


def _snr_summary(stats: CardStats) -> str:
    if not stats.num_snr:
        return "no finite values"
    return (f"{stats.num_snr:,} values, min {stats.snr_min:.2f} dB, mean {stats.snr_sum / stats.num_snr:.2f} dB, "
            f"max {stats.snr_max:.2f} dB")


def _snr_table(stats: CardStats) -> str:
    total = stats.num_snr or 1
    return _table(["snr_db (dB)", "sources", "share"],
                  [[label, f"{c:,}", f"{100.0 * c / total:.1f} %"] for label, c in stats.snr_table()])


def _licence_table() -> str:
    return _table(["corpus", "licence"], [[c.name, c.licence] for c in CORPORA], ["---", "---"])


def _provenance(options: CardConfig, layout: Layout) -> str:
    lines = [f"- tool: Hive tooling (`mixing`) version `{mixing.__version__}` (`hive card`)",
             f"- parent revision: `{options.parent_revision}`" if options.parent_revision
             else "- parent revision: none given (a first release, or not recorded)"]
    if options.source_description:
        lines.append(f"- metadata source: `{options.source_description}`")
    lines.append(f"- layout: {len(layout.files())} Parquet files, at most {options.rows_per_file:,} rows each")
    if options.provenance:
        lines.append("\nSynthesis / curation parameters:\n")
        lines.append("```json\n" + json.dumps(options.provenance, indent=2, sort_keys=True, ensure_ascii=False)
                     + "\n```")
    else:
        lines.append("- synthesis / curation parameters: none given")
    return "\n".join(lines)


def _template() -> string.Template:
    return string.Template(resources.files("dataset_card").joinpath("template.md").read_text(encoding="utf-8"))


def _pick(names: list[str], *preferred: str) -> str:
    return next((n for n in preferred if n in names), names[0])


def examples(layout: Layout) -> dict[str, str]:
    """The configs and splits the card's code examples use: ones this release has (a train-only
    release has no ``split="test"`` to load), preferring ``all``/train, then 3mix/test, as before."""
    configs = layout.config_names()
    main = _pick(configs, CONFIG_ALL)
    others = [c for c in configs if c != main] or [main]
    subset = _pick(others, "3mix")
    m = re.fullmatch(r"(\d+)mix", subset)
    return {
        "example_config": main, "example_split": (split := _pick(layout.split_names(main), "train")),
        "example_var": re.sub(r"\W", "_", split),
        "subset_config": subset, "subset_split": (sub_split := _pick(layout.split_names(subset), "test", "validation")),
        "subset_var": re.sub(r"\W", "_", f"{sub_split}{m.group(1)}" if m else f"{sub_split}_{subset}"),
        "subset_what": f"only the {m.group(1)}-source mixtures" if m else f"the {subset} config",
        "render_split": _pick(layout.split_names(main), "test", "validation"),
    }


def _figure(alt: str, name: str, options: CardConfig) -> str:
    return f"![{alt}](assets/{name})" if options.plots else ""


def card_body(stats: CardStats, layout: Layout, options: CardConfig) -> str:
    splits = stats.splits()
    split_header, split_rule, config_rows = _config_rows(layout, splits)
    return _template().substitute(
        summary=_summary(stats),
        split_header=split_header, split_rule=split_rule, config_rows=config_rows,
        repo_id=options.repo_id, example_revision=options.example_revision, **examples(layout),
        mixture_table=_mixture_table(stats), source_count_table=_source_count_table(stats),
        source_count_figure=_figure("Source-count distribution", SOURCE_COUNT_PLOT, options),
        num_labels=f"{len(stats.labels):,}", num_source_slots=f"{stats.num_sources_total:,}",
        top_n=min(options.top_labels, len(stats.labels)), label_table=_label_table(stats, options.top_labels),
        label_figure=_figure("Label distribution", LABEL_PLOT, options), corpus_table=_corpus_table(stats),
        snr_summary=_snr_summary(stats), snr_table=_snr_table(stats), snr_figure=_figure("SNR histogram", SNR_PLOT, options),
        licence_table=_licence_table(), provenance=_provenance(options, layout),
        citation=CITATION.rstrip("\n"), reference=REFERENCE,
    )


def build_card(stats: CardStats, layout: Layout, options: CardConfig) -> DatasetCard:
    data = card_data(stats, layout, options)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(stats, layout, options)}")
    check_card(card, layout.root)
    return card


# ---- offline checks --------------------------------------------------------------------------
def check_card(card: DatasetCard, root: str | os.PathLike) -> None:
    """Offline checks of a card against the folder it describes (``DatasetCard.validate`` needs
    the network): the YAML parses, each config's ``data_files`` match files, ``dataset_info``
    names the same configs and splits, and the default config exists."""
    root = Path(root)
    data = card.data.to_dict()
    configs = data.get("configs") or []
    infos = {i.get("config_name"): i for i in data.get("dataset_info") or []}
    if not configs:
        raise CardError("the card declares no `configs`; expected one per config of data/")
    if sum(bool(c.get("default")) for c in configs) != 1:
        raise CardError("the card must mark exactly one config `default: true`")
    for c in configs:
        name = c.get("config_name")
        info = infos.get(name)
        if info is None:
            raise CardError(f"config {name!r} has no `dataset_info` entry")
        declared = {s["name"] for s in info.get("splits", [])}
        for entry in c.get("data_files", []):
            matches = sorted(p for p in root.glob(entry["path"]) if p.is_file())
            if not matches:
                raise CardError(f"config {name!r} split {entry['split']!r}: pattern {entry['path']!r} matches no "
                                f"file under {root}")
            if entry["split"] not in declared:
                raise CardError(f"config {name!r}: split {entry['split']!r} has files but no `dataset_info` size")


# ---- the whole of `hive card` -----------------------------------------------------------------
def _describe_source(src: MetadataSource, revision: str | None) -> str:
    if src.kind == "hub":
        return src.location + (f"@{revision}" if revision else "")
    return f"{src.kind} metadata ({len(src.files())} files)"


def _check_not_inside(src: MetadataSource, output: Path) -> None:
    if src.kind == "hub":
        return
    out = output.resolve()
    loc = Path(src.location).resolve()
    if out == loc or out in loc.parents:
        raise CardError(f"the output folder {output} contains the metadata it would read ({src.location}); "
                        "choose a new --output folder")


def write_card_folder(metadata: str | os.PathLike | MetadataSource | Iterable[MixtureRecord],
                      output: str | os.PathLike, options: CardConfig | None = None, *,
                      revision: str | None = None) -> CardResult:
    """Write ``output/data/...`` (Hub layout), ``output/assets/*.png`` (unless ``options.plots`` is
    False) and ``output/README.md``."""
    options = options or CardConfig()
    if options.plots:
        optional.require_available("matplotlib", "drawing the card's plots", "card")
    output = Path(output)
    if isinstance(metadata, (str, os.PathLike, MetadataSource)):
        src = metadata if isinstance(metadata, MetadataSource) else open_metadata(metadata, revision=revision)
        _check_not_inside(src, output)
        if options.source_description is None:
            options = dataclasses.replace(options, source_description=_describe_source(src, revision))
        records: Iterable[MixtureRecord] = iter_records(src)
    else:
        records = metadata
    # temporaries of killed earlier runs (dead PIDs) of what this command writes: README, data/, assets/
    remove_stale_tmp_of(output / "README.md")
    for folder in ("data", "assets"):
        remove_stale_tmp(output / folder)
    stats = CardStats()
    writer = LayoutWriter(output, options.rows_per_file)
    for rec in records:
        stats.add(rec)
        writer.add(rec)
    if stats.num_mixtures == 0:  # before close(): an empty input must not wipe an earlier layout
        raise CardError(f"the metadata ({options.source_description or 'records'}) holds no mixture; nothing to "
                        "describe")
    layout = writer.close()
    plots = write_plots(stats, output / "assets", options.top_labels) if options.plots else {}
    card = build_card(stats, layout, options)
    readme = output / "README.md"
    atomic_write_text(readme, str(card))
    logger.info("wrote %s: %d mixtures in %d files", output, stats.num_mixtures, len(layout.files()))
    return CardResult(output, layout, stats, card, plots)
