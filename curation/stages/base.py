"""What every mining stage shares: the item record, drops with named reasons, the stage class,
the model-backend protocols and their lazy factory, and audio access for clips.

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
import importlib
import inspect
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import logging

import numpy as np

from mixing.audio import chunk_frames, probe, read_frames, to_mono
from mixing.corpora import DatasetPaths
from mixing.errors import HiveError
from mixing.failures import UNREADABLE_AUDIO, reason_of

log = logging.getLogger(__name__)

# ---- model backend protocols -------------------------------------------------------------------


@runtime_checkable
class AudioJudge(Protocol):
    """An audio LLM. ``ask`` gets mono float32 clips with their sample rates and one prompt, and
    returns one raw answer string per clip, in order (``None`` where the call for that clip
    failed). Resampling to the model's rate is the backend's business."""

    model_id: str

    def ask(self, items: list[tuple[np.ndarray, int]], prompt: str) -> list[str | None]: ...


@runtime_checkable
class Tagger(Protocol):
    """An AudioSet tagger. ``tag`` gets mono float32 clips already at ``sample_rate`` and returns,
    per clip, up to ``top_k`` ``(AudioSet name, AudioSet mid, score)`` best first."""

    model_id: str
    sample_rate: int

    def tag(self, clips: list[np.ndarray], top_k: int) -> list[list[tuple[str, str, float]]]: ...


@runtime_checkable
class SuperResolver(Protocol):
    """Brings a mono float32 clip at ``sr`` to 44100 Hz, preserving its length in time
    (``ceil(len(y) * 44100 / sr)`` samples)."""

    model_id: str

    def process(self, y: np.ndarray, sr: int) -> np.ndarray: ...


PROTOCOLS: dict[str, type] = {"judge": AudioJudge, "tagger": Tagger, "superres": SuperResolver}

#: Where short backend names are looked up: the registries of :mod:`curation.models` (name ->
#: ``module:Class``); such a class is built by that package's option checking, from the spec's
#: string options. A dotted name ``package.module.attribute`` names a factory or class directly
#: (plugins, tests); its options are converted here (numbers, true/false/none).
REGISTRIES: dict[str, str] = {"judge": "JUDGES", "tagger": "TAGGERS", "superres": "SUPERRESOLVERS"}
#: Used when :mod:`curation.models` itself cannot be imported: modules with a factory below.
BACKEND_MODULES: dict[str, dict[str, str]] = {
    "judge": {"qwen-omni": "curation.models.qwen_omni", "openai": "curation.models.openai_judge"},
    "tagger": {"sherpa-onnx": "curation.models.sherpa_tagger", "ast": "curation.models.ast_tagger"},
    "superres": {"apollo": "curation.models.apollo"},
}
#: Factory attribute names looked for in a backend module, in order.
FACTORY_NAMES: dict[str, tuple[str, ...]] = {
    "judge": ("create_judge", "create"),
    "tagger": ("create_tagger", "create"),
    "superres": ("create_super_resolver", "create_superres", "create"),
}


class StageError(HiveError):
    """A stage was configured wrongly or a backend broke its protocol."""


class BackendUnavailableError(StageError, ImportError):
    """A model backend cannot be imported (its optional dependencies are missing)."""


_INT_TEXT = re.compile(r"[-+]?\d+")
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def _coerce_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if _INT_TEXT.fullmatch(text):
        return int(text)
    if _FLOAT_TEXT.fullmatch(text):  # not "nan", "inf" or "1_000": those stay strings
        return float(text)
    return text


@dataclass(frozen=True)
class BackendSpec:
    """``NAME[:k=v,k=v]`` or ``NAME:{json object}``, e.g. ``openai:url=http://127.0.0.1:8000/v1,model=x``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)  # strings, or JSON values

    @classmethod
    def parse(cls, spec: str) -> BackendSpec:
        if not isinstance(spec, str) or not spec.strip():
            raise StageError(f"backend spec is {spec!r}; expected NAME or NAME:key=value,... "
                             "(e.g. openai:url=http://127.0.0.1:8000/v1,model=Qwen3-Omni)")
        name, _, rest = spec.strip().partition(":")
        options: dict[str, Any] = {}
        rest = rest.strip()
        if rest.startswith("{"):
            try:
                options = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise StageError(f"backend spec {spec!r}: options are not valid JSON ({exc})") from None
        elif rest:
            for part in rest.split(","):
                key, eq, value = part.partition("=")
                if not eq or not key.strip():
                    raise StageError(f"backend spec {spec!r}: option {part!r} is not key=value; "
                                     "separate options with commas, or pass a JSON object")
                options[key.strip()] = value.strip()
        return cls(name.strip(), options)

    def typed(self) -> dict[str, Any]:
        """Options with ``true``/``false``/``none`` and numbers converted (for dotted-path factories;
        the registered backends convert their string options to their own types)."""
        return {k: _coerce_value(v) if isinstance(v, str) else v for k, v in self.options.items()}

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in self.options.items())


def _registered(kind: str) -> dict[str, str]:
    """Short name -> ``module:Class`` (or a module, whose factory is used) of ``kind``."""
    try:
        models = importlib.import_module("curation.models")
        return dict(getattr(models, REGISTRIES[kind]))
    except (ImportError, AttributeError):
        return dict(BACKEND_MODULES.get(kind, {}))


def _import_factory(kind: str, name: str) -> tuple[Callable[..., Any], bool]:
    """The factory (or class) for ``name`` and whether it is a registered backend, whose options
    stay strings (the backend converts them to its own types)."""
    known = _registered(kind)
    registered = name.lower() in known
    if registered:
        module_name, _, attr = known[name.lower()].partition(":")
        attrs = (attr,) if attr else FACTORY_NAMES[kind]
    elif "." in name:
        module_name, _, attr = name.rpartition(".")
        attrs = (attr,)
    else:
        raise BackendUnavailableError(
            f"unknown {kind} backend {name!r}; known {kind} backends: {', '.join(sorted(known)) or 'none'} "
            "(or a dotted path package.module.factory)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise BackendUnavailableError(
                f"{kind} backend {name!r}: there is no module {module_name}; known {kind} backends: "
                f"{', '.join(sorted(known)) or 'none'} (or a dotted path package.module.factory)") from None
        raise BackendUnavailableError(
            f"{kind} backend {name!r} needs the Python package {exc.name!r}, which is not installed; "
            "install the model extras: pip install 'hive-uss[models]'") from exc
    for attr in attrs:
        factory = getattr(module, attr, None)
        if callable(factory):
            return factory, registered
    raise BackendUnavailableError(f"{kind} backend {name!r}: module {module_name} defines none of "
                                  f"{', '.join(attrs)}; expected a factory taking the spec's options")


def _build(factory: Callable[..., Any], name: str, options: dict[str, Any], registered: bool) -> Any:
    if registered and isinstance(factory, type):
        try:  # the backends' own option checking and conversion
            from curation.models.spec import build_from_options
        except ImportError:
            return factory(**options)
        return build_from_options(factory, name, options)
    return factory(**options)


def load_backend(kind: str, spec: str | BackendSpec, device: str | None = None) -> Any:
    """Create a backend of ``kind`` (judge, tagger, superres) from its spec. Call in the worker."""
    if kind not in PROTOCOLS:
        raise StageError(f"backend kind {kind!r}; expected one of {', '.join(PROTOCOLS)}")
    spec = spec if isinstance(spec, BackendSpec) else BackendSpec.parse(spec)
    factory, registered = _import_factory(kind, spec.name)
    options = dict(spec.options) if registered else spec.typed()
    if device is not None and "device" not in options:
        try:
            params = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):
            params = []
        if any(p.name == "device" or p.kind is p.VAR_KEYWORD for p in params):
            options["device"] = device
    try:
        backend = _build(factory, spec.name.lower(), options, registered)
    except TypeError as exc:
        raise StageError(f"{kind} backend {spec.name!r} rejected the options {options}: {exc}") from exc
    except ImportError as exc:  # a dependency imported when the backend is built
        if isinstance(exc, HiveError):
            raise
        raise BackendUnavailableError(
            f"{kind} backend {spec.name!r} needs the Python package {exc.name or exc}, which is not "
            "installed; install the model extras: pip install 'hive-uss[models]'") from exc
    if not isinstance(backend, PROTOCOLS[kind]):
        raise StageError(f"{kind} backend {spec.name!r} returned a {type(backend).__name__}, which lacks "
                         f"the {PROTOCOLS[kind].__name__} protocol (see curation/stages/base.py)")
    return backend


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
class UnparseableAnswer(ValueError):
    """The judge's answer cannot be read; the question is asked again."""


class InvalidAnswer(ValueError):
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
        self._ready = False
        self.audio = AudioAccess(self.dataset_paths)
        self.device: str | None = None

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

    def run(self, data: Iterable[Item], rank: int = 0, world_size: int = 1,
            batch_size: int | None = None) -> Iterator[tuple[list[Item], list[Result]]]:
        """Generator in, generator out: yields ``(batch, results)``, one result per input item."""
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
