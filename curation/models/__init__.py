"""Model backends of the mining stages and of curation: audio-LLM judges, AudioSet taggers,
super-resolvers.

Backends are named by spec strings ``NAME[:KEY=VALUE,...]`` and built by one loader,
:func:`curation.models.registry.load_backend` (:func:`make_judge`, :func:`make_tagger` and
:func:`make_superres` are its three kinds). Importing this package is cheap: a backend module is
imported when its spec is built, and its heavy dependencies (torch, transformers, sherpa-onnx,
httpx) and weights only on first use, inside the worker (:mod:`curation.models.lazy`). A missing
dependency raises :class:`MissingDependencyError` naming the extra to install.

Judges (``AudioJudge``: ``model_id``, ``ask(items, prompt) -> list[str | None]``)::

    openai:url=http://127.0.0.1:8000/v1,model=qwen,timeout=30,concurrency=4,retries=3
    qwen-omni:path=/local/Qwen3-Omni-30B-A3B-Instruct[,device=auto,dtype=auto,batch_size=8]

Taggers (``Tagger``: ``model_id``, ``sample_rate``, ``tag(clips, top_k)``)::

    sherpa:model=/p/model.onnx,labels=/p/class_labels_indices.csv
    ast:path=/local/ast-finetuned-audioset[,labels=/p/class_labels_indices.csv]

Super-resolvers (``SuperResolver``: ``model_id``, ``process(y, sr) -> y44k``)::

    resample
    apollo:code=/p/Apollo,checkpoint=/p/apollo.ckpt[,config=/p/config.yaml,class=module:Class]

A user's backend is named by a dotted path, e.g. ``mypkg.judges.create:temperature=0``.
"""

from __future__ import annotations

from curation.models.registry import (
    EXTRA_HINT,
    JUDGES,
    SUPERRESOLVERS,
    TAGGERS,
    AudioJudge,
    BackendSpec,
    BackendSpecError,
    MissingDependencyError,
    SuperResolver,
    Tagger,
    load_backend,
    make_judge,
    make_superres,
    make_tagger,
    parse_spec,
)

__all__ = [
    "JUDGES", "TAGGERS", "SUPERRESOLVERS", "EXTRA_HINT", "AudioJudge", "Tagger", "SuperResolver",
    "BackendSpec", "BackendSpecError", "MissingDependencyError", "load_backend", "make_judge",
    "make_tagger", "make_superres", "parse_spec",
]
