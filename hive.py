"""Hive through ``datasets``: the builder of rendered mixtures, and the training stream re-exported
from :mod:`mixing`.

The Hub release is metadata only (``datasets.load_dataset("ShandaAI/Hive")`` gives the rows); the
audio is rendered from corpora you downloaded, listed in a ``dataset_paths.json``. ``datasets`` 5
refuses loading scripts, so the builder is a class you instantiate::

    from hive import Hive

    builder = Hive(config_name="2mix", metadata="ShandaAI/Hive", dataset_paths="dataset_paths.json",
                   sample_rate=16000)
    builder.download_and_prepare(num_proc=8)           # materialise (Arrow, audio as WAV bytes)
    train = builder.as_dataset(split="train")
    stream = builder.as_streaming_dataset(split="train")  # render on the fly, encoded like the above

This module holds the builder (:class:`HiveConfig`, :class:`Hive`). The rest is implemented in
``mixing`` and re-exported here: for training, :func:`stream_mixtures` yields numpy arrays (no
encode/decode round trip) and splits work by work unit across ``split_dataset_by_node`` ranks and
DataLoader workers; :func:`iter_mixtures` is the same without ``datasets`` objects (numpy only, no
torch), both with :class:`StreamOptions` (:mod:`mixing.stream`). Both give whole mixtures or query
examples (``targets="each"``/``"one"``: mixture, text query, target) and take label subsets
(``labels``). :func:`dynamic_mixtures` draws new mixtures every epoch from a single-event pool and
renders them from a source store; :class:`HiveMapDataset` is the map-style (indexable) form;
:func:`collate_mixtures` batches any of them; :func:`load_rendered` loads ``hive render`` output
(WebDataset or Parquet) with the right features.

Configs: ``all`` (default) and ``2mix`` … ``5mix`` (number of sources). Failure policy ``skip``
(default) leaves a mixture whose audio cannot be rendered out, logs it, and counts it by reason
(a prepared dataset keeps the manifest in ``<cache>/failures/*.jsonl``; see
:meth:`Hive.failure_summary`); ``raise`` stops at the first failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import datasets
from datasets.builder import Key

from mixing import __version__
from mixing.audio_columns import audio_codec_available, choose_audio_features, plain_audio_features
from mixing.citation import CITATION
from mixing.collate import collate_mixtures
from mixing.dynamic import DynamicSpec, dynamic_mixtures, records_of
from mixing.errors import EmptySelectionError, MetadataSourceError
from mixing.example_features import encoded_query_example, query_features
from mixing.label_filter import LabelFilter
from mixing.label_selection import check_label_selection
from mixing.metadata import normalise_split
from mixing.metadata_io import MetadataSource
from mixing.metadata_memory import fingerprint as memory_fingerprint
from mixing.metadata_memory import is_in_memory
from mixing.metadata_source import classify_location, location_files
from mixing.queries import ExampleConfig
from mixing.recipe import check_sample_rate
from mixing.rendered_dataset import load_rendered
from mixing.shards import AUDIO_FORMATS, rendered_features
from mixing.stream import iter_mixtures, stream_mixtures
from mixing.stream_options import StreamOptions
from mixing.streaming import (
    RenderSpec, StreamReport, WorkUnit, encoded_example, iter_examples, iter_rendered, plan_units,
    read_failure_manifest, resolve_metadata,
)

__all__ = [  # noqa: F822 (HiveMapDataset: module __getattr__)
    "HiveConfig", "Hive", "stream_mixtures", "iter_mixtures", "StreamOptions", "load_rendered",
    "collate_mixtures", "StreamReport", "dynamic_mixtures", "DynamicSpec", "HiveMapDataset", "ExampleConfig",
    "LabelFilter", "records_of", "audio_codec_available", "plain_audio_features",
]


def __getattr__(name: str) -> Any:
    """``HiveMapDataset`` is imported on first use (its module imports torch where installed)."""
    if name == "HiveMapDataset":
        from mixing.map_dataset import HiveMapDataset

        return HiveMapDataset
    raise AttributeError(f"module 'hive' has no attribute {name!r}")

log = logging.getLogger(__name__)

_CITATION = CITATION  # the paper: Li et al., arXiv 2601.22599 (2026)
_NMIX = re.compile(r"^([2-9])mix$")


# ---- config ----------------------------------------------------------------------------------
@dataclass
class HiveConfig(datasets.BuilderConfig):
    """What to render and how.

    Args:
        metadata: Hub id (``"ShandaAI/Hive"``), local Hub-layout Parquet folder (with or without a
            README.md YAML ``configs`` section), legacy JSON folder, a single file, or a
            :class:`mixing.metadata_io.MetadataSource`.
        revision: Hub revision (branch, tag, commit) when ``metadata`` is a Hub id.
        metadata_config: YAML config of the metadata repository to read (default: ``{n}mix`` when
            the builder config is ``{n}mix`` and the repository has it, else ``all``, else its default).
        dataset_paths: ``dataset_paths.json`` or a mapping corpus prefix -> local folder.
        num_sources: mixtures with this many sources only; set by the ``2mix`` … ``5mix`` configs.
        stems: ``consistent`` (stems carry the global factor and sum to the mix) or ``reference``.
        sample_rate: output rate; ``None`` keeps each record's (44.1 kHz). A lower rate (16000,
            32000) is rendered directly (sources resampled once, from their native rate).
        on_failure: ``skip`` (leave the mixture out, log and count the reason) or ``raise``.
        failure_dir: also write a JSONL manifest of left-out mixtures here when streaming
            (preparing always writes one next to the prepared data).
        decode: ``datasets.Audio(decode=...)`` of ``mix`` and ``sources``; ``False`` returns
            ``{"bytes", "path"}`` dicts.
        audio_feature: store ``mix``/``sources`` as ``datasets.Audio`` (needs torch + torchcodec,
            even with ``decode=False``) or as plain ``{bytes, path}`` structs (same Arrow data);
            ``None``: Audio where torchcodec is installed.
        audio_format: ``wav`` (32-bit float, exact) or ``flac`` (24-bit) bytes in the dataset.
        store: a source store (``hive store build`` output folder): source chunks are sliced from
            it instead of decoded (same samples); chunks it lacks are decoded. Without
            ``dataset_paths`` the store alone is used. The output rate is the store's.
        store_only: with ``store``, a chunk the store lacks fails (``not_in_store``) instead of
            being decoded.
        num_units: work units per split (default: a multiple of 240 ≥ the number of metadata
            files); the unit of ``num_proc`` and of streaming parallelism (was ``num_shards``).
        splits: only these splits (default: every split the metadata has).
        targets: ``"all"`` (a mixture with its stems, the default), ``"each"`` / ``"one"`` (query
            examples: ``mix``, ``query``, ``target``, ``label``, ``label_id`` …), or a
            :class:`mixing.queries.ExampleConfig` (query templates, negative queries).
        labels, exclude_labels: a label subset (names or mids, descendants included), or a
            :class:`mixing.label_filter.LabelFilter` as ``labels``.
    """

    metadata: Any = None
    revision: str | None = None
    metadata_config: str | None = None
    dataset_paths: Any = None
    num_sources: int | None = None
    stems: str = "consistent"
    sample_rate: int | None = None
    on_failure: str = "skip"
    failure_dir: str | None = None
    decode: bool = True
    audio_feature: bool | None = None
    audio_format: str = "wav"
    num_units: int | None = None
    splits: tuple[str, ...] | None = None
    store: Any = None
    store_only: bool = False
    targets: Any = "all"
    labels: Any = None
    exclude_labels: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        m = _NMIX.match(self.name or "")
        if m and self.num_sources is None:
            self.num_sources = int(m.group(1))

    def validate(self) -> None:
        """Check user-settable fields (also after ``Hive(..., key=value)`` overrides)."""
        m = _NMIX.match(self.name or "")
        if m and self.num_sources != int(m.group(1)):
            raise ValueError(f"config {self.name!r} renders {m.group(1)}-source mixtures but num_sources is "
                             f"{self.num_sources!r}; drop num_sources or use config '{self.num_sources}mix'")
        if not m and self.num_sources is not None:
            raise ValueError(f"config {self.name!r} with num_sources={self.num_sources!r}: use config "
                             f"'{self.num_sources}mix' instead")
        self.stream_options()  # num_sources, stems, on_failure, failure_dir, num_units: the stream's checks
        if self.store_only and self.store is None:
            raise ValueError("store_only=True needs store='STORE' (a `hive store build` output folder)")
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format is {self.audio_format!r}; expected one of {AUDIO_FORMATS}")
        check_sample_rate(self.sample_rate)
        ExampleConfig.coerce(self.targets)
        LabelFilter.make(self.labels, self.exclude_labels)
        if isinstance(self.splits, str):
            self.splits = (self.splits,)
        if self.splits is not None:
            self.splits = tuple(normalise_split(s) for s in self.splits)

    def stream_options(self) -> StreamOptions:
        """The fields this config shares with the training stream, checked there (one rule for both)."""
        return StreamOptions(num_sources=self.num_sources, stems=self.stems, store_only=self.store_only,
                             on_failure=self.on_failure, failure_dir=self.failure_dir, revision=self.revision,
                             metadata_config=self.metadata_config, num_units=self.num_units)


def _fingerprint(metadata: Any, revision: str | None, dataset_paths: Any, store: Any = None) -> str:
    """Cache key of the inputs: metadata files (path, size, mtime) or Hub id + revision, the
    corpus mapping, and a store's rate (the output rate when none is asked). Audio files are not
    fingerprinted: use ``download_mode="force_redownload"`` after changing a corpus."""
    h = hashlib.sha256(f"hive-uss {__version__}".encode())
    if store is not None:
        from mixing.store.layout import read_manifest

        from mixing.store import SourceStore

        root = store.root if isinstance(store, SourceStore) else store
        h.update(f"store rate {read_manifest(root)['sample_rate']}".encode())
    if is_in_memory(metadata):
        h.update(memory_fingerprint(metadata).encode())
    elif isinstance(metadata, MetadataSource):
        h.update(repr(metadata.files()).encode())
    elif metadata is not None:
        loc = os.fspath(metadata)
        h.update(f"{loc}@{revision}".encode())
        try:
            files = location_files(classify_location(loc))
        except MetadataSourceError:
            files = []  # reported when the splits are generated
        for p in files:
            st = os.stat(p)
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    if isinstance(dataset_paths, Mapping):
        h.update(json.dumps({str(k): str(v) for k, v in dataset_paths.items()}, sort_keys=True).encode())
    elif hasattr(dataset_paths, "roots"):  # a DatasetPaths
        h.update(repr(sorted((k, str(v)) for k, v in dataset_paths.roots.items())).encode())
    elif dataset_paths is not None:
        path = os.fspath(dataset_paths)
        h.update(os.path.abspath(path).encode())
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:16]


# ---- builder ---------------------------------------------------------------------------------
class Hive(datasets.GeneratorBasedBuilder):
    """Rendered Hive mixtures as a ``datasets`` builder.

    ``Hive(config_name="all", metadata=..., dataset_paths=..., cache_dir=...)`` or
    ``Hive(config=HiveConfig(name="3mix", metadata=..., dataset_paths=...))``; then
    ``download_and_prepare(num_proc=N)`` + ``as_dataset(split=...)``, or
    ``as_streaming_dataset(split=...)``. Features: :func:`mixing.shards.rendered_features` (the
    layout of ``hive render --format parquet``).
    """

    BUILDER_CONFIG_CLASS = HiveConfig
    BUILDER_CONFIGS = [HiveConfig(name="all", description="all mixtures (2-5 sources)")] + [
        HiveConfig(name=f"{n}mix", num_sources=n, description=f"mixtures of {n} sources") for n in range(2, 6)]
    DEFAULT_CONFIG_NAME = "all"
    DEFAULT_WRITER_BATCH_SIZE = 32  # rows are ~3-10 MB of audio

    config: HiveConfig

    def __init__(self, *args: Any, config: HiveConfig | None = None, **kwargs: Any):
        if "num_shards" in kwargs:
            raise TypeError("Hive(num_shards=...) is now num_units=... (work units per split; \"shard\" names only "
                            "an output shard of hive render)")
        if config is not None:
            if not isinstance(config, HiveConfig):
                raise TypeError(f"config is a {type(config).__name__}; expected a HiveConfig")
            base = {f.name for f in dataclasses.fields(datasets.BuilderConfig)}
            for f in dataclasses.fields(config):
                if f.name not in base:
                    kwargs.setdefault(f.name, getattr(config, f.name))
            kwargs.setdefault("config_name", config.name)
        if kwargs.get("hash") is None:
            kwargs["hash"] = _fingerprint(kwargs.get("metadata"), kwargs.get("revision"), kwargs.get("dataset_paths"),
                                          kwargs.get("store"))
        if isinstance(kwargs.get("splits"), (list, str)):
            kwargs["splits"] = tuple([kwargs["splits"]] if isinstance(kwargs["splits"], str) else kwargs["splits"])
        self._preparing = False
        self.failures: Counter = Counter()
        super().__init__(*args, **kwargs)
        self.config.validate()

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Hive: mixtures for query-based universal sound separation, rendered from "
                        "metadata and local copies of the source corpora.",
            features=choose_audio_features(query_features(decode=self.config.decode)
                                           if ExampleConfig.coerce(self.config.targets).queries
                                           else rendered_features(decode=self.config.decode),
                                           self.config.audio_feature, f"Hive {self.config.name}"),
            homepage="https://huggingface.co/datasets/ShandaAI/Hive",
            license="See the licenses of the source corpora; the metadata is Apache-2.0.",
            citation=_CITATION,
        )

    # ---- hooks -------------------------------------------------------------------------------
    def _render_spec(self) -> RenderSpec:
        cfg = self.config
        if cfg.metadata is None:
            raise ValueError("HiveConfig.metadata is not set; pass metadata='ShandaAI/Hive' (or a local "
                             "Parquet / legacy JSON folder)")
        if cfg.dataset_paths is None and cfg.store is None:
            raise ValueError("HiveConfig.dataset_paths is not set; pass dataset_paths='dataset_paths.json' "
                             "(corpus prefix -> local folder), a source store (store='STORE'), or both")
        failure_dir = os.path.join(self._output_dir, "failures") if self._preparing else cfg.failure_dir
        return RenderSpec.make(cfg.dataset_paths, stems=cfg.stems, sample_rate=cfg.sample_rate,
                               audio_format=cfg.audio_format, store=cfg.store, store_only=cfg.store_only,
                               num_sources=cfg.num_sources, on_failure=cfg.on_failure, failure_dir=failure_dir,
                               labels=LabelFilter.make(cfg.labels, cfg.exclude_labels),
                               examples=ExampleConfig.coerce(cfg.targets))

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        del dl_manager  # metadata is local or read by mixing.metadata_io; audio is local
        cfg = self.config
        spec = self._render_spec()
        files = resolve_metadata(cfg.metadata, revision=cfg.revision, config=cfg.metadata_config,
                                 num_sources=cfg.num_sources)
        wanted = list(cfg.splits) if cfg.splits else list(files)
        missing = [s for s in wanted if s not in files]
        if missing:
            raise EmptySelectionError(f"split(s) {missing} not in the metadata; it has {list(files)}; "
                                      "choose splits from these")
        for split in wanted:
            check_label_selection(files[split], split, spec.num_sources, spec.labels, f"split {split!r}")
        return [datasets.SplitGenerator(name=split, gen_kwargs={
                    "units": plan_units(files[split], split, cfg.num_units), "spec": spec})
                for split in wanted]

    def _generate_examples(self, units: list[WorkUnit], spec: RenderSpec) -> Iterator[tuple[Key, dict[str, Any]]]:
        fmt = self.config.audio_format
        maker = spec.query_maker()
        if maker is None:
            for pos, row, rendered in iter_rendered(units, spec):
                yield Key(pos, row), encoded_example(rendered, fmt)
            return
        counts: Counter = Counter()
        for pos, _, rendered in iter_rendered(units, spec):
            for ex in iter_examples([rendered], spec):
                yield Key(pos, counts[pos]), encoded_query_example(ex, fmt)
                counts[pos] += 1

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        self._preparing = True
        try:
            super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        finally:
            self._preparing = False
        entries = read_failure_manifest(os.path.join(self._output_dir, "failures"))
        self.failures = Counter(e["reason"] for e in entries)
        if entries:
            log.warning("Hive %s: %d mixture(s) left out (%s); manifest: failures/*.jsonl in the prepared "
                        "dataset folder", self.config.name, len(entries),
                        ", ".join(f"{k}={v}" for k, v in sorted(self.failures.items())))

    # ---- after preparing ---------------------------------------------------------------------
    def failure_manifest(self) -> list[dict[str, Any]]:
        """Mixtures left out while preparing (``mix_id, split, reason, source, path, message``)."""
        return read_failure_manifest(os.path.join(self._output_dir, "failures"))

    def failure_summary(self) -> dict[str, int]:
        """``{reason: count}`` of mixtures left out while preparing."""
        return dict(sorted(Counter(e["reason"] for e in self.failure_manifest()).items()))
