"""``hive.py``: the datasets builder, the on-the-fly stream, and loading ``hive render`` output.

Every check compares against ``hive render`` run on the same toy metadata (same stem mode), with
real ``datasets`` objects, real DataLoader worker processes, and no network.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from datasets.distributed import split_dataset_by_node

import hive
from mixing.cli import main as hive_main
from mixing.errors import MissingSourceAudioError
from mixing.metadata_io import MetadataFile, open_metadata, read_metadata_file, write_parquet
from mixing.render import Renderer
from mixing.shards import rendered_features
from mixing.streaming import AUTO_UNIT_MULTIPLE, RenderSpec, iter_unit_records, plan_units, resolve_metadata
from mixing.toy import build_toy_corpus

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("train", "validation", "test")


# ---- fixtures --------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any IP connection fails the test (local Unix sockets of worker pools are fine)."""
    connect = socket.socket.connect

    def guarded(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address!r}")
        return connect(self, address, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_toy_corpus(tmp_path_factory.mktemp("builder") / "toy")


@pytest.fixture(scope="module")
def records(corpus):
    return list(open_metadata(corpus.parquet_dir).records())


def _read_tars(out: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for tar_path in sorted(out.glob("*/*mix/tar_*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar:
                key, _, field = m.name.partition(".")
                samples.setdefault(key, {})[field] = tar.extractfile(m).read()
    return samples


@pytest.fixture(scope="module")
def rendered(corpus, tmp_path_factory):
    """``rendered(stems, sample_rate=None) -> {mix_id: {"mix.wav": bytes, "s1.wav": ..., "json": ...}}``
    from ``hive render`` (WebDataset), and the output folder."""
    cache = {}

    def get(stems="consistent", sample_rate=None, format="webdataset"):
        key = (stems, sample_rate, format)
        if key not in cache:
            out = tmp_path_factory.mktemp("render") / f"{stems}-{sample_rate}-{format}"
            argv = ["render", "--metadata", str(corpus.parquet_dir), "--dataset-paths", str(corpus.dataset_paths),
                    "--output", str(out), "--stems", stems, "--format", format, "--shard-size", "8",
                    "--no-progress"]
            if sample_rate:
                argv += ["--sample-rate", str(sample_rate)]
            assert hive_main(argv) == 0
            cache[key] = (out, _read_tars(out) if format == "webdataset" else None)
        return cache[key]

    return get


@pytest.fixture(scope="module")
def hub_folder(corpus, records, tmp_path_factory):
    """The metadata as a Hub repository: README.md YAML ``configs`` (all, 2mix..5mix) with
    ``data_files`` per split, Parquet files under ``data/`` and ``{n}mix/``."""
    root = tmp_path_factory.mktemp("hub") / "Hive"
    lines = ["---", "license: apache-2.0", "configs:"]
    for name, n in [("all", None)] + [(f"{k}mix", k) for k in range(2, 6)]:
        folder = "data" if n is None else name
        lines += [f"- config_name: {name}"] + (["  default: true"] if n is None else []) + ["  data_files:"]
        for split in SPLITS:
            chosen = [r for r in records if r.split == split and (n is None or r.num_sources == n)]
            write_parquet(chosen, root / folder / f"{split}-00000-of-00001.parquet")
            lines += [f"  - split: {split}", f"    path: {folder}/{split}-*.parquet"]
    lines += ["---", "", "# Hive (offline test copy)", ""]
    (root / "README.md").write_text("\n".join(lines))
    return root


@pytest.fixture(scope="module")
def broken_paths(corpus, records, tmp_path_factory):
    """A dataset_paths.json whose copy of one corpus lacks one file used by train mixtures, and the
    ids of the mixtures that therefore cannot be rendered."""
    mapping = json.loads(corpus.dataset_paths.read_text())
    used = Counter(s.path for r in records if r.split == "train" for s in r.sources)
    victim = next(p for p, _ in used.most_common() if p.split("/", 1)[0] == "ESC50")
    prefix, rel = victim.split("/", 1)
    copy = tmp_path_factory.mktemp("broken") / "esc50"
    shutil.copytree(corpus.root / mapping[prefix], copy)
    (copy / rel).unlink()
    mapping = {k: str(corpus.root / v) for k, v in mapping.items()}
    mapping[prefix] = str(copy)
    path = copy.parent / "dataset_paths.json"
    path.write_text(json.dumps(mapping))
    bad = {r.mix_id for r in records if any(s.path == victim for s in r.sources)}
    assert bad
    return path, bad


def _ids(records, split, n=None):
    return [r.mix_id for r in records if r.split == split and (n is None or r.num_sources == n)]


def _wav(data: bytes) -> np.ndarray:
    x, _ = sf.read(io.BytesIO(data), dtype="float32")
    return x


def _assert_example_equals_render(ex, sample):
    """A builder example (decode=False) is byte-identical to the ``hive render`` tar members."""
    assert ex["mix"]["bytes"] == sample["mix.wav"]
    assert [s["bytes"] for s in ex["sources"]] == [sample[f"s{i}.wav"] for i in range(1, ex["num_sources"] + 1)]
    assert f"s{ex['num_sources'] + 1}.wav" not in sample
    assert json.loads(ex["render_json"]) == json.loads(sample["json"])
    assert ex["labels"] == [s["label"] for s in json.loads(sample["json"])["sources"]]


def _builder(tmp_path, **kw):
    kw.setdefault("decode", False)
    return hive.Hive(cache_dir=str(tmp_path / "cache"), **kw)


# ---- the builder -----------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_prepare_equals_hive_render(corpus, records, rendered, tmp_path):
    _, samples = rendered("consistent")
    builder = _builder(tmp_path, metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths))
    builder.download_and_prepare(num_proc=2)
    assert builder.failure_summary() == {}
    dsd = builder.as_dataset()
    assert list(dsd) == list(SPLITS)
    assert builder.info.features == rendered_features(decode=False)
    for split in SPLITS:
        ds = dsd[split]
        assert ds.num_rows == corpus.num_mixtures[split]
        assert ds["mix_id"] == _ids(records, split)  # metadata order, whatever num_proc
        for ex in ds:
            _assert_example_equals_render(ex, samples[ex["mix_id"]])


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("stems", ["consistent", "reference"])
def test_streaming_builder_equals_hive_render(corpus, records, rendered, tmp_path, stems):
    _, samples = rendered(stems)
    builder = _builder(tmp_path, metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths),
                       stems=stems)
    streams = builder.as_streaming_dataset()
    assert list(streams) == list(SPLITS)
    for split in SPLITS:
        got = []
        for ex in streams[split]:
            _assert_example_equals_render(ex, samples[ex["mix_id"]])
            got.append(ex["mix_id"])
        assert got == _ids(records, split)


@pytest.mark.slow  # end to end over the toy corpus
def test_hub_layout_folder_with_yaml_configs(corpus, records, rendered, hub_folder, tmp_path):
    """A folder in the Hub layout with README YAML configs is read config by config (the files its
    README lists for the chosen config, ``{n}mix`` for a ``{n}mix`` builder config)."""
    _, samples = rendered("consistent")
    files = resolve_metadata(str(hub_folder), num_sources=3)
    assert {Path(s.location).parent.name for fs in files.values() for s in fs} == {"3mix"}
    assert all(s.config == "3mix" for fs in files.values() for s in fs)
    builder = _builder(tmp_path, config_name="3mix", metadata=str(hub_folder), dataset_paths=str(corpus.dataset_paths))
    for split in SPLITS:
        got = []
        for ex in builder.as_streaming_dataset(split=split):
            assert ex["num_sources"] == 3
            _assert_example_equals_render(ex, samples[ex["mix_id"]])
            got.append(ex["mix_id"])
        assert got == _ids(records, split, 3)
    # the default config of the repository ("all"), prepared with two processes
    builder = _builder(tmp_path, config=hive.HiveConfig(name="all", metadata=str(hub_folder),
                                                       dataset_paths=str(corpus.dataset_paths), splits=("validation",)))
    builder.download_and_prepare(num_proc=2)
    ds = builder.as_dataset(split="validation")
    assert ds["mix_id"] == _ids(records, "validation")
    for ex in ds:
        _assert_example_equals_render(ex, samples[ex["mix_id"]])
    # and the numpy stream of one config
    stream = hive.stream_mixtures(hub_folder, corpus.dataset_paths, split="test", options=hive.StreamOptions(num_sources=2))
    got = [ex["mix_id"] for ex in stream]
    assert got == _ids(records, "test", 2)


def test_legacy_json_metadata_gives_the_same_examples(corpus, records, rendered, tmp_path):
    _, samples = rendered("consistent")
    builder = _builder(tmp_path, config_name="4mix", metadata=str(corpus.legacy_dir),
                       dataset_paths=str(corpus.dataset_paths), num_units=5)
    for split in SPLITS:
        got = sorted(ex["mix_id"] for ex in builder.as_streaming_dataset(split=split)
                     if _assert_example_equals_render(ex, samples[ex["mix_id"]]) is None)
        assert got == sorted(_ids(records, split, 4))


def test_config_handling(corpus, tmp_path):
    assert hive.HiveConfig(name="3mix").num_sources == 3
    b = _builder(tmp_path, config_name="5mix", metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths))
    assert b.config.num_sources == 5 and b.config.name == "5mix"
    with pytest.raises(ValueError, match="num_sources"):
        _builder(tmp_path, config_name="2mix", num_sources=3, metadata=str(corpus.parquet_dir),
                 dataset_paths=str(corpus.dataset_paths))
    with pytest.raises(ValueError, match="stems"):
        _builder(tmp_path, stems="loud", metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths))
    with pytest.raises(ValueError, match="split"):
        _builder(tmp_path, metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths),
                 splits=("dev_clean",)).as_streaming_dataset()
    # different inputs, different cache folders
    a = _builder(tmp_path, metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths))
    c = _builder(tmp_path, metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths), sample_rate=16000)
    assert a.cache_dir != c.cache_dir


# ---- the training stream ---------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_stream_arrays_equal_hive_render_without_encoding(corpus, records, rendered):
    _, samples = rendered("consistent")
    ds = hive.stream_mixtures(corpus.parquet_dir, corpus.dataset_paths, split="train")
    assert isinstance(ds, datasets.IterableDataset) and ds.num_shards == AUTO_UNIT_MULTIPLE
    got = []
    for ex in ds:
        sample = samples[ex["mix_id"]]
        assert isinstance(ex["mix"], np.ndarray) and ex["mix"].dtype == np.float32
        assert ex["sources"].dtype == np.float32 and ex["sources"].shape == (ex["num_sources"], ex["mix"].shape[0])
        np.testing.assert_array_equal(ex["mix"], _wav(sample["mix.wav"]))
        for i, stem in enumerate(ex["sources"], 1):
            np.testing.assert_array_equal(stem, _wav(sample[f"s{i}.wav"]))
        got.append(ex["mix_id"])
    assert got == _ids(records, "train")


# 240 % 2 == 0: ranks get whole units; 3 and 1: datasets skips examples. Shuffled: units and a buffer.
@pytest.mark.parametrize("num_units,shuffle", [(None, False), (3, False), (1, False), (None, True), (3, True)])
def test_dataloader_workers_and_ranks_cover_each_record_once(corpus, records, num_units, shuffle):
    torch = pytest.importorskip("torch")
    ds = hive.stream_mixtures(corpus.parquet_dir, corpus.dataset_paths, split="train", as_torch=True,
                              options=hive.StreamOptions(num_units=num_units))
    if shuffle:
        ds = ds.shuffle(seed=7, buffer_size=8)
    ds.set_epoch(1)
    per_rank = []
    for rank in range(2):
        node = split_dataset_by_node(ds, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(node, batch_size=None, num_workers=2)
        got = []
        for ex in loader:
            assert isinstance(ex["mix"], torch.Tensor)
            got.append(ex["mix_id"])
        per_rank.append(got)
    counts = Counter(i for got in per_rank for i in got)
    assert set(counts) == set(_ids(records, "train")) and set(counts.values()) == {1}
    assert all(per_rank)


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("workers", [0, 2])
def test_collate_pads_sources_into_a_batch(corpus, records, workers):
    torch = pytest.importorskip("torch")
    ds = hive.stream_mixtures(corpus.parquet_dir, corpus.dataset_paths, split="validation")
    # in workers the batch is built directly in shared memory
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=hive.collate_mixtures, num_workers=workers)
    seen = []
    for batch in loader:
        if workers:
            assert batch["sources"].is_shared() and batch["mix"].is_shared()
        assert batch["sources"].dtype == torch.float32 and batch["source_mask"].dtype == torch.bool
        b, n, t = batch["sources"].shape
        assert batch["mix"].shape == (b, t) and batch["source_mask"].shape == (b, n)
        assert batch["source_mask"].sum(1).tolist() == batch["num_sources"] and n == max(batch["num_sources"])
        torch.testing.assert_close(batch["sources"].sum(1), batch["mix"], rtol=0, atol=1e-6)  # consistent stems
        seen += batch["mix_id"]
    assert sorted(seen) == sorted(_ids(records, "validation")) and len(seen) == len(set(seen))
    if not workers:
        assert seen == _ids(records, "validation")


@pytest.mark.parametrize("num_units", [None, 3])
def test_dataloader_and_ranks_with_an_unrenderable_record(corpus, records, broken_paths, tmp_path, num_units):
    torch = pytest.importorskip("torch")
    paths, bad = broken_paths
    ds = hive.stream_mixtures(corpus.parquet_dir, paths, split="train",
                              options=hive.StreamOptions(num_units=num_units, failure_dir=tmp_path / "failures"))
    ids = []
    for rank in range(2):
        loader = torch.utils.data.DataLoader(split_dataset_by_node(ds, rank=rank, world_size=2),
                                             batch_size=None, num_workers=2)
        ids += [ex["mix_id"] for ex in loader]
    expected = set(_ids(records, "train")) - bad
    assert Counter(ids) == Counter(expected)
    manifest = [json.loads(line) for p in sorted((tmp_path / "failures").glob("*.jsonl"))
                for line in p.read_text().splitlines()]
    assert {e["mix_id"] for e in manifest} == bad
    assert {e["reason"] for e in manifest} == {"missing_file"}


@pytest.mark.slow  # end to end over the toy corpus
def test_failure_policies(corpus, records, broken_paths, tmp_path):
    paths, bad = broken_paths
    report = hive.StreamReport()
    got = [ex["mix_id"] for ex in hive.iter_mixtures(corpus.parquet_dir, paths, split="train", report=report)]
    assert got == [i for i in _ids(records, "train") if i not in bad]
    assert report.rendered == len(got) and report.failures == Counter({"missing_file": len(bad)})
    assert {e["mix_id"] for e in report.examples} == bad
    with pytest.raises(MissingSourceAudioError) as err:
        list(hive.iter_mixtures(corpus.parquet_dir, paths, split="train", options={"on_failure": "raise"}))
    assert any(n.startswith("while rendering mixture") for n in err.value.__notes__)
    # the builder: skipped, counted, and the manifest kept with the prepared data
    builder = _builder(tmp_path, metadata=str(corpus.parquet_dir), dataset_paths=str(paths), splits=("train",))
    builder.download_and_prepare()
    assert builder.failure_summary() == {"missing_file": len(bad)}
    assert builder.failures == Counter({"missing_file": len(bad)})
    assert set(builder.as_dataset(split="train")["mix_id"]) == set(_ids(records, "train")) - bad
    with pytest.raises(datasets.exceptions.DatasetGenerationError):
        _builder(tmp_path / "r", metadata=str(corpus.parquet_dir), dataset_paths=str(paths), splits=("train",),
                 on_failure="raise").download_and_prepare()


@pytest.mark.slow  # end to end over the toy corpus
def test_order_is_deterministic_and_shuffling_is_seeded(corpus, records):
    def ids(seed=None):
        ds = hive.stream_mixtures(corpus.parquet_dir, corpus.dataset_paths, split="validation")
        return [ex["mix_id"] for ex in (ds if seed is None else ds.shuffle(seed=seed, buffer_size=4))]

    plain = ids()
    assert plain == ids() == _ids(records, "validation")
    shuffled = ids(seed=3)
    assert shuffled == ids(seed=3)
    assert shuffled != plain and sorted(shuffled) == sorted(plain)
    a = [e["mix_id"] for e in hive.iter_mixtures(corpus.parquet_dir, corpus.dataset_paths, split="validation",
                                                  options=hive.StreamOptions(seed=5, shuffle_units=True))]
    assert sorted(a) == sorted(plain) and a != plain
    halves = [[e["mix_id"] for e in hive.iter_mixtures(corpus.parquet_dir, corpus.dataset_paths, split="validation",
                                                       options=hive.StreamOptions(rank=r, world_size=2))]
              for r in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(plain) and not set(halves[0]) & set(halves[1])


@pytest.mark.slow  # end to end over the toy corpus
def test_direct_16k_rendering(corpus, records, rendered, tmp_path):
    ds = hive.stream_mixtures(corpus.parquet_dir, corpus.dataset_paths, split="test", sample_rate=16000)
    renderer = Renderer(corpus.dataset_paths, sample_rate=16000)
    by_id = {r.mix_id: r for r in records}
    n = 0
    for ex in ds:
        assert ex["sample_rate"] == 16000
        assert ex["mix"].shape == (160000,) and ex["sources"].shape == (ex["num_sources"], 160000)
        direct = renderer.render(by_id[ex["mix_id"]])
        np.testing.assert_array_equal(ex["mix"], direct.mix)
        np.testing.assert_array_equal(ex["sources"], direct.stems)
        n += 1
    assert n == len(_ids(records, "test"))
    # the builder at 16 kHz is byte-identical to `hive render --sample-rate 16000`
    _, samples = rendered("consistent", 16000)
    builder = _builder(tmp_path, config_name="2mix", metadata=str(corpus.parquet_dir),
                       dataset_paths=str(corpus.dataset_paths), sample_rate=16000)
    for ex in builder.as_streaming_dataset(split="validation"):
        assert ex["sample_rate"] == 16000 and sf.info(io.BytesIO(ex["mix"]["bytes"])).samplerate == 16000
        assert _wav(ex["mix"]["bytes"]).shape == (64000,)
        _assert_example_equals_render(ex, samples[ex["mix_id"]])


def test_audio_feature_decoding_with_torchcodec(corpus, rendered, tmp_path):
    pytest.importorskip("torchcodec")
    _, samples = rendered("consistent")
    builder = hive.Hive(config_name="2mix", metadata=str(corpus.parquet_dir), dataset_paths=str(corpus.dataset_paths),
                        splits=("validation",), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    ds = builder.as_dataset(split="validation")
    assert isinstance(ds.features["mix"], datasets.Audio) and ds.features["mix"].decode
    for ex in ds:
        got = ex["mix"].get_all_samples()
        assert got.sample_rate == 44100
        np.testing.assert_array_equal(got.data.numpy()[0], _wav(samples[ex["mix_id"]]["mix.wav"]))
        stems = [s.get_all_samples().data.numpy()[0] for s in ex["sources"]]
        np.testing.assert_array_equal(stems[1], _wav(samples[ex["mix_id"]]["s2.wav"]))
    streamed = next(iter(builder.as_streaming_dataset(split="validation")))
    assert streamed["mix"].get_all_samples().data.shape == (1, 176400)


@pytest.mark.slow
def test_numpy_path_needs_neither_torch_nor_torchcodec(corpus, records, rendered, tmp_path):
    # hide torch and torchcodec as if they were not installed (find_spec -> None, import fails)
    script = f"""
import importlib.machinery, importlib.util, sys

class Hidden(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchcodec"):
            return None
        return super().find_spec(name, path, target)

sys.meta_path = [Hidden if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
assert importlib.util.find_spec("torch") is None and importlib.util.find_spec("torchcodec") is None
import hive
ids = [ex["mix_id"] for ex in hive.iter_mixtures({str(corpus.parquet_dir)!r}, {str(corpus.dataset_paths)!r},
                                                  split="validation")]
ex = next(iter(hive.stream_mixtures({str(corpus.parquet_dir)!r}, {str(corpus.dataset_paths)!r}, split="validation")))
assert type(ex["mix"]).__name__ == "ndarray", type(ex["mix"])
assert not hive.audio_codec_available()
wds = hive.load_rendered({str(rendered("consistent")[0])!r}, split="validation")
assert wds.features["mix.wav"] == hive.datasets.Value("binary")
assert len(wds) == len(ids) and all(ex["mix.wav"][:4] == b"RIFF" for ex in wds)
from dataset_card.card import CardConfig, write_card_folder  # the demo's step 5, on the top floor
from dataset_card.demo import describe_first_example
write_card_folder({str(corpus.parquet_dir)!r}, {str(tmp_path / "hub")!r}, CardConfig(plots=False))
text = describe_first_example({str(tmp_path / "hub")!r}, {str(corpus.dataset_paths)!r})
assert not any(m.split(".")[0] in ("torch", "torchcodec") for m in sys.modules), "torch was imported"
print(",".join(ids))
print(text)
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout.splitlines()
    assert out[0].split(",") == _ids(records, "validation")
    assert "(176400,) float32" in res.stdout and "first example hive_toy_train_00000" in res.stdout


# ---- rendered shards -------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_load_rendered_webdataset_and_parquet(corpus, records, rendered):
    out, samples = rendered("consistent")
    ds = hive.load_rendered(out, split="train", decode=False)
    assert isinstance(ds.features["mix.wav"], datasets.Audio) and isinstance(ds.features["s5.wav"], datasets.Audio)
    assert sorted(ds["__key__"]) == sorted(_ids(records, "train"))
    for ex in ds:
        sample = samples[ex["__key__"]]
        assert ex["mix.wav"]["bytes"] == sample["mix.wav"]
        n = ex["json"]["num_sources"]
        assert [ex[f"s{i}.wav"]["bytes"] for i in range(1, n + 1)] == [sample[f"s{i}.wav"] for i in range(1, n + 1)]
        assert all(ex[f"s{i}.wav"] is None for i in range(n + 1, 6))
        assert ex["json"]["mix_id"] == ex["__key__"] and ex["json"]["hive_render"]["stem_mode"] == "consistent"
    dsd = hive.load_rendered(out, num_sources=3, decode=False)
    assert list(dsd) == list(SPLITS)
    assert sorted(dsd["test"]["__key__"]) == sorted(_ids(records, "test", 3))
    streamed = hive.load_rendered(out, split="validation", streaming=True, decode=False)
    assert sorted(e["__key__"] for e in streamed) == sorted(_ids(records, "validation"))

    pq_out, _ = rendered("consistent", format="parquet")
    ds = hive.load_rendered(pq_out, split="test", decode=False)
    assert ds.features == rendered_features(decode=False)
    assert sorted(ds["mix_id"]) == sorted(_ids(records, "test"))
    for ex in ds:
        _assert_example_equals_render(ex, samples[ex["mix_id"]])
    try:
        import torchcodec  # noqa: F401
    except ImportError:
        return  # decoding is covered by test_audio_feature_decoding_with_torchcodec where possible
    decoded = hive.load_rendered(pq_out, split="test")
    np.testing.assert_array_equal(decoded[0]["mix"].get_all_samples().data.numpy()[0],
                                  _wav(samples[decoded[0]["mix_id"]]["mix.wav"]))


# ---- planning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("num_units", [1, 2, 3, 7, 31, 240])
def test_units_partition_the_metadata_exactly(corpus, num_units):
    spec = RenderSpec.make(corpus.dataset_paths)
    for meta in (corpus.parquet_dir, corpus.legacy_dir):
        by_split = resolve_metadata(meta)
        for split, files in by_split.items():
            units = plan_units(files, split, num_units)
            assert len(units) == num_units and [u.index for u in units] == list(range(num_units))
            got = [r.mix_id for u in units for r in iter_unit_records(u, spec, [])]
            want = [r.mix_id for f in files for r in read_metadata_file(f, split=split)]
            assert sorted(got) == sorted(want) and len(got) == len(set(got))
            if meta == corpus.parquet_dir:
                assert got == want  # contiguous row ranges keep metadata order


def test_parquet_file_urls_are_read_through_fsspec(corpus, records):
    """Hub data files are URLs (``hf://datasets/...``); a ``file://`` URL takes the same path."""
    path = next(corpus.parquet_dir.glob("data/train-*.parquet"))
    file = MetadataFile("parquet", path.as_uri(), "train")
    units = plan_units([file], "train", 4)
    got = [r.mix_id for u in units for r in iter_unit_records(u, RenderSpec.make(corpus.dataset_paths), [])]
    assert got == _ids(records, "train")
