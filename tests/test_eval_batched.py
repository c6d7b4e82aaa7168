"""``hive eval`` with real batched separators: ``separate(mix[B, T], queries) -> [B, T]`` on the
separator's device, batch by batch; outputs of the wrong shape, dtype, device or with NaN are
named per batch (exit 1); metrics in worker processes give the same rows."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from mixing.cli import main
from mixing.evaluate import EvalOptions, evaluate
from mixing.evaluate.errors import EvalError
from mixing.evaluate.metrics import sdr_available
from mixing.evaluate.rendered import iter_rendered
from mixing.evaluate.separator import SeparatorRunner, interface_of

torch = pytest.importorskip("torch")

SEPARATORS = '''
import numpy as np
import torch

CALLS = []

def separate(mix, queries):
    CALLS.append((tuple(mix.shape), mix.dtype, str(mix.device), list(queries)))
    return mix * 0.5

def per_source(mix, sr, query):
    return np.asarray(mix) * 0.5

def wrong_shape(mix, queries):
    return mix[:, :-1]

def wrong_dtype(mix, queries):
    return mix.to(torch.bfloat16)

def wrong_device(mix, queries):
    return torch.zeros(mix.shape, device="meta")

def wrong_type(mix, queries):
    return mix.tolist()

def nan_for_dogs(mix, queries):
    out = mix.clone()
    for k, q in enumerate(queries):
        if q == "Dog":
            out[k, 10] = float("nan")
    return out

def raises(mix, queries):
    raise RuntimeError("CUDA out of memory")

def exits(mix, queries):
    raise SystemExit(0)

class Gain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(0.25))

    def forward(self, mix, queries):
        return mix * self.gain

def load():
    return Gain()
'''


@pytest.fixture(scope="module")
def seps(tmp_path_factory):
    path = tmp_path_factory.mktemp("seps") / "bseps.py"
    path.write_text(SEPARATORS)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _eval(toy_render, seps, out, name, *extra):
    return main(["eval", "--rendered", str(toy_render()), "--output", str(out), "--split", "validation",
                 "--separator", f"{seps}:{name}", "--no-sdr", "--no-plot", "--no-progress", *extra])


@pytest.mark.slow  # end to end over the toy corpus
def test_batched_separator_gets_batches_of_queries_on_its_device(toy_render, seps, tmp_path):
    assert _eval(toy_render, seps, tmp_path / "b", "separate", "--batch-size", "5", "--device", "cpu") == 0
    calls = sys.modules["_hive_separator_bseps"].CALLS
    samples = list(iter_rendered(toy_render(), "validation"))
    queries = [lab for s in samples for lab in s.labels]
    assert [q for c in calls for q in c[3]] == queries  # every source once, its label as the query, in order
    assert all(c[0][0] <= 5 and c[0][1] == 176400 and c[1] == torch.float32 and c[2] == "cpu" for c in calls)
    assert len(calls) == -(-len(queries) // 5)  # full batches (one length in the validation split)
    rows = [r for r in _rows(tmp_path / "b" / "results.csv") if r["system"] == "separator"]
    assert len(rows) == len(queries) and all(abs(float(r["si_sdri"])) < 1e-5 for r in rows)
    # the old per-source callable gives the same rows
    assert _eval(toy_render, seps, tmp_path / "p", "per_source") == 0
    old = [r for r in _rows(tmp_path / "p" / "results.csv") if r["system"] == "separator"]
    assert [(r["mix_id"], r["source_index"], r["si_sdr"][:7]) for r in old] == \
        [(r["mix_id"], r["source_index"], r["si_sdr"][:7]) for r in rows]


@pytest.mark.slow  # end to end over the toy corpus
def test_a_module_factory_runs_on_its_device(toy_render, seps, tmp_path):
    res = evaluate(toy_render(), tmp_path / "m", split="validation", separator=f"{seps}:load",
                   options=EvalOptions(batch_size=4, device="cpu", with_sdr=False, plot=False, progress=False, limit=3))
    assert res.interface == "batched" and not res.failed_batches
    assert res.summary.mean("separator") == pytest.approx(0.0, abs=1e-5)
    mod = sys.modules["_hive_separator_bseps"]
    assert interface_of(mod.Gain()) == "batched" and interface_of(mod.per_source) == "per_source"
    runner = SeparatorRunner(mod.load)
    assert runner.device == torch.device("cpu")
    with pytest.raises(EvalError, match="--device cuda:7"):
        SeparatorRunner(mod.per_source, "cuda:7")
    with pytest.raises(EvalError, match="not a torch device"):
        SeparatorRunner(mod.separate, "gpu-please")


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("name,reason,detail", [
    ("wrong_shape", "wrong_shape", "returned shape [5, 176399]; expected [5, 176400]"),
    ("wrong_dtype", "wrong_dtype", "returned dtype torch.bfloat16; expected torch.float32"),
    ("wrong_device", "wrong_device", "returned a tensor on meta; expected cpu"),
    ("wrong_type", "wrong_type", "returned a list; expected a torch.Tensor"),
])
def test_bad_outputs_are_named_per_batch_and_exit_1(toy_render, seps, tmp_path, capsys, name, reason, detail):
    assert _eval(toy_render, seps, tmp_path / "o", name, "--batch-size", "5", "--limit", "4") == 1
    out = capsys.readouterr().out
    assert f"({reason}=" in out and "batch 1 (5 queries of hive_toy_validation_00000, " in out and detail in out
    rows = _rows(tmp_path / "o" / "results.csv")
    assert {r["system"] for r in rows} == {"mixture", "irm"}  # no estimate from a refused batch


@pytest.mark.slow  # end to end over the toy corpus
def test_nan_in_one_batch_spares_the_others(toy_render, seps, tmp_path, capsys):
    assert _eval(toy_render, seps, tmp_path / "n", "nan_for_dogs", "--batch-size", "3") == 1
    out = capsys.readouterr().out
    assert "non_finite=" in out and "returned 1 NaN or infinite samples" in out
    samples = list(iter_rendered(toy_render(), "validation"))
    pairs = [(s.mix_id, i) for s in samples for i in range(s.num_sources)]
    batches = [pairs[k:k + 3] for k in range(0, len(pairs), 3)]
    labels = {(s.mix_id, i): lab for s in samples for i, lab in enumerate(s.labels)}
    spared = {p for b in batches if not any(labels[q] == "Dog" for q in b) for p in b}
    rows = [r for r in _rows(tmp_path / "n" / "results.csv") if r["system"] == "separator"]
    assert {(r["mix_id"], int(r["source_index"]) - 1) for r in rows} == spared and 0 < len(spared) < len(pairs)


def test_a_separator_that_raises_is_one_error_line(toy_render, seps, tmp_path, capsys):
    assert _eval(toy_render, seps, tmp_path / "r", "raises") == 2
    err = capsys.readouterr().err
    assert err.startswith("hive eval: error: batch 1 (8 queries of ") and "CUDA out of memory" in err
    assert err.count("\n") == 1
    assert _eval(toy_render, seps, tmp_path / "x", "exits") == 2  # sys.exit(0) in the model is no success
    assert "the separator called sys.exit(0)" in capsys.readouterr().err


@pytest.mark.slow  # end to end over the toy corpus
def test_metric_workers_give_the_same_rows(toy_render, seps, tmp_path):
    extra = [] if sdr_available() else ["--no-sdr"]
    args = ["eval", "--rendered", str(toy_render()), "--split", "validation", "--separator", f"{seps}:separate",
            "--limit", "3", "--no-plot", "--no-progress", *extra]
    assert main([*args, "--output", str(tmp_path / "w1")]) == 0
    assert main([*args, "--output", str(tmp_path / "w2"), "--num-workers", "2"]) == 0
    a, b = _rows(tmp_path / "w1" / "results.csv"), _rows(tmp_path / "w2" / "results.csv")
    assert a == b and len(a) > 0
    if sdr_available():
        assert all(r["sdr"] for r in a)
    summary = _rows(tmp_path / "w2" / "summary.csv")
    labels = {r["label"] for r in summary if r["num_sources"] == "ALL" and r["label"] != "ALL"}
    assert labels == {r["label"] for r in a}  # results per label, over every number of sources
    assert {r["num_sources"] for r in summary if r["label"] == "ALL"} == {"ALL"} | {r["num_sources"] for r in a}
