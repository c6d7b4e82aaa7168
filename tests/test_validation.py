"""Validation of untrusted metadata rows: every rule, skip-and-report vs raise, and fuzzing.

``parse_mixture`` must never raise anything but ``InvalidRecordError``, and whatever it returns
must satisfy the data model's invariants (re-checked here independently of the implementation).
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mixing.errors import InvalidRecordError
from mixing.metadata import SOURCE_FIELDS, SOURCE_FLOAT_FIELDS, SOURCE_STRING_FIELDS, MixtureRecord
from mixing.metadata_io import MetadataFile, iter_records, read_metadata_file
from mixing.validation import (
    RecordWarning, ValidationReport, check_metadata_path, check_mix_id, parse_mixture,
)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def source(i: int = 0, **over: Any) -> dict[str, Any]:
    rms, snr = 0.5 + i * 0.1, -3.0 + i
    s = {
        "source_id": f"s{i + 1}", "path": f"AudioSet/dir/x{i}.wav", "label": "Dog",
        "crop_start_second": 0.0, "crop_end_second": 4.0,
        "chunk_start_second": 1.5, "chunk_end_second": 5.5,
        "rms_gain": rms, "snr_db": snr, "applied_weight": rms * 10 ** (snr / 20),
    }
    s.update(over)
    return s


def valid(n: int = 2, **over: Any) -> dict[str, Any]:
    r = {
        "mix_id": "hive_train_00001", "split": "train", "sample_rate": 44100,
        "target_duration": 4.0, "num_sources": n, "sources": [source(i) for i in range(n)],
        "global_normalization_factor": 0.8, "final_max_amplitude": 0.95,
    }
    r.update(over)
    return r


def legacy(n: int = 2, split: str = "val") -> dict[str, Any]:
    r = valid(n)
    return {
        "mix_id": r["mix_id"],
        "dataset_info": {"split": split, "sample_rate": 44100, "target_duration": 4.0},
        "num_sources": n, "sources": r["sources"],
        "mixing_params": {"global_normalization_factor": 0.8, "final_max_amplitude": 0.95},
    }


def struct_of_lists(raw: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    out["sources"] = {f: [s[f] for s in raw["sources"]] for f in SOURCE_FIELDS}
    return out


def rejected(raw: Any, **kw: Any) -> InvalidRecordError:
    with pytest.raises(InvalidRecordError) as info:
        parse_mixture(raw, **kw)
    err = info.value
    # every error is printable and serialisable
    assert err.field in str(err)
    d = err.to_dict()
    assert d["field"] == err.field and d["reason"] == "invalid_record"
    json.dumps(d)
    return err


# ---- the baseline is valid -------------------------------------------------------------------
def test_valid_record_parses():
    rec = parse_mixture(valid(3))
    assert isinstance(rec, MixtureRecord)
    assert rec.num_sources == 3 and len(rec.sources) == 3
    assert rec.sources[1].path == "AudioSet/dir/x1.wav"
    assert parse_mixture(struct_of_lists(valid(3))) == rec


# ---- each rule, with the right field ----------------------------------------------------------
def _delete(key):
    def f(r):
        del r[key]
    return f


def _delete_src(i, key):
    def f(r):
        del r["sources"][i][key]
    return f


def _set(key, value):
    def f(r):
        r[key] = value
    return f


def _set_src(i, key, value):
    def f(r):
        r["sources"][i][key] = value
    return f


MUTATIONS = [
    # missing fields
    ("missing mix_id", _delete("mix_id"), "mix_id"),
    ("missing split", _delete("split"), "split"),
    ("missing sample_rate", _delete("sample_rate"), "sample_rate"),
    ("missing target_duration", _delete("target_duration"), "target_duration"),
    ("missing sources", _delete("sources"), "sources"),
    ("missing gnf", _delete("global_normalization_factor"), "global_normalization_factor"),
    ("missing fma", _delete("final_max_amplitude"), "final_max_amplitude"),
    ("missing path", _delete_src(0, "path"), "sources[0].path"),
    ("missing label", _delete_src(1, "label"), "sources[1].label"),
    ("missing source_id", _delete_src(0, "source_id"), "sources[0].source_id"),
    ("missing snr_db", _delete_src(1, "snr_db"), "sources[1].snr_db"),
    ("missing applied_weight", _delete_src(0, "applied_weight"), "sources[0].applied_weight"),
    ("missing chunk_end", _delete_src(0, "chunk_end_second"), "sources[0].chunk_end_second"),
    # wrong types
    ("sample_rate str", _set("sample_rate", "44100"), "sample_rate"),
    ("sample_rate fractional", _set("sample_rate", 44100.5), "sample_rate"),
    ("sample_rate zero", _set("sample_rate", 0), "sample_rate"),
    ("sample_rate negative", _set("sample_rate", -44100), "sample_rate"),
    ("sample_rate None", _set("sample_rate", None), "sample_rate"),
    ("target_duration str", _set("target_duration", "4.0"), "target_duration"),
    ("target_duration zero", _set("target_duration", 0.0), "target_duration"),
    ("target_duration list", _set("target_duration", [4.0]), "target_duration"),
    ("split int", _set("split", 3), "split"),
    ("split empty", _set("split", ""), "split"),
    ("split control", _set("split", "tra\x00in"), "split"),
    ("label int", _set_src(0, "label", 5), "sources[0].label"),
    ("label empty", _set_src(0, "label", ""), "sources[0].label"),
    ("source_id None", _set_src(1, "source_id", None), "sources[1].source_id"),
    ("rms_gain str", _set_src(0, "rms_gain", "1.0"), "sources[0].rms_gain"),
    ("rms_gain None", _set_src(0, "rms_gain", None), "sources[0].rms_gain"),
    ("rms_gain negative", _set_src(0, "rms_gain", -0.1), "sources[0].rms_gain"),
    ("sources str", _set("sources", "AudioSet/x.wav"), "sources"),
    ("sources dict item not a dict", _set("sources", [1, 2]), "sources[0]"),
    ("dataset_info not object", _set("dataset_info", [1]), "dataset_info"),
    ("mixing_params not object", _set("mixing_params", "x"), "mixing_params"),
    ("gnf zero", _set("global_normalization_factor", 0.0), "global_normalization_factor"),
    ("fma negative", _set("final_max_amplitude", -1.0), "final_max_amplitude"),
    # bool is not a number
    ("sample_rate bool", _set("sample_rate", True), "sample_rate"),
    ("target_duration bool", _set("target_duration", True), "target_duration"),
    ("gnf bool", _set("global_normalization_factor", True), "global_normalization_factor"),
    ("snr bool", _set_src(0, "snr_db", False), "sources[0].snr_db"),
    ("num_sources bool", _set("num_sources", True), "num_sources"),
    # NaN / inf / huge
    ("target_duration nan", _set("target_duration", math.nan), "target_duration"),
    ("target_duration inf", _set("target_duration", math.inf), "target_duration"),
    ("gnf -inf", _set("global_normalization_factor", -math.inf), "global_normalization_factor"),
    ("fma nan", _set("final_max_amplitude", math.nan), "final_max_amplitude"),
    ("weight nan", _set_src(1, "applied_weight", math.nan), "sources[1].applied_weight"),
    ("snr inf", _set_src(0, "snr_db", math.inf), "sources[0].snr_db"),
    ("crop_end inf", _set_src(0, "crop_end_second", math.inf), "sources[0].crop_end_second"),
    ("chunk huge int", _set_src(0, "chunk_end_second", 10 ** 400), "sources[0].chunk_end_second"),
    ("gnf huge int", _set("global_normalization_factor", 10 ** 5000), "global_normalization_factor"),
    ("sample_rate huge", _set("sample_rate", 10 ** 30), "sample_rate"),
    ("sample_rate nan", _set("sample_rate", math.nan), "sample_rate"),
    # chunk / crop order
    ("chunk start == end", _set_src(0, "chunk_start_second", 5.5), "sources[0].chunk"),
    ("chunk start > end", _set_src(1, "chunk_start_second", 9.0), "sources[1].chunk"),
    ("chunk start negative", _set_src(0, "chunk_start_second", -0.5), "sources[0].chunk"),
    ("crop negative", _set_src(0, "crop_start_second", -1.0), "sources[0].crop"),
    ("crop start == end", _set_src(0, "crop_start_second", 4.0), "sources[0].crop"),
    ("crop start > end", _set_src(1, "crop_start_second", 4.5), "sources[1].crop"),
    # number of sources
    ("num_sources mismatch", _set("num_sources", 3), "num_sources"),
    ("num_sources str", _set("num_sources", "2"), "num_sources"),
    ("num_sources fractional", _set("num_sources", 2.5), "num_sources"),
    ("zero sources", lambda r: r.update(sources=[], num_sources=0), "sources"),
    ("six sources", lambda r: r.update(sources=[source(i) for i in range(6)], num_sources=6), "sources"),
    ("six sources, num_sources absent",
     lambda r: (r.update(sources=[source(i) for i in range(6)]), r.pop("num_sources")), "sources"),
    # mix_id
    ("mix_id dot", _set("mix_id", "mix.001"), "mix_id"),
    ("mix_id slash", _set("mix_id", "train/mix001"), "mix_id"),
    ("mix_id backslash", _set("mix_id", "train\\mix001"), "mix_id"),
    ("mix_id space", _set("mix_id", "mix 001"), "mix_id"),
    ("mix_id tab", _set("mix_id", "mix\t001"), "mix_id"),
    ("mix_id newline", _set("mix_id", "mix001\n"), "mix_id"),
    ("mix_id nbsp", _set("mix_id", "mix\u00a0001"), "mix_id"),
    ("mix_id NUL", _set("mix_id", "mix\x00"), "mix_id"),
    ("mix_id empty", _set("mix_id", ""), "mix_id"),
    ("mix_id too long", _set("mix_id", "m" * 256), "mix_id"),
    ("mix_id None", _set("mix_id", None), "mix_id"),
    ("mix_id bool", _set("mix_id", True), "mix_id"),
    ("mix_id float", _set("mix_id", 1.5), "mix_id"),
    ("mix_id list", _set("mix_id", ["a"]), "mix_id"),
    ("mix_id huge int", _set("mix_id", 10 ** 5000), "mix_id"),
]

BAD_PATHS = [
    "/etc/passwd",
    "AudioSet/../../etc/passwd",
    "AudioSet/a/../../x.wav",
    "..\\x",
    "AudioSet\\x.wav",
    "AudioSet/dir\\..\\..\\x.wav",
    "AudioSet/x\x00.wav",
    "AudioSet/x\n.wav",
    "AudioSet//x.wav",
    "AudioSet/x.wav/",
    "AudioSet/./x.wav",
    "../AudioSet/x.wav",
    "x.wav",
    "AudioSet",
    "",
    "C:/Windows/x.wav",
    "file:/etc/passwd",
]


@pytest.mark.parametrize("name,mutate,field", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_rule_rejected_with_field(name, mutate, field):
    raw = valid(2)
    mutate(raw)
    err = rejected(raw)
    assert err.field == field, (name, str(err))


@pytest.mark.parametrize("path", BAD_PATHS)
def test_unsafe_path_rejected(path):
    raw = valid(2)
    raw["sources"][1]["path"] = path
    err = rejected(raw)
    assert err.field == "sources[1].path"
    assert err.value == path
    with pytest.raises(InvalidRecordError):
        check_metadata_path(path)


@pytest.mark.parametrize("path", ["AudioSet/x.wav", "BBC_Sound_Effects/a/b/c d.wav",
                                  "DCASE_synth/..x/y..wav", "FSD50K/dev/音.wav", "Clotho/a:b.wav"])
def test_safe_path_accepted(path):
    assert check_metadata_path(path) == path
    raw = valid(2)
    raw["sources"][0]["path"] = path
    assert parse_mixture(raw).sources[0].path == path


def test_mix_id_rules():
    assert check_mix_id("hive_train-0001") == "hive_train-0001"
    assert check_mix_id(17) == "17"
    assert parse_mixture(valid(2, mix_id=17)).mix_id == "17"
    assert check_mix_id("m" * 255) == "m" * 255


def test_error_carries_mix_id_and_expectation():
    err = rejected(valid(2, sample_rate="44.1k"))
    assert err.mix_id == "hive_train_00001"
    assert "hive_train_00001" in str(err) and "'44.1k'" in str(err) and "integer" in err.expected


def test_six_sources_allowed_when_max_raised():
    raw = valid(6)
    assert rejected(raw).field == "sources"
    assert parse_mixture(raw, max_sources=6).num_sources == 6
    assert rejected(valid(3), max_sources=2).field == "sources"


def test_num_sources_absent_or_null_is_inferred():
    raw = valid(3)
    del raw["num_sources"]
    assert parse_mixture(raw).num_sources == 3
    assert parse_mixture(valid(4, num_sources=None)).num_sources == 4
    assert parse_mixture(valid(2, num_sources=2.0)).num_sources == 2


def test_not_a_mapping_rejected():
    for raw in (None, [], [valid(2)], "x", 3, 1.5, True):
        err = rejected(raw)
        assert err.field == "<record>"


def test_deeply_nested_value_is_reported_not_crashing():
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert rejected(valid(2, mix_id=deep)).field == "mix_id"
    assert rejected(valid(2, target_duration=deep)).field == "target_duration"


# ---- soft rule: the weight formula -------------------------------------------------------------
def test_weight_mismatch_is_a_warning_not_an_error():
    raw = valid(3)
    raw["sources"][1]["applied_weight"] = 7.0
    warnings: list[RecordWarning] = []
    rec = parse_mixture(raw, warnings=warnings)
    assert rec.sources[1].applied_weight == 7.0
    assert [w.field for w in warnings] == ["sources[1].applied_weight"]
    assert warnings[0].mix_id == "hive_train_00001" and "7.0" in warnings[0].message
    assert parse_mixture(raw) == rec  # without a warnings list: same record, no error


def test_consistent_weights_give_no_warning():
    warnings: list[RecordWarning] = []
    parse_mixture(valid(5), warnings=warnings)
    assert warnings == []
    # within the 1e-3 relative tolerance
    raw = valid(2)
    raw["sources"][0]["applied_weight"] *= 1 + 5e-4
    parse_mixture(raw, warnings=warnings)
    assert warnings == []


def test_absurd_snr_is_a_warning_with_or_without_a_warnings_list():
    raw = valid(2)
    raw["sources"][0]["snr_db"] = 1e10  # 10 ** (snr/20) overflows
    warnings: list[RecordWarning] = []
    rec = parse_mixture(raw, warnings=warnings)
    assert parse_mixture(raw) == rec
    assert [w.field for w in warnings] == ["sources[0].applied_weight"]


# ---- layouts ------------------------------------------------------------------------------------
def test_struct_of_lists_unequal_lengths_rejected():
    raw = struct_of_lists(valid(3))
    raw["sources"]["label"] = raw["sources"]["label"][:2]
    err = rejected(raw)
    assert err.field == "sources"
    assert err.value["label"] == 2 and err.value["path"] == 3


def test_struct_of_lists_missing_or_scalar_column_rejected():
    raw = struct_of_lists(valid(2))
    del raw["sources"]["snr_db"]
    assert rejected(raw).field == "sources.snr_db"
    raw = struct_of_lists(valid(2))
    raw["sources"]["path"] = "AudioSet/x.wav"
    assert rejected(raw).field == "sources.path"


def test_struct_of_lists_bad_value_names_the_source():
    raw = struct_of_lists(valid(3))
    raw["sources"]["path"][2] = "AudioSet/../x"
    assert rejected(raw).field == "sources[2].path"


def test_legacy_nested_layout_accepted_and_val_normalised():
    rec = parse_mixture(legacy(3, "val"))
    assert rec.split == "validation"
    assert rec.sample_rate == 44100 and rec.target_duration == 4.0
    assert rec.global_normalization_factor == 0.8 and rec.final_max_amplitude == 0.95
    flat = valid(3, split="validation")
    assert rec == parse_mixture(flat)
    assert parse_mixture(legacy(2, "train")).split == "train"
    assert parse_mixture(legacy(2, "test")).split == "test"


def test_legacy_missing_nested_field_rejected():
    raw = legacy(2)
    del raw["dataset_info"]["sample_rate"]
    assert rejected(raw).field == "sample_rate"
    raw = legacy(2)
    del raw["mixing_params"]["final_max_amplitude"]
    assert rejected(raw).field == "final_max_amplitude"


@pytest.mark.parametrize("alias,expected", [("val", "validation"), ("VAL", "validation"),
                                            ("valid", "validation"), ("dev", "validation"),
                                            ("validation", "validation"), ("train", "train"),
                                            ("test", "test")])
def test_split_aliases(alias, expected):
    assert parse_mixture(valid(2, split=alias)).split == expected


# ---- read_metadata_file: skip-and-report vs raise ------------------------------------------------------
def _jsonl_with_bad_lines(path) -> tuple[list[str], dict[str, int]]:
    good_ids = []
    lines = []
    for i in range(6):
        r = valid(2 + i % 3, mix_id=f"good_{i}")
        if i == 4:
            r["sources"][0]["applied_weight"] = 9.0  # warning only
        lines.append(json.dumps(r))
        good_ids.append(f"good_{i}")
    bad = [
        ('{"mix_id": "broken", ', "<json>"),
        (json.dumps({k: v for k, v in valid(2, mix_id="bad_split").items() if k != "split"}), "split"),
        (json.dumps(valid(2, mix_id="bad.dot")), "mix_id"),
        (json.dumps(valid(2, mix_id="bad_count", num_sources=4)), "num_sources"),
        (json.dumps(valid(2, mix_id="bad_nan", target_duration=float("nan"))), "target_duration"),
        ("[1, 2, 3]", "<record>"),
    ]
    p0 = valid(2, mix_id="bad_path")
    p0["sources"][1]["path"] = "/etc/passwd"
    bad.append((json.dumps(p0), "sources[1].path"))
    p1 = valid(2, mix_id="bad_path2")
    p1["sources"][0]["path"] = "AudioSet/../../etc/passwd"
    bad.append((json.dumps(p1), "sources[0].path"))
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i < len(bad):
            out.append(bad[i][0])
        out.append("")  # blank lines are ignored
    out.extend(b[0] for b in bad[len(lines):])
    path.write_text("\n".join(out) + "\n")
    counts: dict[str, int] = {}
    for _, f in bad:
        counts[f] = counts.get(f, 0) + 1
    return good_ids, counts


def test_read_shard_skip_reports_bad_lines_by_field(tmp_path):
    path = tmp_path / "m.jsonl"
    good_ids, counts = _jsonl_with_bad_lines(path)
    report = ValidationReport()
    recs = list(read_metadata_file(MetadataFile("jsonl", str(path)), on_error="skip", report=report))
    assert [r.mix_id for r in recs] == good_ids
    assert report.valid == len(good_ids)
    assert report.invalid == sum(counts.values()) == 8
    assert dict(report.errors_by_field) == counts
    assert dict(report.warnings_by_field) == {"sources[0].applied_weight": 1}
    assert {e["mix_id"] for e in report.examples} >= {"bad_split", "bad_path", "bad_count"}
    d = report.to_dict()
    json.dumps(d)
    assert d["invalid"] == 8 and d["errors_by_field"]["mix_id"] == 1
    # without a report, skipping still works
    assert [r.mix_id for r in iter_records(path, on_error="skip")] == good_ids


def test_read_shard_raise_stops_at_first_bad_line(tmp_path):
    path = tmp_path / "m.jsonl"
    _jsonl_with_bad_lines(path)
    with pytest.raises(InvalidRecordError) as info:
        list(read_metadata_file(MetadataFile("jsonl", str(path)), on_error="raise"))
    assert info.value.field == "<json>"
    assert "m.jsonl:2" in str(info.value)
    with pytest.raises(InvalidRecordError):
        list(iter_records(path))


def test_read_shard_rejects_unknown_on_error(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(valid(2)) + "\n")
    with pytest.raises(ValueError, match="on_error"):
        list(read_metadata_file(MetadataFile("jsonl", str(path)), on_error="ignore"))


def test_report_caps_examples_but_counts_everything(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(valid(2, mix_id=f"b.{i}")) + "\n" for i in range(30)))
    report = ValidationReport(max_examples=5)
    assert list(iter_records(path, on_error="skip", report=report)) == []
    assert report.invalid == 30 and len(report.examples) == 5


# ---- independent invariants -------------------------------------------------------------------
_WS_OR_CTRL = re.compile(r"[\s\x00-\x1f\x7f]")


def assert_invariants(rec: MixtureRecord) -> None:
    assert isinstance(rec, MixtureRecord)
    assert type(rec.mix_id) is str and 0 < len(rec.mix_id) <= 255
    assert not any(c in rec.mix_id for c in "./\\")
    assert not _WS_OR_CTRL.search(rec.mix_id)
    assert type(rec.split) is str and rec.split
    assert not re.search(r"[\x00-\x1f\x7f]", rec.split)
    assert rec.split.lower() not in ("val", "valid", "dev")  # legacy aliases are normalised
    assert type(rec.sample_rate) is int and 0 < rec.sample_rate <= 1_000_000
    assert type(rec.target_duration) is float and math.isfinite(rec.target_duration)
    assert 0 < rec.target_duration <= 3600
    assert rec.target_duration * rec.sample_rate <= 28_800_000  # bounded render memory
    assert type(rec.num_sources) is int and rec.num_sources == len(rec.sources)
    assert 1 <= rec.num_sources <= 5
    assert type(rec.global_normalization_factor) is float
    assert math.isfinite(rec.global_normalization_factor) and rec.global_normalization_factor > 0
    assert type(rec.final_max_amplitude) is float
    assert math.isfinite(rec.final_max_amplitude) and rec.final_max_amplitude >= 0
    for s in rec.sources:
        for name in SOURCE_STRING_FIELDS:
            v = getattr(s, name)
            assert type(v) is str and v and not re.search(r"[\x00-\x1f\x7f]", v)
        assert not s.path.startswith("/") and "\\" not in s.path
        parts = s.path.split("/")
        assert len(parts) >= 2 and all(p not in ("", ".", "..") for p in parts)
        assert ":" not in parts[0]
        for name in SOURCE_FLOAT_FIELDS:
            v = getattr(s, name)
            assert type(v) is float and math.isfinite(v)
        assert 0 <= s.chunk_start_second < s.chunk_end_second
        assert 0 <= s.crop_start_second < s.crop_end_second
        assert s.rms_gain >= 0
    # what the reader returns can be written and read back unchanged
    assert parse_mixture(rec.to_hub_row()) == rec
    assert parse_mixture(rec.to_legacy_dict()) == rec


def check(raw: Any) -> None:
    warnings: list[RecordWarning] = []
    try:
        rec = parse_mixture(raw, warnings=warnings)
    except InvalidRecordError as err:
        assert isinstance(err.field, str) and err.field
        str(err)
        json.dumps(err.to_dict())
        event("rejected")
        return
    event("accepted")
    assert_invariants(rec)
    assert all(isinstance(w, RecordWarning) for w in warnings)


def test_invariant_checker_can_fail():
    rec = parse_mixture(valid(2))
    assert_invariants(rec)
    bad = rec.replace(sources=(rec.sources[0].replace(path="../x"),) + rec.sources[1:])
    with pytest.raises(AssertionError):
        assert_invariants(bad)
    with pytest.raises(AssertionError):
        assert_invariants(rec.replace(num_sources=3))


# ---- fuzzing --------------------------------------------------------------------------------
KEYS = st.sampled_from(
    ["mix_id", "split", "sample_rate", "target_duration", "num_sources", "sources",
     "global_normalization_factor", "final_max_amplitude", "dataset_info", "mixing_params",
     *SOURCE_FIELDS]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers()
           | st.sampled_from([10 ** 400, -(10 ** 400), 2 ** 63, 0, -1, 44100, 1e308, -1e308,
                              5e-324, -0.0])
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text() | st.sampled_from(["val", "train", "AudioSet/x.wav", "../x", "/etc/passwd",
                                           "a.b", "", "\x00"]))
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS, children, max_size=10),
    max_leaves=40)


@pytest.mark.slow  # end to end over the toy corpus
@FUZZ
@given(JSONISH)
def test_fuzz_arbitrary_json_values(value):
    check(value)


SMALL_JSONISH = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=10)


@pytest.mark.slow  # end to end over the toy corpus
@FUZZ
@given(st.dictionaries(KEYS, SMALL_JSONISH, max_size=10))
def test_fuzz_arbitrary_objects(value):
    check(value)


# paths into a valid record, for all three layouts
TOP_FIELDS = ["mix_id", "split", "sample_rate", "target_duration", "num_sources", "sources",
              "global_normalization_factor", "final_max_amplitude"]


@st.composite
def mutated_records(draw):
    n = draw(st.integers(1, 5))
    layout = draw(st.sampled_from(["flat", "struct", "legacy"]))
    raw = valid(n)
    where = draw(st.sampled_from(["top", "source", "delete_top", "delete_source", "extra"]))
    value = draw(JSONISH)
    if where == "top":
        raw[draw(st.sampled_from(TOP_FIELDS))] = value
    elif where == "delete_top":
        del raw[draw(st.sampled_from(TOP_FIELDS))]
    elif where == "source":
        raw["sources"][draw(st.integers(0, n - 1))][draw(st.sampled_from(SOURCE_FIELDS))] = value
    elif where == "delete_source":
        del raw["sources"][draw(st.integers(0, n - 1))][draw(st.sampled_from(SOURCE_FIELDS))]
    else:
        raw[draw(st.text(min_size=1, max_size=8))] = value
    if layout == "struct" and isinstance(raw.get("sources"), list) and all(
            isinstance(s, dict) and set(s) == set(SOURCE_FIELDS) for s in raw["sources"]):
        raw = struct_of_lists(raw)
    elif layout == "legacy":
        info = {k: raw.pop(k) for k in ("split", "sample_rate", "target_duration") if k in raw}
        mp = {k: raw.pop(k) for k in ("global_normalization_factor", "final_max_amplitude") if k in raw}
        raw["dataset_info"], raw["mixing_params"] = info, mp
    return raw


@pytest.mark.slow  # end to end over the toy corpus
@FUZZ
@given(mutated_records())
def test_fuzz_mutated_valid_records(raw):
    check(copy.deepcopy(raw))


@FUZZ
@given(st.integers(1, 5), st.sampled_from(SOURCE_FLOAT_FIELDS),
       st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_fuzz_numeric_fields(n, name, value):
    raw = valid(n)
    raw["sources"][n - 1][name] = value
    check(raw)


def test_a_mixture_too_long_to_render_safely_is_refused():
    from mixing.validation import MAX_FRAMES

    rec = {"mix_id": "long", "split": "test", "sample_rate": 48000, "target_duration": 600.0,
           "num_sources": 1, "global_normalization_factor": 1.0, "final_max_amplitude": 0.95,
           "sources": [{"source_id": "s1", "path": "A/x.wav", "label": "Dog", "crop_start_second": 0.0,
                        "crop_end_second": 600.0, "chunk_start_second": 0.0, "chunk_end_second": 600.0,
                        "rms_gain": 1.0, "snr_db": 0.0, "applied_weight": 1.0}]}
    assert parse_mixture(rec).num_frames == MAX_FRAMES  # 10 min at 48 kHz is the limit
    with pytest.raises(InvalidRecordError) as info:
        parse_mixture({**rec, "sample_rate": 96000})
    assert info.value.field == "target_duration" and "samples per mixture" in str(info.value)
