"""The six mining stages, with in-test fake backends, on the toy corpus's real audio files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from mixing import packaged
from curation.manifest import read_items
from curation.runner import RunConfig, run_stage
from curation.stages import make_stage
from curation.models.registry import BackendSpec, BackendSpecError, MissingDependencyError
from curation.stages.base import Drop, Item, StageError, UnparseableAnswer, load_backend
from curation.stages.chunk import ChunkStage, plan_windows
from curation.stages.leaf import parse_index
from curation.stages.single_event import parse_bool
from curation.stages.single_label import label_list
from mixing.audio import probe, read_frames, resample, resampled_length, to_mono
from mixing.corpora import DatasetPaths
from mixing.toy import write_toy_ontology

DATA = packaged.data_path("hive_ontology.json").parent
HIVE_ONT = DATA / "hive_ontology.json"
AUDIOSET_ONT = DATA / "audioset_ontology.json"
ME = __name__  # fakes are named to the backend factory by dotted path


# ---- fakes implementing the protocols of curation/models/registry.py -----------------------------
class FakeJudge:
    """Answers from ``script`` (one list per call, consumed in order), else from ``by_prompt``
    (substring of the prompt -> answer), else ``default``. ``None`` in a script = a failed call for
    that clip; the string "RAISE" makes the whole call raise."""

    def __init__(self, script=None, by_prompt=None, default="True", model_id="fake-judge"):
        self.model_id = model_id
        self.script = [s if isinstance(s, str) else list(s) for s in (script or [])]
        self.by_prompt = by_prompt or {}
        self.default = default
        self.calls: list[tuple[int, str, list[int]]] = []

    def ask(self, items, prompt):
        for y, sr in items:
            assert y.dtype == np.float32 and y.ndim == 1 and isinstance(sr, int)
        self.calls.append((len(items), prompt, [len(y) for y, _ in items]))
        if self.script:
            answers = self.script.pop(0)
            if answers == "RAISE":
                raise ConnectionError("scripted failure")
            return answers
        for key, answer in self.by_prompt.items():
            if key in prompt:
                return [answer] * len(items)
        return [self.default] * len(items)


class FakeTagger:
    def __init__(self, tags=None, sample_rate=16000, fail=False, model_id="fake-tagger"):
        self.model_id = model_id
        self.sample_rate = sample_rate
        self.tags = [tuple(t) for t in (tags or [("Dog", "/m/0bt9lr", 0.9), ("Animal", "/m/0jbk", 0.5)])]
        self.fail = fail
        self.seen: list[tuple[int, str]] = []

    def tag(self, clips, top_k):
        if self.fail:
            raise RuntimeError("scripted tagger failure")
        self.seen += [(len(c), str(c.dtype)) for c in clips]
        return [self.tags[:top_k] for _ in clips]


class FakeSuperResolver:
    def __init__(self, mode="ok", model_id="fake-sr"):
        self.model_id = model_id
        self.mode = mode

    def process(self, y, sr):
        if self.mode == "raise":
            raise RuntimeError("scripted failure")
        n = resampled_length(len(y), sr, 44100)
        if self.mode == "short":
            n -= 100
        if self.mode == "nan":
            return np.full(n, np.nan, dtype=np.float32)
        return np.interp(np.arange(n) * sr / 44100, np.arange(len(y)), y).astype(np.float32)


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy(toy_corpus):
    return toy_corpus  # the session's toy corpus (read-only here: outputs go to their own folders)


@pytest.fixture(scope="module")
def chunked(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("chunked")
    run_stage(ChunkStage(dataset_paths=str(toy.dataset_paths)),
              RunConfig(input=str(toy.labels_csv), output=str(out), progress=False))
    return out


def items_of(toy, n=None, stereo=None) -> list[Item]:
    items = read_items(toy.labels_csv)
    paths = DatasetPaths.from_json(toy.dataset_paths)
    out = []
    for it in items:
        info = probe(paths.resolve(it.path))
        if stereo is not None and (info.channels == 2) != stereo:
            continue
        out.append(it.replace(native_sample_rate=info.samplerate, num_channels=info.channels))
    return out[:n]


def kept(results) -> list[Item]:
    return [r for res in results for r in res if isinstance(r, Item)]


def drops(results) -> list[Drop]:
    return [r for res in results for r in res if isinstance(r, Drop)]


def ready(stage):
    stage.ensure_setup()
    return stage


# ---- chunk ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds, expected", [
    (3.0, [(0, 3)]), (10.0, [(0, 10)]), (10.5, [(0, 10), (5, 10.5)]), (12.0, [(0, 10), (5, 12)]),
    (14.9, [(0, 10), (5, 14.9)]), (15.0, [(0, 10), (5, 15)]), (16.0, [(0, 10), (5, 15), (10, 16)]),
    (19.0, [(0, 10), (5, 15), (10, 19)]),
    (60.0, [(s, s + 10) for s in range(0, 55, 5)]),
    (64.0, [(s, s + 10) for s in range(0, 55, 5)] + [(55, 64)]),
])
def test_plan_windows(seconds, expected):
    sr = 100
    got = plan_windows(round(seconds * sr), sr, 10.0, 5.0, 5.0)
    assert got == [(round(a * sr), round(b * sr)) for a, b in expected]
    assert all(e - s >= 5 * sr for s, e in got[1:])  # a short final piece is at least 5 s


@pytest.mark.slow  # end to end over the toy corpus
def test_chunk_matches_toy_pool_and_reports_energy_of_the_mono_downmix(toy, chunked):
    paths = DatasetPaths.from_json(toy.dataset_paths)
    out = [json.loads(line) for line in open(chunked / "output.jsonl")]
    dropped = [json.loads(line) for line in open(chunked / "drops.jsonl")]
    assert out and {d["reason"] for d in dropped} <= {"silent"}
    assert [r["clip_id"] for r in out] == sorted(r["clip_id"] for r in out)
    # every window (kept or dropped as silent) is one of the toy pool's chunks, and vice versa
    pool = {(e["path"], e["chunk_start_second"]): e for e in map(json.loads, open(toy.pool))}
    windows = {(r["path"], r["chunk_start_second"]): r for r in out + dropped}
    assert set(windows) == set(pool)
    for key, r in windows.items():
        assert r["chunk_end_second"] == pytest.approx(pool[key]["chunk_end_second"], abs=1e-3)
    for r in out + dropped:
        local = paths.resolve(r["path"])
        info = probe(local)
        start, stop = int(r["chunk_start_second"] * info.samplerate), int(r["chunk_end_second"] * info.samplerate)
        assert stop <= info.frames
        if r["chunk_start_second"] == 0 and info.duration <= 10:
            assert stop == info.frames  # the whole file, to the last frame
        data, _ = read_frames(local, start, stop)
        ms = float(np.mean(to_mono(data) ** 2))
        if r in out:
            assert r["native_sample_rate"] == info.samplerate and r["num_channels"] == info.channels
            assert r["provenance"]["chunk"]["mean_square"] == pytest.approx(ms, rel=1e-4)
            assert ms >= 5e-4 or info.duration <= 10  # a short file is kept whole, unchecked
        else:
            assert r["info"]["mean_square"] == pytest.approx(ms, rel=1e-4) and ms < 5e-4
    stats = json.loads((chunked / "stats.json").read_text())
    assert stats["kept"] == len(out) and stats["dropped"] == {"silent": len(dropped)} if dropped else True


def test_chunk_keeps_non_silent_stereo_chunks(toy, chunked):
    """The reference divided stereo energy by the length twice, so every stereo chunk was 'silent'."""
    out = [json.loads(line) for line in open(chunked / "output.jsonl")]
    stereo = [r for r in out if r["num_channels"] == 2
              and r["provenance"]["chunk"]["mean_square"] >= 5e-4]  # (short files are kept unchecked)
    assert len(stereo) >= 10
    assert any(r["path"].startswith("BBC_Sound_Effects/long/") and r["num_channels"] == 2 for r in out)
    for r in stereo:  # the reference's formula would give a value far below the threshold
        frames = (r["chunk_end_second"] - r["chunk_start_second"]) * r["native_sample_rate"]
        assert r["provenance"]["chunk"]["mean_square"] / frames < 5e-4 <= r["provenance"]["chunk"]["mean_square"]


def test_chunk_drops_silent_unreadable_and_missing_files_with_reasons(toy, tmp_path):
    sr = 16000
    sf.write(tmp_path / "silent.wav", np.zeros((sr * 23, 2), dtype=np.float32), sr, subtype="FLOAT")
    sf.write(tmp_path / "hiss.wav", np.full(sr * 4, 1e-3, dtype=np.float32), sr, subtype="FLOAT")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    rng = np.random.default_rng(0)
    loud = np.concatenate([rng.normal(0, 0.1, sr * 8), np.zeros(sr * 24)]).astype(np.float32)
    sf.write(tmp_path / "half.flac", np.stack([loud, -loud], 1), sr, subtype="PCM_24")
    rows = [{"audio_path": str(tmp_path / n), "text_label": "x"}
            for n in ("silent.wav", "hiss.wav", "broken.wav", "missing.wav", "half.flac")]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    stage = ready(ChunkStage())
    res = {it.path.rsplit("/", 1)[1]: stage.process_item(it) for it in read_items(tmp_path / "list.json")}
    assert [d.reason for d in res["silent.wav"]] == ["silent"] * 4
    assert [type(d).__name__ for d in res["hiss.wav"]] == ["Item"]  # 4 s: kept whole unchecked (reference)
    (hiss_item,) = [i for i in read_items(tmp_path / "list.json") if i.path.endswith("hiss.wav")]
    assert [d.reason for d in ready(ChunkStage(drop_silent_short=True)).process_item(hiss_item)] == ["silent"]
    assert [d.reason for d in res["broken.wav"]] == ["unreadable_audio"]
    assert [d.reason for d in res["missing.wav"]] == ["missing_file"]
    # stereo with opposite channels: the mono downmix is silent, as the pipeline defines energy
    assert {type(r) for r in res["half.flac"]} == {Drop}
    sf.write(tmp_path / "half.flac", np.stack([loud, loud], 1), sr, subtype="PCM_24")
    (half_item,) = [i for i in read_items(tmp_path / "list.json") if i.path.endswith("half.flac")]
    half = stage.process_item(half_item)
    assert [(type(r).__name__, r.chunk_start_second) for r in half] == [
        ("Item", 0.0), ("Item", 5.0), ("Drop", 10.0), ("Drop", 15.0), ("Drop", 20.0), ("Drop", 25.0)]


def test_chunk_export_writes_segment_files(toy, tmp_path):
    stage = ready(ChunkStage(dataset_paths=str(toy.dataset_paths), export_dir=str(tmp_path / "seg")))
    long_item = [it for it in read_items(toy.labels_csv) if "/long/" in it.path][0]
    out = kept([stage.process_item(long_item)])
    assert len(out) >= 10
    paths = DatasetPaths.from_json(toy.dataset_paths)
    for it in out[:3]:
        seg, sr = sf.read(tmp_path / "seg" / it.extra["segment_path"].split("/", 1)[1], always_2d=True)
        info = probe(paths.resolve(it.path))
        src, _ = read_frames(paths.resolve(it.path), int(it.chunk_start_second * sr), int(it.chunk_end_second * sr))
        assert sr == info.samplerate and seg.shape == src.shape
        np.testing.assert_allclose(seg, src, atol=1e-6)


# ---- single-label -----------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("Dog", ["Dog"]), ("  Dog ", ["Dog"]), (["Dog"], ["Dog"]), (["Dog", "Dog"], ["Dog"]),
    (["Speech", "Music"], ["Speech", "Music"]), ("", []), ([], []), ([" "], []), (None, []),
    ('["Speech", "Music"]', ["Speech", "Music"]), ("Violin, fiddle", ["Violin, fiddle"]), (3, None),
    (["Dog", 3], None),
])
def test_label_list(value, expected):
    assert label_list(value) == expected


def test_single_label_stage(toy, tmp_path):
    good = read_items(toy.labels_csv)[0]
    rows = [{"audio_path": good.path, "text_label": ["Dog"], "split": "train"},
            {"audio_path": good.path.replace(".", "_2."), "text_label": "Rain"},
            {"audio_path": "AudioSet/clips/nope.wav", "text_label": "Rain"},
            {"audio_path": "Nowhere/x.wav", "text_label": "Rain"},
            {"audio_path": "AudioSet/../../x.wav", "text_label": "Rain"},
            {"clip_id": "multi", "path": good.path, "text_label": ["Speech", "Music"]},
            {"clip_id": "empty", "path": good.path, "text_label": []},
            {"clip_id": "blank", "path": good.path, "text_label": "   "},
            {"clip_id": "from_label", "path": good.path, "label": "Piano"}]
    (tmp_path / "in.json").write_text(json.dumps(rows))
    stage = ready(make_stage("single-label", {"dataset_paths": str(toy.dataset_paths),
                                              "ontology": str(write_toy_ontology(tmp_path / "o.json"))}))
    items = read_items(tmp_path / "in.json")
    res = dict(zip([i.path if i.clip_id not in ("multi", "empty", "blank", "from_label") else i.clip_id
                    for i in items], stage.process_batch(items)))
    ok = res[good.path][0]
    assert isinstance(ok, Item) and ok.label == "Dog" and ok.label_id == "/m/0bt9lr" and ok.split == "train"
    assert ok.provenance["single_label"]["source_label"] == ["Dog"]
    assert res["from_label"][0].label == "Piano"
    reasons = {k: v[0].reason for k, v in res.items() if isinstance(v[0], Drop)}
    assert reasons == {good.path.replace(".", "_2."): "missing_file", "AudioSet/clips/nope.wav": "missing_file",
                       "Nowhere/x.wav": "unknown_prefix", "AudioSet/../../x.wav": "unsafe_path",
                       "multi": "multi_label"}
    for key in ("empty", "blank"):  # kept unlabelled, as the reference does (the tag stage labels them)
        assert res[key][0].label is None and res[key][0].provenance["single_label"]["unlabelled"]
    strict = ready(make_stage("single-label", {"dataset_paths": str(toy.dataset_paths),
                                               "drop_unlabelled": True, "dedupe_labels": True}))
    res = dict(zip([i.clip_id for i in items], strict.process_batch(items)))
    assert {k: res[k][0].reason for k in ("multi", "empty", "blank")} == {
        "multi": "multi_label", "empty": "empty_label", "blank": "empty_label"}


# ShandaAI/Hive pipeline/data/01_source_data/example.json (Apache-2.0), the reference's stage-1 input format
REFERENCE_STAGE1_EXAMPLE = """[
  {"text_label": ["Speech", "Music"], "audio_path": "/path/to/audio/sample_001.wav"},
  {"text_label": ["Dog"], "audio_path": "/path/to/audio/sample_002.wav"},
  {"text_label": "Rain", "audio_path": "/path/to/audio/sample_003.wav"}
]"""


def test_single_label_on_the_reference_pipeline_example(tmp_path):
    example = tmp_path / "example.json"
    example.write_text(REFERENCE_STAGE1_EXAMPLE)
    items = read_items(example)
    stage = ready(make_stage("single-label", {"check_files": False}))
    res = {it.path.rsplit("/", 1)[1]: r[0] for it, r in zip(items, stage.process_batch(items))}
    assert res["sample_001.wav"].reason == "multi_label"
    assert (res["sample_002.wav"].label, res["sample_003.wav"].label) == ("Dog", "Rain")


# ---- single-event -----------------------------------------------------------------------------
@pytest.mark.parametrize("answer, expected", [
    ("True", True), ("true", True), (" TRUE. ", True), ("**True**", True), ("Yes", True), ("yes, only one", True),
    ("False", False), ("false.", False), ("No", False), ("NO!", False), ("'False'", False), ("y", True),
    ("n", False), ("The answer is True.", True), ("Answer: false", False), ("True\nbecause", True),
])
def test_parse_bool(answer, expected):
    assert parse_bool(answer) is expected


@pytest.mark.parametrize("answer", ["", "   ", "maybe", "...", "not true", "It isn't false"])
def test_parse_bool_refuses(answer):
    with pytest.raises(UnparseableAnswer):
        parse_bool(answer)


def single_event(toy, script, retries=2, n=6):
    spec = f"{ME}.FakeJudge:" + json.dumps({"script": script})
    stage = ready(make_stage("single-event", {"dataset_paths": str(toy.dataset_paths), "judge": spec,
                                              "retries": retries}))
    items = items_of(toy, n)
    return stage, items, stage.process_batch(items)


def test_single_event_parses_retries_and_names_every_outcome(toy):
    script = [["True", " yes.", "FALSE", "**False**", "garbage", None],  # first call, 6 clips
              ["True", "True"],  # the retry of the unparseable and the failed clip
              ]
    stage, items, res = single_event(toy, script)
    first = [r[0] for r in res]
    assert [type(r).__name__ for r in first] == ["Item", "Item", "Drop", "Drop", "Item", "Item"]
    assert [r.reason for r in first if isinstance(r, Drop)] == ["multiple_events", "multiple_events"]
    assert first[4].provenance["single_event"]["answers"] == ["garbage", "True"]
    assert first[5].provenance["single_event"]["attempts"] == 2
    assert first[0].provenance["single_event"]["judge"] == "fake-judge"
    assert len(first[0].provenance["single_event"]["prompt_sha256"]) == 64
    calls = stage._judge.calls
    assert [c[0] for c in calls] == [6, 2]
    y, sr = stage.audio.read(items[0])
    assert calls[0][2][0] == len(y) and sr == items[0].native_sample_rate


def test_single_event_gives_up_with_named_reasons(toy):
    script = [["garbage", None, "True"], ["???", None], ["maybe", None]]
    stage, items, res = single_event(toy, script, retries=2, n=3)
    assert [r[0].reason for r in res[:2]] == ["judge_unparseable", "judge_failed"]
    assert res[0][0].info["judge"]["answers"] == ["garbage", "???", "maybe"]
    assert isinstance(res[2][0], Item)
    assert len(stage._judge.calls) == 3


def test_single_event_batch_failure_falls_back_to_clip_by_clip(toy):
    # a raising batch call, then the three clips one by one: one fails for good
    script = ["RAISE", ["True"], ["False"], "RAISE", "RAISE", "RAISE"]
    stage, items, res = single_event(toy, script, retries=2, n=3)
    assert [type(r[0]).__name__ for r in res] == ["Item", "Drop", "Drop"]
    assert res[1][0].reason == "multiple_events"
    assert res[2][0].reason == "judge_failed" and "ConnectionError" in res[2][0].detail


def test_single_event_wrong_answer_count_is_not_a_silent_drop(toy):
    script = [["True"], ["True"], ["False"]]  # one answer for a batch of two, then one by one
    stage, items, res = single_event(toy, script, retries=0, n=2)
    (kept,), (dropped,) = res
    # the short batch answer is used for no clip: each clip is asked again alone and gets its own answer
    assert [c[0] for c in stage._judge.calls] == [2, 1, 1]
    assert isinstance(kept, Item) and kept.clip_id == items[0].clip_id
    assert kept.provenance["single_event"]["answers"] == ["True"]
    assert kept.provenance["single_event"]["attempts"] == 1
    assert isinstance(dropped, Drop) and dropped.clip_id == items[1].clip_id
    assert (dropped.reason, dropped.detail) == ("multiple_events", "'False'")
    assert dropped.info["judge"]["answers"] == ["False"]
    # the clips asked alone are the clips themselves, at their own length
    assert stage._judge.calls[1][2] == [len(stage.audio.read(items[0])[0])]
    assert stage._judge.calls[2][2] == [len(stage.audio.read(items[1])[0])]


# ---- tag ----------------------------------------------------------------------------------------
def test_tag_resamples_to_the_taggers_rate_and_records_top_k(toy):
    spec = f"{ME}.FakeTagger:" + json.dumps({"tags": [["Bark", "/m/05tny_", 0.7], ["Dog", "/m/0bt9lr", 0.2],
                                                      ["Animal", "/m/0jbk", 0.1]]})
    stage = ready(make_stage("tag", {"dataset_paths": str(toy.dataset_paths), "tagger": spec, "top_k": 2}))
    items = items_of(toy, 8)
    assert {it.native_sample_rate for it in items} >= {22050, 48000}
    res = stage.process_batch(items)
    for it, (r,) in zip(items, res):
        assert r.label == "Bark" and r.label_id == "/m/05tny_"
        assert r.provenance["tag"]["top_k"] == [["Bark", "/m/05tny_", 0.7], ["Dog", "/m/0bt9lr", 0.2]]
        assert r.provenance["tag"]["source_label"] == it.label
    y_lens = [len(stage.audio.read(it)[0]) for it in items]
    assert stage._tagger.seen == [(resampled_length(n, it.native_sample_rate, 16000), "float32")
                                  for n, it in zip(y_lens, items)]
    prov = stage.provenance()
    assert prov["models"]["tagger"] == {"spec": spec, "model_id": "fake-tagger", "sample_rate": 16000}


def test_tag_threshold_and_failures(toy):
    spec = f"{ME}.FakeTagger:" + json.dumps({"tags": [["Dog", "/m/0bt9lr", 0.3]], "sample_rate": 32000})
    stage = ready(make_stage("tag", {"dataset_paths": str(toy.dataset_paths), "tagger": spec, "threshold": 0.5}))
    res = stage.process_batch(items_of(toy, 2))
    assert [r[0].reason for r in res] == ["low_confidence"] * 2
    assert res[0][0].info["tag"]["top_k"] == [["Dog", "/m/0bt9lr", 0.3]]
    stage = ready(make_stage("tag", {"dataset_paths": str(toy.dataset_paths),
                                     "tagger": f"{ME}.FakeTagger:fail=true"}))
    res = stage.process_batch(items_of(toy, 2))
    assert [r[0].reason for r in res] == ["tagger_failed"] * 2


# ---- leaf ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, n, expected", [
    ("2", 5, 2), (" 3.", 5, 3), ("Answer: 1", 5, 1), ("5", 5, 5), ("-1", 5, 0), ("0", 5, 0),
    ("none", 5, 0), ("None of them", 5, 0), ("+2", 5, 2),
])
def test_parse_index(answer, n, expected):  # the 1-based, lenient option (--numbering one --lenient-answers)
    assert parse_index(answer, n, "one", lenient=True) == (expected - 1 if expected else None)


@pytest.mark.parametrize("answer, error", [("-2", "InvalidAnswer"), ("-5", "InvalidAnswer"), ("6", "InvalidAnswer"),
                                           ("banana", "UnparseableAnswer"), ("", "UnparseableAnswer")])
def test_parse_index_refuses(answer, error):
    with pytest.raises(Exception) as info:
        parse_index(answer, 5, "one", lenient=True)
    assert type(info.value).__name__ == error


def test_leaf_stage_on_the_real_ontologies(toy):
    from mixing.ontology import Ontology

    hive, audioset = Ontology.from_json(HIVE_ONT), Ontology.from_json(AUDIOSET_ONT)
    base = items_of(toy, 1)[0]
    names = ["Dog", "Bark", "Music", "Speech", "Human voice", "Domestic animals, pets", "Musical instrument",
             "Christmas music", "Gramophone record", "No such class", "Human sounds"]
    items = [base.replace(clip_id=f"c{i:02d}", label=name,
                          label_id=audioset.id_of(name) if name in audioset and i % 2 else None)
             for i, name in enumerate(names)]
    by_prompt = {'"Music"': "2", '"Speech"': "-1", '"Human voice"': "0", '"Domestic animals, pets"': "none",
                 '"Musical instrument"': "-2", '"Human sounds"': "99"}
    spec = f"{ME}.FakeJudge:" + json.dumps({"by_prompt": by_prompt, "default": "banana"})
    stage = ready(make_stage("leaf", {"dataset_paths": str(toy.dataset_paths), "hive_ontology": str(HIVE_ONT),
                                      "audioset_ontology": str(AUDIOSET_ONT), "judge": spec, "retries": 1,
                                      "leaf_rule": "any-parent", "numbering": "one", "lenient_answers": True}))
    res = {it.label: r[0] for it, r in zip(items, stage.process_batch(items))}
    assert (res["Dog"].label, res["Dog"].label_id) == ("Dog", "/m/0bt9lr")
    assert res["Bark"].label == "Dog" and res["Bark"].provenance["leaf"]["climbed_from"] == "Bark"
    music_leaves = hive.leaf_descendants("Music")
    assert res["Music"].label == music_leaves[1].name and res["Music"].provenance["leaf"]["index"] == 1  # 0-based position
    assert res["Christmas music"].label == music_leaves[1].name  # pruned -> Music -> judge
    assert res["Christmas music"].provenance["leaf"]["climbed_from"] == "Christmas music"
    assert {k: v.reason for k, v in res.items() if isinstance(v, Drop)} == {
        "Speech": "no_matching_leaf", "Human voice": "no_matching_leaf",
        "Domestic animals, pets": "no_matching_leaf", "Musical instrument": "judge_invalid_index",
        "Human sounds": "judge_invalid_index", "Gramophone record": "not_in_hive",
        "No such class": "unknown_label"}
    assert "outside 1..41" in res["Human sounds"].detail
    # the prompt lists the leaves numbered from 1
    music_prompt = next(p for _, p, _ in stage._judge.calls if '"Music"' in p)
    assert f"1. {music_leaves[0].name}\n2. {music_leaves[1].name}\n" in music_prompt
    # one call per internal node, however many clips share it
    assert sum('"Music"' in p for _, p, _ in stage._judge.calls) == 1


def test_leaf_unparseable_and_no_judge(toy):
    base = items_of(toy, 1)[0].replace(label="Music", label_id="/m/04rlf")
    spec = f"{ME}.FakeJudge:" + json.dumps({"default": "banana"})
    opts = {"dataset_paths": str(toy.dataset_paths), "hive_ontology": str(HIVE_ONT),
            "audioset_ontology": str(AUDIOSET_ONT)}
    stage = ready(make_stage("leaf", {**opts, "judge": spec, "retries": 2}))
    (d,) = stage.process_batch([base])[0]
    assert d.reason == "judge_unparseable" and d.info["leaf"]["attempts"] == 3
    (d,) = ready(make_stage("leaf", opts)).process_batch([base])[0]
    assert d.reason == "internal_node"
    # without ontology options the stage reads the ontologies shipped as package data
    default = ready(make_stage("leaf", {"judge": spec}))
    assert (default.hive_ontology, default.audioset_ontology) == (str(HIVE_ONT), str(AUDIOSET_ONT))


# ---- superres -----------------------------------------------------------------------------------
def test_superres_resample_writes_44k_files(toy, tmp_path):
    stage = ready(make_stage("superres", {"dataset_paths": str(toy.dataset_paths), "backend": "resample",
                                          "output_root": str(tmp_path / "sr"), "prefix": "Hive_superres"}))
    items = [it.replace(label="Dog", label_id="/m/0bt9lr", chunk_start_second=0.5, chunk_end_second=2.5)
             for it in items_of(toy, 5)]
    res = stage.process_batch(items)
    for it, (r,) in zip(items, res):
        assert r.path.startswith("Hive_superres/") and r.path.endswith(f"/{it.clip_id}.wav")
        local = tmp_path / "sr" / r.path.split("/", 1)[1]
        info = sf.info(str(local))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "FLOAT")
        assert info.frames == int(r.chunk_end_second * 44100) == resampled_length(
            int(2.5 * it.native_sample_rate) - int(0.5 * it.native_sample_rate), it.native_sample_rate, 44100)
        y, sr = stage.audio.read(it)
        np.testing.assert_allclose(sf.read(local, dtype="float32")[0], resample(y, sr, 44100), atol=1e-6)
        assert (r.native_sample_rate, r.num_channels, r.chunk_start_second) == (44100, 1, 0.0)
        assert r.provenance["original_path"] == it.path
        assert r.provenance["superres"]["source_chunk"] == [0.5, 2.5]
    stage.finalize(tmp_path)
    mapping = json.loads((tmp_path / "dataset_paths.json").read_text())
    assert mapping["Hive_superres"] == str((tmp_path / "sr").resolve()) and "AudioSet" in mapping


def test_superres_needs_an_explicit_backend(toy, tmp_path):
    """The reference's stage is Apollo; soxr is an explicit choice, never a silent default."""
    stage = make_stage("superres", {"dataset_paths": str(toy.dataset_paths), "output_root": str(tmp_path / "sr"),
                                    "prefix": "Hive_superres"})
    with pytest.raises(StageError, match="needs --backend: 'apollo:code=.*'resample'"):
        ready(stage)


def test_superres_backend_by_name_and_its_failures(toy, tmp_path):
    base = {"dataset_paths": str(toy.dataset_paths), "output_root": str(tmp_path / "sr"), "prefix": "P",
            "audio_format": "flac"}
    items = items_of(toy, 2)
    for mode, reason in (("ok", None), ("short", "superres_bad_length"), ("raise", "superres_failed"),
                         ("nan", "superres_nonfinite")):
        stage = ready(make_stage("superres", {**base, "backend": f"{ME}.FakeSuperResolver:mode={mode}"}))
        res = [r[0] for r in stage.process_batch(items)]
        if reason is None:
            assert all(r.path.endswith(".flac") for r in res)
            assert sf.info(str(tmp_path / "sr" / res[0].path.split("/", 1)[1])).subtype == "PCM_24"
            assert res[0].provenance["superres"]["backend"] == "fake-sr"
        else:
            assert [r.reason for r in res] == [reason] * 2
    with pytest.raises(StageError, match="prefix"):
        ready(make_stage("superres", {**base, "backend": "resample", "prefix": "a/b"}))


# ---- backends ----------------------------------------------------------------------------------
def test_backend_spec_parsing():
    s = BackendSpec.parse("openai:url=http://127.0.0.1:8000/v1,model=Qwen/Qwen3-Omni,timeout=30,"
                          "stream=false,t=0.5,m=nan")
    assert s.name == "openai"
    assert s.options == {"url": "http://127.0.0.1:8000/v1", "model": "Qwen/Qwen3-Omni", "timeout": "30",
                         "stream": "false", "t": "0.5", "m": "nan"}
    assert s.typed() == {"url": "http://127.0.0.1:8000/v1", "model": "Qwen/Qwen3-Omni", "timeout": 30,
                         "stream": False, "t": 0.5, "m": "nan"}
    assert BackendSpec.parse('x:{"a": [1, 2]}').options == {"a": [1, 2]}
    assert BackendSpec.parse("qwen-omni").options == {}
    for bad in ("", "x:novalue", 'x:{"a": '):
        with pytest.raises(BackendSpecError):
            BackendSpec.parse(bad)


def test_load_backend_errors_are_actionable(tmp_path, monkeypatch):
    with pytest.raises(BackendSpecError, match="known judge backends: .*openai.*qwen-omni"):
        load_backend("judge", "no-such-backend")
    with pytest.raises(BackendSpecError, match="there is no module"):
        load_backend("judge", "hive_no_such_module_xyz.create_judge")
    (tmp_path / "hive_fake_backend_mod.py").write_text(
        "import hive_not_installed_package_xyz\ndef create_judge(**kw):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError, match="hive_not_installed_package_xyz.*pip install"):
        load_backend("judge", "hive_fake_backend_mod.create_judge")
    with pytest.raises(BackendSpecError, match="lacks the AudioJudge protocol"):
        load_backend("judge", f"{ME}.FakeTagger")
    with pytest.raises(BackendSpecError, match="rejected the options"):
        load_backend("judge", f"{ME}.FakeJudge:colour=blue")
    judge = load_backend("judge", f"{ME}.FakeJudge:default=no", device="cuda:1")
    assert judge.ask([(np.zeros(4, np.float32), 16000)], "q") == ["no"]


def test_registered_backends_of_curation_models_load_by_short_name():
    """The backends' own registry names them; building one touches no model or network."""
    pytest.importorskip("curation.models")
    from curation.stages.base import AudioJudge, SuperResolver, Tagger

    judge = load_backend("judge", "openai:url=http://127.0.0.1:9/v1,model=m,timeout=5", device="cuda:0")
    assert isinstance(judge, AudioJudge) and "m" in judge.model_id
    tagger = load_backend("tagger", "sherpa-onnx:model=/x/model.onnx,labels=/x/labels.csv")
    assert isinstance(tagger, Tagger) and tagger.sample_rate == 16000
    sr = load_backend("superres", "resample")
    assert isinstance(sr, SuperResolver)
    y = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    assert len(sr.process(y, 16000)) == resampled_length(16000, 16000, 44100)


def test_backend_gets_the_device_when_it_accepts_one():
    got = {}

    class J:
        model_id = "j"

        def ask(self, items, prompt):
            return []

    def factory(device="cpu"):
        got["device"] = device
        return J()

    import sys
    mod = sys.modules[ME]
    mod._tmp_factory = factory
    try:
        load_backend("judge", f"{ME}._tmp_factory", device="cuda:3")
        assert got["device"] == "cuda:3"
        load_backend("judge", f"{ME}._tmp_factory:device=cpu", device="cuda:3")
        assert got["device"] == "cpu"
    finally:
        del mod._tmp_factory


def test_missing_judge_option_is_an_error(toy):
    with pytest.raises(StageError, match="--judge"):
        ready(make_stage("single-event", {}))
    with pytest.raises(StageError, match="unknown stage"):
        make_stage("nope")
    with pytest.raises(StageError, match="no options"):
        make_stage("chunk", {"colour": 1})
    assert math.isclose(ChunkStage().silence_threshold, 5e-4)
