"""What flows between mining stages: the :class:`Item` record of one clip, and the :class:`Drop`
of an item left out, with its named reason."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixing.errors import HiveError


class StageError(HiveError):
    """A stage was configured wrongly or a backend broke its protocol."""


ITEM_FIELDS = ("clip_id", "path", "chunk_start_second", "chunk_end_second", "label", "label_id",
               "native_sample_rate", "num_channels", "split")
_ID_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def make_clip_id(path: str, *extra: Any) -> str:
    """A readable, unique, WebDataset-safe id: the file stem plus a hash of the path (and ``extra``)."""
    stem = _ID_BAD.sub("_", Path(path).stem).strip("_")[:48] or "clip"
    key = "\x00".join([path, *map(str, extra)])
    return f"{stem}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


@dataclass
class Item:
    """One manifest row: a whole file or a virtual chunk of it, with what the stages learned."""

    clip_id: str
    path: str
    chunk_start_second: float = 0.0
    chunk_end_second: float | None = None  # None: to the end of the file
    label: str | None = None
    label_id: str | None = None
    native_sample_rate: int | None = None
    num_channels: int | None = None
    split: str | None = None
    text_label: Any = None  # the weak label(s) of a labelled list: a string or a list of strings
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ITEM_FIELDS}
        if self.text_label is not None:
            out["text_label"] = self.text_label
        out.update(self.extra)
        out["provenance"] = self.provenance
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Item:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: raw[k] for k in known if k in raw}
        if isinstance(kwargs.get("provenance"), str):
            kwargs["provenance"] = json.loads(kwargs["provenance"]) if kwargs["provenance"] else {}
        kwargs.setdefault("provenance", {})
        if kwargs["provenance"] is None:
            kwargs["provenance"] = {}
        if kwargs.get("chunk_start_second") is None:
            kwargs["chunk_start_second"] = 0.0
        return cls(**kwargs, extra={k: v for k, v in raw.items() if k not in known})

    def replace(self, **changes: Any) -> Item:
        """A copy with ``changes`` (provenance and extra are copied, not shared)."""
        new = dataclasses.replace(self, **changes)
        if "provenance" not in changes:
            new.provenance = dict(self.provenance)
        if "extra" not in changes:
            new.extra = dict(self.extra)
        return new

    @property
    def duration(self) -> float | None:
        if self.chunk_end_second is None:
            return None
        return self.chunk_end_second - self.chunk_start_second


#: Drop reasons that say the *model* failed (the backend errored, timed out, was unreachable, or
#: its answers stayed unreadable after the retries), not that the content was judged: the runner
#: records such an item as a failure, does not mark it done, and the next run retries it.
#: Every other reason is a content decision (silent, multiple events, "no", ...) and final.
MODEL_FAILURES = frozenset({"judge_failed", "judge_unparseable", "tagger_failed", "superres_failed"})

#: What failed, by the reason's prefix (for messages).
FAILED_MODEL = {"judge": "the judge", "tagger": "the tagger", "superres": "the super-resolution model"}


def is_model_failure(reason: str) -> bool:
    return reason in MODEL_FAILURES


def failed_model(reason: str) -> str:
    return FAILED_MODEL.get(reason.split("_", 1)[0], "the model")


@dataclass
class Drop:
    """An item a stage did not keep, and why (``reason`` is a short snake_case name). A reason in
    :data:`MODEL_FAILURES` (or ``model_failure=True``) marks a model failure, retried by the next run."""

    clip_id: str
    reason: str
    detail: str = ""
    path: str = ""
    chunk_start_second: float | None = None
    chunk_end_second: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    model_failure: bool | None = None  # None: decided by the reason (MODEL_FAILURES)

    @property
    def is_model_failure(self) -> bool:
        return is_model_failure(self.reason) if self.model_failure is None else bool(self.model_failure)

    @classmethod
    def of(cls, item: Item, reason: str, detail: str = "", **info: Any) -> Drop:
        return cls(item.clip_id, reason, detail[:500], item.path, item.chunk_start_second,
                   item.chunk_end_second, info)

    def to_dict(self, stage: str) -> dict[str, Any]:
        out = {"clip_id": self.clip_id, "stage": stage, "reason": self.reason, "path": self.path,
               "chunk_start_second": self.chunk_start_second,
               "chunk_end_second": self.chunk_end_second, "detail": self.detail}
        if self.info:
            out["info"] = self.info
        if self.is_model_failure:
            out["model_failure"] = True
        return out


Result = list  # list[Item | Drop]: what one input item became
