"""Reading JSON / JSONL / text input files with one clear error per failure.

Input files are untrusted: invalid UTF-8 is reported with the file and the byte offset, and a
deeply nested document (``[[[[...``) is a parse error, never a ``RecursionError`` traceback.
Every function takes the error class to raise (any :class:`~mixing.errors.HiveError` subclass
whose constructor takes one message), so each caller keeps its own error type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InputFileError

#: nesting levels accepted before a document is refused (real metadata nests < 10 levels)
MAX_JSON_DEPTH = 200


def _depth_exceeded(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when brackets nest deeper than ``limit`` (strings are skipped; a cheap pre-scan so
    that ``json.loads`` never recurses to the interpreter's limit)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def decode_utf8(data: bytes, where: str, error: type[Exception] = InputFileError, offset: int = 0) -> str:
    """``data`` as text; invalid UTF-8 raises ``error`` naming ``where`` and the byte offset
    (``offset`` is added: the position of ``data`` in its file)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 4]
        raise error(f"{where}: invalid UTF-8 at byte offset {offset + exc.start} (bytes {bad!r}: {exc.reason}); "
                    "expected UTF-8 text; re-save the file as UTF-8 or re-download it") from None
    return text[1:] if offset == 0 and text.startswith("\ufeff") else text


def parse_json(text: str, where: str, expected: str, error: type[Exception] = InputFileError) -> Any:
    """``json.loads(text)``; malformed or too deeply nested JSON raises ``error``."""
    if _depth_exceeded(text):
        raise error(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels; expected {expected}; "
                    "the file is corrupt or hostile: re-download or regenerate it")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc}); expected {expected}; check that the file is "
                    "complete") from None
    except RecursionError:  # pragma: no cover - the pre-scan catches it first
        raise error(f"{where}: JSON nested too deeply; expected {expected}") from None


def read_bytes(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError) -> bytes:
    """The bytes of an input file; a missing or unreadable file raises ``error`` saying so."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {os.fspath(path)} does not exist; check the path") from None
    except IsADirectoryError:
        raise error(f"{what} {os.fspath(path)} is a folder; expected a file") from None
    except OSError as exc:
        raise error(f"{what} {os.fspath(path)} cannot be read ({exc.strerror or exc}); check the path "
                    "and its permissions") from None


def read_text(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError) -> str:
    """An input file as UTF-8 text (see :func:`read_bytes`, :func:`decode_utf8`)."""
    return decode_utf8(read_bytes(path, what, error), f"{what} {os.fspath(path)}", error)


def load_json_file(path: str | os.PathLike, what: str, expected: str,
                   error: type[Exception] = InputFileError) -> Any:
    """The decoded JSON document of an input file; every failure is one ``error``."""
    text = read_text(path, what, error)
    return parse_json(text, f"{what} {os.fspath(path)}", expected, error)


class BadLine:
    """A JSONL line that could not be decoded or parsed (kept so the caller can count or raise)."""

    __slots__ = ("lineno", "message")

    def __init__(self, lineno: int, message: str):
        self.lineno = lineno
        self.message = message

    def __repr__(self) -> str:
        return f"BadLine({self.lineno}, {self.message!r})"


def iter_jsonl(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError
               ) -> Iterator[tuple[int, Any]]:
    """``(line number, object or BadLine)`` for each non-blank line of a JSONL file. A line with
    invalid UTF-8 or bad / too deeply nested JSON becomes a :class:`BadLine` naming the byte offset."""
    where = f"{what} {os.fspath(path)}"
    try:
        fh = open(path, "rb")
    except OSError:
        read_bytes(path, what, error)  # raises the clear error
        raise
    with fh:
        offset = 0
        for lineno, raw in enumerate(fh, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                text = decode_utf8(raw, f"{where}:{lineno}", InputFileError, offset=start)
                yield lineno, parse_json(text, f"{where}:{lineno}", "one JSON object per line", InputFileError)
            except InputFileError as exc:
                yield lineno, BadLine(lineno, str(exc))
