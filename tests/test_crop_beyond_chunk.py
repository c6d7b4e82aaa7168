"""``crop_beyond_chunk`` (issue 19): a crop that starts at or after the end of its chunk
(resampled to the output rate) used to render an all-zero stem that check, render, verify, the
stream and inspect all accepted. Now it is one named failure reason wherever a record meets
audio; a crop that only partly overhangs its chunk (zero-padded tail, as the reference) stays
fine. Real toy audio files, real metadata files, the real CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mixing.cli import main
from mixing.metadata_io import iter_records, write_jsonl

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from mixing.toy import build_toy_corpus

    return build_toy_corpus(tmp_path_factory.mktemp("crop") / "toy")


@pytest.fixture(scope="module")
def records(toy, tmp_path_factory):
    """Three test-split records: one fine, one whose source 1 crop starts past its chunk, one
    whose source 1 crop starts inside its chunk and ends past it."""
    recs = list(iter_records(toy.parquet_dir, split="test"))[:3]
    fine, beyond, overhang = recs
    src = beyond.sources[0]
    held = src.chunk_end_second - src.chunk_start_second
    beyond = beyond.replace(sources=(src.replace(crop_start_second=held + 0.5, crop_end_second=held + 3.0),
                                     *beyond.sources[1:]))
    src = overhang.sources[0]
    held = src.chunk_end_second - src.chunk_start_second
    overhang = overhang.replace(sources=(src.replace(crop_start_second=held - 0.5, crop_end_second=held + 3.0),
                                         *overhang.sources[1:]))
    folder = tmp_path_factory.mktemp("crop-metadata")
    write_jsonl([fine, beyond, overhang], folder / "metadata.jsonl")
    return folder / "metadata.jsonl", fine.mix_id, beyond.mix_id, overhang.mix_id


def test_the_predicate_uses_the_renderers_arithmetic():
    import numpy as np

    from mixing.audio import crop_beyond_chunk

    # a 1 s chunk at 16 kHz resampled to 44.1 kHz holds 44100 samples: a crop from 1.0 s is beyond
    assert crop_beyond_chunk(1.0, 0.0, 1.0, 16000, 10 * 16000, 44100)
    assert not crop_beyond_chunk(0.9999, 0.0, 1.0, 16000, 10 * 16000, 44100)
    # the chunk is clamped to the file: a 10 s chunk of a 2 s file holds 2 s
    assert crop_beyond_chunk(2.5, 0.0, 10.0, 8000, 2 * 8000, 8000)
    assert not crop_beyond_chunk(1.5, 0.0, 10.0, 8000, 2 * 8000, 8000)
    got = crop_beyond_chunk(np.array([0.0, 3.0]), np.array([1.0, 1.0]), np.array([3.0, 3.0]),
                            np.array([8000, 8000]), np.array([80000, 80000]), np.array([8000, 8000]))
    assert got.tolist() == [False, True]


@pytest.mark.slow  # end to end over the toy corpus
def test_check_names_the_crop(toy, records, tmp_path, capsys):
    metadata, _, beyond, _ = records
    report = tmp_path / "check.json"
    assert main(["check", "--metadata", str(metadata), "--dataset-paths", str(toy.dataset_paths),
                 "--report", str(report), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 crop(s) crop_beyond_chunk" in out
    data = json.loads(report.read_text())
    assert data["totals"]["crop_beyond_chunk"] == 1
    assert data["totals"]["renderable"] == 2 and data["totals"]["mixtures"] == 3
    (example,) = [ex for p in data["prefixes"].values() for ex in p["examples"].get("crop_beyond_chunk", [])]
    assert example["crop_start_second"] > example["chunk_seconds"]


def test_render_lists_it_as_a_failure_and_renders_the_others(toy, records, tmp_path, capsys):
    metadata, fine, beyond, overhang = records
    out = tmp_path / "rendered"
    assert main(["render", "--metadata", str(metadata), "--dataset-paths", str(toy.dataset_paths),
                 "--output", str(out), "--no-progress"]) == 1
    assert "crop_beyond_chunk=1" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    assert [(r["mix_id"], r["reason"]) for r in rows] == [(beyond, "crop_beyond_chunk")]
    assert "starts at or after the end of its chunk" in rows[0]["message"]
    assert main(["verify", str(out), "--metadata", str(metadata)]) == 0  # the rest is consistent
    from mixing.evaluate.rendered import iter_rendered

    assert sorted(s.mix_id for s in iter_rendered(out)) == sorted([fine, overhang])


def test_the_stream_counts_it(toy, records):
    import hive

    metadata, fine, beyond, overhang = records
    report = hive.StreamReport()
    got = [ex["mix_id"] for ex in hive.iter_mixtures(str(metadata), str(toy.dataset_paths), split="test",
                                                      report=report)]
    assert sorted(got) == sorted([fine, overhang])
    assert report.failures == Counter({"crop_beyond_chunk": 1})


@pytest.mark.slow  # end to end over the toy corpus
def test_inspect_shows_it_and_fails(toy, records, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    metadata, _, beyond, _ = records
    out = tmp_path / "inspect"
    assert main(["inspect", str(metadata), "--dataset-paths", str(toy.dataset_paths), "--output", str(out),
                 "--mix-id", beyond, "--no-progress"]) == 1
    assert "1 mixture(s) have no audio" in capsys.readouterr().out
    page = next(p for p in out.rglob("*.html") if p.name != "index.html")
    assert "CropBeyondChunkError" in page.read_text(encoding="utf-8")


def test_verify_flags_an_all_zero_stem_of_a_weighted_source(toy, records, tmp_path):
    """A render made before the check (an all-zero stem summing consistently to the mix) is no
    longer clean."""
    import numpy as np

    from mixing.render import Renderer
    from mixing.shards import make_writer

    metadata, fine, _, _ = records
    rec = next(r for r in iter_records(metadata) if r.mix_id == fine)
    r = Renderer(str(toy.dataset_paths)).render(rec)
    r.stems[0] = 0.0
    r.mix = r.stems.sum(axis=0).astype(np.float32)
    out = tmp_path / "old-render"
    path = out / "test" / f"{rec.num_sources}mix" / "tar_000000.tar"
    writer = make_writer("webdataset", path, "wav")
    writer.add(r)
    writer.close()
    from mixing.verify import verify_output

    report = verify_output(out)
    kinds = report.counts()
    assert kinds["silent_stem"] == 1, kinds
