"""Files in, files out: the pool read, the synthesized metadata written (Hub layout, legacy JSON,
statistics, config) — what ``hive synthesize`` calls (:func:`run_synthesis`)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..corpora import DatasetPaths
from ..memory_estimate import check_memory, describe_mixture, mixture_bytes
from ..metadata import MixtureRecord
from ..metadata_io import iter_records, write_hub_folder, write_legacy_json
from ..ontology import Ontology
from ..pool import PoolEntry, read_pool
from ..resume import atomic_write_json, atomic_write_text, remove_stale_tmp
from .config import SynthesisConfig
from .splits import check_metadata_splits

logger = logging.getLogger(__name__)
from .job import SynthesisError, SynthesisResult, Synthesizer
from .parallel import checked_paths, synthesize, synthesize_chunks


class WrittenRecords:
    """Records already written to a Hub-layout folder, re-read (streaming) on each iteration."""

    def __init__(self, folder: Path, split: str, count: int):
        self.folder = folder
        self.split = split
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[MixtureRecord]:
        if self.count == 0:
            return iter(())
        return iter_records(self.folder, split=self.split)


# ---- files in, files out ------------------------------------------------------------------
def output_files(output: str | os.PathLike, split: str) -> dict[str, Path]:
    out = Path(output)
    return {"parquet_dir": out, "legacy_dir": out / "legacy", "stats": out / f"synthesis_stats_{split}.json",
            "config": out / f"synthesis_config_{split}.yaml", "failures": out / f"_failures_{split}.jsonl"}


def write_outputs(result: SynthesisResult, output: str | os.PathLike, pool: Iterable[PoolEntry] | None = None,
                  *, write_metadata: bool = True) -> dict[str, Any]:
    """Hub-layout Parquet (+ legacy JSON), stats, resolved config and failure manifest."""
    cfg = result.config
    files = output_files(output, cfg.split)
    Path(output).mkdir(parents=True, exist_ok=True)
    result.split_check = check_metadata_splits(result.records, pool)
    result.split_check.raise_if_leaky("synthesized metadata")
    if write_metadata:
        if not isinstance(result.records, WrittenRecords):
            write_hub_folder(result.records, files["parquet_dir"])
        result.files["parquet"] = str(files["parquet_dir"] / "data")
        if cfg.legacy_json:
            write_legacy_json(result.records, files["legacy_dir"])
            result.files["legacy"] = str(files["legacy_dir"])
    stats = result.stats()
    atomic_write_json(files["stats"], stats, sort_keys=False)
    atomic_write_text(files["config"], cfg.to_yaml())
    result.files.update(stats=str(files["stats"]), config=str(files["config"]))
    if result.failures:
        atomic_write_text(files["failures"], "".join(json.dumps(f) + "\n" for f in result.failures))
        result.files["failures"] = str(files["failures"])
    elif files["failures"].exists():
        files["failures"].unlink()
    return stats


def load_pool(pool: str | os.PathLike, dataset_paths: DatasetPaths | None = None,
              dropped: Counter | None = None) -> list[PoolEntry]:
    """A pool file, or a labelled CSV list turned into a pool (chunks probed on disk); the rows
    of a labelled list that cannot be used are added to ``dropped`` by reason. An invalid row of
    a pool file is refused (raises), never dropped silently."""
    if str(pool).lower().endswith(".csv"):
        from .labelled import build_pool_from_labels

        if dataset_paths is None:
            raise SynthesisError(f"building a pool from the labelled list {pool} needs the dataset paths")
        labelled = build_pool_from_labels(pool, dataset_paths)
        if dropped is not None:
            dropped.update({f"labelled_list_{k}": v for k, v in labelled.dropped.items()})
        return labelled.entries
    return read_pool(pool)


def run_synthesis(pool: str | os.PathLike | Sequence[PoolEntry], config: SynthesisConfig, output: str | os.PathLike,
                  *, ontology: str | os.PathLike | Ontology | None = None,
                  dataset_paths: str | os.PathLike | DatasetPaths | Mapping | None = None,
                  dry_run: bool = False) -> tuple[SynthesisResult, dict[str, Any]]:
    """Read inputs, synthesize ``config.split`` and write the outputs under ``output``.

    ``dry_run`` samples parameters only (no audio, no metadata written) and writes the stats.
    """
    paths = None if dataset_paths is None else DatasetPaths.coerce(dataset_paths)
    if not dry_run and paths is None:
        raise SynthesisError("measuring levels needs the dataset paths (prefix -> local corpus root)")
    if not dry_run:  # each worker measures levels on one whole mixture at a time
        frames = int(config.target_duration * config.sample_rate)
        shape = describe_mixture(frames, config.max_sources, config.sample_rate)
        check_memory(mixture_bytes("render", frames, config.max_sources), f"measuring the levels of a mixture ({shape})",
                     "lower --duration, --sample-rate, --max-sources or --num-workers",
                     workers=max(1, config.num_workers))

    stale = [str(p) for p in remove_stale_tmp(output)]
    if stale:
        logger.info("removed %d stale temporary files of killed earlier runs under %s", len(stale), output)
    pool_dropped: Counter = Counter()
    entries = list(pool) if not isinstance(pool, (str, os.PathLike)) else load_pool(pool, paths, pool_dropped)
    onto = ontology if isinstance(ontology, Ontology) or ontology is None else Ontology.from_json(ontology)
    synth = Synthesizer(entries, config, ontology=onto)
    pool_dropped.update(synth.pool_dropped)
    if dry_run:
        result = synthesize(synth, None)
    else:  # stream to disk: memory does not grow with the number of mixtures
        paths = checked_paths(synth, paths)
        parquet_dir = output_files(output, config.split)["parquet_dir"]
        reasons: Counter = Counter()
        failures: list[dict[str, Any]] = []
        t0 = time.perf_counter()

        def stream() -> Iterator[MixtureRecord]:
            for r in synthesize_chunks(synth, paths):
                reasons.update(r.reasons)
                failures.extend(r.failures)
                yield from r.records

        counts = write_hub_folder(stream(), parquet_dir)
        if synth.skipped_clips:
            reasons["skipped_clips_unknown_label"] = synth.skipped_clips
        records = WrittenRecords(parquet_dir, config.split, counts.get(config.split, 0))
        result = SynthesisResult(config, records, reasons, failures, time.perf_counter() - t0)
    result.pool_dropped = pool_dropped
    result.pool_used = len(synth.entries)
    result.stale_removed = stale
    stats = write_outputs(result, output, entries, write_metadata=not dry_run)
    logger.info("synthesized %d mixtures of split %s in %.1f s", len(result.records), config.split, result.seconds)
    return result, stats
