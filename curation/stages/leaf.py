"""Stage 5, ``leaf``: map the tagger's AudioSet class onto a leaf of the Hive ontology.

* The class is a Hive leaf: kept as it is.
* It is an internal Hive node: the audio LLM picks one of its leaf descendants from a numbered
  list (1-based). The answer's first integer is the choice; ``-1``, ``0`` or "none" mean no leaf
  matches (dropped as ``no_matching_leaf``); any other number outside ``1..n`` is an error
  (``judge_invalid_index``), never Python's wraparound indexing; an answer without a number is
  asked again, then dropped as ``judge_unparseable``.
* It was pruned from Hive: its AudioSet ancestors are climbed (nearest first) to the first class
  that is in Hive, which is then treated as above. No Hive ancestor: ``not_in_hive``; a class
  unknown to both ontologies: ``unknown_label``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from mixing import packaged
from mixing.ontology import Ontology, OntologyNode

from .base import (
    AUDIO_ERRORS, Drop, InvalidAnswer, Item, Result, Stage, StageError, UnparseableAnswer,
    ask_judge, load_backend, opt, read_error_reason, sha256_text,
)

DEFAULT_PROMPT = ("This audio clip was tagged as \"{label}\", a broad sound category. Which one of "
                  "these more specific categories best describes the sound in the clip?\n{choices}\n"
                  "Answer with the number of the category only. If none of them matches, answer -1.")
_INT = re.compile(r"[-+]?\d+")
_WORD = re.compile(r"[a-z]+")
_NONE_WORDS = {"none", "neither", "nothing"}


def parse_index(answer: str, n: int) -> int:
    """The 1-based choice in ``1..n``, or 0 for "no match"; raises :class:`UnparseableAnswer` or
    :class:`InvalidAnswer`."""
    text = answer.strip().lower()
    m = _INT.search(text)
    if m is None:
        words = _WORD.findall(text)
        if words and words[0] in _NONE_WORDS:
            return 0
        raise UnparseableAnswer(answer)
    k = int(m.group())
    if k in (-1, 0):
        return 0
    if not 1 <= k <= n:
        raise InvalidAnswer(f"index {k} is outside 1..{n} (or -1 for none)")
    return k


def numbered(nodes: list[OntologyNode]) -> str:
    return "\n".join(f"{i}. {n.name}" for i, n in enumerate(nodes, 1))


@dataclass
class LeafStage(Stage):
    name = "leaf"
    description = "map tags onto Hive ontology leaves (an audio LLM picks among leaf descendants)"
    default_batch_size = 16

    hive_ontology: str | None = opt(None, "the Hive ontology (AudioSet format; default: the one shipped "
                                    "with hive-uss, mixing/data/hive_ontology.json)")
    audioset_ontology: str | None = opt(None, "the full AudioSet ontology, to climb pruned classes (default: "
                                        "the one shipped with hive-uss, mixing/data/audioset_ontology.json)")
    judge: str | None = opt(None, "judge backend NAME[:key=value,...] for internal Hive nodes; without "
                            "it such clips are dropped as 'internal_node'")
    prompt: str = opt(DEFAULT_PROMPT, "question for internal nodes; {label} and {choices} are filled in")
    retries: int = opt(2, "times an unreadable answer or failed call is asked again", type=int)

    def __post_init__(self) -> None:
        super().__post_init__()
        # resolved here, so the provenance and the resume check record the files actually read
        if not self.hive_ontology:
            self.hive_ontology = str(packaged.hive_ontology_path())
        if not self.audioset_ontology:
            self.audioset_ontology = str(packaged.audioset_ontology_path())

    def setup(self) -> None:
        for key in ("{label}", "{choices}"):
            if key not in self.prompt:
                raise StageError(f"--prompt must contain {key}; got {self.prompt!r}")
        self._hive = Ontology.from_json(self.hive_ontology)
        self._audioset = Ontology.from_json(self.audioset_ontology)
        self._judge = load_backend("judge", self.judge, self.device) if self.judge else None

    def models(self) -> dict:
        j = getattr(self, "_judge", None)
        return {"judge": {"spec": self.judge, "model_id": getattr(j, "model_id", None)}}

    def prompts(self) -> dict[str, str]:
        return {"leaf": self.prompt}

    def thresholds(self) -> dict:
        return {"retries": self.retries}

    def locate(self, item: Item) -> tuple[OntologyNode | None, dict, Drop | None]:
        """The Hive node for the item's class (climbing AudioSet ancestors if it was pruned)."""
        key = item.label_id if item.label_id and (item.label_id in self._hive or
                                                  item.label_id in self._audioset) else item.label
        if not key:
            return None, {}, Drop.of(item, "no_label", "the item has neither label nor label_id")
        if key in self._hive:
            return self._hive.node(key), {}, None
        if key not in self._audioset:
            return None, {}, Drop.of(item, "unknown_label", f"{key!r} is in neither ontology")
        start = self._audioset.node(key)
        for anc in self._audioset.ancestors(start):
            if anc.id in self._hive:
                return self._hive.node(anc.id), {"climbed_from": start.name, "climbed_from_id": start.id}, None
        return None, {}, Drop.of(item, "not_in_hive", f"{start.name!r} and its AudioSet ancestors are not in Hive")

    def process_batch(self, items: list[Item]) -> list[Result]:
        results: list[Result] = [[] for _ in items]
        asks: dict[str, list[tuple[int, dict]]] = {}
        for i, item in enumerate(items):
            node, info, drop = self.locate(item)
            if drop is not None:
                results[i] = [drop]
                continue
            info = {"from": item.label, "from_id": item.label_id, "hive_node": node.name, **info}
            if self._hive.is_leaf(node):
                results[i] = [self._keep(item, node, info)]
            elif self._judge is None:
                results[i] = [Drop.of(item, "internal_node", f"{node.name!r} is not a Hive leaf and no "
                                      "--judge was given to pick one of its leaves", leaf=info)]
            else:
                asks.setdefault(node.id, []).append((i, info))
        for node_id, members in asks.items():  # one prompt per internal node
            node = self._hive.node(node_id)
            choices = self._hive.leaf_descendants(node)
            prompt = self.prompt.replace("{label}", node.name).replace("{choices}", numbered(choices))
            audios, where = [], []
            for i, info in members:
                try:
                    audios.append(self.audio.read(items[i]))
                    where.append((i, info))
                except AUDIO_ERRORS as exc:
                    results[i] = [Drop.of(items[i], read_error_reason(exc), str(exc))]
            outcomes = ask_judge(self._judge, audios, prompt, partial(parse_index, n=len(choices)),
                                 self.retries) if audios else []
            for (i, info), o in zip(where, outcomes):
                info = {**info, "judge": self._judge.model_id, "prompt_sha256": sha256_text(prompt),
                        "num_choices": len(choices), **o.record()}
                item = items[i]
                if o.status == "failed":
                    results[i] = [Drop.of(item, "judge_failed", "; ".join(o.errors[-1:]), leaf=info)]
                elif o.status == "invalid":
                    results[i] = [Drop.of(item, "judge_invalid_index", o.errors[-1], leaf=info)]
                elif o.status != "ok":
                    results[i] = [Drop.of(item, "judge_unparseable", repr(o.answers[-1])[:200], leaf=info)]
                elif o.value == 0:
                    results[i] = [Drop.of(item, "no_matching_leaf", repr(o.answers[-1])[:200], leaf=info)]
                else:
                    results[i] = [self._keep(item, choices[o.value - 1], {**info, "index": o.value})]
        return results

    def _keep(self, item: Item, leaf: OntologyNode, info: dict) -> Item:
        out = item.replace(label=leaf.name, label_id=leaf.id)
        out.provenance["leaf"] = info
        return out
