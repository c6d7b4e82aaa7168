"""Backend spec strings, option conversion and optional-dependency checks.

A backend is named by a spec string ``NAME[:KEY=VALUE[,KEY=VALUE...]]``, for example
``openai:url=http://127.0.0.1:8000/v1,model=qwen,timeout=30``. Only the first ``:`` separates
the name (so paths and URLs may contain ``:``); each option splits at its first ``=``. Values
cannot contain ``,``.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from mixing.errors import HiveError

EXTRA_HINT = "pip install 'hive-uss[models]'"


class BackendSpecError(HiveError, ValueError):
    """A backend spec string cannot be parsed or names an unknown backend or option."""


class MissingDependencyError(HiveError, ImportError):
    """An optional dependency of a model backend is not installed."""


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME:K=V,K=V`` into ``(name, {K: V})``; the name is lower-cased."""
    if not isinstance(spec, str) or not spec.strip():
        raise BackendSpecError(
            f"backend spec {spec!r}: expected a string 'NAME[:KEY=VALUE,...]', "
            "e.g. 'resample' or 'openai:url=http://127.0.0.1:8000/v1,model=qwen'")
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower()
    options: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise BackendSpecError(
                f"backend spec {spec!r}: option {part!r} is not KEY=VALUE; separate options with "
                "',' (values cannot contain ',')")
        if key in options:
            raise BackendSpecError(f"backend spec {spec!r}: option {key!r} is given twice")
        options[key] = value.strip()
    return name, options


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _kind_of(default: Any, annotation: Any) -> type:
    if default is not None and default is not inspect.Parameter.empty:
        return type(default)
    text = str(annotation)
    for kind in (bool, int, float):
        if kind.__name__ in text:
            return kind
    return str


def _convert(spec_name: str, key: str, value: Any, default: Any, annotation: Any) -> Any:
    """Convert a spec value (a string, or a value a caller already typed) to the option's type."""
    kind = _kind_of(default, annotation)
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
    if kind is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float):
            if not value.is_integer():
                raise bad
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise bad from None
    if kind is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    return value if isinstance(value, str) else str(value)


def build_from_options(cls: type, spec_name: str, options: dict[str, Any]) -> Any:
    """Instantiate ``cls`` from spec options, converting each to the type of its default."""
    params = inspect.signature(cls.__init__).parameters
    accepted = {k: p for k, p in params.items()
                if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
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
    kwargs = {k: (_convert(spec_name, k, v, accepted[k].default, accepted[k].annotation)
                  if k in accepted else str(v))  # names such as "class" reach **kwargs
              for k, v in options.items()}
    return cls(**kwargs)


def require(module: str, backend: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {backend} backend needs the Python package {package or module!r}, which cannot be "
            f"imported ({exc}); install the model extras: {EXTRA_HINT}") from exc


def factory(cls: type, spec_name: str, ignore: tuple[str, ...] = ()):
    """A module-level ``create(**options)`` for the stage runner's backend loader.

    Options named in ``ignore`` (e.g. the runner's ``device`` for a backend that has none) are
    dropped; every other option is checked and converted as in a spec string.
    """
    def create(**options: Any):
        for key in ignore:
            options.pop(key, None)
        return build_from_options(cls, spec_name, options)

    create.__name__ = f"create_{spec_name.replace('-', '_')}"
    create.__doc__ = f"Build a {cls.__name__} from spec options (see its docstring)."
    return create
