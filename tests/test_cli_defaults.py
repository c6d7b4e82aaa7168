"""`hive synthesize`, `hive curate` and `hive mine leaf` run without ontology flags: they default to
the ontologies shipped as package data (mixing/data), so a fresh clone needs no other files."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mixing import packaged
from mixing.cli import main as hive

HIVE_ONT = packaged.hive_ontology_path()
AUDIOSET_ONT = packaged.audioset_ontology_path()


def _rows(folder: Path) -> list[dict]:
    files = sorted((folder / "data").glob("*.parquet"))
    assert files, f"no Parquet output in {folder}"
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_help_names_the_shipped_defaults(capsys):
    expected = {("synthesize",): ["Hive ontology shipped with hive-uss, mixing/data/hive_ontology.json"],
                ("curate",): ["Hive ontology shipped with hive-uss, mixing/data/hive_ontology.json"],
                ("mine", "leaf"): ["shipped with hive-uss, mixing/data/hive_ontology.json",
                                   "shipped with hive-uss, mixing/data/audioset_ontology.json"]}
    for cmd, phrases in expected.items():
        with pytest.raises(SystemExit) as info:
            hive([*cmd, "--help"])
        assert info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for phrase in phrases:
            assert phrase in text, (cmd, phrase)


def test_synthesize_without_ontology_uses_the_shipped_hive_ontology(toy_corpus, tmp_path):
    common = ["synthesize", "--pool", str(toy_corpus.pool), "--dataset-paths", str(toy_corpus.dataset_paths),
              "--num-mixtures", "6", "--seed", "3"]
    assert hive([*common, "--output", str(tmp_path / "default")]) == 0
    assert hive([*common, "--output", str(tmp_path / "explicit"), "--ontology", str(HIVE_ONT)]) == 0
    default, explicit = _rows(tmp_path / "default"), _rows(tmp_path / "explicit")
    assert len(default) == 6 and default == explicit
    onto = packaged.hive_ontology()
    for row in default:
        labels = row["sources"]["label"]
        assert all(lab in onto for lab in labels)
        ids = [onto.node(lab).id for lab in labels]  # no ancestor/descendant pairs under Hive
        assert not any(onto.is_ancestor(a, b) for a in ids for b in ids if a != b)


class _FirstOptionJudge:
    """A chat-completions server on 127.0.0.1 that answers "1" and keeps every prompt."""

    def __init__(self):
        self.prompts: list[str] = []
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                parts = body["messages"][-1]["content"]
                judge.prompts.append(next(p["text"] for p in parts if p["type"] == "text"))
                out = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "1"}, "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out.encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.spec = (f"openai:url=http://127.0.0.1:{self.httpd.server_address[1]}/v1,model=first,"
                     "timeout=10,retries=0,backoff=0")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.slow  # end to end over the toy corpus
def test_curate_without_ontology_uses_the_shipped_hive_ontology(toy_corpus, tmp_path):
    judge = _FirstOptionJudge()
    try:
        rc = hive(["curate", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
                   str(toy_corpus.dataset_paths), "--judge", judge.spec, "--output", str(tmp_path / "out"),
                   "--split", "validation", "--no-progress"])
    finally:
        judge.close()
    assert rc == 0 and judge.prompts
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["ontology"] == {"path": "hive_ontology.json",
                                "sha256": hashlib.sha256(HIVE_ONT.read_bytes()).hexdigest()}
    # the pools are Hive's: "Dog" is asked next to its Hive sibling "Cat", which no toy file holds
    # (the default prompt is the reference's, with the options as a JSON list)
    options = [set(re.findall(r'"([^"]+)"', p)) for p in judge.prompts]
    assert any({"Dog", "Cat"} <= o for o in options)


def test_mine_leaf_without_ontologies_uses_the_shipped_ones(toy_corpus, tmp_path):
    items = [json.loads(line) for line in toy_corpus.pool.read_text().splitlines()[:4]]
    # a class pruned from Hive ("Yell") climbs the shipped AudioSet ontology to its Hive leaf "Shout"
    items.append(dict(items[0], clip_id="yell0", label="Yell", label_id="/m/07sr1lc"))
    items.append(dict(items[1], clip_id="bogus0", label="Not a sound", label_id="/x/none"))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(i) + "\n" for i in items))
    out = tmp_path / "leaf"
    assert hive(["mine", "leaf", "--input", str(src), "--output", str(out), "--dataset-paths",
                 str(toy_corpus.dataset_paths), "--no-progress"]) == 0
    kept = {r["clip_id"]: r for r in map(json.loads, (out / "output.jsonl").read_text().splitlines())}
    assert set(kept) == {i["clip_id"] for i in items[:5]}
    assert (kept["yell0"]["label"], kept["yell0"]["label_id"]) == ("Shout", "/m/07p6fty")
    assert kept["yell0"]["provenance"]["leaf"]["climbed_from"] == "Yell"
    assert [i["clip_id"] for i in map(json.loads, (out / "drops.jsonl").read_text().splitlines())] == ["bogus0"]
    options = json.loads((out / "provenance.json").read_text())["options"]
    assert (options["hive_ontology"], options["audioset_ontology"]) == (str(HIVE_ONT), str(AUDIOSET_ONT))
