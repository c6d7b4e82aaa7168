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


class CropBeyondChunkError(CorpusError, ValueError):
    """A source's crop starts at or after the end of its chunk (resampled to the output rate):
    the stem would be all zeros. The record does not fit the local file (or was made wrong)."""

    @classmethod
    def of(cls, src: Any, chunk_frames: int, sample_rate: int) -> "CropBeyondChunkError":
        """The error for source record ``src`` whose chunk holds ``chunk_frames`` samples at
        ``sample_rate`` Hz (after resampling)."""
        return cls(
            f"source {src.source_id!r} ({src.path}): crop [{src.crop_start_second}, {src.crop_end_second}) s "
            f"starts at or after the end of its chunk [{src.chunk_start_second}, {src.chunk_end_second}) s, "
            f"which holds {chunk_frames / sample_rate:.6g} s ({chunk_frames} samples at {sample_rate} Hz) of this file: "
            "the stem would be all zeros; expected a crop that starts inside the chunk: fix the record's crop "
            "or chunk, or check that the local file is the one the metadata was made from")


class ClippingError(HiveError, ValueError):
    """A PCM encoding would clip."""


class InputFileError(HiveError, ValueError):
    """An input file (JSON, JSONL, YAML, CSV) cannot be read, decoded or parsed."""


class EmptySelectionError(HiveError, ValueError):
    """``--split`` / ``--num-sources`` select no row of the metadata."""


#: errno -> (what happened, what to do) for the OS errors a command reports in one line
_OS_ADVICE: dict[str, tuple[str, str]] = {
    "ENOENT": ("not found", "check the path"),
    "EACCES": ("permission denied", "choose a location you may write to, or fix its permissions"),
    "EPERM": ("operation not permitted", "choose a location you may write to, or fix its permissions"),
    "EROFS": ("read-only file system", "write the output to a writable location"),
    "ENOSPC": ("no space left on device", "free some space or choose an output folder on another disk; "
               "the run resumes where it stopped"),
    "EDQUOT": ("disk quota exceeded", "free some space or choose an output folder on another disk"),
    "EEXIST": ("a file is in the way", "remove it or choose another output path"),
    "ENOTDIR": ("a file is where a folder is expected", "remove that file or choose another output path"),
    "EISDIR": ("a folder is where a file is expected", "choose a file path, not a folder"),
    "EMFILE": ("too many open files", "raise the limit (ulimit -n) or use fewer workers"),
    "ENAMETOOLONG": ("file name too long", "choose a shorter path"),
}


def describe_os_error(exc: OSError, location: str | None = None) -> str:
    """One line for an OS error: ``<what> (<path>): <strerror>; <what to do>``. ``location`` (e.g.
    the output folder) stands in for the path when the error names none (a full disk often)."""
    import errno as _errno

    code = _errno.errorcode.get(exc.errno or 0, "")
    what, todo = _OS_ADVICE.get(code, ("input/output error", "check the path and the device, then retry"))
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if paths:
        where = f" ({' -> '.join(paths)})"
    else:
        where = f" (writing under {location})" if location else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if reason.casefold() in what.casefold() or what.casefold() in reason.casefold():
        return f"{reason}{where}; {todo}"
    return f"{what}{where}: {reason}; {todo}"
class NonFiniteAudioError(HiveError, ValueError):
    """Rendering would produce NaN or infinite samples (non-finite audio in a file, or a weight or
    factor that overflows)."""


# ---- the source store -------------------------------------------------------------------------
class StoreError(HiveError):
    """A source store cannot be used as asked (see the message)."""


class StoreFormatError(StoreError, ValueError):
    """A folder is not a source store (a foreign folder), or its files are not in the store format."""


class StoreRateError(StoreError, ValueError):
    """The store holds audio at another sample rate than the one asked for."""


class NotInStoreError(StoreError, LookupError):
    """A source chunk is not in the store and ``store_only`` forbids decoding it."""


class StoreStaleError(StoreError):
    """The source file changed (size or mtime) since the store was built: its chunks are not served."""


class StoreCorruptError(StoreError, OSError):
    """A store segment is shorter than its index says, or its samples fail their checksum."""
