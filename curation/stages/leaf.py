"""Stage 5, ``leaf``: map the tagger's AudioSet class onto a leaf of the Hive ontology.

Two rules decide what happens to a class (``--leaf-rule``); the default reproduces the reference
script (``05_leaf_label_qwen.py``), looked up by class name as it does:

``reference`` (default)
  * The class is a Hive node whose subtree holds exactly one leaf (a leaf itself, or an internal
    node such as "Ocean"): kept with its own name, unchanged.
  * It is a Hive node with several leaves (listed depth first, in ``child_ids`` order): the audio
    LLM picks one of them.
  * It was pruned from Hive: climb the AudioSet ontology from the class through its *last-listed*
    parent (the parent that appears last in the ontology file), to the first class that is a Hive
    node without children; that leaf is the label. Internal Hive nodes on the way are passed over.
    None found: ``not_in_hive``. A name in neither ontology: ``unknown_label``.
``any-parent``
  * A Hive leaf is kept; any internal Hive node is sent to the audio LLM with its leaf descendants
    (breadth first); a pruned class climbs all its AudioSet ancestors breadth first (every
    parent, nearest first) to the first class in Hive, leaf or not, which is then treated as above.

The LLM's choices are numbered as ``--numbering`` says: ``zero`` (default, the reference's prompt:
the leaves as a Python list, answer the 0-based index, ``-1`` for none) or ``one`` (a numbered list
from 1; ``-1``, ``0`` or "none" mean none). By default the answer must be a bare integer, as the
reference reads it (``int(answer)``); ``--lenient-answers`` takes the first integer in the text (or
a leading "none"). "None" is dropped as ``no_matching_leaf``; a number outside the list as
``judge_invalid_index`` (never Python's wraparound indexing); an unreadable answer is asked again,
then dropped as ``judge_unparseable``. Each record's ``provenance.leaf`` names the rule that ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from mixing import numbers, packaged
from mixing.ontology import Ontology, OntologyNode

from .base import (
    AUDIO_ERRORS, Drop, InvalidAnswer, Item, Result, Stage, StageError, UnparseableAnswer,
    ask_judge, load_backend, opt, read_error_reason, sha256_text,
)

REFERENCE_PROMPT = (
    "Please analyze this audio and determine which type of sound it contains from {choices}. After "
    "analysis, please return only the index of the corresponding label (the minimum index value is "
    "0). Please note that you should only return a single number, without any other symbols. At the "
    "same time, if you believe the content of the audio does not match any of the sounds described "
    "above, please return -1. Here is the index value you return:")
ONE_BASED_PROMPT = (
    "This audio clip was tagged as \"{label}\", a broad sound category. Which one of "
    "these more specific categories best describes the sound in the clip?\n{choices}\n"
    "Answer with the number of the category only. If none of them matches, answer -1.")
DEFAULT_PROMPT = REFERENCE_PROMPT
PROMPTS = {"zero": REFERENCE_PROMPT, "one": ONE_BASED_PROMPT}
RULES = ("reference", "any-parent")
_INT = re.compile(r"[-+]?\d+")
_WORD = re.compile(r"[a-z]+")
_NONE_WORDS = {"none", "neither", "nothing"}


def parse_index(answer: str, n: int, numbering: str = "zero", lenient: bool = False) -> int | None:
    """The 0-based position of the chosen leaf among ``n``, or None for "no match".

    ``numbering`` is how the prompt numbered the choices (``zero``: ``0..n-1``, -1 = none; ``one``:
    ``1..n``, -1 or 0 = none). Strict (default) reads the answer as the reference does, a bare
    integer; ``lenient`` takes its first integer, or a leading "none". Raises
    :class:`UnparseableAnswer` or :class:`InvalidAnswer`.
    """
    if numbering not in PROMPTS:
        raise ValueError(f"numbering={numbering!r}; expected 'zero' or 'one'")
    text = answer.strip()
    if lenient:
        m = _INT.search(text.lower())
        if m is None:
            words = _WORD.findall(text.lower())
            if words and words[0] in _NONE_WORDS:
                return None
            raise UnparseableAnswer(answer)
        k = int(m.group())
    else:
        try:
            k = int(text)
        except ValueError:
            raise UnparseableAnswer(answer) from None
    first = 0 if numbering == "zero" else 1
    if k == -1 or (numbering == "one" and k == 0):
        return None
    if not first <= k < n + first:
        none = "-1" if numbering == "zero" else "-1 or 0"
        raise InvalidAnswer(f"index {k} is outside {first}..{n - 1 + first} (or {none} for none)")
    return k - first


def render_choices(nodes: list[OntologyNode], numbering: str) -> str:
    """``zero``: the names as a Python list (the reference's prompt); ``one``: "1. name" lines."""
    if numbering == "zero":
        return str([n.name for n in nodes])
    return "\n".join(f"{i}. {n.name}" for i, n in enumerate(nodes, 1))


@dataclass(frozen=True)
class LeafDecision:
    """What the rule does with one class: ``keep`` a node, ``ask`` among leaves, or ``drop``."""

    action: str  # keep | ask | drop
    node: OntologyNode | None = None  # the node kept, or the Hive node whose leaves are asked
    choices: tuple[OntologyNode, ...] = ()
    reason: str = ""
    detail: str = ""
    info: dict | None = None


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
    leaf_rule: str = opt("reference", "reference (default): as the reference script, climb pruned "
                         "classes through the last-listed parent to the nearest Hive node without "
                         "children, keep Hive nodes with a single leaf; any-parent: climb every "
                         "parent breadth first to the nearest Hive node and ask the LLM for any "
                         "internal one", choices=RULES)
    numbering: str = opt("zero", "zero (default, the reference's prompt): choices as a list, 0-based "
                         "answer, -1 = none; one: choices numbered from 1, -1 or 0 = none",
                         choices=tuple(PROMPTS))
    lenient_answers: bool = opt(False, "read the first integer of the answer (or a leading 'none') "
                                "instead of requiring a bare integer as the reference does",
                                flag="--lenient-answers")
    prompt: str | None = opt(None, "question for internal nodes; {choices} (and optionally {label}) "
                             "are filled in; default: the prompt of --numbering")
    retries: int = opt(2, "times an unreadable answer or failed call is asked again", type=numbers.RETRIES)

    def __post_init__(self) -> None:
        super().__post_init__()
        # resolved here, so the provenance and the resume check record the files actually read
        if not self.hive_ontology:
            self.hive_ontology = str(packaged.hive_ontology_path())
        if not self.audioset_ontology:
            self.audioset_ontology = str(packaged.audioset_ontology_path())

    def setup(self) -> None:
        if self.leaf_rule not in RULES:
            raise StageError(f"--leaf-rule is {self.leaf_rule!r}; expected one of {', '.join(RULES)}")
        if self.numbering not in PROMPTS:
            raise StageError(f"--numbering is {self.numbering!r}; expected 'zero' or 'one'")
        if "{choices}" not in self.question:
            raise StageError(f"--prompt must contain {{choices}}; got {self.prompt!r}")
        self._hive = Ontology.from_json(self.hive_ontology)
        self._audioset = Ontology.from_json(self.audioset_ontology)
        self._hive_names = {n.name: n for n in self._hive}
        self._audioset_names = {n.name: n for n in self._audioset}
        self._last_parent: dict[str, str] = {}
        for node in self._audioset:  # file order: a later parent overwrites an earlier one
            for child in node.child_ids:
                self._last_parent[child] = node.id
        self._judge = load_backend("judge", self.judge, self.device) if self.judge else None

    @property
    def question(self) -> str:
        return self.prompt if self.prompt else PROMPTS[self.numbering]

    def models(self) -> dict:
        j = getattr(self, "_judge", None)
        return {"judge": {"spec": self.judge, "model_id": getattr(j, "model_id", None)}}

    def prompts(self) -> dict[str, str]:
        return {"leaf": self.question}

    def thresholds(self) -> dict:
        return {"retries": self.retries, "leaf_rule": self.leaf_rule, "numbering": self.numbering,
                "lenient_answers": self.lenient_answers}

    # -- the two rules ------------------------------------------------------------------------
    def decide(self, item: Item) -> LeafDecision:
        """What the configured rule does with the item's class (no model is asked here)."""
        if self.leaf_rule == "reference":
            return self._decide_reference(item)
        return self._decide_any_parent(item)

    def _dfs_leaves(self, node: OntologyNode) -> list[OntologyNode]:
        """Leaves under ``node`` depth first in ``child_ids`` order (repeats kept, as the reference)."""
        if not node.child_ids:
            return [node]
        out: list[OntologyNode] = []
        for child in self._hive.children(node):
            out.extend(self._dfs_leaves(child))
        return out

    def _decide_reference(self, item: Item) -> LeafDecision:
        name = item.label
        if (not name or (name not in self._hive_names and name not in self._audioset_names)) \
                and item.label_id and item.label_id in self._audioset:
            name = self._audioset.node(item.label_id).name
        if not name:
            return LeafDecision("drop", reason="no_label", detail="the item has neither label nor label_id")
        if name in self._hive_names:
            node = self._hive_names[name]
            leaves = self._dfs_leaves(node)
            if len(leaves) == 1:
                return LeafDecision("keep", node, info={} if leaves[0] is node else
                                    {"single_leaf_below": leaves[0].name})
            return LeafDecision("ask", node, tuple(leaves))
        if name not in self._audioset_names:
            return LeafDecision("drop", reason="unknown_label", detail=f"{name!r} is in neither ontology")
        start = self._audioset_names[name]
        current: str | None = start.id
        while current:
            if current in self._hive and self._hive.is_leaf(current):
                return LeafDecision("keep", self._hive.node(current),
                                    info={"climbed_from": start.name, "climbed_from_id": start.id})
            current = self._last_parent.get(current)
        return LeafDecision("drop", reason="not_in_hive", detail=f"{start.name!r} has no Hive leaf "
                            "among its last-listed-parent ancestors")

    def _decide_any_parent(self, item: Item) -> LeafDecision:
        key = item.label_id if item.label_id and (item.label_id in self._hive or
                                                  item.label_id in self._audioset) else item.label
        if not key:
            return LeafDecision("drop", reason="no_label", detail="the item has neither label nor label_id")
        info: dict = {}
        if key in self._hive:
            node = self._hive.node(key)
        elif key not in self._audioset:
            return LeafDecision("drop", reason="unknown_label", detail=f"{key!r} is in neither ontology")
        else:
            start = self._audioset.node(key)
            node = next((self._hive.node(a.id) for a in self._audioset.ancestors(start)
                         if a.id in self._hive),
                        None)
            if node is None:
                return LeafDecision("drop", reason="not_in_hive",
                                    detail=f"{start.name!r} and its AudioSet ancestors are not in Hive")
            info = {"climbed_from": start.name, "climbed_from_id": start.id}
        if self._hive.is_leaf(node):
            return LeafDecision("keep", node, info=info)
        return LeafDecision("ask", node, tuple(self._hive.leaf_descendants(node)), info=info)

    # -- running ------------------------------------------------------------------------------
    def process_batch(self, items: list[Item]) -> list[Result]:
        results: list[Result] = [[] for _ in items]
        asks: dict[str, list[tuple[int, dict]]] = {}
        choices_of: dict[str, tuple[OntologyNode, ...]] = {}
        for i, item in enumerate(items):
            d = self.decide(item)
            if d.action == "drop":
                results[i] = [Drop.of(item, d.reason, d.detail)]
                continue
            info = {"rule": self.leaf_rule, "from": item.label, "from_id": item.label_id,
                    "hive_node": d.node.name, **(d.info or {})}
            if d.action == "keep":
                results[i] = [self._keep(item, d.node, info)]
            elif self._judge is None:
                results[i] = [Drop.of(item, "internal_node", f"{d.node.name!r} is not a Hive leaf and no "
                                      "--judge was given to pick one of its leaves", leaf=info)]
            else:
                asks.setdefault(d.node.id, []).append((i, info))
                choices_of[d.node.id] = d.choices
        parse = partial(parse_index, numbering=self.numbering, lenient=self.lenient_answers)
        for node_id, members in asks.items():  # one prompt per internal node
            node, choices = self._hive.node(node_id), list(choices_of[node_id])
            prompt = self.question.replace("{label}", node.name).replace(
                "{choices}", render_choices(choices, self.numbering))
            audios, where = [], []
            for i, info in members:
                try:
                    audios.append(self.audio.read(items[i]))
                    where.append((i, info))
                except AUDIO_ERRORS as exc:
                    results[i] = [Drop.of(items[i], read_error_reason(exc), str(exc))]
            outcomes = ask_judge(self._judge, audios, prompt, partial(parse, n=len(choices)),
                                 self.retries) if audios else []
            for (i, info), o in zip(where, outcomes):
                info = {**info, "judge": self._judge.model_id, "prompt_sha256": sha256_text(prompt),
                        "num_choices": len(choices), "numbering": self.numbering, **o.record()}
                item = items[i]
                if o.status == "failed":
                    results[i] = [Drop.of(item, "judge_failed", "; ".join(o.errors[-1:]), leaf=info)]
                elif o.status == "invalid":
                    results[i] = [Drop.of(item, "judge_invalid_index", o.errors[-1], leaf=info)]
                elif o.status != "ok":
                    results[i] = [Drop.of(item, "judge_unparseable", repr(o.answers[-1])[:200], leaf=info)]
                elif o.value is None:
                    results[i] = [Drop.of(item, "no_matching_leaf", repr(o.answers[-1])[:200], leaf=info)]
                else:
                    # "index": the 0-based position in the list, whatever the numbering
                    results[i] = [self._keep(item, choices[o.value], {**info, "index": o.value})]
        return results

    def _keep(self, item: Item, leaf: OntologyNode, info: dict) -> Item:
        out = item.replace(label=leaf.name, label_id=leaf.id)
        out.provenance["leaf"] = info
        return out
