"""AudioSet taggers: sherpa-onnx on ONNX stand-ins made here, and a tiny random AST."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from mixing import packaged
from curation.models import make_tagger
from curation.models.labels import LabelsFileError, read_labels_csv
from mixing.errors import HiveError

LABELS = packaged.audioset_labels_path()


@pytest.fixture(scope="module")
def labels_csv() -> Path:
    """The AudioSet index shipped with the package (527 rows)."""
    return LABELS


def _table(labels_csv):
    return read_labels_csv(labels_csv)


# -- labels -----------------------------------------------------------------------------------
def test_labels_csv(labels_csv, tmp_path):
    table = _table(labels_csv)
    assert len(table) == 527
    assert (table.names[0], table.mids[0]) == ("Speech", "/m/09x0r")
    assert table.names[1] == "Male speech, man speaking"
    assert table.mid_of(0, "Speech") == "/m/09x0r"
    assert table.mid_of(5, "Speech") == "/m/09x0r"  # name wins when the row disagrees
    assert table.mid_of(10_000) == ""
    bad = tmp_path / "bad.csv"
    bad.write_text("index,mid,display_name\n1,/m/x,X\n")
    with pytest.raises(LabelsFileError, match="expected 0"):
        read_labels_csv(bad)
    with pytest.raises(LabelsFileError, match="does not exist"):
        read_labels_csv(tmp_path / "missing.csv")


TRICKY = [("/m/09x0r", "Speech"), ("/m/05zppz", "Male speech, man speaking"),
          ("/t/dd00001", 'Say "hi", then "bye"'), ("/m/x,y", "Ünïcode 鸟 \"quoted\"")]


def _write_csv(path: Path, rows, **kw) -> Path:
    """A labels CSV written by Python's csv module (CRLF line ends by default)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, **kw)
        w.writerow(["index", "mid", "display_name"])
        for i, (mid, name) in enumerate(rows):
            w.writerow([i, mid, name])
    return path


@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_NONNUMERIC, csv.QUOTE_ALL])
def test_labels_csv_reads_any_standard_quoting(tmp_path, quoting):
    table = read_labels_csv(_write_csv(tmp_path / "l.csv", TRICKY, quoting=quoting))
    assert list(zip(table.mids, table.names)) == TRICKY
    # UTF-8 BOM, LF line ends, blank lines, a space after the commas
    (tmp_path / "b.csv").write_bytes(b'\xef\xbb\xbfindex,mid,display_name\n0, /m/a, "A, a"\n\n1,/m/b,B\n\n')
    table = read_labels_csv(tmp_path / "b.csv")
    assert (table.names, table.mids) == (("A, a", "B"), ("/m/a", "/m/b"))


@pytest.mark.parametrize("text, match", [
    ("index,mid,display_name\n0,/m/a,Male speech, man speaking\n", r"line 2: 4 fields.*quote a name"),
    ("index,mid,display_name\nhello world\n", r"line 2: 1 fields"),
    ("index,mid,display_name\nzero,/m/a,A\n", r"line 2: index 'zero' is not an integer"),
    ("index,mid,display_name\n0,/m/a,A\n2,/m/b,B\n", r"line 3: index 2; expected 1"),
    ('index,mid,display_name\n0,/m/a,"A\n1,/m/b,"B"\n', r"not valid CSV"),
    ('index,mid,display_name\n0,/m/a,"two\nlines"\n', r"line break or control character"),
    ("index,mid,display_name\n0,/m/a,\n", r"empty display_name"),
    ("0,/m/a,A\n", r"lacks index, mid, display_name"),
    ("", r"is empty"),
    ("index,mid,display_name\n\n", r"no rows"),
])
def test_labels_csv_garbage_is_a_clear_error(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabelsFileError, match=match) as info:
        read_labels_csv(path)
    assert isinstance(info.value, HiveError) and str(path) in str(info.value)
    path.write_bytes(b"index,mid,display_name\n0,/m/a,\xff\xfe\n")
    with pytest.raises(LabelsFileError, match="not UTF-8"):
        read_labels_csv(path)


# -- sherpa-onnx ------------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")


def _sherpa_stand_in(path: Path, kind: str, n_cls: int = 527) -> Path:
    """An ONNX graph with the zipformer tagger's interface: x (N,T,80), x_lens (N,) -> logits.

    sherpa-onnx reads the output as probabilities (the exported zipformer ends in a sigmoid), so
    both stand-ins end in Sigmoid.
    ``bias``: logits = b, a fixed ramp (class 526 best), whatever the input.
    ``frames``: class c scores -|x_lens - c|, so the best class is the number of feature frames
    sherpa-onnx computed — 100 per second of 16 kHz audio (10 ms shift).
    """
    from onnx import TensorProto, helper
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 80]),
              helper.make_tensor_value_info("x_lens", TensorProto.INT64, ["N"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_cls])]
    if kind == "bias":
        bias = np.linspace(-3, 3, n_cls).astype(np.float32)
        init = [helper.make_tensor("W", TensorProto.FLOAT, [80, n_cls], np.zeros(80 * n_cls, np.float32)),
                helper.make_tensor("b", TensorProto.FLOAT, [n_cls], bias),
                helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
        nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
                 helper.make_node("MatMul", ["m", "W"], ["z"]),
                 helper.make_node("Add", ["z", "b"], ["pre"]),
                 helper.make_node("Sigmoid", ["pre"], ["logits"])]
    else:
        init = [helper.make_tensor("idx", TensorProto.FLOAT, [1, n_cls], np.arange(n_cls, dtype=np.float32)),
                helper.make_tensor("ax1", TensorProto.INT64, [1], [1]),
                helper.make_tensor("scale", TensorProto.FLOAT, [], [0.1])]
        nodes = [helper.make_node("Cast", ["x_lens"], ["lens_f"], to=TensorProto.FLOAT),
                 helper.make_node("Unsqueeze", ["lens_f", "ax1"], ["lens_col"]),
                 helper.make_node("Sub", ["idx", "lens_col"], ["d"]),
                 helper.make_node("Abs", ["d"], ["ad"]),
                 helper.make_node("Mul", ["ad", "scale"], ["sad"]),
                 helper.make_node("Neg", ["sad"], ["pre"]),
                 helper.make_node("Sigmoid", ["pre"], ["logits"])]
    graph = helper.make_graph(nodes, f"tagger_{kind}", inputs, outputs, initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def sherpa_models(tmp_path_factory):
    pytest.importorskip("sherpa_onnx")
    d = tmp_path_factory.mktemp("sherpa")
    return {k: _sherpa_stand_in(d / f"{k}.onnx", k) for k in ("bias", "frames")}


def test_sherpa_tagger_scores_names_mids(sherpa_models, labels_csv):
    tagger = make_tagger(f"sherpa:model={sherpa_models['bias']},labels={labels_csv}")
    assert tagger.sample_rate == 16000
    assert tagger._loaded is None  # lazy
    rng = np.random.default_rng(1)
    clips = [0.1 * rng.standard_normal(16000).astype(np.float32), np.zeros(8000, np.float32)]
    out = tagger.tag(clips, top_k=3)
    table = _table(labels_csv)
    bias = np.linspace(-3, 3, 527)
    assert len(out) == 2
    for tags in out:
        assert [t[0] for t in tags] == [table.names[526], table.names[525], table.names[524]]
        assert [t[1] for t in tags] == [table.mids[526], table.mids[525], table.mids[524]]
        np.testing.assert_allclose([t[2] for t in tags], 1 / (1 + np.exp(-bias[[526, 525, 524]])),
                                   rtol=1e-5)
        assert all(isinstance(t[2], float) for t in tags)
    assert tagger.model_id == str(sherpa_models["bias"])


def test_sherpa_tagger_features_at_16k(sherpa_models, labels_csv):
    tagger = make_tagger(f"sherpa:model={sherpa_models['frames']},labels={labels_csv}")
    rng = np.random.default_rng(2)
    one_s, half_s = (0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 8000))
    (top1,), (top2,) = tagger.tag([one_s, half_s], top_k=1)
    table = _table(labels_csv)
    # 10 ms frame shift at 16 kHz: 100 frames for 1 s, 50 for 0.5 s
    assert top1[0] == table.names[100] and top2[0] == table.names[50]
    assert top1[2] == pytest.approx(0.5)


def test_sherpa_tagger_errors(tmp_path, labels_csv, sherpa_models):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_tagger(f"sherpa:model={tmp_path / 'none.onnx'},labels={labels_csv}").tag(
            [np.zeros(160, np.float32)], 1)
    tagger = make_tagger(f"sherpa:model={sherpa_models['bias']},labels={labels_csv}")
    with pytest.raises(ValueError, match="top_k"):
        tagger.tag([np.zeros(160, np.float32)], 0)
    assert tagger.tag([], 3) == []


ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys
import numpy as np
from curation.models import make_tagger
from mixing.errors import HiveError
try:
    (tags,) = make_tagger(sys.argv[1]).tag([np.zeros(16000, np.float32)], top_k=2)
except HiveError as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(2)
print("TAGS", tags)
"""


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A 4-class stand-in (class 3 best, then 2, 1, 0)."""
    pytest.importorskip("sherpa_onnx")
    return _sherpa_stand_in(tmp_path_factory.mktemp("sherpa4") / "bias4.onnx", "bias", n_cls=4)


def _in_child(spec: str) -> tuple[int, str]:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", CHILD, spec], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    return done.returncode, done.stdout + done.stderr


def test_sherpa_tagger_names_with_commas_and_quotes_survive(small_model, tmp_path, monkeypatch):
    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    # csv.writer's CRLF line ends and quoted mids: what killed pytest in issue 11
    labels = _write_csv(tmp_path / "l.csv", TRICKY, quoting=csv.QUOTE_NONNUMERIC)
    tagger = make_tagger(f"sherpa:model={small_model},labels={labels}")
    (tags,) = tagger.tag([np.zeros(16000, np.float32)], top_k=4)
    assert [(mid, name) for name, mid, _ in tags] == TRICKY[::-1]
    # sherpa-onnx itself read the same names from our private copy, which is gone again
    stream = tagger.model.create_stream()
    stream.accept_waveform(16000, np.zeros(16000, np.float32))
    assert [e.name for e in tagger.model.compute(stream, top_k=4)] == [n for _, n in TRICKY[::-1]]
    assert list(private.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("case", ["issue11", "garbage_line", "fewer_rows", "more_rows"])
def test_sherpa_tagger_bad_labels_never_kill_the_process(small_model, tmp_path, case):
    labels = tmp_path / "labels.csv"
    if case == "issue11":  # the fallback table of the old test, as csv.writer wrote it
        _write_csv(labels, [(f"/m/{i:05d}", f"Class {i}") for i in range(4)], quoting=csv.QUOTE_NONNUMERIC)
    elif case == "garbage_line":
        labels.write_text('index,mid,display_name\n0,/m/a,"A"\n1,/m/b,B, b\n')
    else:
        _write_csv(labels, TRICKY[:3] if case == "fewer_rows" else TRICKY + [("/m/e", "E")])
    spec = f"sherpa:model={small_model},labels={labels}"
    # first in a child process: sherpa-onnx's exit() would end it with status 255
    status, out = _in_child(spec)
    if case == "issue11":
        assert status == 0, out
        assert "TAGS [('Class 3', '/m/00003'" in out
    else:
        assert status == 2, out
        expected = {"garbage_line": r"LabelsFileError: .*line 3: 4 fields",
                    "fewer_rows": r"SherpaModelError: .*outputs 4 classes but the labels file has 3 rows",
                    "more_rows": r"SherpaModelError: .*outputs 4 classes but the labels file has 5 rows"}
        assert re.search(expected[case], out), out
    # then here: pytest is still alive and gets the same answer
    if case == "issue11":
        (tags,) = make_tagger(spec).tag([np.zeros(16000, np.float32)], top_k=1)
        assert tags[0][:2] == ("Class 3", "/m/00003")
    else:
        tagger = make_tagger(spec)
        with pytest.raises(HiveError, match=expected[case].split(": ", 1)[1]) as first:
            tagger.tag([np.zeros(16000, np.float32)], top_k=1)
        with pytest.raises(HiveError) as again:  # not loaded again for every clip
            tagger.tag([np.zeros(16000, np.float32)], top_k=1)
        assert again.value is first.value


def test_sherpa_tagger_defaults_to_the_shipped_labels(sherpa_models):
    tagger = make_tagger(f"sherpa:model={sherpa_models['bias']}")
    assert Path(tagger.labels_path) == LABELS
    assert tagger.provenance["labels"] == str(LABELS)
    (tags,) = tagger.tag([np.zeros(16000, np.float32)], top_k=1)
    table = _table(LABELS)
    assert tags[0][:2] == (table.names[526], table.mids[526])


def test_sherpa_tagger_unloadable_model_is_a_clear_error(tmp_path, labels_csv):
    from curation.models.sherpa_tagger import SherpaModelError

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(SherpaModelError, match=r"cannot load model .*model\.onnx.*exit status"):
        make_tagger(f"sherpa:model={bad},labels={labels_csv}").tag([np.zeros(160, np.float32)], 1)


# -- AST --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ast_dir(tmp_path_factory, labels_csv):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    table = _table(labels_csv)
    id2label = dict(enumerate(table.names))
    config = transformers.ASTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_mel_bins=16, max_length=64, id2label=id2label,
        label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    model = transformers.ASTForAudioClassification(config).eval()
    folder = tmp_path_factory.mktemp("ast-tiny")
    model.save_pretrained(folder)
    transformers.ASTFeatureExtractor(num_mel_bins=16, max_length=64).save_pretrained(folder)
    return folder


def test_ast_tagger_end_to_end(ast_dir, labels_csv):
    tagger = make_tagger(f"ast:path={ast_dir},labels={labels_csv},device=cpu,batch_size=2")
    assert tagger.sample_rate == 16000 and tagger._loaded is None
    rng = np.random.default_rng(3)
    clips = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 8000, 24000)]
    out = tagger.tag(clips, top_k=5)
    table = _table(labels_csv)
    assert len(out) == 3
    for tags in out:
        assert len(tags) == 5
        scores = [s for _, _, s in tags]
        assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
        for name, mid, _ in tags:
            assert mid == table.mids[table.names.index(name)]
    # batched scores equal one-by-one scores (batching changes nothing)
    alone = tagger.tag(clips[1:2], top_k=5)[0]
    assert [t[0] for t in alone] == [t[0] for t in out[1]]
    np.testing.assert_allclose([t[2] for t in alone], [t[2] for t in out[1]], rtol=1e-4)
    # scores are the sigmoid of the logits
    import torch
    st = tagger._loaded
    feats = st["feature_extractor"](clips[:1], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = st["model"](**feats).logits[0].numpy()
    assert out[0][0][2] == pytest.approx(float(1 / (1 + np.exp(-logits.max()))), rel=1e-4)


def test_ast_tagger_without_labels_has_empty_mids(ast_dir):
    tagger = make_tagger(f"ast:path={ast_dir},device=cpu")
    (tags,) = tagger.tag([np.zeros(16000, np.float32)], top_k=2)
    assert [mid for _, mid, _ in tags] == ["", ""]


def test_ast_tagger_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_tagger(f"ast:path={tmp_path / 'nope'}").tag([np.zeros(16, np.float32)], 1)
