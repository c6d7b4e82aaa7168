"""The one model-backend registry: protocols, names, the spec grammar, and :func:`load_backend`.

Mining stages and mixture curation build every backend here, so one spec string means the same
backend everywhere.

Spec grammar: ``NAME[:KEY=VALUE[,KEY=VALUE...]]`` or ``NAME:{json object}``, e.g.
``openai:url=http://127.0.0.1:8000/v1,model=qwen,timeout=30``. Only the first ``:`` ends the
name (paths and URLs may contain ``:``); each option splits at its first ``=``; values cannot
contain ``,`` (use the JSON form for that).

``NAME`` is either a registered short name (case-insensitive; see :data:`JUDGES`,
:data:`TAGGERS`, :data:`SUPERRESOLVERS`), whose class checks and converts the options to the
types of its constructor's defaults, or a dotted path ``package.module.attribute`` naming a
user's factory or class (plugins, tests), called with the options converted here
(``true``/``false``/``none`` and numbers). Either way the backend gets the caller's ``device``
when it takes a ``device`` option the spec does not set, and must satisfy its kind's protocol.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Protocol, runtime_checkable

import numpy as np

from mixing import numbers
from mixing.errors import HiveError, short_repr
from mixing.optional import MissingDependencyError, available, install_hint
from mixing.optional import missing_dependency as _missing_dependency

EXTRA = "models"
EXTRA_HINT = install_hint(EXTRA)


class BackendSpecError(HiveError, ValueError):
    """A backend spec cannot be parsed, names an unknown backend or option, or names something
    that is not a backend of the asked kind."""


# ---- protocols ------------------------------------------------------------------------------------
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


# ---- the registry ---------------------------------------------------------------------------------
# name -> "module:Class" (the module is imported only when a spec names it)
JUDGES: dict[str, str] = {
    "openai": "curation.models.openai_judge:OpenAIJudge",
    "vllm": "curation.models.openai_judge:OpenAIJudge",
    "qwen-omni": "curation.models.qwen_omni:QwenOmniJudge",
    "qwen3-omni": "curation.models.qwen_omni:QwenOmniJudge",
    "qwen2.5-omni": "curation.models.qwen_omni:QwenOmniJudge",
}
TAGGERS: dict[str, str] = {
    "sherpa": "curation.models.sherpa_tagger:SherpaTagger",
    "sherpa-onnx": "curation.models.sherpa_tagger:SherpaTagger",
    "ast": "curation.models.ast_tagger:ASTTagger",
}
SUPERRESOLVERS: dict[str, str] = {
    "resample": "curation.models.apollo:ResampleSuperResolver",
    "apollo": "curation.models.apollo:ApolloSuperResolver",
}


class Kind(NamedTuple):
    label: str  # for messages
    protocol: type
    registry: dict[str, str]


KINDS: dict[str, Kind] = {
    "judge": Kind("judge", AudioJudge, JUDGES),
    "tagger": Kind("tagger", Tagger, TAGGERS),
    "superres": Kind("super-resolution", SuperResolver, SUPERRESOLVERS),
}
PROTOCOLS: dict[str, type] = {name: kind.protocol for name, kind in KINDS.items()}


# ---- the spec grammar -----------------------------------------------------------------------------
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
    """A parsed spec: ``name`` as written (dotted paths are case-sensitive) and its options
    (strings, or JSON values with the JSON form)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> BackendSpec:
        if not isinstance(spec, str) or not spec.strip():
            raise BackendSpecError(
                f"backend spec {spec!r}: expected a string 'NAME[:KEY=VALUE,...]', e.g. 'resample' "
                "or 'openai:url=http://127.0.0.1:8000/v1,model=qwen'")
        name, _, rest = spec.strip().partition(":")
        name, rest = name.strip(), rest.strip()
        if not name:
            raise BackendSpecError(f"backend spec {spec!r} has no backend name before ':'")
        if rest.startswith("{"):
            try:
                options = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise BackendSpecError(f"backend spec {spec!r}: options are not valid JSON ({exc})") from None
            if not isinstance(options, dict):
                raise BackendSpecError(f"backend spec {spec!r}: JSON options must be an object")
            return cls(name, options)
        options = {}
        for part in rest.split(","):
            part = part.strip()
            if not part:
                continue
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise BackendSpecError(
                    f"backend spec {spec!r}: option {part!r} is not KEY=VALUE; separate options with "
                    "',' (values cannot contain ','; pass a JSON object for that)")
            if key in options:
                raise BackendSpecError(f"backend spec {spec!r}: option {key!r} is given twice")
            options[key] = value.strip()
        return cls(name, options)

    @property
    def key(self) -> str:
        """The name as looked up in the registry (lower-cased)."""
        return self.name.lower()

    def typed(self) -> dict[str, Any]:
        """Options with ``true``/``false``/``none`` and numbers converted (for a user's factory;
        registered backends convert their options to their own types)."""
        return {k: _coerce_value(v) if isinstance(v, str) else v for k, v in self.options.items()}

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in self.options.items())


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME:K=V,K=V`` as ``(lower-cased name, {K: V})``."""
    parsed = BackendSpec.parse(spec)
    return parsed.key, parsed.options


# ---- option conversion for registered classes -------------------------------------------------------
_SPEC_INT = numbers.integer(-numbers.MAX_COUNT, numbers.MAX_COUNT)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _type_of(default: Any, annotation: Any) -> type:
    if default is not None and default is not inspect.Parameter.empty:
        return type(default)
    text = str(annotation)
    for kind in (bool, int, float):
        if kind.__name__ in text:
            return kind
    return str


def _convert(spec_name: str, key: str, value: Any, default: Any, annotation: Any) -> Any:
    """Convert a spec value (a string, or a value a caller already typed) to the option's type."""
    kind = _type_of(default, annotation)
    bad = BackendSpecError(
        f"backend {spec_name!r}: option {key}={value!r} is not a valid {kind.__name__}")
    if value is None:
        return default if default is not inspect.Parameter.empty else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        low = str(value).strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad
    if kind in (int, float):  # the one checked-number rule: finite, bounded
        rule = _SPEC_INT if kind is int else numbers.FINITE
        problem = None if isinstance(value, bool) else rule.problem(value)
        if isinstance(value, bool) or problem:
            shown = value if isinstance(value, str) and len(value) <= 60 else short_repr(value, 60)
            raise BackendSpecError(f"backend {spec_name!r}: option {key}={shown} is not "
                                   f"{rule.expected}")
        return rule.convert(value)
    return value if isinstance(value, str) else str(value)


class _Option(NamedTuple):
    default: Any  # inspect.Parameter.empty: required
    annotation: Any
    argument: str  # the Settings field / constructor argument the spec key fills


def settings_class(cls: Any) -> type | None:
    """The ``Settings`` dataclass of a backend class (its spec options, checked when made), or None."""
    settings = getattr(cls, "Settings", None)
    return settings if isinstance(settings, type) and dataclasses.is_dataclass(settings) else None


def accepted_options(cls: Any) -> tuple[dict[str, _Option], bool]:
    """Spec key -> option of a registered class, and whether it takes other keys too. A class with
    a ``Settings`` dataclass takes that dataclass's fields (``field(metadata={"spec_key": "class"})``
    names a key that is not a Python name); any other class takes its constructor's arguments."""
    settings = settings_class(cls)
    if settings is not None:
        out = {}
        for f in dataclasses.fields(settings):
            default = (f.default if f.default is not dataclasses.MISSING else
                       f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
                       else inspect.Parameter.empty)
            out[f.metadata.get("spec_key", f.name)] = _Option(default, f.type, f.name)
        return out, False
    params = inspect.signature(cls.__init__).parameters
    accepted = {k: _Option(p.default, p.annotation, k) for k, p in params.items()
                if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return accepted, any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_from_options(cls: type, spec_name: str, options: dict[str, Any]) -> Any:
    """Instantiate ``cls`` from spec options, converting each to the type of its default: as
    ``cls(cls.Settings(...))`` when the class declares its options as a ``Settings`` dataclass."""
    accepted, takes_any = accepted_options(cls)
    unknown = sorted(set(options) - set(accepted))
    if unknown and not takes_any:
        raise BackendSpecError(
            f"backend {spec_name!r}: unknown option(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(accepted)}")
    missing = [k for k, p in accepted.items() if p.default is inspect.Parameter.empty and k not in options]
    if missing:
        raise BackendSpecError(
            f"backend {spec_name!r}: missing required option(s) {', '.join(missing)}, e.g. "
            f"'{spec_name}:{','.join(f'{k}=...' for k in missing)}'")
    kwargs = {(accepted[k].argument if k in accepted else k):
              (_convert(spec_name, k, v, accepted[k].default, accepted[k].annotation)
               if k in accepted else str(v))  # names such as "class" reach **kwargs
              for k, v in options.items()}
    settings = settings_class(cls)
    return cls(settings(**kwargs)) if settings is not None else cls(**kwargs)


# ---- loading --------------------------------------------------------------------------------------
def missing_dependency(what: str, package: str, exc: BaseException | None = None) -> MissingDependencyError:
    """The one error (:mod:`mixing.optional`'s) for a dependency of a model backend that cannot be
    imported: names it and the ``models`` extra."""
    return _missing_dependency(what, package, EXTRA, exc)


def _known(kind: Kind) -> str:
    return ", ".join(sorted(kind.registry)) or "none"


def _resolve(kind: Kind, spec: BackendSpec, text: str) -> tuple[Callable[..., Any], bool]:
    """The class (registered) or factory (dotted path) that ``spec`` names, and whether it is
    registered."""
    registered = spec.key in kind.registry
    if registered:
        module_name, _, attr = kind.registry[spec.key].partition(":")
    elif "." in spec.name:
        module_name, _, attr = spec.name.rpartition(".")
    else:
        raise BackendSpecError(
            f"unknown {kind.label} backend {spec.name!r} in spec {text!r}; known {kind.label} "
            f"backends: {_known(kind)} (or a dotted path package.module.factory)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not registered and exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise BackendSpecError(
                f"{kind.label} backend {spec.name!r}: there is no module {module_name}; known "
                f"{kind.label} backends: {_known(kind)} (or a dotted path package.module.factory)") from None
        raise missing_dependency(f"the {kind.label} backend {spec.name!r}", exc.name or module_name, exc) from exc
    target = getattr(module, attr, None)
    if not callable(target):
        raise BackendSpecError(f"{kind.label} backend {spec.name!r}: module {module_name} has no "
                               f"callable {attr!r}; expected a factory taking the spec's options")
    return target, registered


def _takes_device(target: Callable[..., Any]) -> bool:
    if settings_class(target) is not None:
        return "device" in accepted_options(target)[0]
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "device" or p.kind is p.VAR_KEYWORD for p in params)


def load_backend(kind: str, spec: Any, device: str | None = None) -> Any:
    """A backend of ``kind`` (``judge``, ``tagger`` or ``superres``) from its spec (a string or a
    :class:`BackendSpec`); an object that already satisfies the protocol is returned as it is
    (tests, library use). Builds the backend only: models load on first use, in the worker."""
    if kind not in KINDS:
        raise BackendSpecError(f"backend kind {kind!r}; expected one of {', '.join(KINDS)}")
    k = KINDS[kind]
    if not isinstance(spec, (str, BackendSpec)):
        if isinstance(spec, k.protocol):
            return spec
        raise BackendSpecError(
            f"{k.label} backend {spec!r}: expected a spec string or an object with the "
            f"{k.protocol.__name__} protocol (see curation/models/registry.py)")
    text = str(spec)
    parsed = spec if isinstance(spec, BackendSpec) else BackendSpec.parse(spec)
    target, registered = _resolve(k, parsed, text)
    options = dict(parsed.options) if registered else parsed.typed()
    if device is not None and "device" not in options and _takes_device(target):
        options["device"] = device
    try:
        backend = build_from_options(target, parsed.key, options) if registered else target(**options)
    except TypeError as exc:
        raise BackendSpecError(
            f"{k.label} backend {parsed.name!r} rejected the options {options}: {exc}") from exc
    except ImportError as exc:  # a dependency imported when the backend is built
        if isinstance(exc, HiveError):
            raise
        raise missing_dependency(f"the {k.label} backend {parsed.name!r}", exc.name or str(exc), exc) from exc
    if not isinstance(backend, k.protocol):
        raise BackendSpecError(
            f"{k.label} backend {parsed.name!r} returned a {type(backend).__name__}, which lacks the "
            f"{k.protocol.__name__} protocol (see curation/models/registry.py)")
    # what a lazy backend imports on first use is looked for now (found, not imported): a missing
    # package refuses the run before its first item instead of failing every item
    requires = getattr(type(backend), "requires", None)
    for module, package in (requires.items() if isinstance(requires, dict) else ()):
        if not available(module):
            raise missing_dependency(f"the {k.label} backend {parsed.name!r}", package)
    return backend


def make_judge(spec: Any, device: str | None = None) -> AudioJudge:
    """An ``AudioJudge`` from a spec such as ``openai:url=...,model=...``."""
    return load_backend("judge", spec, device)


def make_tagger(spec: Any, device: str | None = None) -> Tagger:
    """A ``Tagger`` from a spec such as ``sherpa:model=...,labels=...``."""
    return load_backend("tagger", spec, device)


def make_superres(spec: Any, device: str | None = None) -> SuperResolver:
    """A ``SuperResolver`` from a spec: ``resample`` or ``apollo:code=...,checkpoint=...``."""
    return load_backend("superres", spec, device)
