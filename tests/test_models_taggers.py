"""AudioSet taggers: sherpa-onnx on ONNX stand-ins made here, and a tiny random AST."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mixing import packaged
from curation.models import make_tagger
from curation.models.labels import LabelsFileError, read_labels_csv

LABELS = packaged.audioset_labels_path()


@pytest.fixture(scope="module")
def labels_csv(tmp_path_factory) -> Path:
    if LABELS.is_file():
        return LABELS
    # fallback: a made-up 527-row table in the same format
    path = tmp_path_factory.mktemp("labels") / "class_labels_indices.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["index", "mid", "display_name"])
        for i in range(527):
            w.writerow([i, f"/m/{i:05d}", f"Class {i}"])
    return path


def _table(labels_csv):
    return read_labels_csv(labels_csv)


# -- labels -----------------------------------------------------------------------------------
def test_labels_csv(labels_csv, tmp_path):
    table = _table(labels_csv)
    assert len(table) == 527
    if labels_csv == LABELS:
        assert (table.names[0], table.mids[0]) == ("Speech", "/m/09x0r")
        assert table.mid_of(0, "Speech") == "/m/09x0r"
        assert table.mid_of(5, "Speech") == "/m/09x0r"  # name wins when the row disagrees
    assert table.mid_of(10_000) == ""
    bad = tmp_path / "bad.csv"
    bad.write_text("index,mid,display_name\n1,/m/x,X\n")
    with pytest.raises(LabelsFileError, match="expected 0"):
        read_labels_csv(bad)
    with pytest.raises(LabelsFileError, match="does not exist"):
        read_labels_csv(tmp_path / "missing.csv")


# -- sherpa-onnx ------------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")


def _sherpa_stand_in(path: Path, kind: str) -> Path:
    """An ONNX graph with the zipformer tagger's interface: x (N,T,80), x_lens (N,) -> logits.

    sherpa-onnx reads the output as probabilities (the exported zipformer ends in a sigmoid), so
    both stand-ins end in Sigmoid.
    ``bias``: logits = b, a fixed ramp (class 526 best), whatever the input.
    ``frames``: class c scores -|x_lens - c|, so the best class is the number of feature frames
    sherpa-onnx computed — 100 per second of 16 kHz audio (10 ms shift).
    """
    from onnx import TensorProto, helper
    n_cls = 527
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
    assert tagger._tagger is None  # lazy
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
