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
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

import logging

import numpy as np

from curation.models.registry import AudioJudge, SuperResolver, Tagger, load_backend  # noqa: F401
from mixing import numbers
from mixing.audio import chunk_frames, probe, read_frames, to_mono
from mixing.corpora import DatasetPaths
from mixing.errors import HiveError
from mixing.failures import UNREADABLE_AUDIO, reason_of

log = logging.getLogger(__name__)

# ---- model backends: one registry for mining and curation (curation/models/registry.py) ---------
# re-exported for the stages: AudioJudge, Tagger, SuperResolver and load_backend


class StageError(HiveError):
    """A stage was configured wrongly or a backend broke its protocol."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- records -------------------------------------------------------------------------------------
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


# ---- asking the judge -----------------------------------------------------------------------------
class UnparseableAnswer(HiveError, ValueError):
    """The judge's answer cannot be read; the question is asked again."""


class InvalidAnswer(HiveError, ValueError):
    """The judge's answer is readable but not allowed (e.g. an index out of range); not retried."""


@dataclass
class JudgeOutcome:
    """What the judge said about one clip over all attempts."""

    status: str = "pending"  # ok | unparseable | failed | invalid
    value: Any = None
    answers: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"answers": self.answers, "attempts": len(self.answers)}
        if self.errors:
            out["errors"] = self.errors[-3:]
        return out


def _safe_ask(judge: AudioJudge, audios: list[tuple[np.ndarray, int]],
              prompt: str) -> list[tuple[str | None, str | None]]:
    """One answer (or None and an error) per clip; a failing batch call is retried clip by clip,
    so one bad clip cannot take its batch with it."""
    def checked(answers: Any, n: int) -> list[str | None]:
        if not isinstance(answers, (list, tuple)) or len(answers) != n:
            raise StageError(f"judge {getattr(judge, 'model_id', '?')} returned {type(answers).__name__} "
                             f"of length {len(answers) if hasattr(answers, '__len__') else '?'} for {n} clips")
        return [a if isinstance(a, str) else None for a in answers]

    def no_answer() -> str:  # the backend's own account of its last failed call, if it keeps one
        cause = getattr(judge, "last_error", None)
        return f"no answer: {cause}"[:300] if isinstance(cause, str) and cause else "no answer"

    try:
        return [(a, None if a is not None else no_answer()) for a in checked(judge.ask(audios, prompt), len(audios))]
    except Exception as exc:  # noqa: BLE001 - a backend error is recorded per clip, never swallowed
        if len(audios) == 1:
            return [(None, f"{type(exc).__name__}: {exc}"[:300])]
        log.warning("judge batch of %d failed (%s: %s); asking clip by clip", len(audios),
                    type(exc).__name__, exc)
    out = []
    for audio in audios:
        try:
            (a,) = checked(judge.ask([audio], prompt), 1)
            out.append((a, None if a is not None else no_answer()))
        except Exception as exc:  # noqa: BLE001
            out.append((None, f"{type(exc).__name__}: {exc}"[:300]))
    return out


def ask_judge(judge: AudioJudge, audios: list[tuple[np.ndarray, int]], prompt: str,
              parse: Callable[[str], Any], retries: int) -> list[JudgeOutcome]:
    """Ask ``prompt`` about every clip; failed calls and unparseable answers are asked again up to
    ``retries`` more times. Every clip gets an outcome: nothing is silently lost."""
    outcomes = [JudgeOutcome() for _ in audios]
    pending = list(range(len(audios)))
    for _ in range(retries + 1):
        if not pending:
            break
        answers = _safe_ask(judge, [audios[i] for i in pending], prompt)
        again = []
        for i, (answer, error) in zip(pending, answers):
            o = outcomes[i]
            o.answers.append(answer)
            if answer is None:
                o.status = "failed"
                o.errors.append(error or "no answer")
                again.append(i)
                continue
            try:
                o.value = parse(answer)
                o.status = "ok"
            except UnparseableAnswer:
                o.status = "unparseable"
                again.append(i)
            except InvalidAnswer as exc:
                o.status = "invalid"
                o.errors.append(str(exc))
        pending = again
    return outcomes


# ---- audio access --------------------------------------------------------------------------------
def read_error_reason(exc: BaseException) -> str:
    """The drop reason of an error met reading an item's audio, in the vocabulary every command
    shares (:func:`mixing.failures.reason_of`); any other read error (soundfile's
    ``RuntimeError``, an ``OSError``) is ``unreadable_audio``."""
    return reason_of(exc, default=UNREADABLE_AUDIO)


class AudioAccess:
    """Resolves item paths (``<prefix>/<rel>`` through ``dataset_paths.json``, else as a local
    path) and reads a clip's frames."""

    def __init__(self, dataset_paths: str | DatasetPaths | None = None):
        self.paths = None if dataset_paths is None else DatasetPaths.coerce(dataset_paths)

    def resolve(self, path: str) -> Path:
        if self.paths is not None and not Path(path).is_absolute():
            return self.paths.resolve(path)
        return Path(path)

    def read(self, item: Item, mono: bool = True, dtype: str = "float32") -> tuple[np.ndarray, int]:
        """The item's frames (mono 1-D, or ``(frames, channels)``) and the file's rate."""
        local = self.resolve(item.path)
        info = probe(local)
        end = item.chunk_end_second if item.chunk_end_second is not None else info.frames / info.samplerate
        start, stop = chunk_frames(item.chunk_start_second, end, info.samplerate, info.frames, item.path)
        data, sr = read_frames(local, start, stop, dtype=dtype)
        if mono:
            data = np.ascontiguousarray(to_mono(data), dtype=dtype)
        return data, sr


AUDIO_ERRORS = (HiveError, OSError, RuntimeError)


def frames_to_seconds(n: int, sr: int) -> float:
    """``n / sr``, nudged up so that ``int(seconds * sr) == n`` (the renderer's frame formula)."""
    x = n / sr
    while int(x * sr) < n:
        x = math.nextafter(x, math.inf)
    return x


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
