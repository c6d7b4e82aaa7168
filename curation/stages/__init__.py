"""The six mining stages, by command name (see each module's docstring)."""

from __future__ import annotations

from typing import Any

from .base import Stage, StageError
from .chunk import ChunkStage
from .leaf import LeafStage
from .single_event import SingleEventStage
from .single_label import SingleLabelStage
from .superres import SuperResStage
from .tag import TagStage

STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (
    ChunkStage, SingleLabelStage, SingleEventStage, TagStage, LeafStage, SuperResStage)}


def make_stage(name: str, options: dict[str, Any] | None = None) -> Stage:
    """A stage by its command name, with options (field name -> value)."""
    if name not in STAGES:
        raise StageError(f"unknown stage {name!r}; expected one of {', '.join(STAGES)}")
    cls = STAGES[name]
    known = {f.name for f in cls.option_fields()}
    unknown = set(options or {}) - known
    if unknown:
        raise StageError(f"stage {name!r} has no options {sorted(unknown)}; known: {sorted(known)}")
    return cls(**(options or {}))
