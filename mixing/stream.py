"""Mixtures rendered on the fly for training: :func:`stream_mixtures` (a ``datasets.IterableDataset``
of numpy arrays) and :func:`iter_mixtures` (the same examples from a plain generator: no torch, no
torchcodec, no ``datasets`` objects). ``hive.py`` re-exports both.

Both take what is read (``metadata``, ``dataset_paths``, ``split``), how it sounds (``store``,
``sample_rate``), what each mixture becomes (``targets``), which mixtures (``labels``) and
:class:`~mixing.stream_options.StreamOptions` for the rest. Before issue 20 the options were
keyword arguments; they moved into ``options=StreamOptions(...)``: ``num_sources``, ``stems``,
``store_only``, ``on_failure``, ``failure_dir``, ``revision``, ``metadata_config``, ``seed``,
``rank``, ``world_size``, ``num_shards`` (now ``num_units``: "shard" names only an output shard)
and ``shuffle_shards`` (now ``shuffle_units``, :func:`iter_mixtures`); ``exclude_labels`` goes into
``labels=LabelFilter(..., exclude_labels=...)``; a :func:`stream_mixtures` dataset is shuffled with
``ds.shuffle(seed=..., buffer_size=...)`` (was ``shuffle_shards``/``shuffle_buffer``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from .errors import EmptySelectionError
from .label_filter import LabelFilter
from .label_selection import check_label_selection
from .metadata import normalise_split
from .metadata_splits import resolve_metadata
from .moved_arguments import moved
from .queries import ExampleConfig
from .ranks import Ranks
from .render_spec import RenderSpec
from .stream_options import StreamOptions, StreamOptionsError
from .streaming import StreamReport, generate_arrays, iter_examples, iter_rendered
from .work_units import WorkUnit, plan_units

if TYPE_CHECKING:  # pragma: no cover
    import datasets

#: Hub id, local file or folder, MetadataSource, datasets.Dataset, pyarrow.Table or pandas DataFrame
Metadata = Any
#: dataset_paths.json, its mapping (corpus prefix -> local folder), a DatasetPaths, or None (store only)
Paths = Any


def stream_units(metadata: Metadata, split: str, spec: RenderSpec, options: StreamOptions) -> list[WorkUnit]:
    """The work units of ``split`` (a label filter that keeps nothing of local metadata is refused here)."""
    files = resolve_metadata(metadata, revision=options.revision, config=options.metadata_config,
                             num_sources=spec.num_sources)
    split = normalise_split(split)
    if split not in files:
        raise EmptySelectionError(f"split {split!r} is not in the metadata; it has {list(files)}; "
                                  "pass one of these as split")
    check_label_selection(files[split], split, spec.num_sources, spec.labels, f"split {split!r}")
    return plan_units(files[split], split, options.num_units)


_MOVED = {name: f"options=StreamOptions({name}=...)" for name in (
    "num_sources", "stems", "store_only", "on_failure", "failure_dir", "revision", "metadata_config", "seed",
    "rank", "world_size")}
_MOVED.update(num_shards="options=StreamOptions(num_units=...)", exclude_labels="labels=LabelFilter(..., exclude_labels=...)")
_STREAM_MOVED = dict(_MOVED, shuffle_shards="ds.shuffle(seed=..., buffer_size=...)",
                     shuffle_buffer="ds.shuffle(seed=..., buffer_size=...)")
_ITER_MOVED = dict(_MOVED, shuffle_shards="options=StreamOptions(shuffle_units=..., seed=...)")


@moved(**_STREAM_MOVED)
def stream_mixtures(metadata: Metadata, dataset_paths: Paths = None, *, split: str = "train", store: Any = None,
                    sample_rate: int | None = None, targets: str | ExampleConfig = "all",
                    labels: Sequence[str] | LabelFilter | None = None,
                    options: StreamOptions | Mapping[str, Any] | None = None,
                    as_torch: bool = False) -> "datasets.IterableDataset":
    """Mixtures rendered on the fly, as a ``datasets.IterableDataset`` of numpy arrays.

    Each example (``targets="all"``): ``mix`` float32 ``(T,)``, ``sources`` float32 ``(n, T)``
    (stems; in ``consistent`` mode they sum to ``mix``), ``labels``, ``label_ids`` (AudioSet mids),
    ``source_ids``, ``mix_id``, ``split``, ``num_sources``, ``sample_rate``, ``target_duration``,
    ``global_normalization_factor``, ``stem_scale``. Nothing is encoded or decoded;
    ``as_torch=True`` gives torch tensors (``with_format("torch")``).

    ``targets="each"`` / ``"one"`` (or a :class:`mixing.queries.ExampleConfig` with query
    templates and negative queries) gives query examples instead: ``mix``, ``query``, ``target``,
    ``label``, ``label_id``, ``mix_id``, ``source_index``, ``negative`` (see :mod:`mixing.queries`).
    ``labels`` (names or mids; or a :class:`mixing.label_filter.LabelFilter` with exclusions,
    descendants and ``label_match``) keeps a label subset; a filter that keeps nothing of local
    metadata is refused at once, listing the mixtures per label.
    ``metadata`` may also be an in-memory ``datasets.Dataset`` (e.g. filtered), a
    ``pyarrow.Table`` or a pandas ``DataFrame`` of Hub rows.

    ``store`` (a ``hive store build`` folder): source chunks are sliced from the store at memory
    speed instead of decoded (same samples; the output rate is the store's); chunks it lacks are
    decoded and counted as misses, or fail as ``not_in_store`` with ``store_only``.
    ``dataset_paths=None`` with a store renders from the store alone (no corpora needed).

    Work is divided by work unit (``options.num_units`` per split, default a multiple of 240):
    ``datasets.distributed.split_dataset_by_node(ds, rank, world_size)`` gives each rank whole units
    when ``num_units % world_size == 0`` (else ``datasets`` skips examples: every rank then renders
    every mixture, so pass ``num_units`` as a multiple of ``world_size``), and a
    ``torch.utils.data.DataLoader(ds, num_workers=k)`` gives each worker different units. The order
    is deterministic; ``ds.shuffle(seed=..., buffer_size=...)`` shuffles the unit order and a buffer
    (call ``ds.set_epoch(e)`` for a new order per epoch).

    Failures (missing or unreadable corpus files, invalid records) are left out, logged and
    counted (``options.on_failure="skip"``; ``options.failure_dir`` also gets a JSONL manifest per
    unit) or raised. Other options: :class:`~mixing.stream_options.StreamOptions`.
    """
    import datasets

    options = StreamOptions.coerce(options)
    if options.shuffle_units or options.rank != 0 or options.world_size != 1:
        raise StreamOptionsError("stream_mixtures returns a datasets.IterableDataset: shuffle it with ds.shuffle(seed=..., "
                                 "buffer_size=...) and split it across ranks with split_dataset_by_node; the options "
                                 "shuffle_units, rank and world_size are for iter_mixtures")
    spec = options.render_spec(dataset_paths, store=store, sample_rate=sample_rate, targets=targets, labels=labels)
    units = stream_units(metadata, split, spec, options)
    ds = datasets.IterableDataset.from_generator(
        generate_arrays, gen_kwargs={"units": units, "spec": spec}, split=datasets.Split(normalise_split(split)))
    return ds.with_format("torch") if as_torch else ds


@moved(**_ITER_MOVED)
def iter_mixtures(metadata: Metadata, dataset_paths: Paths = None, *, split: str = "train", store: Any = None,
                  sample_rate: int | None = None, targets: str | ExampleConfig = "all",
                  labels: Sequence[str] | LabelFilter | None = None,
                  options: StreamOptions | Mapping[str, Any] | None = None,
                  report: StreamReport | None = None) -> Iterator[dict[str, Any]]:
    """The numpy-only path (no torch, no torchcodec, no ``IterableDataset``): the examples of
    :func:`stream_mixtures` from a plain generator. ``options.rank``/``options.world_size`` take
    every ``world_size``-th work unit; ``options.shuffle_units`` shuffles the unit order with
    ``options.seed``; ``report`` (a :class:`~mixing.streaming.StreamReport`) receives counts of
    rendered and left-out mixtures and the store's hits and misses. Everything is checked before
    the first example is asked for (this is not a generator function)."""
    options = StreamOptions.coerce(options)
    spec = options.render_spec(dataset_paths, store=store, sample_rate=sample_rate, targets=targets, labels=labels)
    units = stream_units(metadata, split, spec, options)
    if options.shuffle_units:
        order = np.random.default_rng(options.seed).permutation(len(units))
        units = [units[i] for i in order]
    mine = Ranks(options.rank, options.world_size).share(units)
    return iter_examples((r for _, _, r in iter_rendered(mine, spec, report=report)), spec)
