"""What every mining stage shares: the item record, drops with named reasons, the stage class,
asking the judge, and audio access for clips. Backends (protocols and ``load_backend``) come from
the one registry, :mod:`curation.models.registry`.

A stage is a small class (a dataclass whose fields are its options). The runner feeds it the
sorted share of one rank; :meth:`Stage.run` batches the items and yields, per input item, the
kept items (zero, one or more: chunking makes several) and the drops, each drop with a reason
name. Subclasses override :meth:`Stage.process_item` (one item at a time) or
:meth:`Stage.process_batch` (model stages). Models load in :meth:`Stage.setup`, called once in
the worker before the first batch, never at import time or in ``__init__``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

from curation.models.registry import AudioJudge, SuperResolver, Tagger, load_backend
from mixing import numbers

# the stages import what they share from here: the backends of the one registry for mining and
# curation (curation/models/registry.py), the items (items.py), asking the judge (judge.py) and
# audio access (audio_access.py)
from .audio_access import AUDIO_ERRORS, AudioAccess, frames_to_seconds, read_error_reason
from .items import (
    FAILED_MODEL, ITEM_FIELDS, MODEL_FAILURES, Drop, Item, Result, StageError, failed_model, is_model_failure,
    make_clip_id,
)
from .judge import InvalidAnswer, JudgeOutcome, UnparseableAnswer, ask_judge


__all__ = [
    "AUDIO_ERRORS", "FAILED_MODEL", "ITEM_FIELDS", "MODEL_FAILURES", "AudioAccess", "AudioJudge", "Drop",
    "InvalidAnswer", "Item", "JudgeOutcome", "Result", "Stage", "StageError", "SuperResolver", "Tagger",
    "UnparseableAnswer", "ask_judge", "failed_model", "frames_to_seconds", "is_model_failure", "load_backend",
    "make_clip_id", "opt", "read_error_reason", "sha256_text",
]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- the stage -----------------------------------------------------------------------------------
def opt(default: Any, help: str, type: Callable | None = None, choices: Sequence[str] | None = None,
        flag: str | None = None, required: bool = False) -> Any:
    """A stage option: a dataclass field whose metadata drives the command line."""
    meta = {"help": help, "type": type, "choices": choices, "flag": flag, "required": required}
    return field(default=default, metadata=meta)


@dataclass
class Stage:
    """Base class. Fields are options; ``provenance()`` records them with the models and prompts."""

    name: ClassVar[str] = "stage"
    description: ClassVar[str] = ""
    default_batch_size: ClassVar[int] = 16

    dataset_paths: str | None = opt(None, "dataset_paths.json mapping corpus prefixes to local "
                                    "folders (paths of the input are <prefix>/<relative path>)")

    def __post_init__(self) -> None:
        self._check_numbers()
        self._ready = False
        self.audio = AudioAccess(self.dataset_paths)
        self.device: str | None = None

    def _check_numbers(self) -> None:
        """The options declared with a number rule (:mod:`mixing.numbers`) are checked and
        converted here too, so the Python API gets the command line's checks."""
        rules = {f.name: f.metadata["type"] for f in dataclasses.fields(self)
                 if isinstance(f.metadata.get("type"), numbers.Rule)}
        numbers.check_fields(self, rules, where=f"stage {self.name} option", error=StageError)

    # -- to override ------------------------------------------------------------------------
    def setup(self) -> None:
        """Load models (lazily, in the worker). Called once before the first batch."""

    def process_item(self, item: Item) -> Result:
        raise NotImplementedError

    def process_batch(self, items: list[Item]) -> list[Result]:
        return [self.process_item(it) for it in items]

    def models(self) -> dict[str, Any]:
        """Model ids (after setup) for provenance."""
        return {}

    def prompts(self) -> dict[str, str]:
        """Prompt templates, recorded with their sha256."""
        return {}

    def thresholds(self) -> dict[str, Any]:
        return {}

    def finalize(self, output_dir: Path) -> None:
        """Called by the merge step once every rank is done."""

    # -- shared -------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def provenance(self) -> dict[str, Any]:
        return {"stage": self.name, "options": self.options(), "thresholds": self.thresholds(),
                "models": self.models(),
                "prompts": {k: {"text": v, "sha256": sha256_text(v)} for k, v in self.prompts().items()}}

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def run(self, data: Iterable[Item], batch_size: int | None = None) -> Iterator[tuple[list[Item], list[Result]]]:
        """Generator in, generator out: yields ``(batch, results)``, one result per input item (the
        runner has already given this rank its share)."""
        size = batch_size or self.default_batch_size
        batch: list[Item] = []
        for item in data:
            batch.append(item)
            if len(batch) >= size:
                yield batch, self._checked(batch)
                batch = []
        if batch:
            yield batch, self._checked(batch)

    def _checked(self, batch: list[Item]) -> list[Result]:
        self.ensure_setup()
        results = self.process_batch(batch)
        if len(results) != len(batch):
            raise StageError(f"stage {self.name} returned {len(results)} results for {len(batch)} items")
        return results

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))
