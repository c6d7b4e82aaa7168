"""The stage runner: ranks (real subprocesses and a real ``accelerate launch``), resume after a
SIGKILL, merging, config pinning, manifests; and the whole pipeline end to end on the toy corpus."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixing import packaged
from curation.manifest import ManifestError, read_items
from curation.runner import IncompleteRunError, RunConfigMismatch, RunConfig, merge_outputs, run_stage
from curation.stages import make_stage
from mixing.cli import main
from mixing.corpora import DatasetPaths
from mixing.toy import TOY_CLASSES, build_toy_corpus, write_toy_ontology

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = packaged.data_path("hive_ontology.json").parent
AUDIOSET_ONT = DATA / "audioset_ontology.json"
JUDGE = "tests.test_mine_runner.SlowJudge"  # importable by name in subprocesses (PYTHONPATH=ROOT)


class SlowJudge:
    """Deterministic per clip; ``HIVE_TEST_JUDGE_DELAY`` seconds per call; logs judged clips to
    ``HIVE_TEST_JUDGE_LOG`` (the environment, so the stage options are the same in every run)."""

    model_id = "slow-judge"

    def ask(self, items, prompt):
        time.sleep(float(os.environ.get("HIVE_TEST_JUDGE_DELAY", "0")))
        log = os.environ.get("HIVE_TEST_JUDGE_LOG")
        if log:
            with open(log, "a") as fh:
                fh.writelines(f"{len(y)}\n" for y, _ in items)
        if "minimum index value is 0" in prompt:  # the leaf question, 0-based (reference)
            return ["1" for _ in items]
        if "number" in prompt:  # the leaf question, numbered from 1
            return ["2" for _ in items]
        return ["True" if int(np.abs(y).sum() * 100) % 5 else "False." for y, _ in items]


class ToyTagger:
    """Deterministic pseudo-tags: a Hive leaf, a pruned class, an internal node, a leaf again."""

    model_id = "toy-tagger"
    sample_rate = 16000
    TAGS = [("Dog", "/m/0bt9lr"), ("Bark", "/m/05tny_"), ("Musical instrument", "/m/04szw"), ("Piano", "/m/05r5c")]

    def tag(self, clips, top_k):
        out = []
        for c in clips:
            k = int(np.abs(c).sum() * 10) % len(self.TAGS)
            out.append([(*self.TAGS[(k + j) % 4], round(0.9 - 0.2 * j, 3)) for j in range(min(top_k, 4))])
        return out


def env(**extra) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    e.update({k: str(v) for k, v in extra.items()})
    return e


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy_corpus(tmp_path_factory.mktemp("mine_runner") / "toy")


@pytest.fixture(scope="module")
def single(toy, tmp_path_factory):
    """The chunk stage run by one process: the reference output."""
    out = tmp_path_factory.mktemp("single") / "chunk"
    rc = main(["mine", "chunk", "--input", str(toy.labels_csv), "--output", str(out),
               "--dataset-paths", str(toy.dataset_paths), "--no-progress"])
    assert rc == 0
    return out


def chunk_cmd(toy, out: Path) -> list[str]:
    return ["chunk", "--input", str(toy.labels_csv), "--output", str(out), "--dataset-paths",
            str(toy.dataset_paths), "--no-progress", "--batch-size", "3"]


def check_same_as_single(out: Path, single: Path, world: int) -> None:
    assert (out / "output.jsonl").read_bytes() == (single / "output.jsonl").read_bytes()
    assert (out / "drops.jsonl").read_bytes() == (single / "drops.jsonl").read_bytes()
    per_rank = [[json.loads(x)["clip_id"] for x in lines(out / f"rank-{r:05d}.jsonl")] for r in range(world)]
    union = [c for ids in per_rank for c in ids]
    assert len(union) == len(set(union)) and all(per_rank)
    assert sorted(union) == [json.loads(x)["clip_id"] for x in lines(single / "output.jsonl")]
    a, b = (json.loads((d / "stats.json").read_text()) for d in (out, single))
    assert {k: a[k] for k in ("items_in", "kept", "dropped")} == {k: b[k] for k in ("items_in", "kept", "dropped")}
    assert a["world_size"] == world and len(a["per_rank"]) == world


# ---- ranks -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_ranks_as_two_processes_equal_one_process(toy, single, tmp_path):
    out = tmp_path / "two"
    procs = [subprocess.Popen([sys.executable, "-m", "mixing", "mine", *chunk_cmd(toy, out), "--rank", str(r),
                               "--world-size", "2"], env=env(), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (1, 0)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert "hive mine chunk:" in results[1][0] and results[0][0] == ""  # rank 0 reports, rank 1 is quiet
    check_same_as_single(out, single, 2)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["stage"] == "chunk" and prov["world_size"] == 2 and prov["options"]["silence_threshold"] == 5e-4
    assert prov["thresholds"]["silence_threshold"] == 5e-4 and "numpy" in prov["packages"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate not installed")
def test_accelerate_launch_two_processes(toy, single, tmp_path):
    out = tmp_path / "accel"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(port), str(ROOT / "scripts" / "mine.py"), *chunk_cmd(toy, out)]
    p = subprocess.run(cmd, env=env(OMP_NUM_THREADS=1), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    check_same_as_single(out, single, 2)


@pytest.mark.slow  # end to end over the toy corpus
def test_merge_waits_for_every_rank_and_can_run_later(toy, single, tmp_path):
    out = tmp_path / "later"
    stage = make_stage("chunk", {"dataset_paths": str(toy.dataset_paths)})
    with pytest.raises(IncompleteRunError, match=r"ranks \[1\] of 2"):
        run_stage(stage, RunConfig(str(toy.labels_csv), str(out), rank=0, world_size=2, progress=False,
                                    wait_timeout=0.3, poll_interval=0.05))
    assert (out / "done-00000").is_file() and not (out / "output.jsonl").exists()
    with pytest.raises(IncompleteRunError):
        merge_outputs(out)
    s1 = run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths)}),
                   RunConfig(str(toy.labels_csv), str(out), rank=1, world_size=2, progress=False, merge=False))
    assert s1.merged is None and s1.processed == s1.items
    with pytest.raises(ManifestError, match="hive mine merge"):
        read_items(out)
    assert main(["mine", "merge", "--output", str(out), "--parquet"]) == 0
    check_same_as_single(out, single, 2)
    assert len(read_items(out / "output.parquet")) == len(lines(single / "output.jsonl"))


def test_rerun_skips_finished_ranks_and_refuses_other_settings(toy, tmp_path):
    out = tmp_path / "again"
    opts = RunConfig(str(toy.labels_csv), str(out), progress=False)
    first = run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths)}), opts)
    before = (out / "output.jsonl").read_bytes()
    again = run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths)}), opts)
    assert again.skipped_rank and again.processed == 0 and again.kept == first.kept
    assert (out / "output.jsonl").read_bytes() == before
    with pytest.raises(RunConfigMismatch, match="silence_threshold"):
        run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths), "silence_threshold": 1e-2}), opts)
    with pytest.raises(RunConfigMismatch, match="world_size"):
        run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths)}),
                  RunConfig(str(toy.labels_csv), str(out), rank=1, world_size=2, merge=False, progress=False))
    opts.overwrite = True
    loud = run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths), "silence_threshold": 1e-2}), opts)
    assert loud.processed == loud.items and loud.kept < first.kept
    assert json.loads((out / "stats.json").read_text())["kept"] == loud.kept


def test_a_cut_done_marker_is_not_done_and_the_rank_resumes_from_its_ledger(toy, tmp_path):
    out = tmp_path / "cut"
    opts = RunConfig(str(toy.labels_csv), str(out), progress=False)
    first = run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths)}), opts)
    before = (out / "output.jsonl").read_bytes()
    marker = out / "done-00000"
    full = marker.read_bytes()
    marker.write_bytes(full[: len(full) // 2])  # a marker cut short: not done, never an error
    again = run_stage(make_stage("chunk", {"dataset_paths": str(toy.dataset_paths)}), opts)
    assert not again.skipped_rank and again.processed == 0 and again.resumed == first.items
    assert marker.read_bytes() == full
    assert (out / "output.jsonl").read_bytes() == before


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_without_duplicates(toy, single, tmp_path):
    ref = tmp_path / "ref"
    base = ["single-event", "--input", str(single), "--dataset-paths", str(toy.dataset_paths),
            "--judge", JUDGE, "--no-progress", "--batch-size", "2"]
    assert main(["mine", *base, "--output", str(ref)]) == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mixing", "mine", *base, "--output", str(out)],
                            env=env(HIVE_TEST_JUDGE_DELAY=0.2), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(lines(out / "progress-00000.jsonl")) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert not (out / "done-00000").exists() and not (out / "output.jsonl").exists()
    committed = {i for x in lines(out / "progress-00000.jsonl") for i in json.loads(x)["ids"]}
    total = len(lines(single / "output.jsonl"))
    assert 6 <= len(committed) < total
    # what a crash can leave after the last ledger entry: whole lines and a cut line
    kept_lines = lines(out / "rank-00000.jsonl")
    with open(out / "rank-00000.jsonl", "a") as fh:
        fh.write((kept_lines[0] + "\n") if kept_lines else "")
        fh.write('{"clip_id": "cut-by-the-cra')
    with open(out / "progress-00000.jsonl", "a") as fh:
        fh.write('{"ids": ["half')
    log = tmp_path / "judged.txt"
    os.environ["HIVE_TEST_JUDGE_LOG"] = str(log)
    try:
        assert main(["mine", *base, "--output", str(out)]) == 0
    finally:
        del os.environ["HIVE_TEST_JUDGE_LOG"]
    assert len(lines(log)) == total - len(committed)  # only the unfinished items were judged
    assert (out / "output.jsonl").read_bytes() == (ref / "output.jsonl").read_bytes()
    assert (out / "drops.jsonl").read_bytes() == (ref / "drops.jsonl").read_bytes()
    ids = [json.loads(x)["clip_id"] for x in lines(out / "rank-00000.jsonl")]
    assert len(ids) == len(set(ids))
    def settled(st: dict) -> dict:  # without the items each run processed (the resumed run did fewer)
        st = {k: v for k, v in st.items() if k != "processed"}
        st["per_rank"] = [{k: v for k, v in r.items() if k != "processed"} for r in st["per_rank"]]
        return st

    stats = json.loads((out / "stats.json").read_text())
    assert settled(stats) == settled(json.loads((ref / "stats.json").read_text()))
    assert stats["processed"] == total - len(committed) and stats["failed_total"] == 0
    assert stats["dropped"].get("multiple_events", 0) > 0 and stats["kept"] > 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["models"]["judge"] == {"spec": JUDGE, "model_id": "slow-judge"}
    assert len(prov["prompts"]["single_event"]["sha256"]) == 64


# ---- manifests ---------------------------------------------------------------------------------------
def test_manifest_formats_round_trip(toy, single, tmp_path):
    out = tmp_path / "sl"
    assert main(["mine", "single-label", "--input", str(single / "output.jsonl"), "--output", str(out),
                 "--dataset-paths", str(toy.dataset_paths), "--parquet", "--no-progress"]) == 0
    a, b = read_items(out / "output.jsonl"), read_items(out / "output.parquet")
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b] and len(a) > 50
    assert all(isinstance(x.label, str) and x.provenance["chunk"] for x in a)
    # a labelled list: JSON rows naming the same file twice become one multi-label item
    rows = [{"audio_path": "AudioSet/x.wav", "text_label": "Dog"},
            {"audio_path": "AudioSet/x.wav", "text_label": ["Cat"]},
            {"audio_path": "AudioSet/y.wav", "text_label": "Rain", "split": "test"}]
    (tmp_path / "l.json").write_text(json.dumps(rows))
    items = read_items(tmp_path / "l.json")
    assert [(i.path, i.text_label, i.split) for i in items] == [
        ("AudioSet/x.wav", ["Dog", "Cat"], None), ("AudioSet/y.wav", "Rain", "test")]
    (tmp_path / "dup.jsonl").write_text('{"clip_id": "a", "path": "A/x.wav"}\n{"clip_id": "a", "path": "A/y.wav"}\n')
    with pytest.raises(ManifestError, match="already used"):
        read_items(tmp_path / "dup.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"clip_id": "a", "path": "A/x.wav", "chunk_end_second": "ten"}\n')
    with pytest.raises(ManifestError, match="chunk_end_second"):
        read_items(tmp_path / "bad.jsonl")
    assert main(["mine", "chunk", "--input", str(tmp_path / "none.csv"), "--output", str(tmp_path / "o")]) == 2


# ---- the whole pipeline -----------------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_end_to_end_labels_csv_to_pool(toy, tmp_path):
    hive_ont = write_toy_ontology(tmp_path / "hive_toy_ontology.json")
    dp = str(toy.dataset_paths)
    judge, tagger = JUDGE, "tests.test_mine_runner.ToyTagger"
    steps = [
        ("chunk", str(toy.labels_csv), ["--dataset-paths", dp]),
        ("single-label", "chunk", ["--dataset-paths", dp, "--ontology", str(hive_ont)]),
        ("single-event", "single-label", ["--dataset-paths", dp, "--judge", judge]),
        ("tag", "single-event", ["--dataset-paths", dp, "--tagger", tagger, "--top-k", "3", "--threshold", "0.5"]),
        ("leaf", "tag", ["--dataset-paths", dp, "--judge", judge, "--hive-ontology", str(hive_ont),
                         "--audioset-ontology", str(AUDIOSET_ONT)]),
        ("superres", "leaf", ["--dataset-paths", dp, "--backend", "resample",
                              "--output-root", str(tmp_path / "hive_mined_audio"),
                              "--prefix", "Hive_mined", "--parquet"]),
    ]
    counts = {}
    for stage, inp, extra in steps:
        src = inp if inp.endswith(".csv") else str(tmp_path / inp)
        assert main(["mine", stage, "--input", src, "--output", str(tmp_path / stage), "--no-progress", *extra]) == 0
        counts[stage] = json.loads((tmp_path / stage / "stats.json").read_text())
    assert counts["single-event"]["dropped"].get("multiple_events", 0) > 0
    assert counts["superres"]["kept"] == counts["leaf"]["kept"] > 10
    pool_file = tmp_path / "superres" / "output.jsonl"
    try:
        from mixing.pool import read_pool
    except ImportError:  # the pool module belongs to the synthesis work
        read_pool = None
    entries = [json.loads(x) for x in lines(pool_file)]
    if read_pool is not None:
        assert [e.clip_id for e in read_pool(pool_file)] == [e["clip_id"] for e in entries]
        assert len(read_pool(tmp_path / "superres" / "output.parquet")) == len(entries)
    paths = DatasetPaths.from_json(tmp_path / "superres" / "dataset_paths.json")
    toy_names = {name for name, _, _ in TOY_CLASSES}
    leaves_seen = set()
    for e in entries:
        assert set(e) >= {"clip_id", "path", "chunk_start_second", "chunk_end_second", "label", "label_id",
                          "native_sample_rate", "num_channels", "split", "provenance"}
        assert e["path"].startswith("Hive_mined/") and e["native_sample_rate"] == 44100 and e["num_channels"] == 1
        assert e["split"] in ("train", "validation", "test") and e["label"] in toy_names
        assert set(e["provenance"]) >= {"chunk", "single_label", "single_event", "tag", "leaf", "superres",
                                        "original_path"}
        info = sf.info(str(paths.resolve(e["path"])))
        assert info.samplerate == 44100 and info.frames == int(e["chunk_end_second"] * 44100)
        assert paths.resolve(e["provenance"]["original_path"]).is_file()
        leaves_seen.add((e["provenance"]["tag"]["top_k"][0][0], e["label"]))
    # a leaf kept, a pruned class climbed to its Hive parent, an internal node resolved by the judge
    assert leaves_seen <= {("Dog", "Dog"), ("Bark", "Dog"), ("Musical instrument", "Violin, fiddle"),
                           ("Piano", "Piano")}
    assert len(leaves_seen) >= 3

    # ... and the mined pool feeds the rest of the loop: synthesize -> render -> verify
    mined_paths = tmp_path / "superres" / "dataset_paths.json"
    train_labels = {e["label"] for e in entries if e["split"] == "train"}
    assert len(train_labels) >= 2
    synth = tmp_path / "synthesized"
    assert main(["synthesize", "--pool", str(pool_file), "--ontology", str(hive_ont),
                 "--dataset-paths", str(mined_paths), "--output", str(synth), "--split", "train",
                 "--num-mixtures", "12", "--max-sources", str(min(3, len(train_labels))), "--seed", "3"]) == 0
    rendered = tmp_path / "synth_rendered"
    assert main(["render", "--metadata", str(synth), "--dataset-paths", str(mined_paths),
                 "--output", str(rendered), "--no-progress"]) == 0
    assert json.loads((rendered / "_summary.json").read_text())["mixtures"] == 12
    assert main(["verify", str(rendered), "--metadata", str(synth), "--no-progress"]) == 0
    mined_paths_used = {s for rec in __import__("mixing.metadata_io", fromlist=["iter_records"]).iter_records(synth)
                        for s in (src.path for src in rec.sources)}
    assert all(p.startswith("Hive_mined/") for p in mined_paths_used)
