"""Model backends of the mining stages: audio-LLM judges, AudioSet taggers, super-resolvers.

Backends are chosen by spec strings ``NAME[:KEY=VALUE,...]`` (see :mod:`curation.models.spec`)
and built by :func:`make_judge`, :func:`make_tagger` and :func:`make_superres`. Importing this
package is cheap: a backend module is imported when its spec is built, and its heavy
dependencies (torch, transformers, sherpa-onnx, httpx) and weights only on first use, inside the
worker. A missing dependency raises :class:`MissingDependencyError` naming the extra to install.

Judges (``AudioJudge``: ``model_id``, ``ask(items, prompt) -> list[str | None]``)::

    openai:url=http://127.0.0.1:8000/v1,model=qwen,timeout=30,concurrency=4,retries=3
    qwen-omni:path=/local/Qwen3-Omni-30B-A3B-Instruct[,device=auto,dtype=auto,batch_size=8]

Taggers (``Tagger``: ``model_id``, ``sample_rate``, ``tag(clips, top_k)``)::

    sherpa:model=/p/model.onnx,labels=/p/class_labels_indices.csv
    ast:path=/local/ast-finetuned-audioset[,labels=/p/class_labels_indices.csv]

Super-resolvers (``SuperResolver``: ``model_id``, ``process(y, sr) -> y44k``)::

    resample
    apollo:code=/p/Apollo,checkpoint=/p/apollo.ckpt[,config=/p/config.yaml,class=module:Class]
"""

from __future__ import annotations

import importlib
from typing import Any

from curation.models.spec import (
    EXTRA_HINT,
    BackendSpecError,
    MissingDependencyError,
    build_from_options,
    parse_spec,
)

__all__ = [
    "JUDGES", "TAGGERS", "SUPERRESOLVERS", "EXTRA_HINT", "BackendSpecError",
    "MissingDependencyError", "make_judge", "make_tagger", "make_superres", "parse_spec",
]

# name -> "module:Class" (imported only when a spec names it)
JUDGES: dict[str, str] = {
    "openai": "curation.models.openai_judge:OpenAIJudge",
    "vllm": "curation.models.openai_judge:OpenAIJudge",
    "qwen-omni": "curation.models.qwen_omni:QwenOmniJudge",
    "qwen3-omni": "curation.models.qwen_omni:QwenOmniJudge",
    "qwen2.5-omni": "curation.models.qwen_omni:QwenOmniJudge",
}
TAGGERS: dict[str, str] = {
    "sherpa": "curation.models.sherpa_tagger:SherpaTagger",
    "sherpa-onnx": "curation.models.sherpa_tagger:SherpaTagger",
    "ast": "curation.models.ast_tagger:ASTTagger",
}
SUPERRESOLVERS: dict[str, str] = {
    "resample": "curation.models.apollo:ResampleSuperResolver",
    "apollo": "curation.models.apollo:ApolloSuperResolver",
}


def _make(kind: str, registry: dict[str, str], spec: Any, required: tuple[str, ...]) -> Any:
    if not isinstance(spec, str):
        if all(hasattr(spec, attr) for attr in required):
            return spec  # already a backend object (tests, library use)
        raise BackendSpecError(
            f"{kind} backend {spec!r}: expected a spec string or an object with "
            f"{', '.join(required)}")
    name, options = parse_spec(spec)
    if name not in registry:
        raise BackendSpecError(
            f"unknown {kind} backend {name!r} in spec {spec!r}; known: {', '.join(registry)}")
    module_name, _, class_name = registry[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return build_from_options(cls, name, options)


def make_judge(spec: Any):
    """An ``AudioJudge`` from a spec string such as ``openai:url=...,model=...``."""
    return _make("judge", JUDGES, spec, ("model_id", "ask"))


def make_tagger(spec: Any):
    """A ``Tagger`` from a spec string such as ``sherpa:model=...,labels=...``."""
    return _make("tagger", TAGGERS, spec, ("model_id", "sample_rate", "tag"))


def make_superres(spec: Any):
    """A ``SuperResolver`` from a spec string: ``resample`` or ``apollo:code=...,checkpoint=...``."""
    return _make("super-resolution", SUPERRESOLVERS, spec, ("model_id", "process"))
