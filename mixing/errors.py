"""The project's exception hierarchy.

Every message says what was received, what was expected and what to do about it.
"""

from __future__ import annotations

from typing import Any


class _Missing:
    """Marks a field that is absent (as opposed to present with the value None)."""

    def __repr__(self) -> str:
        return "missing"


MISSING = _Missing()


def _safe_repr(value: Any) -> str:
    """``repr`` that cannot fail (huge ints exceed the str-conversion limit; deep nests recurse)."""
    try:
        return repr(value)
    except (ValueError, RecursionError, TypeError) as exc:
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def short_repr(value: Any, limit: int = 120) -> str:
    """A ``repr`` for error messages: never fails, at most ``limit`` characters."""
    shown = _safe_repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class HiveError(Exception):
    """Base class of every error raised on purpose by Hive."""


class InvalidRecordError(HiveError, ValueError):
    """A metadata record breaks the schema or a rule of the data model."""

    def __init__(self, mix_id: Any, field: str, value: Any, expected: str, hint: str = ""):
        self.mix_id = mix_id
        self.field = field
        self.value = value
        self.expected = expected
        self.hint = hint
        shown = short_repr(value)
        msg = f"mixture {_safe_repr(mix_id)}: field {field!r} is {shown}; expected {expected}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)

    def to_dict(self) -> dict[str, Any]:
        shown = short_repr(self.value, 200)
        return {
            "mix_id": None if self.mix_id is None else (
                self.mix_id if isinstance(self.mix_id, str) else _safe_repr(self.mix_id)),
            "field": self.field,
            "value": shown,
            "expected": self.expected,
            "reason": "invalid_record",
        }


class MetadataSourceError(HiveError, ValueError):
    """A metadata source (file, folder, Hub id) cannot be recognised or read."""


class CorpusError(HiveError):
    """Base class of errors about local corpora."""


class UnknownPrefixError(CorpusError, KeyError):
    """A metadata path names a corpus prefix that dataset_paths.json does not map."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class PathEscapesRootError(CorpusError, ValueError):
    """A metadata path would resolve outside its corpus root."""


class DatasetPathsError(CorpusError, ValueError):
    """dataset_paths.json is malformed."""


class MissingSourceAudioError(CorpusError, FileNotFoundError):
    """A referenced source file is not on disk."""


class UnreadableAudioError(CorpusError, OSError):
    """A source file exists but cannot be decoded."""


class ChunkOutOfRangeError(CorpusError, ValueError):
    """A chunk ends beyond the end of its file by more than the tolerance."""


class NonFiniteAudioError(HiveError, ValueError):
    """Rendering would produce NaN or infinite samples (non-finite audio in a file, or a weight or
    factor that overflows)."""
