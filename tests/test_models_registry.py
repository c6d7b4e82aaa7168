"""The one backend registry: names, spec grammar, user backends, the missing-dependency error,
and that mining and curation build the same backend from the same spec string."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from curation.curate.job import CurateConfig, _Run
from curation.curate.job import make_judge as curation_make_judge
from curation.models import registry
from curation.models.registry import (
    JUDGES, SUPERRESOLVERS, TAGGERS, AudioJudge, BackendSpec, BackendSpecError,
    MissingDependencyError, SuperResolver, Tagger, load_backend,
)
from curation.stages import make_stage
from curation.stages import base as stage_base
from curation.curate import scoring
from mixing.errors import HiveError
from mixing.toy import write_toy_ontology

REPO = Path(__file__).resolve().parents[1]

USER_BACKENDS = '''
import numpy as np

BUILT = []


class EchoJudge:
    """Answers ``answer`` for every clip; records the options it was built with."""

    def __init__(self, answer="True", threshold=0.5, strict=False, device="cpu"):
        self.model_id = f"echo:{answer}"
        self.options = {"answer": answer, "threshold": threshold, "strict": strict, "device": device}
        BUILT.append(self)

    def ask(self, items, prompt):
        return [self.answer_for(y) for y, _ in items]

    def answer_for(self, y):
        return self.options["answer"] if float(np.max(np.abs(y))) > 0 else "False"


def create_judge(**options):
    return EchoJudge(**options)


def create_tagger(rate=16000):
    class T:
        model_id = "user-tagger"
        sample_rate = rate

        def tag(self, clips, top_k):
            return [[("Dog", "/m/0bt9lr", 1.0)][:top_k] for _ in clips]
    return T()


def not_a_judge(**options):
    return object()
'''


@pytest.fixture
def user_backends(tmp_path, monkeypatch):
    """A user's package on disk, importable as ``hive_user_backends.judges``."""
    pkg = tmp_path / "hive_user_backends"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "judges.py").write_text(USER_BACKENDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "hive_user_backends.judges"
    for name in ("hive_user_backends.judges", "hive_user_backends"):
        sys.modules.pop(name, None)


# ---- names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,registry_names,label", [
    ("judge", JUDGES, "judge"), ("tagger", TAGGERS, "tagger"), ("superres", SUPERRESOLVERS, "super-resolution"),
])
def test_unknown_name_lists_the_known_ones(kind, registry_names, label):
    with pytest.raises(BackendSpecError) as info:
        load_backend(kind, "no-such-model:path=/x")
    message = str(info.value)
    assert f"unknown {label} backend 'no-such-model'" in message
    listed = message.split(f"known {label} backends: ", 1)[1].split(" (", 1)[0].split(", ")
    assert listed == sorted(registry_names)  # every registered name, and only those
    assert "dotted path" in message  # and how to name a user's backend


def test_unknown_kind_and_non_spec_objects_are_clear_errors():
    with pytest.raises(BackendSpecError, match="backend kind 'vocoder'; expected one of judge, tagger, superres"):
        load_backend("vocoder", "resample")
    with pytest.raises(BackendSpecError, match="expected a spec string or an object with the Tagger protocol"):
        load_backend("tagger", 3.5)


def test_registered_names_are_case_insensitive_and_each_builds_its_kind():
    for kind, names in (("judge", JUDGES), ("tagger", TAGGERS), ("superres", SUPERRESOLVERS)):
        for name, target in names.items():
            cls_name = target.rsplit(":", 1)[1]
            spec = {"openai": "OpenAI:url=http://127.0.0.1:9/v1,model=m", "vllm": "VLLM:url=http://h/v1,model=m",
                    "sherpa": "SHERPA:model=/m.onnx", "sherpa-onnx": "Sherpa-Onnx:model=/m.onnx",
                    "ast": "AST:path=/a", "resample": "Resample",
                    "apollo": "Apollo:code=/c,checkpoint=/k.ckpt"}.get(name, f"{name.upper()}:path=/q")
            backend = load_backend(kind, spec)
            assert type(backend).__name__ == cls_name
            assert isinstance(backend, registry.PROTOCOLS[kind])


# ---- the spec grammar -------------------------------------------------------------------------------
def test_one_grammar_for_both_forms():
    s = BackendSpec.parse(" apollo : code=C:/x , checkpoint=/a=b.ckpt, ")
    assert (s.name, s.key, s.options) == ("apollo", "apollo", {"code": "C:/x", "checkpoint": "/a=b.ckpt"})
    assert str(s) == "apollo:code=C:/x,checkpoint=/a=b.ckpt"
    assert BackendSpec.parse(str(s)) == s
    j = BackendSpec.parse('My.Pkg.factory:{"labels": ["a,b", "c"], "k": 2}')
    assert (j.name, j.key, j.options) == ("My.Pkg.factory", "my.pkg.factory", {"labels": ["a,b", "c"], "k": 2})
    for bad, why in (("x:a=1,a=2", "given twice"), (":a=1", "no backend name"), ("x:[1]", "not KEY=VALUE"),
                     ('x:{"a": 1', "not valid JSON"), ("x:=1", "not KEY=VALUE")):
        with pytest.raises(BackendSpecError, match=why):
            BackendSpec.parse(bad)


# ---- user backends --------------------------------------------------------------------------------
def test_user_factory_by_dotted_path_gets_typed_options_and_the_device(user_backends):
    judge = load_backend("judge", f"{user_backends}.create_judge:answer=yes,threshold=0.25,strict=true",
                         device="cuda:2")
    assert isinstance(judge, AudioJudge)
    assert judge.options == {"answer": "yes", "threshold": 0.25, "strict": True, "device": "cuda:2"}
    clip = np.full(160, 0.5, np.float32)
    assert judge.ask([(clip, 16000), (np.zeros(160, np.float32), 16000)], "q") == ["yes", "False"]
    # a class by dotted path, with JSON options; the spec's own device wins
    judge = load_backend("judge", f'{user_backends}.EchoJudge:{{"answer": "a,b", "device": "cpu"}}', device="cuda:2")
    assert judge.options["answer"] == "a,b" and judge.options["device"] == "cpu"
    tagger = load_backend("tagger", f"{user_backends}.create_tagger:rate=32000", device="cuda:0")
    assert isinstance(tagger, Tagger) and tagger.sample_rate == 32000


def test_user_backend_errors_name_the_problem(user_backends):
    with pytest.raises(BackendSpecError, match="lacks the AudioJudge protocol"):
        load_backend("judge", f"{user_backends}.not_a_judge")
    with pytest.raises(BackendSpecError, match="lacks the Tagger protocol"):
        load_backend("tagger", f"{user_backends}.create_judge")
    with pytest.raises(BackendSpecError, match=r"rejected the options \{'colour': 'red'\}"):
        load_backend("judge", f"{user_backends}.create_judge:colour=red")
    with pytest.raises(BackendSpecError, match="has no callable 'nope'"):
        load_backend("judge", f"{user_backends}.nope")
    with pytest.raises(BackendSpecError, match="there is no module hive_user_backends.missing"):
        load_backend("judge", "hive_user_backends.missing.create")


# ---- one missing-dependency error -----------------------------------------------------------------
def test_missing_dependency_of_a_user_backend_names_package_and_extra(tmp_path, monkeypatch):
    (tmp_path / "hive_needs_absent.py").write_text("import hive_absent_dependency_q\ncreate = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError) as info:
        load_backend("judge", "hive_needs_absent.create")
    assert isinstance(info.value, HiveError) and isinstance(info.value, ImportError)
    assert "'hive_absent_dependency_q'" in str(info.value)
    assert "pip install 'hive-uss[models]'" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("spec,hidden,package", [
    ("openai:url=http://127.0.0.1:9/v1,model=m,retries=0", "httpx", "httpx"),
    ("sherpa:model=/nonexistent/m.onnx", "sherpa_onnx", "sherpa-onnx"),
    ("ast:path=/nonexistent/ast", "torch", "torch"),
    ("qwen-omni:path=/nonexistent/q", "transformers", "transformers"),
    ("apollo:code=/nonexistent,checkpoint=/nonexistent.ckpt", "torch", "torch"),
])
def test_registered_backend_without_its_dependency_raises_the_one_error(spec, hidden, package):
    """In a fresh interpreter: with the dependency present, building the backend imports nothing
    heavy (models and packages load on first use); with it made unimportable, building raises
    MissingDependencyError (dependencies are looked for, not imported), so a run is refused before
    its first item instead of failing every item."""
    kind = {"openai": "judge", "qwen-omni": "judge", "sherpa": "tagger", "ast": "tagger"}.get(
        spec.split(":")[0], "superres")
    code = textwrap.dedent(f"""
        import sys
        from curation.models import load_backend, MissingDependencyError
        load_backend({kind!r}, {spec!r})
        print("IMPORTED" if {hidden!r} in sys.modules else "LAZY")
        sys.modules[{hidden!r}] = None  # import {hidden} now fails
        try:
            load_backend({kind!r}, {spec!r})
        except MissingDependencyError as exc:
            print("MISSING", exc)
        else:
            print("NO ERROR")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    lazy, missing = out.stdout.splitlines()
    assert lazy == "LAZY"
    assert missing.startswith("MISSING "), out.stdout + out.stderr
    assert f"needs the Python package {package!r}" in missing
    assert "pip install 'hive-uss[models]'" in missing


# ---- one registry for mining and curation ---------------------------------------------------------
def test_protocols_and_loader_are_defined_once():
    assert stage_base.AudioJudge is registry.AudioJudge is scoring.AudioJudge
    assert stage_base.Tagger is Tagger and stage_base.SuperResolver is SuperResolver
    assert stage_base.load_backend is registry.load_backend
    assert curation_make_judge is registry.make_judge


def _curation_judge(tmp_path, spec):
    """The judge a curation run builds from ``--judge spec``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    meta = tmp_path / "meta.jsonl"
    meta.write_text("")
    config = CurateConfig(metadata=str(meta), ontology=str(write_toy_ontology(tmp_path / "onto.json")),
                          judge=spec, output=str(tmp_path / "out"), dataset_paths=str(tmp_path / "dp.json"),
                          system="")
    return _Run(config, None).judge


def _mining_judge(spec):
    """The judge the single-event mining stage builds from ``--judge spec``."""
    stage = make_stage("single-event", {"judge": spec})
    stage.ensure_setup()
    return stage._judge


def test_same_spec_gives_the_same_backend_in_mining_and_curation(tmp_path, user_backends):
    spec = "openai:url=http://127.0.0.1:9/v1,model=Qwen3-Omni,timeout=7,retries=1,concurrency=3,rate=16000"
    mined, curated = _mining_judge(spec), _curation_judge(tmp_path, spec)
    assert type(mined) is type(curated) and type(mined).__name__ == "OpenAIJudge"
    fields = ("model_id", "url", "timeout", "retries", "concurrency", "rate", "deadline", "max_answer_bytes")
    assert [getattr(mined, f) for f in fields] == [getattr(curated, f) for f in fields]
    assert [mined.timeout, mined.retries, mined.concurrency] == [7.0, 1, 3]
    # a user's backend by dotted path: curation takes it too, built with the same options
    user = f"{user_backends}.create_judge:answer=yes,threshold=0.75"
    mined, curated = _mining_judge(user), _curation_judge(tmp_path / "u", user)
    assert type(mined) is type(curated) and mined is not curated
    assert mined.options == curated.options == {"answer": "yes", "threshold": 0.75, "strict": False, "device": "cpu"}
    clip = [(np.full(100, 0.1, np.float32), 8000)]
    assert mined.ask(clip, "q") == curated.ask(clip, "q") == ["yes"]
    # and the same bad spec fails the same way in both
    for build in (_mining_judge, lambda s: _curation_judge(tmp_path / "v", s)):
        with pytest.raises(BackendSpecError, match="unknown judge backend 'gpt4'.*known judge backends: openai"):
            build("gpt4:model=x")
