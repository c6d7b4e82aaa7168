"""``hive curate`` end to end, offline, against a real OpenAI-compatible judge server started here
(``http.server`` on 127.0.0.1, port 0) and the embedded toy corpus.

The server reads the numbered options from the prompt in each chat-completions request and
answers according to the requested model name: ``oracle`` recognises the clip (by correlation
with the toy stems rendered here) and answers its label's number; ``first`` always answers 1;
``garbage`` answers prose naming no option; ``error`` answers HTTP 500; ``flaky`` is the oracle
except that, while ``server.flaky`` is set, it answers HTTP 503 for about a quarter of the clips
(by a hash of the audio). It counts requests.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from mixing import packaged
from mixing.cli import main as hive
from mixing.metadata import MixtureRecord, SourceRecord
from mixing.metadata_io import iter_records
from mixing.ontology import Ontology
from mixing.render import Renderer
from mixing.toy import write_toy_ontology

from tests.test_curate import prompt_options  # one independent parser of the prompts

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
HIVE_ONTOLOGY = packaged.hive_ontology_path()
_STRIDE = 11  # the oracle compares every 11th sample: plenty to tell the toy stems apart


class JudgeServer:
    """A chat-completions server in a thread; the oracle knows the toy stems."""

    def __init__(self, refs: dict[int, tuple[np.ndarray, list[str]]]):
        self.refs = refs
        self.requests: Counter = Counter()
        self.bodies: list[dict] = []  # every chat-completions request body received
        self.flaky = True
        self.flaky_asked: Counter = Counter()  # clip hash -> requests of model "flaky"
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # else each small response write waits for a delayed ACK

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model = body["model"]
                with server._lock:
                    server.requests[model] += 1
                if model == "error" or not self.path.endswith("/chat/completions"):
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"error": "internal"}')
                    return
                parts = body["messages"][-1]["content"]
                prompt = next(p["text"] for p in parts if p["type"] == "text")
                audio_url = next(p["audio_url"]["url"] for p in parts if p["type"] == "audio_url")
                if model == "flaky":
                    key = hashlib.sha1(audio_url.encode()).hexdigest()
                    with server._lock:
                        server.flaky_asked[key] += 1
                    if server.flaky and int(key, 16) % 4 == 0:
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    model = "oracle"
                with server._lock:
                    server.bodies.append(body)
                options = {label: i for i, label in enumerate(prompt_options(prompt), 1)}
                assert options and ("0 if none" in prompt or "return 0" in prompt)
                if model == "oracle":
                    y, _ = sf.read(io.BytesIO(base64.b64decode(audio_url.split(",", 1)[1])), dtype="float32")
                    answer = str(options[server.identify(y)])
                elif model == "first":
                    answer = "1"
                else:
                    answer = "¯\\_(ツ)_/¯ something else entirely"
                out = json.dumps({"id": "x", "object": "chat.completion", "model": model, "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out.encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def identify(self, y: np.ndarray) -> str:
        mat, labels = self.refs[len(y)]
        v = y[::_STRIDE].astype(np.float64)
        return labels[int(np.argmax(mat @ (v / (np.linalg.norm(v) + 1e-12))))]

    def spec(self, model: str, **opts) -> str:
        opts = {"timeout": 10, "retries": 0, "backoff": 0, **opts}
        port = self.httpd.server_address[1]
        return f"openai:url=http://127.0.0.1:{port}/v1,model={model}," + ",".join(f"{k}={v}" for k, v in opts.items())

    def total(self) -> int:
        return sum(self.requests.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def toy(request, tmp_path_factory):
    """The session's shared toy corpus (conftest) when there is one, else a module-local one."""
    try:
        return request.getfixturevalue("toy_corpus")
    except pytest.FixtureLookupError:
        from mixing.toy import build_toy_corpus

        return build_toy_corpus(tmp_path_factory.mktemp("toy") / "corpus")


@pytest.fixture(scope="module")
def rendered_toy(request, toy, tmp_path_factory) -> Path:
    """A complete WebDataset render of the toy metadata (the session's shared one when there is one)."""
    try:
        return request.getfixturevalue("toy_render")()
    except pytest.FixtureLookupError:
        out = tmp_path_factory.mktemp("render") / "webdataset"
        assert hive(["render", "--metadata", str(toy.parquet_dir), "--dataset-paths",
                     str(toy.dataset_paths), "--output", str(out), "--no-progress"]) == 0
        return out


@pytest.fixture(scope="module")
def records(toy) -> list[MixtureRecord]:
    return list(iter_records(toy.parquet_dir))


@pytest.fixture(scope="module")
def server(toy, records):
    renderer = Renderer(toy.dataset_paths)
    by_len: dict[int, tuple[list[np.ndarray], list[str]]] = {}
    for rec in records:
        for stem, src in zip(renderer.render(rec).stems, rec.sources):
            v = stem[::_STRIDE].astype(np.float64)
            vecs, labels = by_len.setdefault(len(stem), ([], []))
            vecs.append(v / (np.linalg.norm(v) + 1e-12))
            labels.append(src.label)
    srv = JudgeServer({n: (np.stack(v), labs) for n, (v, labs) in by_len.items()})
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def ontology(tmp_path_factory) -> Path:
    return write_toy_ontology(tmp_path_factory.mktemp("onto") / "toy_ontology.json")


def _curate(toy, ontology, judge: str, output: Path, *extra: str, rc: int = 0) -> None:
    got = hive(["curate", "--metadata", str(toy.parquet_dir), "--dataset-paths",
                str(toy.dataset_paths), "--ontology", str(ontology), "--judge", judge,
                "--output", str(output), "--concurrency", "4", "--no-progress", *extra])
    assert got == rc


def _table(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _kept(output: Path) -> set[str]:
    return {r["mix_id"] for r in _table(output / "scores" / "mixtures.parquet") if r["kept"]}


def _expected_top_half(mixtures: list[dict], keep: float = 0.5) -> set[str]:
    groups: dict[tuple[str, int], list[dict]] = {}
    for m in mixtures:
        groups.setdefault((m["split"], m["num_sources"]), []).append(m)
    kept = set()
    for members in groups.values():
        members.sort(key=lambda m: (-m["score"], hashlib.sha256(m["mix_id"].encode()).hexdigest()))
        kept |= {m["mix_id"] for m in members[: int(keep * len(members) + 0.5)]}
    return kept


@pytest.fixture(scope="module")
def oracle_run(toy, ontology, server, tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("curate") / "oracle"
    before = server.total()
    _curate(toy, ontology, server.spec("oracle"), out)
    return out, server.total() - before


def _snapshot(out: Path) -> dict[str, bytes]:
    files = ["summary.json", "provenance.json", "failures.jsonl", "scores/mixtures.parquet", "scores/sources.parquet"]
    files += [str(p.relative_to(out)) for p in sorted((out / "metadata" / "data").glob("*.parquet"))]
    return {f: (out / f).read_bytes() for f in files}


# ---- the oracle ----------------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_oracle_judge_is_always_right_and_the_top_half_of_every_group_is_kept(oracle_run, records):
    out, requests = oracle_run
    sources = _table(out / "scores" / "sources.parquet")
    assert len(sources) == sum(r.num_sources for r in records)
    judged = [s for s in sources if s["status"] == "scored"]
    assert judged and all(s["correct"] and s["chosen_label"] == s["label"] for s in judged)
    assert {s["status"] for s in sources} == {"scored", "trivial"}
    assert requests == len(judged)  # one question per non-trivial source
    positions = Counter(s["true_option"] for s in judged)
    assert positions[1] < 0.6 * len(judged) and len(positions) >= 3  # the true label is not always first
    assert all(s["options"][s["true_option"] - 1] == s["label"] for s in judged)

    mixtures = _table(out / "scores" / "mixtures.parquet")
    assert {m["split"] for m in mixtures} == {"train", "validation", "test"}
    assert all(m["score"] == 1.0 for m in mixtures)
    kept = _kept(out)
    assert kept == _expected_top_half(mixtures)  # all tied: the sha256(mix_id) order decides
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept_per_group"]["validation/3mix"] == {"total": 4, "scored": 4, "unscored": 0, "kept": 2}
    assert summary["kept_per_group"]["train/2mix"]["kept"] == 6
    assert summary["sources"]["accuracy"] == 1.0 and summary["most_confused"] == []
    assert summary["mixtures"]["kept"] == len(kept) == 40
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["policy"]["name"] == "top_fraction" and prov["policy"]["keep"] == 0.5
    assert prov["judge"]["model_id"] == "openai:oracle"
    meta = [r.mix_id for r in iter_records(out / "metadata")]
    assert sorted(meta) == sorted(kept)


def test_rerun_with_the_cache_makes_no_judge_call_and_the_same_outputs(oracle_run, toy, ontology, server):
    out, _ = oracle_run
    before_files, before = _snapshot(out), server.total()
    _curate(toy, ontology, server.spec("oracle"), out)
    assert server.total() == before
    assert _snapshot(out) == before_files


def test_another_keep_fraction_or_threshold_reuses_the_cache(oracle_run, toy, ontology, server, tmp_path):
    out, _ = oracle_run
    before = server.total()
    _curate(toy, ontology, server.spec("oracle"), tmp_path / "quarter", "--keep", "0.25",
            "--cache-dir", str(out / "cache"))
    _curate(toy, ontology, server.spec("oracle"), tmp_path / "all", "--min-score", "1.0",
            "--cache-dir", str(out / "cache"))
    assert server.total() == before
    mixtures = _table(tmp_path / "quarter" / "scores" / "mixtures.parquet")
    assert _kept(tmp_path / "quarter") == _expected_top_half(mixtures, 0.25)
    assert len(_kept(tmp_path / "quarter")) == 4 * 3 + 8 * 1  # 4 train groups of 12, 8 groups of 4
    assert len(_kept(tmp_path / "all")) == 80
    prov = json.loads((tmp_path / "all" / "provenance.json").read_text())
    assert prov["policy"] == {**prov["policy"], "name": "min_score", "min_score": 1.0}


@pytest.mark.slow  # end to end over the toy corpus
def test_refreshed_metadata_loads_with_datasets_and_renders(oracle_run, toy, tmp_path):
    import datasets

    out, _ = oracle_run
    kept = _kept(out)
    dsd = datasets.load_dataset(str(out / "metadata"))
    assert set(dsd) == {"train", "validation", "test"}
    assert sorted(m for split in dsd.values() for m in split["mix_id"]) == sorted(kept)
    row = dsd["validation"][0]
    assert isinstance(row["sources"]["label"], list)  # the Hub's struct of lists
    rc = hive(["render", "--metadata", str(out / "metadata"), "--dataset-paths", str(toy.dataset_paths),
               "--output", str(tmp_path / "render"), "--no-progress"])
    assert rc == 0
    assert json.loads((tmp_path / "render" / "_summary.json").read_text())["mixtures"] == len(kept)


@pytest.mark.slow  # end to end over the toy corpus
def test_stems_read_from_rendered_shards(toy, rendered_toy, ontology, server, tmp_path):
    rendered = rendered_toy
    rc = hive(["curate", "--metadata", str(toy.parquet_dir), "--rendered", str(rendered),
               "--ontology", str(ontology), "--judge", server.spec("oracle"), "--output", str(tmp_path / "o"),
               "--split", "validation", "--no-progress"])
    assert rc == 0
    sources = _table(tmp_path / "o" / "scores" / "sources.parquet")
    assert {s["split"] for s in sources} == {"validation"}
    judged = [s for s in sources if s["status"] == "scored"]
    assert judged and all(s["correct"] for s in judged)
    assert json.loads((tmp_path / "o" / "provenance.json").read_text())["audio"].startswith("rendered: ")


@pytest.mark.slow  # end to end over the toy corpus
def test_stems_from_a_source_store_alone_score_as_from_the_corpora(toy, toy_store, ontology, server, oracle_run,
                                                                   tmp_path):
    """``hive curate --store`` without ``--dataset-paths``: stems rendered from the store (the
    corpora are not needed); the oracle is right on every judged source, the same sources as with
    the corpora."""
    rc = hive(["curate", "--metadata", str(toy.parquet_dir), "--store", str(toy_store()),
               "--ontology", str(ontology), "--judge", server.spec("oracle"), "--output", str(tmp_path / "s"),
               "--no-progress"])
    assert rc == 0
    sources = _table(tmp_path / "s" / "scores" / "sources.parquet")
    judged = [s for s in sources if s["status"] == "scored"]
    assert judged and all(s["correct"] for s in judged)
    with_corpora = _table(oracle_run[0] / "scores" / "sources.parquet")
    assert [(s["mix_id"], s["source_id"], s["status"]) for s in sources] == \
        [(s["mix_id"], s["source_id"], s["status"]) for s in with_corpora]
    assert "source store" in json.loads((tmp_path / "s" / "provenance.json").read_text())["audio"]


# ---- failing judges ------------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_garbage_answers_and_http_errors_end_unscored(toy, ontology, server, oracle_run, tmp_path, capsys):
    """No source judged: the run fails with one line, keeps nothing and writes no metadata (and
    removes an earlier run's, which would claim success)."""
    for model, reason, asks in (("garbage", "unparseable", 2), ("error", "judge_failed", 1)):
        out = tmp_path / model
        shutil.copytree(oracle_run[0] / "metadata", out / "metadata")  # an earlier, successful run ...
        shutil.copy(oracle_run[0] / ".hive-output.json", out)  # ... of hive curate (its output marker)
        before = server.total()
        capsys.readouterr()
        _curate(toy, ontology, server.spec(model), out, "--split", "validation", rc=1)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("hive curate: error: "), err
        if model == "error":
            assert "the judge failed for" in err[0] and "(100.0% > 50%)" in err[0] and "HTTP 500" in err[0]
        else:
            assert "no source could be judged" in err[0] and "unparseable=" in err[0]
        assert not (out / "metadata").exists()
        sources = _table(out / "scores" / "sources.parquet")
        non_trivial = [s for s in sources if s["status"] != "trivial"]
        assert non_trivial and all(s["status"] == "unscored" and s["reason"] == reason and s["correct"] is None
                                   for s in non_trivial)
        assert server.total() - before == asks * len(non_trivial)  # garbage is asked once more
        mixtures = _table(out / "scores" / "mixtures.parquet")
        assert mixtures and not any(m["kept"] for m in mixtures)
        assert {m["decision"] for m in mixtures} == {"run_failed"}
        for m in mixtures:
            if m["sources_trivial"]:  # its trivial sources still score it
                assert m["status"] == "scored" and m["score"] == 1.0
            else:
                assert m["status"] == "unscored" and m["score"] is None
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["error"] in err[0]
        assert summary["sources"]["unscored_by_reason"] == {reason: len(non_trivial)}
        assert summary["sources"]["accuracy"] is None and summary["metadata_rows_written"] == {}
        assert summary["mixtures"]["unscored"] == sum(1 for m in mixtures if m["status"] == "unscored") > 0
        failed = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
        listed = [f for f in failed if f["reason"] == "judge_failed"]
        assert len(listed) == (len(non_trivial) if model == "error" else 0)
    # garbage answers are cached (no new call); failures are never cached: asked again on a rerun
    before = server.total()
    _curate(toy, ontology, server.spec("garbage"), tmp_path / "garbage", "--split", "validation", rc=1)
    assert server.total() == before
    _curate(toy, ontology, server.spec("error"), tmp_path / "error", "--split", "validation", rc=1)
    assert server.total() - before == len(non_trivial)


@pytest.mark.slow  # end to end over the toy corpus
def test_sources_the_judge_failed_for_are_asked_again_and_only_they(toy, ontology, server, oracle_run, tmp_path,
                                                                    capsys):
    out = tmp_path / "flaky"
    server.flaky, server.flaky_asked = True, Counter()
    _curate(toy, ontology, server.spec("flaky"), out, "--split", "validation")  # ~25 %: under the 50 % limit
    failed_keys = {k for k in server.flaky_asked if int(k, 16) % 4 == 0}
    sources = _table(out / "scores" / "sources.parquet")
    failed = [s for s in sources if s["reason"] == "judge_failed"]
    assert 0 < len(failed) == len(failed_keys) < len(sources) / 2
    listed = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted((f["mix_id"], f["source_id"]) for f in listed if f.get("model_failure")) == \
        sorted((s["mix_id"], s["source_id"]) for s in failed)
    assert json.loads((out / "summary.json").read_text())["status"] == "ok"

    server.flaky, server.flaky_asked = False, Counter()  # the judge is back
    _curate(toy, ontology, server.spec("flaky"), out, "--split", "validation")
    assert set(server.flaky_asked) == failed_keys and sum(server.flaky_asked.values()) == len(failed)
    one = [s for s in _table(oracle_run[0] / "scores" / "sources.parquet") if s["split"] == "validation"]
    assert _table(out / "scores" / "sources.parquet") == one
    kept_one = {m for m in _kept(oracle_run[0]) if "_validation_" in m}
    assert _kept(out) == kept_one
    assert sorted(r.mix_id for r in iter_records(out / "metadata")) == sorted(kept_one)
    assert not any(json.loads(x).get("model_failure") for x in (out / "failures.jsonl").read_text().splitlines())


@pytest.mark.slow  # end to end over the toy corpus
def test_max_failure_rate_fails_a_run_with_too_many_judge_failures(toy, ontology, server, tmp_path, capsys):
    out = tmp_path / "strict"
    server.flaky = True
    capsys.readouterr()
    _curate(toy, ontology, server.spec("flaky"), out, "--split", "validation", "--max-failure-rate", "0.05", rc=1)
    err = capsys.readouterr().err.strip().splitlines()
    sources = _table(out / "scores" / "sources.parquet")
    failed, asked = sum(s["reason"] == "judge_failed" for s in sources), sum(s["status"] != "trivial" for s in sources)
    assert len(err) == 1 and err[0].startswith(
        f"hive curate: error: the judge failed for {failed} of {asked} sources ({100 * failed / asked:.1f}% > 5%): ")
    assert "HTTP 503" in err[0] and "asked again" in err[0]
    assert not (out / "metadata").exists() and not any(m["kept"] for m in _table(out / "scores" / "mixtures.parquet"))


# ---- position carries no information ------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_always_answering_the_first_option_scores_chance(server, tmp_path):
    from curation.curate.cache import AnswerCache
    from curation.curate.pools import PoolBuilder
    from curation.curate.scoring import Scorer
    from curation.models import make_judge

    onto = Ontology.from_json(HIVE_ONTOLOGY)
    leaves = sorted(n.name for n in onto.leaves() if onto.siblings(n))
    rng = np.random.default_rng(7)
    records = []
    for i in range(120):
        labels = [leaves[j] for j in rng.choice(len(leaves), size=3, replace=False)]
        sources = tuple(SourceRecord(f"s{k + 1}", f"AudioSet/c{i}_{k}.wav", lab, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0)
                        for k, lab in enumerate(labels))
        records.append(MixtureRecord(f"stat_{i:04d}", "train", 8000, 1.0, 3, sources, 1.0, 0.9))

    class Silence:
        def stems(self, rec):
            return np.zeros((rec.num_sources, 400), dtype=np.float32), 8000

    judge = make_judge(server.spec("first", concurrency=4))
    with AnswerCache(tmp_path / "cache") as cache:
        scores = list(Scorer(PoolBuilder(onto), judge, cache, Silence(), concurrency=4).score(records))
    judged = [s for m in scores for s in m.sources if s.status == "scored"]
    assert len(judged) == 360 and all(s.choice == 1 for s in judged)
    p = np.array([1.0 / len(s.options) for s in judged])
    accuracy = np.mean([s.correct for s in judged])
    chance, se = p.mean(), np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(accuracy - chance) < 4 * se, (accuracy, chance, se)
    assert accuracy < 0.5  # with the true label always first it would be 1.0


# ---- accelerate ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed")
def test_accelerate_launch_with_two_processes_keeps_the_same_set(oracle_run, toy, ontology, server, tmp_path):
    """Two CPU processes on the validation split (groups never span splits, so its kept set is
    the one the single-process run over every split chose)."""
    out1, _ = oracle_run
    out = tmp_path / "acc"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    before = server.total()
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
         str(REPO / "scripts" / "curate.py"),
         "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
         "--ontology", str(ontology), "--judge", server.spec("oracle"), "--output", str(out),
         "--split", "validation", "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 0/2" in proc.stdout and "rank 1/2" in proc.stdout
    assert sorted(p.name for p in (out / "_work").glob("done-*")) == ["done-00000-of-00002.json",
                                                                       "done-00001-of-00002.json"]
    one = [s for s in _table(out1 / "scores" / "sources.parquet") if s["split"] == "validation"]
    assert server.total() - before == sum(s["status"] == "scored" for s in one)  # fresh cache: each asked once
    assert _table(out / "scores" / "sources.parquet") == one
    kept_one = {m for m in _kept(out1) if "_validation_" in m}
    assert _kept(out) == kept_one and len(kept_one) == 8
    assert sorted(r.mix_id for r in iter_records(out / "metadata")) == sorted(kept_one)


# ---- request settings: the reference's by default, each one configurable ----------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_request_body_has_the_reference_prompt_and_system_and_settings_change_the_cache(
        toy, ontology, server, tmp_path, capsys):
    from curation.curate.prompt import REFERENCE_TEMPLATE, build_prompt

    out = tmp_path / "ref"
    start = len(server.bodies)
    _curate(toy, ontology, server.spec("oracle"), out, "--split", "validation")
    bodies = server.bodies[start:]
    judged = [s for s in _table(out / "scores" / "sources.parquet") if s["status"] == "scored"]
    assert judged and len(bodies) == len(judged)
    for body in bodies:
        assert "temperature" not in body  # the reference sends none: the server's default applies
        system, user = body["messages"]
        assert system == {"role": "system", "content": "You are a helpful assistant."}
        assert [p["type"] for p in user["content"]] == ["audio_url", "text"]
        text = user["content"][1]["text"]
        assert text == build_prompt(prompt_options(text), REFERENCE_TEMPLATE)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["prompt"]["name"] == "reference" and prov["prompt"]["temperature"] is None
    assert prov["pools"]["rule"] == "reference" and prov["config"]["confusion_pool"] == "reference"

    # same cache, other settings: every question is asked again, with those settings
    start = len(server.bodies)
    _curate(toy, ontology, server.spec("oracle"), tmp_path / "custom", "--split", "validation",
            "--cache-dir", str(out / "cache"), "--prompt", "hive-v1", "--system", "Be terse.",
            "--temperature", "0.3")
    bodies = server.bodies[start:]
    assert len(bodies) == len(judged)
    for body in bodies:
        assert body["temperature"] == 0.3
        assert body["messages"][0] == {"role": "system", "content": "Be terse."}
        assert "0 if none of the labels matches" in body["messages"][1]["content"][1]["text"]
    prov = json.loads((tmp_path / "custom" / "provenance.json").read_text())
    assert prov["prompt"]["system"] == "Be terse." and prov["prompt"]["temperature"] == 0.3
    # an empty system message sends none; the answers of the first run are still cached
    start = len(server.bodies)
    _curate(toy, ontology, server.spec("oracle"), tmp_path / "nosys", "--split", "validation",
            "--cache-dir", str(out / "cache"), "--system", "")
    assert all(b["messages"][0]["role"] == "user" for b in server.bodies[start:]) and len(server.bodies) > start
    start = len(server.bodies)
    _curate(toy, ontology, server.spec("oracle"), tmp_path / "again", "--split", "validation",
            "--cache-dir", str(out / "cache"))
    assert len(server.bodies) == start

    capsys.readouterr()
    rc = hive(["curate", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
               "--ontology", str(ontology), "--judge", server.spec("oracle"), "--output", str(tmp_path / "bad"),
               "--prompt", "Which label is it?", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("hive curate: error: ") and "placeholder" in err and "\n" not in err


def test_reference_keep_rule_keeps_the_top_half_of_each_shard(oracle_run, toy, ontology, server, records,
                                                             tmp_path, capsys):
    """Cached answers, --keep-rule reference over shards of 5: the kept set is the one an
    independent implementation of the reference rule picks (per (split, n) group in input order,
    tars of 5, stable sort by score, first len // 2)."""
    out1, _ = oracle_run
    before = server.total()
    out = tmp_path / "refkeep"
    _curate(toy, ontology, server.spec("oracle"), out, "--cache-dir", str(out1 / "cache"),
            "--keep-rule", "reference", "--keep-shard-size", "5")
    assert server.total() == before
    scores = {m["mix_id"]: m["score"] for m in _table(out / "scores" / "mixtures.parquet")}
    groups: dict[tuple[str, int], list[str]] = {}
    for rec in records:
        groups.setdefault((rec.split, rec.num_sources), []).append(rec.mix_id)
    expected = set()
    for ids in groups.values():
        for start in range(0, len(ids), 5):
            tar = sorted(ids[start:start + 5], key=lambda m: scores[m], reverse=True)
            expected |= set(tar[: len(tar) // 2])
    assert _kept(out) == expected and expected != _kept(out1)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["policy"]["name"] == "reference_per_shard" and prov["policy"]["shard_size"] == 5
    assert sorted(r.mix_id for r in iter_records(out / "metadata")) == sorted(expected)

    capsys.readouterr()
    rc = hive(["curate", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
               "--ontology", str(ontology), "--judge", server.spec("oracle"), "--output", str(tmp_path / "bad"),
               "--keep-rule", "reference", "--keep", "0.3", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("hive curate: error: ") and "--keep" in err and "\n" not in err


@pytest.mark.slow  # end to end over the toy corpus
def test_curation_reads_a_pcm16_reference_render(toy, ontology, server, request, tmp_path):
    """Stems rendered as the reference wrote them (16-bit PCM, reference stems) feed the judge."""
    try:
        rendered = request.getfixturevalue("toy_render")("webdataset", "reference", "pcm16")
    except pytest.FixtureLookupError:
        rendered = tmp_path / "pcm16"
        assert hive(["render", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
                     "--output", str(rendered), "--stems", "reference", "--audio-format", "pcm16",
                     "--no-progress"]) == 0
    start = len(server.bodies)
    rc = hive(["curate", "--metadata", str(toy.parquet_dir), "--rendered", str(rendered),
               "--ontology", str(ontology), "--judge", server.spec("oracle"), "--output", str(tmp_path / "o"),
               "--split", "validation", "--no-progress"])
    assert rc == 0
    judged = [s for s in _table(tmp_path / "o" / "scores" / "sources.parquet") if s["status"] == "scored"]
    assert judged and len(server.bodies) - start == len(judged)
    assert sum(s["correct"] for s in judged) >= 0.9 * len(judged)  # clipped stems still recognised


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed")
def test_accelerate_launch_with_a_failing_judge_exits_non_zero_and_keeps_nothing(toy, ontology, server, tmp_path):
    out = tmp_path / "acc_error"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
         str(REPO / "scripts" / "curate.py"),
         "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
         "--ontology", str(ontology), "--judge", server.spec("error"), "--output", str(out),
         "--split", "validation", "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    errors = [x for x in proc.stderr.splitlines() if x.startswith("hive curate: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "the judge failed for" in errors[0] and "(100.0% > 50%)" in errors[0]
    sources = _table(out / "scores" / "sources.parquet")
    asked = sum(s["status"] != "trivial" for s in sources)
    assert f"failed for {asked} of {asked} sources" in errors[0]  # both ranks' counts
    assert not (out / "metadata").exists()
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
