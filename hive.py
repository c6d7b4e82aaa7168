"""Hive through ``datasets``: a builder for rendered mixtures, an on-the-fly training stream, and a
loader for ``hive render`` output.

The Hub release is metadata only (``datasets.load_dataset("ShandaAI/Hive")`` gives the rows); the
audio is rendered from corpora you downloaded, listed in a ``dataset_paths.json``. ``datasets`` 5
refuses loading scripts, so the builder is a class you instantiate::

    from hive import Hive

    builder = Hive(config_name="2mix", metadata="ShandaAI/Hive", dataset_paths="dataset_paths.json",
                   sample_rate=16000)
    builder.download_and_prepare(num_proc=8)           # materialise (Arrow, audio as WAV bytes)
    train = builder.as_dataset(split="train")
    stream = builder.as_streaming_dataset(split="train")  # render on the fly, encoded like the above

For training, :func:`stream_mixtures` yields numpy arrays (no encode/decode round trip) and splits
work by metadata unit across ``split_dataset_by_node`` ranks and DataLoader workers;
:func:`iter_mixtures` is the same without ``datasets`` objects (numpy only, no torch). Both give
whole mixtures or query examples (``targets="each"``/``"one"``: mixture, text query, target) and
take label subsets (``labels``/``exclude_labels``). :func:`dynamic_mixtures` draws new mixtures
every epoch from a single-event pool and renders them from a source store;
:class:`HiveMapDataset` is the map-style (indexable) form. :func:`load_rendered` loads
``hive render`` output (WebDataset or Parquet) with the right features.

Configs: ``all`` (default) and ``2mix`` … ``5mix`` (number of sources). Failure policy ``skip``
(default) leaves a mixture whose audio cannot be rendered out, logs it, and counts it by reason
(a prepared dataset keeps the manifest in ``<cache>/failures/*.jsonl``; see
:meth:`Hive.failure_summary`); ``raise`` stops at the first failure.
"""

from __future__ import annotations

import dataclasses
import glob as _glob
import hashlib
import io
import json
import logging
import os
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import datasets
import numpy as np
from datasets.builder import Key

from mixing import __version__
from mixing.citation import CITATION
from mixing.metadata import SPLITS, normalise_split
from mixing.errors import EmptySelectionError, MetadataSourceError
from mixing.metadata_io import MetadataSource
from mixing.metadata_memory import fingerprint as memory_fingerprint
from mixing.metadata_memory import is_in_memory
from mixing.metadata_source import classify_location, location_files
from mixing.recipe import STEM_MODES
from mixing.shards import AUDIO_FORMATS, rendered_features
from mixing.collate import collate_mixtures
from mixing.dynamic import DynamicSpec, dynamic_mixtures, records_of
from mixing.example_features import encoded_query_example, query_features
from mixing.label_filter import LabelFilter
from mixing.label_selection import check_label_selection
from mixing.queries import ExampleConfig
from mixing.streaming import (
    FAILURE_POLICIES, RenderSpec, StreamReport, WorkUnit, encoded_example, generate_arrays, iter_examples,
    iter_rendered, plan_units, read_failure_manifest, resolve_metadata,
)
from mixing.validation import MAX_SOURCES

__all__ = [
    "HiveConfig", "Hive", "stream_mixtures", "iter_mixtures", "load_rendered", "collate_mixtures",
    "describe_first_example", "StreamReport", "dynamic_mixtures", "DynamicSpec", "HiveMapDataset",
    "ExampleConfig", "LabelFilter", "records_of",
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


def audio_codec_available() -> bool:
    """Whether ``datasets.Audio`` can encode/decode here (datasets 5 needs torch + torchcodec even to
    store ``{"bytes", "path"}``)."""
    return bool(datasets.config.TORCH_AVAILABLE and datasets.config.TORCHCODEC_AVAILABLE)


def _audio_struct() -> dict[str, datasets.Value]:
    return {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}


def plain_audio_features(features: datasets.Features) -> datasets.Features:
    """``features`` with every ``datasets.Audio`` replaced by its storage struct ``{bytes, path}``:
    the same Arrow data, readable without torch/torchcodec; ``ds.cast_column(name, Audio())``
    turns a column back into Audio where torchcodec is installed."""

    def swap(feature: Any) -> Any:
        if isinstance(feature, datasets.Audio):
            return _audio_struct()
        if isinstance(feature, datasets.List):
            return datasets.List(swap(feature.feature), length=feature.length)
        if isinstance(feature, dict):
            return {k: swap(v) for k, v in feature.items()}
        return feature

    return datasets.Features({k: swap(v) for k, v in features.items()})


def _features(features: datasets.Features, audio_feature: bool | None, what: str) -> datasets.Features:
    if audio_feature is None:
        audio_feature = audio_codec_available()
        if not audio_feature:
            log.info("%s: torch/torchcodec not installed, so audio columns are {bytes, path} structs "
                     "(WAV bytes; read them with soundfile)", what)
    return features if audio_feature else plain_audio_features(features)


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
        num_shards: work units per split (default: a multiple of 240 ≥ the number of metadata
            files); the unit of ``num_proc`` and of streaming parallelism.
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
    num_shards: int | None = None
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
        if self.num_sources is not None and not 2 <= self.num_sources <= MAX_SOURCES:
            raise ValueError(f"num_sources is {self.num_sources!r}; expected 2..{MAX_SOURCES}")
        if self.stems not in STEM_MODES:
            raise ValueError(f"stems is {self.stems!r}; expected one of {STEM_MODES}")
        if self.store_only and self.store is None:
            raise ValueError("store_only=True needs store='STORE' (a `hive store build` output folder)")
        if self.on_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_failure is {self.on_failure!r}; expected one of {FAILURE_POLICIES}")
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format is {self.audio_format!r}; expected one of {AUDIO_FORMATS}")
        if self.sample_rate is not None and (isinstance(self.sample_rate, bool) or not isinstance(
                self.sample_rate, int) or self.sample_rate <= 0):
            raise ValueError(f"sample_rate is {self.sample_rate!r}; expected a positive integer (Hz) or None")
        if self.num_shards is not None and (not isinstance(self.num_shards, int) or self.num_shards < 1):
            raise ValueError(f"num_shards is {self.num_shards!r}; expected a positive integer or None")
        ExampleConfig.coerce(self.targets)
        LabelFilter.make(self.labels, self.exclude_labels)
        if isinstance(self.splits, str):
            self.splits = (self.splits,)
        if self.splits is not None:
            self.splits = tuple(normalise_split(s) for s in self.splits)


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
        h.update(repr(metadata.shards()).encode())
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
            features=_features(query_features(decode=self.config.decode)
                               if ExampleConfig.coerce(self.config.targets).queries
                               else rendered_features(decode=self.config.decode), self.config.audio_feature,
                               f"Hive {self.config.name}"),
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
                    "shards": plan_units(files[split], split, cfg.num_shards), "spec": spec})
                for split in wanted]

    def _generate_examples(self, shards: list[WorkUnit], spec: RenderSpec) -> Iterator[tuple[Key, dict[str, Any]]]:
        fmt = self.config.audio_format
        maker = spec.query_maker()
        if maker is None:
            for pos, row, rendered in iter_rendered(shards, spec):
                yield Key(pos, row), encoded_example(rendered, fmt)
            return
        counts: Counter = Counter()
        for pos, _, rendered in iter_rendered(shards, spec):
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


# ---- training input --------------------------------------------------------------------------
def _stream_spec(dataset_paths: Any, *, stems: str, sample_rate: int | None, store: Any, store_only: bool,
                 num_sources: int | None, on_failure: str, failure_dir: Any, targets: Any, labels: Any,
                 exclude_labels: Any) -> RenderSpec:
    return RenderSpec.make(dataset_paths, stems=stems, sample_rate=sample_rate, store=store, store_only=store_only,
                           num_sources=num_sources, on_failure=on_failure,
                           failure_dir=None if failure_dir is None else os.fspath(failure_dir),
                           labels=LabelFilter.make(labels, exclude_labels), examples=ExampleConfig.coerce(targets))


def _units(metadata: Any, split: str, spec: RenderSpec, *, revision: str | None, metadata_config: str | None,
           num_shards: int | None) -> list[WorkUnit]:
    """The work units of ``split`` (a label filter that keeps nothing of local metadata is refused here)."""
    files = resolve_metadata(metadata, revision=revision, config=metadata_config, num_sources=spec.num_sources)
    split = normalise_split(split)
    if split not in files:
        raise EmptySelectionError(f"split {split!r} is not in the metadata; it has {list(files)}; "
                                  "pass one of these as split")
    check_label_selection(files[split], split, spec.num_sources, spec.labels, f"split {split!r}")
    return plan_units(files[split], split, num_shards)


def stream_mixtures(metadata: Any, dataset_paths: Any = None, *, split: str = "train", num_sources: int | None = None,
                    sample_rate: int | None = None, stems: str = "consistent", on_failure: str = "skip",
                    revision: str | None = None, metadata_config: str | None = None,
                    num_shards: int | None = None, seed: int | None = None, shuffle_shards: bool = False,
                    shuffle_buffer: int = 0, as_torch: bool = False,
                    failure_dir: str | os.PathLike | None = None, store: Any = None,
                    store_only: bool = False, targets: str | ExampleConfig = "all",
                    labels: Sequence[str] | LabelFilter | None = None,
                    exclude_labels: Sequence[str] | None = None) -> datasets.IterableDataset:
    """Mixtures rendered on the fly, as a ``datasets.IterableDataset`` of numpy arrays.

    Each example (``targets="all"``): ``mix`` float32 ``(T,)``, ``sources`` float32 ``(n, T)``
    (stems; in ``consistent`` mode they sum to ``mix``), ``labels``, ``label_ids`` (AudioSet mids),
    ``source_ids``, ``mix_id``, ``split``, ``num_sources``, ``sample_rate``, ``target_duration``,
    ``global_normalization_factor``, ``stem_scale``. Nothing is encoded or decoded;
    ``as_torch=True`` gives torch tensors (``with_format("torch")``).

    ``targets="each"`` / ``"one"`` (or a :class:`mixing.queries.ExampleConfig` with query
    templates and negative queries) gives query examples instead: ``mix``, ``query``, ``target``,
    ``label``, ``label_id``, ``mix_id``, ``source_index``, ``negative`` (see :mod:`mixing.queries`).
    ``labels`` / ``exclude_labels`` (names or mids; or a :class:`mixing.label_filter.LabelFilter`
    with descendants and ``label_match``) keep a label subset; a filter that keeps nothing of
    local metadata is refused at once, listing the mixtures per label.
    ``metadata`` may also be an in-memory ``datasets.Dataset`` (e.g. filtered), a
    ``pyarrow.Table`` or a pandas ``DataFrame`` of Hub rows.

    ``store`` (a ``hive store build`` folder): source chunks are sliced from the store at memory
    speed instead of decoded (same samples; the output rate is the store's); chunks it lacks are
    decoded and counted as misses, or fail as ``not_in_store`` with ``store_only=True``.
    ``dataset_paths=None`` with a store renders from the store alone (no corpora needed).

    Work is divided by metadata unit (``num_shards`` per split, default a multiple of 240):
    ``datasets.distributed.split_dataset_by_node(ds, rank, world_size)`` gives each rank whole units
    when ``num_shards % world_size == 0`` (else ``datasets`` skips examples: every rank then renders
    every mixture, so pass ``num_shards`` as a multiple of ``world_size``), and a
    ``torch.utils.data.DataLoader(ds, num_workers=k)`` gives each worker different units. The order
    is deterministic; ``shuffle_shards``/``shuffle_buffer`` use ``ds.shuffle(seed, buffer_size)``
    (unit order + a buffer; call ``ds.set_epoch(e)`` for a new order per epoch).

    Failures (missing or unreadable corpus files, invalid records) are left out, logged and
    counted (``on_failure="skip"``; ``failure_dir`` also gets a JSONL manifest per unit) or raised.
    """
    spec = _stream_spec(dataset_paths, stems=stems, sample_rate=sample_rate, store=store, store_only=store_only,
                        num_sources=num_sources, on_failure=on_failure, failure_dir=failure_dir, targets=targets,
                        labels=labels, exclude_labels=exclude_labels)
    units = _units(metadata, split, spec, revision=revision, metadata_config=metadata_config, num_shards=num_shards)
    ds = datasets.IterableDataset.from_generator(
        generate_arrays, gen_kwargs={"shards": units, "spec": spec}, split=datasets.Split(normalise_split(split)))
    if shuffle_shards or shuffle_buffer:
        ds = ds.shuffle(seed=seed, buffer_size=max(1, int(shuffle_buffer)))
    if as_torch:
        ds = ds.with_format("torch")
    return ds


def iter_mixtures(metadata: Any, dataset_paths: Any = None, *, split: str = "train", num_sources: int | None = None,
                  sample_rate: int | None = None, stems: str = "consistent", on_failure: str = "skip",
                  revision: str | None = None, metadata_config: str | None = None,
                  num_shards: int | None = None, seed: int | None = None, shuffle_shards: bool = False,
                  rank: int = 0, world_size: int = 1, report: StreamReport | None = None,
                  failure_dir: str | os.PathLike | None = None, store: Any = None,
                  store_only: bool = False, targets: str | ExampleConfig = "all",
                  labels: Sequence[str] | LabelFilter | None = None,
                  exclude_labels: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """The numpy-only path (no torch, no torchcodec, no ``IterableDataset``): the examples of
    :func:`stream_mixtures` from a plain generator. ``rank``/``world_size`` take every
    ``world_size``-th work unit; ``shuffle_shards`` shuffles the unit order with ``seed``;
    ``report`` (a :class:`StreamReport`) receives counts of rendered and left-out mixtures and
    the store's hits and misses; ``store``/``store_only``, ``targets``, ``labels`` and
    ``exclude_labels`` as in :func:`stream_mixtures`."""
    from mixing.ranks import Ranks

    ranks = Ranks.of(rank, world_size)  # checked in the rank executor, as every command's ranks
    spec = _stream_spec(dataset_paths, stems=stems, sample_rate=sample_rate, store=store, store_only=store_only,
                        num_sources=num_sources, on_failure=on_failure, failure_dir=failure_dir, targets=targets,
                        labels=labels, exclude_labels=exclude_labels)
    units = _units(metadata, split, spec, revision=revision, metadata_config=metadata_config, num_shards=num_shards)
    if shuffle_shards:
        order = np.random.default_rng(seed).permutation(len(units))
        units = [units[i] for i in order]
    yield from iter_examples((r for _, _, r in iter_rendered(ranks.share(units), spec, report=report)), spec)


# ---- rendered shards -------------------------------------------------------------------------
def _rendered_layout(root: str) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {"webdataset": {}, "parquet": {}}
    for fmt, pattern in (("webdataset", "tar_*.tar"), ("parquet", "part_*.parquet")):
        for path in sorted(_glob.glob(os.path.join(root, "*", "*mix", pattern))):
            split = os.path.basename(os.path.dirname(os.path.dirname(path)))
            found[fmt].setdefault(split, []).append(path)
    return found


def _webdataset_features(files: Sequence[str], decode: bool, use_audio: bool) -> datasets.Features:
    """Audio (or, without torchcodec, the raw file bytes) for ``mix.{ext}`` and ``s1..sN.{ext}``; the
    JSON sidecar's struct from one sample of each ``{n}mix`` group (so every group's fields are
    present; missing stems read as None)."""
    import pyarrow as pa
    from datasets.features.features import cast_to_python_objects

    firsts: dict[str, str] = {}
    for f in files:
        firsts.setdefault(os.path.dirname(f), f)
    ext, max_n, samples = None, 0, []
    for f in firsts.values():
        with tarfile.open(f) as tar:
            key = None
            for member in tar:
                stem, _, field = member.name.partition(".")
                if key is None:
                    key = stem
                if stem != key:
                    break
                m = re.fullmatch(r"(mix|s(\d+))\.(\w+)", field)
                if m:
                    ext = m.group(3)
                    max_n = max(max_n, int(m.group(2) or 0))
                elif field == "json":
                    samples.append(json.load(tar.extractfile(member)))  # type: ignore[arg-type]
    if ext is None or not samples:
        raise ValueError(f"no WebDataset sample with a mix and a .json member in {list(firsts.values())[:3]}")
    tables = [pa.Table.from_pylist(cast_to_python_objects([s], only_1d_for_numpy=True)) for s in samples]
    schema = pa.concat_tables(tables, promote_options="default").schema
    audio = datasets.Audio(decode=decode) if use_audio else datasets.Value("binary")
    feats = {f"mix.{ext}": audio}
    feats.update({f"s{i}.{ext}": audio for i in range(1, max_n + 1)})
    feats["json"] = datasets.Features.from_arrow_schema(schema)
    feats["__key__"] = datasets.Value("string")
    feats["__url__"] = datasets.Value("string")
    return datasets.Features(feats)


def load_rendered(directory: str | os.PathLike, split: str | None = None, format: str | None = None, *,
                  num_sources: int | None = None, streaming: bool = False, decode: bool = True,
                  audio_feature: bool | None = None, cache_dir: str | None = None):
    """Load ``hive render`` output with ``datasets.load_dataset``.

    ``DIR/{split}/{n}mix/tar_*.tar`` (``format="webdataset"``): columns ``mix.wav``, ``s1.wav`` …
    ``s5.wav`` (``datasets.Audio``; a stem a mixture does not have is None), ``json`` (the record
    and render provenance), ``__key__`` (= mix_id), ``__url__``.
    ``DIR/{split}/{n}mix/part_*.parquet`` (``format="parquet"``): the features of
    :func:`mixing.shards.rendered_features` (``mix`` Audio, ``sources`` list of Audio, ``labels``, …).

    ``format`` defaults to the one present; ``split=None`` returns a ``DatasetDict`` (or
    ``IterableDatasetDict`` with ``streaming=True``); ``num_sources`` loads one ``{n}mix`` group;
    ``decode=False`` keeps ``{"bytes", "path"}``. Without torch/torchcodec (or with
    ``audio_feature=False``) audio columns hold the WAV/FLAC bytes (WebDataset) or plain
    ``{bytes, path}`` structs (Parquet); read them with soundfile.
    """
    root = os.fspath(directory)
    layout = _rendered_layout(root)
    present = [f for f, v in layout.items() if v]
    if format is None:
        if len(present) != 1:
            raise ValueError(f"{root}: found {present or 'no'} rendered shards (DIR/{{split}}/{{n}}mix/"
                             "tar_*.tar or part_*.parquet); pass format='webdataset' or 'parquet'"
                             if present else f"{root} holds no hive render output (DIR/{{split}}/{{n}}mix/"
                             "tar_*.tar or part_*.parquet)")
        format = present[0]
    if format not in layout:
        raise ValueError(f"format is {format!r}; expected 'webdataset' or 'parquet'")
    data_files = {s: [f for f in files if num_sources is None or f"{os.sep}{num_sources}mix{os.sep}" in f]
                  for s, files in layout[format].items()}
    data_files = {s: f for s, f in data_files.items() if f}
    if split is not None:
        split = normalise_split(split)
        if split not in data_files:
            raise ValueError(f"{root}: no {format} shards for split {split!r}; found {sorted(data_files)}")
        data_files = {split: data_files[split]}
    if not data_files:
        raise ValueError(f"{root}: no {format} shards match num_sources={num_sources}")
    order = {s: i for i, s in enumerate(SPLITS)}
    data_files = dict(sorted(data_files.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))
    use_audio = audio_codec_available() if audio_feature is None else audio_feature
    if format == "webdataset":
        features = _webdataset_features([f for fs in data_files.values() for f in fs], decode, use_audio)
    else:
        features = _features(rendered_features(decode=decode), use_audio, f"load_rendered({root})")
    return datasets.load_dataset(format, data_files=data_files, split=split, features=features,
                                 streaming=streaming, cache_dir=cache_dir)


# ---- demo ------------------------------------------------------------------------------------
def describe_first_example(metadata: Any, dataset_paths: Any, *, split: str = "train", config_name: str = "all",
                           sample_rate: int | None = None, cache_dir: str | None = None) -> str:
    """Load the first example of ``split`` through the builder (streaming, no torch/torchcodec
    needed) and describe its shapes; for ``hive demo``."""
    import soundfile as sf

    builder = Hive(config_name=config_name, metadata=metadata, dataset_paths=dataset_paths, decode=False,
                   sample_rate=sample_rate, splits=(split,), cache_dir=cache_dir)
    ds = builder.as_streaming_dataset(split=normalise_split(split))
    ex = next(iter(ds), None)
    if ex is None:
        return f"Hive builder ({config_name}): split {split!r} has no renderable mixture"
    mix, sr = sf.read(io.BytesIO(ex["mix"]["bytes"]), dtype="float32")
    stems = np.stack([sf.read(io.BytesIO(s["bytes"]), dtype="float32")[0] for s in ex["sources"]])
    lines = [
        f"Hive builder, config {config_name!r}, split {split!r}: first example {ex['mix_id']}",
        f"  mix     {tuple(mix.shape)} float32 at {sr} Hz ({mix.shape[0] / sr:.2f} s), peak {np.abs(mix).max():.3f}",
        f"  sources {tuple(stems.shape)} float32: {', '.join(ex['labels'])}",
        f"  stems sum to the mix: max |sum - mix| = {np.abs(stems.sum(0) - mix).max():.2e}",
    ]
    return "\n".join(lines)
