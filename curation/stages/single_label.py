"""Stage 2, ``single-label``: keep items with at most one weak label, and whose file exists.

The label comes from ``text_label`` (a labelled list's string or list of strings) or, when that
is absent, ``label``. As the reference script (``02_filter_single_label.py``) does by default, an
item is kept when its value is a string or a list of at most one entry, counted as written (a
repeated label counts twice); an item with no label is kept unlabelled, since the tag stage
labels every clip anyway. Options: ``--dedupe-labels`` strips the labels and drops empty strings
and exact repeats before counting; ``--drop-unlabelled`` drops items without a label as
``empty_label``. Other drops: ``multi_label``, ``invalid_label``, ``missing_file`` (and
``unknown_prefix`` / ``unsafe_path`` for paths that cannot be resolved). The kept item's
``label`` is the one label, as a string (None when unlabelled); with ``--ontology`` its
``label_id`` is filled in when the name is a class of that ontology.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mixing.failures import MISSING_FILE, reason_of
from mixing.ontology import Ontology

from .base import Drop, Item, Result, Stage, opt


def label_list(value: Any, dedupe: bool = True) -> list[str] | None:
    """The labels of a string / list value, in order; None if not a label. ``dedupe``: stripped,
    distinct and non-empty only; otherwise every list entry counts, as written (the reference)."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):  # a JSON list in a CSV cell
            try:
                return label_list(json.loads(text), dedupe)
            except json.JSONDecodeError:
                pass
        return [text] if text else []
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for v in value:
            if not isinstance(v, str):
                return None
            if not dedupe:
                out.append(v)
                continue
            v = v.strip()
            if v and v not in out:
                out.append(v)
        return out
    return None


@dataclass
class SingleLabelStage(Stage):
    name = "single-label"
    description = "keep items with exactly one label whose audio file exists"
    default_batch_size = 256

    ontology: str | None = opt(None, "AudioSet-format ontology used to fill label_id from the label name")
    check_files: bool = opt(True, "drop items whose audio file does not exist", flag="--no-check-files")
    dedupe_labels: bool = opt(False, "strip labels and ignore empty and repeated ones before counting "
                              "(the reference counts list entries as written)", flag="--dedupe-labels")
    drop_unlabelled: bool = opt(False, "drop items without a label as 'empty_label' (the reference keeps "
                                "them for the tag stage to label)", flag="--drop-unlabelled")

    def setup(self) -> None:
        self._ontology = Ontology.from_json(self.ontology) if self.ontology else None

    def process_item(self, item: Item) -> Result:
        raw = item.text_label if item.text_label is not None else item.label
        labels = label_list(raw, self.dedupe_labels)
        if labels is None:
            return [Drop.of(item, "invalid_label", f"label {raw!r} is neither a string nor a list of strings")]
        labels = [v.strip() for v in labels]
        if len(labels) == 1 and not labels[0]:
            labels = []
        if not labels and self.drop_unlabelled:
            return [Drop.of(item, "empty_label", f"label {raw!r} holds no label")]
        if len(labels) > 1:
            return [Drop.of(item, "multi_label", f"{len(labels)} labels: {labels[:5]}")]
        if self.check_files:
            try:
                local = self.audio.resolve(item.path)
            except Exception as exc:  # noqa: BLE001 - classified below, never swallowed
                reason = reason_of(exc, default=None)
                if reason is None:
                    raise
                return [Drop.of(item, reason, str(exc))]
            if not local.is_file():
                return [Drop.of(item, MISSING_FILE, f"{local} does not exist")]
        label = labels[0] if labels else None
        label_id = item.label_id if labels else None
        if self._ontology is not None and label and label in self._ontology:
            label_id = self._ontology.node(label).id
        out = item.replace(label=label, label_id=label_id)
        out.provenance["single_label"] = {"source_label": raw, "dedupe_labels": self.dedupe_labels,
                                          "unlabelled": not labels}
        return [out]
