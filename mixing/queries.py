"""Query examples: (mixture, text query, target) for query-based separation.

An :class:`ExampleConfig` (frozen, checked) says what one rendered mixture becomes:

* ``targets="all"`` — one example with every stem (``mix``, ``sources``, ``labels``,
  ``label_ids`` …: the stream's original form);
* ``targets="each"`` — one example per source: ``mix``, ``query``, ``target`` (that source's stem),
  ``label``, ``label_id`` (its AudioSet mid), ``mix_id``, ``source_index`` (0-based), ``negative``;
* ``targets="one"`` — one example per mixture, for one source chosen per (seed, epoch, mixture).

``query`` is made from the label: one of its own names (the display name split on commas,
lower-cased: ``"Violin, fiddle"`` -> ``"violin"`` or ``"fiddle"``), put into one of
``query_templates`` (each must contain ``{label}``, e.g. ``"the sound of {label}"``; default: the
name alone); both choices are seeded per example. With a label filter only the selected sources
are targets.

``negative_rate`` adds negative queries: a label absent from the mixture and not an ancestor,
descendant or sibling of any label in it (by the ontology), with a silent target
(``negative=True``, ``source_index=-1``). With ``"each"`` a mixture gets one extra negative example
with probability ``negative_rate`` (decided per mixture and seed, the same every epoch, so a
map-style dataset has a fixed length); with ``"one"`` the example is a negative with that
probability. Negative labels are drawn from ``negative_labels``, else from the labels the run can
meet (a dynamic-mixing pool, a label filter's selection), else from the Hive ontology's classes.

Every choice reads a generator seeded by ``(seed, epoch, hash of mix_id)``: the same example for
the same mixture, whatever the worker, rank or order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import HiveError
from .label_index import LabelIndex, label_index, split_names

TARGETS = ("all", "each", "one")
#: rejection tries for a negative label before the exact (filtered) draw
_NEGATIVE_TRIES = 16
_NEGATIVE_STREAM = 1


class ExampleConfigError(HiveError, ValueError):
    """A query-example setting is malformed."""


@dataclass(frozen=True)
class ExampleConfig:
    """What a rendered mixture becomes (see the module docstring)."""

    targets: str = "all"
    query_templates: tuple[str, ...] | None = None
    negative_rate: float = 0.0
    negative_labels: tuple[str, ...] | None = None
    seed: int = 0
    #: an ontology file for label ids and negative relations (None: the shipped ontologies)
    ontology: str | None = None

    def __post_init__(self) -> None:
        if self.targets not in TARGETS:
            raise ExampleConfigError(f"targets is {self.targets!r}; expected 'all' (every stem), 'each' (one "
                                     "query example per source) or 'one' (one per mixture)")
        templates = self.query_templates
        if templates is not None:
            if isinstance(templates, str):
                templates = (templates,)
            templates = tuple(templates)
            if not templates:
                raise ExampleConfigError("query_templates is empty; give templates such as 'the sound of {label}', "
                                         "or None for the label's names alone")
            for t in templates:
                if not isinstance(t, str) or "{label}" not in t:
                    raise ExampleConfigError(f"query template {t!r} has no '{{label}}'; expected a text with "
                                             "{label} where the label's name goes, e.g. 'the sound of {label}'")
            object.__setattr__(self, "query_templates", templates)
        rate = self.negative_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                or not 0.0 <= rate <= 1.0:
            raise ExampleConfigError(f"negative_rate is {rate!r}; expected a probability from 0 to 1")
        if rate > 0 and self.targets == "all":
            raise ExampleConfigError("negative_rate needs query examples: pass targets='each' or 'one' (an "
                                     "example with every stem has no query to make negative)")
        if self.negative_labels is not None:
            labels = (self.negative_labels,) if isinstance(self.negative_labels, str) else tuple(self.negative_labels)
            if not labels or not all(isinstance(x, str) and x.strip() for x in labels):
                raise ExampleConfigError(f"negative_labels is {self.negative_labels!r}; expected label names")
            object.__setattr__(self, "negative_labels", labels)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ExampleConfigError(f"seed is {self.seed!r}; expected an integer >= 0")

    @classmethod
    def coerce(cls, targets: "ExampleConfig | str | None") -> "ExampleConfig":
        """``targets`` as a config: a config as it is, a string as ``ExampleConfig(targets=...)``."""
        if targets is None:
            return cls()
        if isinstance(targets, cls):
            return targets
        if isinstance(targets, str):
            return cls(targets)
        raise ExampleConfigError(f"targets is a {type(targets).__name__}; expected 'all', 'each', 'one' or an "
                                 "ExampleConfig")

    @property
    def queries(self) -> bool:
        """Whether examples are query examples (``each`` / ``one``)."""
        return self.targets != "all"


def mix_key(mix_id: str) -> int:
    """A stable 63-bit integer of a mixture id (the per-mixture part of every seed)."""
    return int.from_bytes(hashlib.blake2b(mix_id.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def _uniforms(seed: Sequence[int]) -> Callable[[], float]:
    values = iter(np.random.default_rng(list(seed)).random(32).tolist())
    rng_extra: list[np.random.Generator] = []

    def nxt() -> float:
        try:
            return next(values)
        except StopIteration:  # more than 32 draws (rare): continue from a generator of its own
            if not rng_extra:
                rng_extra.append(np.random.default_rng([*seed, 1 << 30]))
            return float(rng_extra[0].random())
    return nxt


def has_negative(config: ExampleConfig, mix_id: str) -> bool:
    """Whether a mixture gets a negative example with ``targets="each"`` (the same every epoch)."""
    if config.negative_rate <= 0:
        return False
    return _uniforms([config.seed, mix_key(mix_id), _NEGATIVE_STREAM])() < config.negative_rate


class QueryMaker:
    """Turns mixture examples (the ``"all"`` form) into query examples under one config.

    ``selected(labels) -> indices`` names the sources that may be targets (default: all);
    ``vocabulary`` the labels negatives are drawn from (see the module docstring)."""

    def __init__(self, config: ExampleConfig, *, selected: Callable[[Sequence[str]], list[int]] | None = None,
                 vocabulary: Sequence[str] | None = None, index: LabelIndex | None = None):
        self.config = config
        self.index = index or label_index(config.ontology)
        self.selected = selected
        vocab = config.negative_labels or vocabulary
        if vocab is None and config.negative_rate > 0:
            vocab = default_vocabulary(self.index)
        self.vocabulary = sorted(dict.fromkeys(vocab or ()))

    # ---- the pieces --------------------------------------------------------------------------
    def query(self, label: str, u: Callable[[], float]) -> str:
        names = split_names(label)
        name = names[int(u() * len(names))]
        templates = self.config.query_templates
        if not templates:
            return name
        return templates[int(u() * len(templates))].replace("{label}", name)

    def negative_label(self, present: Sequence[str], u: Callable[[], float]) -> str | None:
        """A vocabulary label unrelated to every present label, or None when there is none."""
        avoid: set[str] = set()
        for lab in present:
            avoid |= self.index.related(lab)

        def ok(lab: str) -> bool:
            return lab.casefold() not in avoid and self.index.mid(lab) not in avoid

        vocab = self.vocabulary
        if not vocab:
            return None
        for _ in range(_NEGATIVE_TRIES):
            lab = vocab[int(u() * len(vocab))]
            if ok(lab):
                return lab
        allowed = [lab for lab in vocab if ok(lab)]
        return allowed[int(u() * len(allowed))] if allowed else None

    def targets_of(self, labels: Sequence[str]) -> list[int]:
        return list(range(len(labels))) if self.selected is None else self.selected(labels)

    # ---- examples ----------------------------------------------------------------------------
    def examples(self, ex: Mapping[str, Any], epoch: int = 0) -> list[dict[str, Any]]:
        """The query examples of one mixture example (``mix``, ``sources``, ``labels``, ``mix_id`` …)."""
        cfg = self.config
        labels = list(ex["labels"])
        candidates = self.targets_of(labels)
        u = _uniforms([cfg.seed, int(epoch), mix_key(ex["mix_id"])])
        out = []
        if cfg.targets == "each":
            out = [self._positive(ex, i, u) for i in candidates]
            if has_negative(cfg, ex["mix_id"]):
                neg = self._negative(ex, labels, u)
                if neg is not None:
                    out.append(neg)
            return out
        if cfg.negative_rate > 0 and u() < cfg.negative_rate:
            neg = self._negative(ex, labels, u)
            if neg is not None:
                return [neg]
        if not candidates:
            return []
        return [self._positive(ex, candidates[int(u() * len(candidates))], u)]

    def _base(self, ex: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: ex[k] for k in ("mix_id", "split", "num_sources", "sample_rate", "target_duration") if k in ex}
        out["mix"] = ex["mix"]
        if "record" in ex:
            out["record"] = ex["record"]
        return out

    def _positive(self, ex: Mapping[str, Any], i: int, u: Callable[[], float]) -> dict[str, Any]:
        label = ex["labels"][i]
        out = self._base(ex)
        out.update(query=self.query(label, u), target=ex["sources"][i], label=label, label_id=self.index.mid(label),
                   source_index=int(i), negative=False)
        return out

    def _negative(self, ex: Mapping[str, Any], labels: Sequence[str], u: Callable[[], float]) -> dict[str, Any] | None:
        label = self.negative_label(labels, u)
        if label is None:
            return None
        node = self.index.node(label)
        name = node.name if node is not None else label
        out = self._base(ex)
        mix = ex["mix"]
        out.update(query=self.query(name, u), target=np.zeros(np.shape(mix)[-1], dtype=np.float32), label=name,
                   label_id=self.index.mid(name), source_index=-1, negative=True)
        return out


def default_vocabulary(index: LabelIndex) -> list[str]:
    """Negative labels when nothing else is known: the first ontology's classes that are not abstract."""
    if not index.ontologies:
        return []
    onto = index.ontologies[0][1]
    return [n.name for n in onto if "abstract" not in n.restrictions]


def label_ids(labels: Sequence[str], index: LabelIndex | None = None) -> list[str]:
    """AudioSet mids of labels (``""`` for a label no ontology knows)."""
    index = index or label_index()
    return [index.mid(lab) for lab in labels]
