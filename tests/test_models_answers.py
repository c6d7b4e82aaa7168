"""Answer parsing shared by the judges, and the backend spec parser/factories."""

from __future__ import annotations

import sys

import pytest

from curation.models import (
    BackendSpecError,
    MissingDependencyError,
    make_judge,
    make_superres,
    make_tagger,
    parse_spec,
)
from curation.models.answers import normalise, parse_bool, parse_option
from curation.models.lazy import require
from curation.models.registry import load_backend


@pytest.mark.parametrize("answer", [
    "True", "true", "TRUE", " True.", "True\n", "**True**", "`True`", "'True'", "True, only one sound",
    "Yes", "yes.", "Yes, it contains only one type of sound.", "Answer: True", "Answer: yes",
    "The answer is True", "<think>two sounds? no, one</think>True", "True<|im_end|>",
    "assistant: True", "I think only one kind of sound is present: true",
])
def test_parse_bool_true(answer):
    assert parse_bool(answer) is True


@pytest.mark.parametrize("answer", [
    "False", "false", " FALSE ", "False.", "**False**", "No", "no, there are several sounds",
    "No, it is not true", "Answer: False", "Final answer: no", "<think>yes maybe</think> False",
    "False (multiple sounds: speech and music)",
])
def test_parse_bool_false(answer):
    assert parse_bool(answer) is False


@pytest.mark.parametrize("answer", [
    None, "", "   ", "...", "maybe", "¯\\_(ツ)_/¯ purple", "It is either true or false",
    "1", "Trueish", "untrue", "<think>True", "The sound could be a dog, yes or no I can't say",
])
def test_parse_bool_unreadable(answer):
    assert parse_bool(answer) is None


@pytest.mark.parametrize("answer,n,expected", [
    ("3", 5, 3), (" 0", 5, 0), ("4.", 5, 4), ("Index: 2", 5, 2), ("[1]", 5, 1), ("Option 3", 5, 3),
    ("The best match is 2 (Dog)", 5, 2), ("2\n", 5, 2), ("<think>maybe 4</think>1", 5, 1),
    ("-1", 5, -1), ("−1", 5, -1), ("none", 5, -1), ("None of them", 5, -1),
    ("5", 5, None), ("-2", 5, None), ("-7", 5, None), ("99", 5, None), ("3.5", 5, None),
    ("leaf_3", 5, None), ("no idea", 5, None), ("", 5, None), (None, 5, None), ("0", 0, None),
])
def test_parse_option(answer, n, expected):
    assert parse_option(answer, n) == expected


def test_parse_option_one_based_and_custom_none():
    assert parse_option("1", 3, base=1) == 0
    assert parse_option("3", 3, base=1) == 2
    assert parse_option("0", 3, base=1, none_value=0) == -1
    assert parse_option("4", 3, base=1) is None
    with pytest.raises(ValueError):
        parse_option("1", -1)


def test_normalise():
    assert normalise("  <think>x</think> Hello\n WORLD <|im_end|>") == "hello world"


def test_parse_spec():
    assert parse_spec("resample") == ("resample", {})
    assert parse_spec("OpenAI:url=http://127.0.0.1:8000/v1,model=qwen, timeout=30") == (
        "openai", {"url": "http://127.0.0.1:8000/v1", "model": "qwen", "timeout": "30"})
    assert parse_spec("apollo:code=C:/x,checkpoint=/a=b.ckpt") == (
        "apollo", {"code": "C:/x", "checkpoint": "/a=b.ckpt"})
    for bad in ["", "  ", "x:novalue", "x:a=1,a=2", "x:=1"]:
        with pytest.raises(BackendSpecError):
            parse_spec(bad)


def test_factories_reject_bad_specs():
    with pytest.raises(BackendSpecError, match="unknown judge backend 'gpt'"):
        make_judge("gpt:model=x")
    with pytest.raises(BackendSpecError, match="missing required option.*url"):
        make_judge("openai:model=x")
    with pytest.raises(BackendSpecError, match="unknown option.*colour"):
        make_judge("openai:url=http://h/v1,model=x,colour=red")
    with pytest.raises(BackendSpecError, match="is not an integer in"):
        make_judge("openai:url=http://h/v1,model=x,concurrency=lots")
    with pytest.raises(BackendSpecError, match="http"):
        make_judge("openai:url=ftp://h/v1,model=x")
    with pytest.raises(BackendSpecError, match="unknown tagger"):
        make_tagger("panns:path=/x")
    with pytest.raises(BackendSpecError, match="missing required option.*model"):
        make_tagger("sherpa:labels=/x.csv")  # labels= defaults to the shipped AudioSet index
    with pytest.raises(BackendSpecError):
        make_superres(42)


def test_factories_pass_backend_objects_through():
    class Judge:
        model_id = "fake"

        def ask(self, items, prompt):
            return ["True"] * len(items)

    judge = Judge()
    assert make_judge(judge) is judge


def test_import_is_light_and_building_loads_nothing(tmp_path):
    # building a backend from its spec touches no model file and imports no heavy package
    import subprocess
    code = (
        "import sys\n"
        "from curation.models import make_judge, make_tagger, make_superres\n"
        "j = make_judge('qwen-omni:path=/nonexistent/model')\n"
        "t = make_tagger('ast:path=/nonexistent/ast')\n"
        "s = make_tagger('sherpa:model=/nonexistent/m.onnx,labels=/nonexistent/l.csv')\n"
        "a = make_superres('apollo:code=/nonexistent,checkpoint=/nonexistent.ckpt')\n"
        "o = make_judge('openai:url=http://127.0.0.1:9/v1,model=m')\n"
        "heavy = [m for m in ('torch', 'transformers', 'sherpa_onnx', 'httpx') if m in sys.modules]\n"
        "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(tmp_path.parent), env={**__import__("os").environ,
                                                        "PYTHONPATH": str(_repo_root())})
    assert out.stdout.strip() == ""


def _repo_root():
    from pathlib import Path
    return Path(__file__).resolve().parents[1]


def test_missing_dependency_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"hive-uss\[models\]"):
        require("hive_no_such_module_xyz", "test")


def test_registered_backends_take_typed_json_options_and_the_device_they_accept():
    """The one loader converts already-typed (JSON) option values and gives ``device`` only to
    backends that take one."""
    judge = load_backend("judge", 'openai:{"url": "http://127.0.0.1:9/v1", "model": 7, "timeout": 30, '
                         '"concurrency": 4, "retries": 0}', device="cuda:0")
    assert (judge.model_name, judge.timeout, judge.concurrency, judge.retries) == ("7", 30.0, 4, 0)
    q = load_backend("judge", 'qwen-omni:{"path": "/m", "batch_size": 2.0, "system": null}', device="cpu")
    assert (q.device, q.batch_size, q.system) == ("cpu", 2, "")
    s = load_backend("tagger", "sherpa:model=/m.onnx,labels=/l.csv", device="cpu")  # takes no device
    assert s.sample_rate == 16000 and not hasattr(s, "device")
    a = load_backend("tagger", "ast:path=/ast,labels=/l.csv", device="cuda:1")
    assert a.device == "cuda:1"
    assert load_backend("tagger", "ast:path=/ast,device=cpu", device="cuda:1").device == "cpu"
    ap = load_backend("superres", 'apollo:{"code": "/c", "checkpoint": "/k.ckpt", "chunk": 5, '
                      '"overlap": 0.5, "unsafe_load": "true", "device": "cpu", '
                      '"windowing": "crossfade", "class": "m:C"}')
    assert (ap.chunk_s, ap.unsafe_load, ap.class_name, ap.windowing) == (5.0, True, "m:C", "crossfade")
    ap = load_backend("superres", "apollo:code=/c,checkpoint=/k.ckpt,chunk=5,tail=2.5")
    assert (ap.windowing, ap.tail_s) == ("reference", 2.5)
    with pytest.raises(BackendSpecError, match="tail"):  # the next window would not cover the tail
        load_backend("superres", "apollo:code=/c,checkpoint=/k.ckpt,chunk=5")
    with pytest.raises(BackendSpecError, match="is not an integer in"):
        load_backend("judge", 'qwen-omni:{"path": "/m", "batch_size": 2.5}')
    with pytest.raises(BackendSpecError, match="not a valid bool"):
        load_backend("superres", "apollo:code=/c,checkpoint=/k,unsafe_load=maybe")


def test_stage_runner_loader_builds_these_backends():
    """The stages' loader (not only the registry) builds the same backends from the same specs;
    it is part of the project, so a missing loader fails here instead of skipping."""
    from curation.models.openai_judge import OpenAIJudge
    from curation.models.sherpa_tagger import SherpaTagger
    from curation.stages.base import load_backend

    judge = load_backend("judge", "openai:url=http://127.0.0.1:9/v1/,model=m,timeout=5", "cpu")
    assert isinstance(judge, OpenAIJudge)
    assert (judge.url, judge.model_id, judge.timeout, judge.deadline) == ("http://127.0.0.1:9/v1", "openai:m", 5.0, 20.0)
    tagger = load_backend("tagger", "sherpa-onnx:model=/m.onnx,labels=/l.csv", "cpu")
    assert isinstance(tagger, SherpaTagger) and tagger.sample_rate == 16000
