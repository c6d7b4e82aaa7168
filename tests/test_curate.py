"""Unit tests of mixture curation: pools, option order, answer parsing, cache, keep policy and
the scorer with in-process judges (no HTTP, no corpus). End-to-end runs against a real HTTP
judge live in ``test_curate_e2e.py``."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mixing import packaged
from curation.curate.cache import AnswerCache, cache_key
from curation.curate.policy import Candidate, KeepPolicy, tie_break
from curation.curate.pools import PoolBuilder
from curation.curate.prompt import build_prompt, parse_choice
from curation.curate.scoring import SCORED, TRIVIAL, UNSCORED, JudgeProtocolError, MixtureScore, Scorer
from mixing.metadata import MixtureRecord, SourceRecord
from mixing.metadata_io import iter_records
from mixing.ontology import Ontology
from mixing.toy import write_toy_ontology

HIVE_ONTOLOGY = packaged.hive_ontology_path()


@pytest.fixture(scope="module")
def toy_onto(tmp_path_factory) -> Ontology:
    return Ontology.from_json(write_toy_ontology(tmp_path_factory.mktemp("onto") / "toy.json"))


def _rec(mix_id: str, labels: list[str], split: str = "train") -> MixtureRecord:
    sources = tuple(SourceRecord(f"s{i + 1}", f"AudioSet/x{i}.wav", lab, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0)
                    for i, lab in enumerate(labels))
    return MixtureRecord(mix_id, split, 8000, 1.0, len(labels), sources, 1.0, 0.9)


# ---- pools ---------------------------------------------------------------------------------------
def test_pool_is_label_plus_siblings_and_trivial_without(toy_onto):
    pb = PoolBuilder(toy_onto)
    p = pb.pool("m1", "s1", "Clock")
    assert p.labels[0] == "Clock" and set(p.labels) == {"Clock", "Engine", "Hammer", "Bell"}
    assert sorted(p.options) == sorted(p.labels) and p.options[p.true_option - 1] == "Clock"
    assert not p.trivial
    dog = pb.pool("m1", "s2", "Dog")  # the only child of its parent
    assert dog.trivial and dog.labels == ("Dog",)
    assert pb.pool("m1", "s1", "clock").label == "Clock"  # names resolve case-insensitively


def test_pool_excludes_ancestors_and_descendants():
    onto = Ontology.from_records([
        {"id": "a", "name": "A", "child_ids": ["b", "c", "d"]},
        {"id": "b", "name": "B", "child_ids": ["c"]},
        {"id": "c", "name": "C", "child_ids": []},
        {"id": "d", "name": "D", "child_ids": []},
    ])
    pb = PoolBuilder(onto, rule="union")
    assert set(pb.pool("m", "s1", "C").labels) == {"C", "D"}  # B is C's parent, not a confusion
    assert set(pb.pool("m", "s1", "D").labels) == {"D", "B", "C"}
    assert set(pb.pool("m", "s1", "B").labels) == {"B", "D"}  # C is B's child, not a confusion


def test_option_order_is_deterministic_seeded_and_uninformative(toy_onto):
    pb, other = PoolBuilder(toy_onto), PoolBuilder(toy_onto, seed=1)
    assert pb.pool("m1", "s1", "Piano") == PoolBuilder(toy_onto).pool("m1", "s1", "Piano")
    orders = {pb.pool(f"m{i}", "s1", "Piano").options for i in range(50)}
    assert len(orders) > 10
    assert any(pb.pool(f"m{i}", "s1", "Piano").options != other.pool(f"m{i}", "s1", "Piano").options
               for i in range(5))
    positions = Counter(pb.pool(f"m{i}", "s1", "Piano").true_option for i in range(800))
    assert set(positions) == {1, 2, 3, 4}
    for k in range(1, 5):  # uniform: 200 expected each, sd ~12
        assert 140 < positions[k] < 260, positions


def test_pool_cap_keeps_true_label_and_is_deterministic():
    onto = Ontology.from_json(HIVE_ONTOLOGY)
    label = next(n.name for n in onto.leaves() if len(onto.siblings(n)) >= 20)
    full = PoolBuilder(onto).pool("m", "s1", label)
    capped = PoolBuilder(onto, max_pool=5)
    pools = [capped.pool(f"m{i}", "s1", label) for i in range(20)]
    for p in pools:
        assert p.size == 5 and p.labels[0] == label and set(p.labels) <= set(full.labels)
    assert pools[0] == PoolBuilder(onto, max_pool=5).pool("m0", "s1", label)
    assert len({p.labels for p in pools}) > 1  # the siblings drawn vary per source
    with pytest.raises(ValueError):
        PoolBuilder(onto, max_pool=1)


# ---- prompt and parsing ------------------------------------------------------------------------
def test_prompt_numbers_options_and_asks_for_zero():
    text = build_prompt(("Engine", "Clock"))
    assert "1. Engine\n2. Clock" in text and "0 if none" in text


@pytest.mark.parametrize("answer, expected", [
    ("2", 2), ("2.", 2), (" Answer: 3", 3), ("**4**", 4), ("option 1", 1), ("2) Engine", 2),
    ("The answer is 2 (Engine)", 2), ("<think>3 or 4?</think>\n1", 1), ("<|im_start|>3<|im_end|>", 3),
    ("0", 0), ("none", 0), ("None of the above.", 0), ("No match", 0),
    ("hammer", 3), ("It sounds like a hammer.", 3),
    ("7", None), ("-1", None), ("2.5", None), ("3, or maybe 4", None), ("banana", None), ("", None),
    (None, None), ("Clock or Engine", None),
])
def test_parse_choice(answer, expected):
    assert parse_choice(answer, ("Clock", "Engine", "Hammer", "Bell")) == expected


# ---- cache ---------------------------------------------------------------------------------------
def test_cache_survives_reopen_and_a_truncated_line(tmp_path):
    k1 = cache_key("m1", "s1", ("A", "B"), "model", "p" * 64)
    assert k1 != cache_key("m1", "s1", ("A", "C"), "model", "p" * 64)
    assert k1 != cache_key("m1", "s1", ("A", "B"), "model2", "p" * 64)
    with AnswerCache(tmp_path, rank=0) as c:
        c.put(k1, {"answer": "1"})
    with open(tmp_path / "answers-00000.jsonl", "a") as fh:
        fh.write('{"key": "cut-short", "answ')  # a crash mid-line
    k2 = cache_key("m2", "s1", ("A", "B"), "model", "p" * 64)
    with AnswerCache(tmp_path, rank=1) as c:
        c.put(k2, {"answer": "2"})
    with AnswerCache(tmp_path, rank=0) as c:  # appends after the cut line on a new line
        assert c.get(k1)["answer"] == "1" and c.get(k2)["answer"] == "2" and c.skipped_lines == 1
        c.put("k3", {"answer": "0"})
    assert AnswerCache(tmp_path).get("k3")["answer"] == "0"


# ---- policy --------------------------------------------------------------------------------------
def test_top_fraction_per_group_with_hash_tie_break_and_unscored_out_of_ranking():
    cands = [Candidate(f"t{i}", "train", 2, 1.0 if i < 3 else 0.5) for i in range(10)]
    cands += [Candidate(f"v{i}", "validation", 2, 1.0) for i in range(4)]
    cands += [Candidate("t_unscored", "train", 2, None), Candidate("t3mix", "train", 3, 0.0)]
    d = KeepPolicy(keep=0.5).select(cands)
    kept = {m for m, x in d.items() if x.kept}
    ties = sorted((f"t{i}" for i in range(3, 10)), key=tie_break)
    assert kept & {f"t{i}" for i in range(10)} == {"t0", "t1", "t2", *ties[:2]}  # 5 of 10 scored
    assert kept & {f"v{i}" for i in range(4)} == set(sorted((f"v{i}" for i in range(4)), key=tie_break)[:2])
    assert "t3mix" in kept  # a group of one keeps floor(0.5 + 0.5) = 1
    assert d["t_unscored"].kept is False and d["t_unscored"].reason == "unscored_dropped"
    assert d["t_unscored"].rank is None
    assert KeepPolicy(keep=0.5, unscored="keep").select(cands)["t_unscored"].kept
    by_min = KeepPolicy(keep=None, min_score=0.75).select(cands)
    assert {m for m, x in by_min.items() if x.kept} == {"t0", "t1", "t2", "v0", "v1", "v2", "v3"}
    with pytest.raises(ValueError):
        KeepPolicy(keep=0.5, min_score=0.5)


# ---- scorer with in-process judges -------------------------------------------------------------
class _Stems:
    """Dummy audio: stem i of a mixture is a constant that encodes (mixture, source)."""

    def __init__(self, records, fail: set[str] = frozenset()):
        self.code = {}
        self.fail = fail
        for r in records:
            for i, s in enumerate(r.sources):
                self.code[(r.mix_id, i)] = len(self.code) + 1
        self.label_of = {self.code[(r.mix_id, i)]: s.label for r in records for i, s in enumerate(r.sources)}
        self.calls = 0

    def stems(self, rec):
        self.calls += 1
        if rec.mix_id in self.fail:
            from curation.curate.audio import NotRenderedError

            raise NotRenderedError(f"{rec.mix_id} missing")
        arr = np.array([[self.code[(rec.mix_id, i)]] * 8 for i in range(rec.num_sources)], dtype=np.float32)
        return arr, 8000


def prompt_options(prompt: str) -> list[str]:
    """The numbered options of a prompt: the reference's JSON pool (``"1": "Label"`` lines) or
    ``N. Label`` lines."""
    found = {int(m.group(1)): json.loads(m.group(2))
             for m in re.finditer(r'^\s*"(\d+)": ("(?:[^"\\]|\\.)*"),?$', prompt, re.M)}
    if not found:
        found = {int(m.group(1)): m.group(2) for m in re.finditer(r"^(\d+)\. (.+)$", prompt, re.M)}
    assert sorted(found) == list(range(1, len(found) + 1)), prompt
    return [found[i] for i in sorted(found)]


class _Judge:
    def __init__(self, answer, stems: _Stems | None = None):
        self.model_id = "fake"
        self.answer = answer
        self.stems = stems
        self.items = 0

    def ask(self, items, prompt):
        self.items += len(items)
        options = prompt_options(prompt)
        out = []
        for y, _ in items:
            if self.answer == "oracle":
                out.append(str(options.index(self.stems.label_of[int(y[0])]) + 1))
            else:
                out.append(self.answer(options) if callable(self.answer) else self.answer)
        return out


def _score(records, judge, stems, tmp_path, **kw) -> list[MixtureScore]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    onto = Ontology.from_json(write_toy_ontology(tmp_path / "toy.json"))
    with AnswerCache(tmp_path / "cache") as cache:
        return list(Scorer(PoolBuilder(onto), judge, cache, stems, **kw).score(records))


RECORDS = [_rec("m1", ["Clock", "Dog"]), _rec("m2", ["Piano", "Bird", "Wind"], "validation"),
           _rec("m3", ["Dog", "Cough"]), _rec("m4", ["Unknown thing", "Engine"])]


def test_oracle_scores_every_source_and_trivial_ones_without_asking(tmp_path):
    stems = _Stems(RECORDS)
    judge = _Judge("oracle", stems)
    scores = _score(RECORDS, judge, stems, tmp_path, chunk=2)
    assert [m.mix_id for m in scores] == ["m1", "m2", "m3", "m4"]
    by = {m.mix_id: m for m in scores}
    assert by["m1"].score == 1.0 and [s.status for s in by["m1"].sources] == [SCORED, TRIVIAL]
    assert by["m3"].score == 1.0 and by["m3"].count(TRIVIAL) == 2  # nothing asked, no audio
    unknown = by["m4"].sources[0]
    assert unknown.status == UNSCORED and unknown.reason == "label_not_in_ontology"
    assert by["m4"].score == 1.0  # the mean over scored sources only
    assert judge.items == 5 and stems.calls == 3
    assert all(s.chosen_label == s.label for m in scores for s in m.sources if s.status == SCORED)


def test_rerun_uses_the_cache_and_reads_answers_the_same(tmp_path):
    stems = _Stems(RECORDS)
    first = _score(RECORDS, _Judge("oracle", stems), stems, tmp_path)
    stems2 = _Stems(RECORDS)
    judge = _Judge("2", stems2)  # would answer differently: must not be asked
    again = _score(RECORDS, judge, stems2, tmp_path)
    assert judge.items == 0 and stems2.calls == 0
    assert [m.to_dict() for m in again] == [m.to_dict() for m in first]


def test_none_answers_are_wrong_not_unscored_and_garbage_is_unscored(tmp_path):
    scores = _score(RECORDS[:2], _Judge("0"), _Stems(RECORDS), tmp_path / "a")
    assert scores[0].score == 0.5 and scores[0].sources[0].correct is False
    assert scores[0].sources[0].chosen_label is None
    judge = _Judge("I am not sure")
    scores = _score(RECORDS[:2], judge, _Stems(RECORDS), tmp_path / "b", answer_retries=2)
    src = scores[1].sources
    assert all(s.status == UNSCORED and s.reason == "unparseable" and s.attempts == 3 for s in src)
    assert scores[1].score is None and scores[1].status == UNSCORED
    assert scores[0].score == 1.0  # the trivial Dog
    assert judge.items == 3 * 4  # 4 non-trivial sources, asked 3 times


def test_judge_failures_and_missing_audio_are_unscored_and_failures_not_cached(tmp_path):
    judge = _Judge(None)
    scores = _score(RECORDS[:2], judge, _Stems(RECORDS, fail={"m1"}), tmp_path)
    assert scores[0].sources[0].reason == "audio_not_rendered" and scores[0].score == 1.0
    assert {s.reason for s in scores[1].sources} == {"judge_failed"} and scores[1].score is None
    judge2 = _Judge("oracle", _Stems(RECORDS))
    again = _score(RECORDS[:2], judge2, judge2.stems, tmp_path)  # the failures are asked again
    assert judge2.items == 4 and again[1].score == 1.0


def test_a_judge_breaking_the_protocol_is_an_error(tmp_path):
    class Short(_Judge):
        def ask(self, items, prompt):
            return []

    with pytest.raises(JudgeProtocolError):
        _score(RECORDS[:1], Short("1"), _Stems(RECORDS), tmp_path)


def test_scores_round_trip_through_json():
    m = MixtureScore("m", "train", 1)
    stems = _Stems(RECORDS)
    assert MixtureScore.from_dict(json.loads(json.dumps(m.to_dict()))).to_dict() == m.to_dict()
    assert stems.stems(RECORDS[0])[0].shape == (2, 8)


# ---- the job: ranks, merge, dropped records ----------------------------------------------------
def test_two_ranks_merge_once_and_match_one_process(tmp_path):
    from curation.curate.job import CurateConfig, run_curate

    recs = RECORDS[:3] + [_rec("m5", ["Drum", "Flute", "Doorbell"], "test")]
    rows = [r.to_flat_dict() for r in recs]
    rows.append({**_rec("m1", ["Piano", "Bird"]).to_flat_dict()})  # a duplicate mix_id
    rows.append({**_rec("bad", ["Dog", "Bird"]).to_flat_dict(), "num_sources": 3})  # invalid
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    onto = write_toy_ontology(tmp_path / "toy.json")

    def config(out: str, **kw) -> CurateConfig:
        return CurateConfig(metadata=str(meta), ontology=str(onto), judge="in-process", output=str(tmp_path / out),
                            **kw)

    stems = _Stems(recs)
    results = [run_curate(config("two"), rank=r, world_size=2, judge=_Judge("oracle", stems), audio=stems)
               for r in (0, 1)]
    assert [r.merged for r in results] == [False, True]  # the last rank to finish merges
    assert results[0].stats["judge_items"] + results[1].stats["judge_items"] == 7  # the non-trivial sources
    one = run_curate(config("one"), judge=_Judge("oracle", stems), audio=stems)
    assert one.merged
    for name in ("scores/sources.parquet", "scores/mixtures.parquet", "summary.json", "provenance.json"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["mixtures"]["dropped_before_scoring"] == {"duplicate_mix_id": 1, "invalid_record": 1}
    failures = [json.loads(line) for line in (tmp_path / "one" / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["reason"] for f in failures) == ["duplicate_mix_id", "invalid_record"]
    kept = [r.mix_id for r in iter_records(tmp_path / "one" / "metadata")]
    # groups: train/2mix {m1, m3} (both 1.0: the hash decides), validation/3mix {m2}, test/3mix {m5}
    assert sorted(kept) == sorted(["m2", "m5", min(["m1", "m3"], key=tie_break)])
    # the first m1 (Clock, Dog) is the one curated
    assert summary["accuracy_per_label"]["Clock"]["n"] == 1 and "Bird" in summary["accuracy_per_label"]
    assert (tmp_path / "one" / "cache" / "answers-00000.jsonl").is_file()


def test_unscored_mixtures_are_kept_or_dropped_as_asked(tmp_path):
    from curation.curate.job import CurateConfig, run_curate

    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps(r.to_flat_dict()) + "\n" for r in RECORDS[:2]))
    onto = write_toy_ontology(tmp_path / "toy.json")
    # the judge answers for m1's Clock and fails for m2's three sources: 75 % failed
    partly = _Judge(lambda options: "1" if "Clock" in options else None)
    for policy, kept in (("drop", ["m1"]), ("keep", ["m1", "m2"])):
        cfg = CurateConfig(metadata=str(meta), ontology=str(onto), judge="x", output=str(tmp_path / policy),
                           unscored=policy, keep=1.0, max_failure_rate=0.8)
        res = run_curate(cfg, judge=partly, audio=_Stems(RECORDS))
        assert res.summary["mixtures"]["unscored"] == 1 and res.summary["status"] == "ok"
        rows = pq.read_table(tmp_path / policy / "scores" / "mixtures.parquet").to_pylist()
        assert sorted(r["mix_id"] for r in rows if r["kept"]) == kept
        assert "unscored " + policy in res.summary_text
    # over the default limit of 50 %, or a judge that failed for everything: nothing is kept
    from curation.curate.job import CurateFailedError

    for judge, limit, text in ((partly, 0.5, "3 of 4 sources (75.0% > 50%)"),
                               (_Judge(None), 1.0, "4 of 4 sources (all of them)")):
        out = tmp_path / f"failed-{limit}"
        cfg = CurateConfig(metadata=str(meta), ontology=str(onto), judge="x", output=str(out),
                           unscored="keep", keep=1.0, max_failure_rate=limit)
        with pytest.raises(CurateFailedError, match=re.escape(text)) as info:
            run_curate(cfg, judge=judge, audio=_Stems(RECORDS))
        assert info.value.result.merged and info.value.result.summary["status"] == "failed"
        rows = pq.read_table(out / "scores" / "mixtures.parquet").to_pylist()
        assert not any(r["kept"] for r in rows) and not (out / "metadata").exists()


def test_a_run_killed_midway_resumes_without_asking_again(tmp_path):
    from curation.curate.job import CurateConfig, run_curate

    recs = [_rec(f"k{i}", ["Piano", "Clock", "Bird"]) for i in range(6)]
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps(r.to_flat_dict()) + "\n" for r in recs))
    cfg = CurateConfig(metadata=str(meta), ontology=str(write_toy_ontology(tmp_path / "toy.json")), judge="x",
                       output=str(tmp_path / "out"), max_pool=2)
    stems = _Stems(recs)

    class Crashing(_Judge):
        def ask(self, items, prompt):
            if self.items >= 7:
                raise KeyboardInterrupt  # the process is killed
            return super().ask(items, prompt)

    with pytest.raises(KeyboardInterrupt):
        run_curate(cfg, judge=Crashing("oracle", stems), audio=stems)
    assert not (tmp_path / "out" / "summary.json").exists()
    done = sum(1 for line in (tmp_path / "out" / "cache" / "answers-00000.jsonl").open())
    assert 0 < done < 18
    judge = _Judge("oracle", stems)
    res = run_curate(cfg, judge=judge, audio=stems)
    assert judge.items == 18 - done and res.summary["sources"]["accuracy"] == 1.0
    sources = pq.read_table(tmp_path / "out" / "scores" / "sources.parquet").to_pylist()
    assert {len(s["pool"]) for s in sources} == {2}  # --max-pool 2


def test_summary_counts_confusions_per_label(tmp_path):
    from curation.curate.job import CurateConfig, run_curate

    recs = [_rec(f"c{i}", ["Piano", "Clock"]) for i in range(12)]
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps(r.to_flat_dict()) + "\n" for r in recs))
    cfg = CurateConfig(metadata=str(meta), ontology=str(write_toy_ontology(tmp_path / "toy.json")), judge="x",
                       output=str(tmp_path / "out"))
    res = run_curate(cfg, judge=_Judge("1"), audio=_Stems(recs))
    sources = pq.read_table(tmp_path / "out" / "scores" / "sources.parquet").to_pylist()
    wrong = Counter((s["label"], s["chosen_label"]) for s in sources if not s["correct"])
    assert {(p["label"], p["chosen"]): p["count"] for p in res.summary["most_confused"]} == dict(wrong)
    counts = [p["count"] for p in res.summary["most_confused"]]
    assert counts == sorted(counts, reverse=True)
    per = res.summary["accuracy_per_label"]
    assert set(per) == {"Piano", "Clock"} and per["Piano"]["chance"] == 0.25 and per["Piano"]["n"] == 12
    assert "most confused:" in res.summary_text


# ---- the reference's rules, checked against independent implementations -----------------------
def _reference_pools(ontology_json: Path) -> dict[str, list[str]]:
    """The reference's confusion pool of every node, written from its description: walk the nodes
    in file order recording child -> parent (a later parent overwrites), then pool = the node's
    name + the names of its parent's other children, in child_ids order; no parent: no pool."""
    nodes = json.loads(ontology_json.read_text(encoding="utf-8"))
    by_id = {n["id"]: n for n in nodes}
    parent_of: dict[str, str] = {}
    for n in nodes:
        for child in n.get("child_ids", []):
            parent_of[child] = n["id"]
    pools = {}
    for n in nodes:
        parent = parent_of.get(n["id"])
        others = [by_id[c]["name"] for c in by_id[parent]["child_ids"] if c != n["id"]] if parent else []
        pools[n["name"]] = [n["name"], *others]
    return pools


def test_reference_pool_is_the_last_parents_children_on_every_hive_node():
    onto = packaged.hive_ontology()
    expected = _reference_pools(HIVE_ONTOLOGY)
    multi = [n.name for n in onto if len(onto.parents(n)) > 1]
    assert len(multi) == 24  # the shipped Hive ontology's multi-parent nodes
    assert len(onto.leaves()) == 295
    ref, ordered = PoolBuilder(onto), PoolBuilder(onto, order="reference")
    for node in onto:
        pool = ref.pool("m", "s1", node.name)
        assert list(pool.labels) == expected[node.name], node.name
        assert pool.trivial == (len(expected[node.name]) == 1)
        assert sorted(pool.options) == sorted(pool.labels)
        assert list(ordered.pool("m", "s1", node.name).options) == expected[node.name]  # true label first
        assert ordered.pool("m", "s1", node.name).true_option == 1
    # ids resolve to the same pool as names (the reference accepts both)
    assert ref.pool("m", "s1", onto.node(multi[0]).id).labels == ref.pool("m", "s1", multi[0]).labels
    # on multi-parent nodes the union rule offers more: the first parents' children as well
    union = PoolBuilder(onto, rule="union")
    wider = [name for name in multi if set(union.pool("m", "s1", name).labels) > set(expected[name])]
    assert len(wider) >= 20, wider
    for name in multi:
        parents = onto.parents(name)
        assert set(expected[name]) == {name} | {c.name for c in onto.children(parents[-1])}
        assert set(union.pool("m", "s1", name).labels) <= {name} | {c.name for p in parents for c in onto.children(p)}


def test_reference_pool_keeps_what_the_union_rule_filters():
    onto = Ontology.from_records([
        {"id": "a", "name": "A", "child_ids": ["b", "c", "d"]},
        {"id": "b", "name": "B", "child_ids": ["c"]},
        {"id": "c", "name": "C", "child_ids": []},
        {"id": "d", "name": "D", "child_ids": []},
    ])
    ref = PoolBuilder(onto)
    assert ref.pool("m", "s1", "C").labels == ("C",)  # last parent B has no other child
    assert ref.pool("m", "s1", "B").labels == ("B", "C", "D")  # C, B's own child, stays (reference)
    with pytest.raises(ValueError, match="confusion pool rule"):
        PoolBuilder(onto, rule="every")
    with pytest.raises(ValueError, match="option order"):
        PoolBuilder(onto, order="sorted")


def _reference_keep(rows: list[tuple[str, str, int, float]], shard_size: int) -> set[str]:
    """The reference's keep rule, from its description: the render cut each (split, n) group into
    tars of ``shard_size`` in order; per tar, sort by score descending (Python's stable sort) and
    keep the first len // 2."""
    groups: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for mix_id, split, n, score in rows:
        groups.setdefault((split, n), []).append((mix_id, score))
    kept = set()
    for members in groups.values():
        for start in range(0, len(members), shard_size):
            tar = sorted(members[start:start + shard_size], key=lambda x: x[1], reverse=True)
            kept |= {mix_id for mix_id, _ in tar[: len(tar) // 2]}
    return kept


@pytest.mark.parametrize("shard_size", [1, 3, 7, 1000])
def test_reference_keep_rule_matches_an_independent_implementation(shard_size):
    rng = np.random.default_rng(shard_size)
    rows = []
    for i in range(301):
        split = ("train", "validation", "test")[int(rng.integers(3))]
        n = int(rng.integers(2, 6))
        rows.append((f"mix_{rng.integers(10**9):09d}_{i}", split, n, float(rng.integers(0, n + 1)) / n))
    positions: dict[tuple[str, int], int] = Counter()
    cands = []
    for mix_id, split, n, score in rows:
        cands.append(Candidate(mix_id, split, n, score, positions[(split, n)]))
        positions[(split, n)] += 1
    rng.shuffle(cands)  # the policy must not depend on the order it is given the candidates in
    policy = KeepPolicy(rule="reference", shard_size=shard_size)
    decisions = policy.select(cands)
    kept = {m for m, d in decisions.items() if d.kept}
    assert kept == _reference_keep(rows, shard_size)
    if shard_size == 1:
        assert kept == set()  # a tar of one mixture keeps none
    # ties are frequent here (scores k/n): the fraction rule, with its hash tie-break, differs
    if shard_size == 1000:
        fraction = {m for m, d in KeepPolicy(keep=0.5).select(cands).items() if d.kept}
        assert fraction != kept
    assert policy.describe()["count"] == "scored_in_shard // 2"
    with pytest.raises(ValueError, match="position"):
        policy.select([Candidate("x", "train", 2, 1.0)])
    with pytest.raises(ValueError, match="min_score"):
        KeepPolicy(keep=None, min_score=0.5, rule="reference")


# ---- prompt settings ---------------------------------------------------------------------------
def test_reference_prompt_wording_and_json_pool():
    from curation.curate.prompt import REFERENCE_SYSTEM, PromptConfig

    options = ("Bicycle bell", "Café ambience", 'Quote "x"')
    settings = PromptConfig()
    text = settings.build(options)
    pool = json.dumps({"1": options[0], "2": options[1], "3": options[2]}, ensure_ascii=False, indent=2)
    assert text == (
        "You are an audio classification expert. Please listen to this audio carefully, then select the most "
        "matching label from the following label pool.\n\nLabel pool (JSON format, key is number, value is "
        f"label name):\n{pool}\n\nPlease only return the corresponding number key (e.g., 1, 2, 3, etc.), "
        "do not return anything else. If the audio does not match any label, return 0.\n\nYour answer "
        "(only return number):")
    assert prompt_options(text) == list(options)
    assert settings.system == REFERENCE_SYSTEM == "You are a helpful assistant."
    assert settings.temperature is None and settings.name == "reference"


def test_prompt_option_resolves_presets_files_and_text(tmp_path):
    from curation.curate.prompt import PROMPT_TEMPLATE, PromptError, PromptConfig

    assert PromptConfig.from_options("hive-v1").template == PROMPT_TEMPLATE
    f = tmp_path / "p.txt"
    f.write_text("Pick one of {options} {not a placeholder}", encoding="utf-8")
    s = PromptConfig.from_options(f"@{f}", system="", temperature=0.2)
    assert s.build(("A", "B")) == "Pick one of 1. A\n2. B {not a placeholder}"
    assert (s.name, s.system, s.temperature) == ("file:p.txt", "", 0.2)
    with pytest.raises(PromptError, match="no placeholder"):
        PromptConfig.from_options("Which label is it?")
    with pytest.raises(PromptError, match="cannot read"):
        PromptConfig.from_options(f"@{tmp_path / 'missing.txt'}")
    with pytest.raises(PromptError, match="temperature"):
        PromptConfig.from_options(temperature=-1.0)


def test_prompt_system_and_temperature_change_the_cache_key(tmp_path):
    from curation.curate.prompt import PromptConfig

    onto = Ontology.from_json(write_toy_ontology(tmp_path / "toy.json"))
    stems = _Stems(RECORDS)
    judge = _Judge("oracle", stems)
    variants = [PromptConfig(), PromptConfig.from_options("hive-v1"),
                PromptConfig.from_options(system=""), PromptConfig.from_options(temperature=0.0),
                PromptConfig.from_options(temperature=0.7)]
    asked = []
    with AnswerCache(tmp_path / "cache") as cache:
        for v in variants + variants:  # the second pass is answered from the cache
            before = judge.items
            scores = list(Scorer(PoolBuilder(onto), judge, cache, stems, prompt=v).score(RECORDS))
            asked.append(judge.items - before)
            assert all(s.correct for m in scores for s in m.sources if s.status == SCORED)
    n = asked[0]
    assert n > 0 and asked[:5] == [n] * 5 and asked[5:] == [0] * 5
    keys = {line["key"] for line in map(json.loads, (tmp_path / "cache" / "answers-00000.jsonl").read_text().splitlines())}
    assert len(keys) == 5 * n


def test_reference_option_order_rewards_a_judge_that_always_answers_one(tmp_path):
    """With the true label first (the reference's order) a judge answering "1" is always right;
    with the default shuffled order it is not."""
    onto = packaged.hive_ontology()
    leaves = sorted(n.name for n in onto.leaves() if len(onto.children(onto.parents(n)[-1])) > 2)
    recs = [_rec(f"o{i}", [leaves[(7 * i) % len(leaves)], leaves[(7 * i + 3) % len(leaves)]]) for i in range(40)]

    class Zeros:
        def stems(self, rec):
            return np.zeros((rec.num_sources, 8), dtype=np.float32), 8000

    results = {}
    for order in ("reference", "shuffled"):
        with AnswerCache(tmp_path / order) as cache:
            scores = list(Scorer(PoolBuilder(onto, order=order), _Judge("1"), cache, Zeros()).score(recs))
        judged = [s for m in scores for s in m.sources if s.status == SCORED]
        assert len(judged) == 80
        results[order] = np.mean([s.correct for s in judged])
    assert results["reference"] == 1.0 and results["shuffled"] < 0.6
