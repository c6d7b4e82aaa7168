"""Silent wrong output of issue 19 that is neither a crash nor a hang: ``render --overwrite`` with
another ``--shard-size`` left old shards that ``load_rendered`` and ``eval`` read with the new
ones (40 rows for 36 mixtures); a synthesize pool row with a wrong label name and a valid
``label_id`` was written into the mixtures under the wrong name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixing.cli import main


def _render(toy, out: Path, *extra: str) -> int:
    return main(["render", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
                 "--output", str(out), "--split", "test", "--no-progress", *extra])


@pytest.mark.slow  # end to end over the toy corpus
def test_overwrite_with_another_shard_size_removes_the_old_shards_it_wrote(toy_corpus, tmp_path):
    from mixing.evaluate.rendered import iter_rendered

    out = tmp_path / "rendered"
    assert _render(toy_corpus, out, "--shard-size", "1") == 0
    old = sorted(p.relative_to(out) for p in out.rglob("tar_*.tar"))
    assert len(old) == 16  # one shard per test mixture
    user_file = out / "test" / "2mix" / "notes.txt"  # not the render's: never touched
    user_file.write_text("mine")
    assert _render(toy_corpus, out, "--shard-size", "4", "--overwrite") == 0
    new = sorted(p.relative_to(out) for p in out.rglob("tar_*.tar"))
    assert len(new) == 4, new  # one shard per (split, num_sources) group, no leftover of the old plan
    assert user_file.read_text() == "mine"
    ids = [s.mix_id for s in iter_rendered(out)]
    assert len(ids) == len(set(ids)) == 16
    assert main(["verify", str(out)]) == 0
    import hive

    loaded = hive.load_rendered(out, split="test", cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == 16


def test_overwrite_never_deletes_a_file_a_tampered_ledger_points_outside(toy_corpus, tmp_path):
    out = tmp_path / "rendered"
    assert _render(toy_corpus, out, "--num-sources", "2") == 0
    victim = tmp_path / "precious.tar"
    victim.write_text("keep me")
    entry = next(p for p in (out / "_ledger").glob("*.json") if not p.name.startswith("_"))
    data = json.loads(entry.read_text())
    data["shard"] = "../precious.tar"
    entry.write_text(json.dumps(data))
    assert _render(toy_corpus, out, "--num-sources", "2", "--shard-size", "3", "--overwrite") == 0
    assert victim.read_text() == "keep me"


@pytest.fixture
def misnamed_pool(toy_corpus, tmp_path):
    rows = [json.loads(line) for line in toy_corpus.pool.read_text().splitlines() if line.strip()]
    dog = next(r for r in rows if r["label"] == "Dog")
    bad = dict(dog, clip_id="misnamed0", label="Dgo")  # a wrong name, the Dog's valid label_id
    other = next(r for r in rows if r["label"] == "Bird")
    contradicting = dict(other, clip_id="contradict0", label="Bird", label_id=dog["label_id"])
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows + [bad, contradicting]))
    return pool, dog["split"]


def test_synthesize_drops_a_pool_row_whose_label_id_names_another_node(toy_corpus, misnamed_pool, tmp_path):
    from mixing.metadata_io import iter_records
    from mixing.toy import write_toy_ontology

    pool, split = misnamed_pool
    ontology = write_toy_ontology(tmp_path / "ontology.json")
    out = tmp_path / "out"
    assert main(["synthesize", "--pool", str(pool), "--ontology", str(ontology), "--dataset-paths",
                 str(toy_corpus.dataset_paths), "--output", str(out), "--split", split, "--num-mixtures", "40",
                 "--seed", "3"]) == 0
    labels = {label for r in iter_records(out) for label in r.labels}
    paths = {(s.path, s.label) for r in iter_records(out) for s in r.sources}
    assert "Dgo" not in labels
    stats = json.loads((out / f"synthesis_stats_{split}.json").read_text())
    assert stats["pool_rows_dropped"]["label_id_mismatch"] == 2
    assert all(label != "Dgo" for _, label in paths)
