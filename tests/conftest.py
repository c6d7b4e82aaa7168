"""Shared fixtures: the embedded toy corpus, built once per session, and renders of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixing.toy import ToyCorpus, build_toy_corpus


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory) -> ToyCorpus:
    """The toy corpus (real audio files + Parquet and legacy metadata). Read-only: copy to modify."""
    return build_toy_corpus(tmp_path_factory.mktemp("toy") / "corpus")


@pytest.fixture(scope="session")
def toy_render(toy_corpus, tmp_path_factory):
    """``toy_render(format="webdataset", stems="consistent", audio_format="wav") -> Path``: a complete
    render of the whole toy metadata, made once per session per parameter set. Read-only."""
    from mixing.cli import main

    cache: dict[tuple[str, str, str], Path] = {}

    def get(format: str = "webdataset", stems: str = "consistent", audio_format: str = "wav") -> Path:
        key = (format, stems, audio_format)
        if key not in cache:
            out = tmp_path_factory.mktemp("render") / f"{format}-{stems}-{audio_format}"
            rc = main(["render", "--metadata", str(toy_corpus.parquet_dir),
                       "--dataset-paths", str(toy_corpus.dataset_paths), "--output", str(out),
                       "--format", format, "--stems", stems, "--audio-format", audio_format,
                       "--shard-size", "8", "--no-progress", "--allow-failures"])
            assert rc == 0
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture(scope="session")
def toy_store(toy_corpus, tmp_path_factory):
    """``toy_store(sample_rate=44100) -> Path``: a source store of every chunk of the toy metadata
    and the toy pool, built once per session per rate. Read-only."""
    from mixing.metadata_io import open_metadata
    from mixing.pool import iter_pool
    from mixing.store import StoreBuildConfig, build_store

    cache: dict[int, Path] = {}

    def get(sample_rate: int = 44100) -> Path:
        if sample_rate not in cache:
            out = tmp_path_factory.mktemp("store") / f"store-{sample_rate}"
            items = list(open_metadata(str(toy_corpus.parquet_dir)).records()) + list(iter_pool(toy_corpus.pool))
            summary = build_store(items, toy_corpus.dataset_paths, StoreBuildConfig(str(out), sample_rate),
                                  progress=False)
            assert summary.complete and not summary.failures
            cache[sample_rate] = out
        return cache[sample_rate]

    return get
