# Over 400 lines: the one safe reader of every untrusted input format; its rules must hold in one place.
"""The one reader of untrusted input files: JSON, JSON Lines, CSV, YAML, Parquet, tar members and
the JSON bodies of HTTP replies, each failure one clear error.

Every command reads its inputs through here, so one set of rules holds everywhere:

* **Regular files only.** A FIFO, socket or device named as an input is refused *before* it is
  opened for reading (opening a FIFO blocks until a writer appears: the command would hang):
  :func:`open_input` opens with ``O_NONBLOCK`` and checks what it opened.
* **Size caps.** A whole-document read stops at ``max_bytes`` (:data:`MAX_DOCUMENT_BYTES` by
  default); a JSON Lines line at :data:`MAX_LINE_BYTES`; a tar member at ``max_member_bytes``.
* **Nesting caps.** A JSON document nested deeper than :data:`MAX_JSON_DEPTH` is refused by a
  cheap pre-scan (never a ``RecursionError``); YAML is refused when it nests deeper than that or
  expands to more than :data:`MAX_YAML_NODES` nodes through aliases (an alias "bomb").
* **UTF-8 with position.** Invalid UTF-8 is reported with the file and the byte offset.
* **Types checked.** ``expect=dict`` / ``list`` / ``str`` refuses a document of another type,
  naming what was found.
* **Parquet**: a file that is not Parquet, is truncated, or lacks the columns the caller needs.
* **tar**: a shard that cannot be read to its end, and member names that are not UTF-8.

Every function takes the error class to raise (any :class:`~mixing.errors.HiveError` subclass
whose constructor takes one message), so each caller keeps its own error type.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InputFileError

#: nesting levels accepted before a document is refused (real metadata nests < 10 levels)
MAX_JSON_DEPTH = 200
#: a whole JSON / YAML / CSV / text document read at once (metadata files of the release are < 10 MB)
MAX_DOCUMENT_BYTES = 1 << 30
#: one line of a JSON Lines file
MAX_LINE_BYTES = 64 << 20
#: one member of a rendered tar shard (a 10 s, 5-stem mixture at 384 kHz in float32 is ~15 MB)
MAX_MEMBER_BYTES = 1 << 30
#: nodes a YAML document may expand to, aliases counted at their full size (an alias "bomb"
#: of a few hundred bytes expands to billions of nodes)
MAX_YAML_NODES = 1_000_000
#: characters of one CSV field (the csv module's own default limit)
MAX_CSV_FIELD = 131_072

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "a boolean", type(None): "null"}


def type_name(value: Any) -> str:
    """``an object`` / ``a list`` / ... : the JSON name of a decoded value's type."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def shown_path(path: str | os.PathLike | bytes) -> str:
    """A path for a message: bytes that are not UTF-8 are shown escaped (``\\xff``), never raised."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


# ---- regular files only ---------------------------------------------------------------------------
def file_kind(mode: int) -> str | None:
    """What a non-regular file is (``a FIFO (named pipe)``, ``a folder``, ...); None for a regular file."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_regular_file(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError) -> os.stat_result:
    """``os.stat(path)`` of an input that must be a regular file (symlinks followed); anything else
    raises ``error`` without opening it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {shown_path(path)} does not exist; check the path") from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        raise error(f"{what} {shown_path(path)} cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                    "check the path") from None
    kind = file_kind(st.st_mode)
    if kind == "a folder":
        raise error(f"{what} {shown_path(path)} is a folder; expected a file")
    if kind is not None:
        raise error(f"{what} {shown_path(path)} is {kind}, not a regular file; expected a file (reading a pipe "
                    "or device could block forever)")
    return st


def open_input(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError) -> IO[bytes]:
    """Open an input file for binary reading. Refuses (with ``error``) a missing file, a folder, a
    FIFO, socket or device — checked on the opened descriptor too (``O_NONBLOCK``: opening a FIFO
    never blocks), so a file swapped for a FIFO between check and open is refused as well."""
    check_regular_file(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {shown_path(path)} does not exist; check the path") from None
    except OSError as exc:
        raise error(f"{what} {shown_path(path)} cannot be read ({exc.strerror or exc}); check the path and its "
                    "permissions") from None
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise error(f"{what} {shown_path(path)} is {kind}; expected a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError, *,
               max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of an input file (see :func:`open_input`), at most ``max_bytes``."""
    with open_input(path, what, error) as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"{what} {shown_path(path)} cannot be read ({exc.strerror or exc}); check the file and "
                        "the device") from None
    if len(data) > max_bytes:
        raise error(f"{what} {shown_path(path)} is larger than {max_bytes} bytes; expected a smaller file "
                    "(is it the right one?)")
    return data


# ---- text and JSON ----------------------------------------------------------------------------------
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


def depth_exceeded(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
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


def check_type(value: Any, expect: type | tuple[type, ...] | None, where: str, expected: str,
               error: type[Exception] = InputFileError) -> Any:
    """``value`` when it is of type ``expect`` (None: any); else ``error`` naming what it is."""
    allowed = expect if isinstance(expect, tuple) else (expect,)
    if expect is None or (isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)):
        return value
    raise error(f"{where}: top-level JSON is {type_name(value)}; expected {expected}")


def parse_json(text: str, where: str, expected: str, error: type[Exception] = InputFileError, *,
               expect: type | tuple[type, ...] | None = None) -> Any:
    """``json.loads(text)``; malformed, too deeply nested JSON or (with ``expect``) a document of
    another type raises ``error``."""
    if depth_exceeded(text):
        raise error(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels; expected {expected}; "
                    "the file is corrupt or hostile: re-download or regenerate it")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc}); expected {expected}; check that the file is "
                    "complete") from None
    except RecursionError:  # pragma: no cover - the pre-scan catches it first
        raise error(f"{where}: JSON nested too deeply; expected {expected}") from None
    return check_type(value, expect, where, expected, error)


def parse_json_bytes(data: bytes | str, where: str, expected: str, error: type[Exception] = InputFileError, *,
                     expect: type | tuple[type, ...] | None = None) -> Any:
    """Decode (UTF-8, with the byte offset of an error) and parse one JSON document held in memory:
    a tar member, a Parquet cell, the body of an HTTP reply."""
    text = data if isinstance(data, str) else decode_utf8(bytes(data), where, error)
    return parse_json(text, where, expected, error, expect=expect)


def read_text(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError, *,
              max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """An input file as UTF-8 text (see :func:`read_bytes`, :func:`decode_utf8`)."""
    return decode_utf8(read_bytes(path, what, error, max_bytes=max_bytes), f"{what} {shown_path(path)}", error)


def load_json_file(path: str | os.PathLike, what: str, expected: str,
                   error: type[Exception] = InputFileError, *, expect: type | tuple[type, ...] | None = None,
                   max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """The decoded JSON document of an input file; every failure is one ``error``."""
    text = read_text(path, what, error, max_bytes=max_bytes)
    return parse_json(text, f"{what} {shown_path(path)}", expected, error, expect=expect)


class BadLine:
    """A JSONL line that could not be decoded or parsed (kept so the caller can count or raise)."""

    __slots__ = ("lineno", "message")

    def __init__(self, lineno: int, message: str):
        self.lineno = lineno
        self.message = message

    def __repr__(self) -> str:
        return f"BadLine({self.lineno}, {self.message!r})"


def iter_jsonl(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError, *,
               max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """``(line number, object or BadLine)`` for each non-blank line of a JSONL file. A line with
    invalid UTF-8, bad / too deeply nested JSON or over ``max_line_bytes`` becomes a
    :class:`BadLine` naming the byte offset. The file itself must be a regular file."""
    where = f"{what} {shown_path(path)}"
    with open_input(path, what, error) as fh:
        offset = 0
        lineno = 0
        while True:
            raw = fh.readline(max_line_bytes + 1)
            if not raw:
                break
            lineno += 1
            start = offset
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    offset += len(raw)
                    raw = fh.readline(1 << 20)
                offset += len(raw)
                yield lineno, BadLine(lineno, f"{where}:{lineno}: line longer than {max_line_bytes} bytes "
                                              f"(at byte offset {start}); expected one JSON object per line")
                continue
            offset += len(raw)
            if not raw.strip():
                continue
            try:
                text = decode_utf8(raw, f"{where}:{lineno}", InputFileError, offset=start)
                yield lineno, parse_json(text, f"{where}:{lineno}", "one JSON object per line", InputFileError)
            except InputFileError as exc:
                yield lineno, BadLine(lineno, str(exc))


# ---- CSV ----------------------------------------------------------------------------------------------
def iter_csv(text: str, where: str, error: type[Exception] = InputFileError, *, dict_rows: bool = False,
             max_field: int = MAX_CSV_FIELD, **reader_options: Any) -> Iterator[Any]:
    """Rows of CSV text (lists, or dicts keyed by the header with ``dict_rows``). A field longer
    than ``max_field`` characters, a NUL character or a malformed row raises ``error`` naming the
    line; the csv module's process-wide field limit is never changed."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise error(f"{where}:{line}: a NUL character in CSV text; expected plain UTF-8 text; re-save the file")
    fh = io.StringIO(text, newline="")
    reader = csv.DictReader(fh, **reader_options) if dict_rows else csv.reader(fh, **reader_options)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            if "field larger than field limit" in str(exc):
                raise error(f"{where}:{line}: a CSV field longer than {csv.field_size_limit()} characters; "
                            "expected short fields (paths, labels); check the quoting of that line") from None
            raise error(f"{where}:{line}: malformed CSV ({exc}); check that line") from None
        cells = row.values() if isinstance(row, dict) else row
        for cell in cells:
            if isinstance(cell, str) and len(cell) > max_field:
                raise error(f"{where}:{reader.line_num}: a CSV field of {len(cell)} characters; expected at most "
                            f"{max_field} (paths, labels); check the quoting of that line")
        yield row


def read_csv_file(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError, *,
                  dict_rows: bool = False, **reader_options: Any) -> list[Any]:
    """Every row of a CSV input file (see :func:`iter_csv`, :func:`read_text`)."""
    text = read_text(path, what, error)
    return list(iter_csv(text, f"{what} {shown_path(path)}", error, dict_rows=dict_rows, **reader_options))


# ---- YAML -------------------------------------------------------------------------------------------
def parse_yaml(text: str, where: str, expected: str, error: type[Exception] = InputFileError, *,
               expect: type | tuple[type, ...] | None = None) -> Any:
    """``yaml.safe_load(text)`` after a scan of its events: nesting deeper than
    :data:`MAX_JSON_DEPTH`, more than :data:`MAX_YAML_NODES` nodes once aliases are expanded, or
    YAML that does not parse raise ``error``; an empty document is ``None``."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    stack: list[list[Any]] = []  # open collections: [anchor, expanded size]
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node

    def add(n: int) -> None:
        if stack:
            stack[-1][1] += n
            if stack[-1][1] > MAX_YAML_NODES:
                raise error(f"{where}: YAML that expands to more than {MAX_YAML_NODES} nodes (aliases *name "
                            f"repeat their anchor's node); expected {expected}")

    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append([event.anchor, 1])
                if len(stack) > MAX_JSON_DEPTH:
                    raise error(f"{where}: YAML nested deeper than {MAX_JSON_DEPTH} levels; expected {expected}")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, n = stack.pop()
                if anchor is not None:
                    sizes[anchor] = n
                add(n)
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                add(1)
            elif isinstance(event, yaml.AliasEvent):
                add(sizes.get(event.anchor, 1))
        value = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise error(f"{where} does not parse ({detail}); expected {expected}") from None
    except RecursionError:
        raise error(f"{where}: YAML nested too deeply; expected {expected}") from None
    if expect is not None and value is not None and not isinstance(value, expect):
        raise error(f"{where}: the YAML holds {type_name(value)}; expected {expected}")
    return value


def load_yaml_file(path: str | os.PathLike, what: str, expected: str, error: type[Exception] = InputFileError, *,
                   expect: type | tuple[type, ...] | None = None) -> Any:
    text = read_text(path, what, error)
    return parse_yaml(text, f"{what} {shown_path(path)}", expected, error, expect=expect)


# ---- Parquet ----------------------------------------------------------------------------------------
def open_parquet(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError, *,
                 columns: tuple[str, ...] | list[str] = (), **options: Any):
    """A ``pyarrow.parquet.ParquetFile`` of a local input file; not Parquet, truncated, or missing
    one of ``columns`` raises ``error`` (listing the columns it has)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_regular_file(path, what, error)
    try:
        pf = pq.ParquetFile(os.fspath(path), **options)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise error(f"{what} {shown_path(path)}: not a readable Parquet file ({' '.join(str(exc).split())}); "
                    "re-download or regenerate it") from None
    names = pf.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise error(f"{what} {shown_path(path)}: Parquet columns {names[:12]} lack {missing}; expected the "
                    f"columns {list(columns)}; is it the right file?")
    return pf


def iter_parquet_batches(pf, where: str, error: type[Exception] = InputFileError, **options: Any):
    """``pf.iter_batches(**options)`` where a corrupt page or a column of the wrong type raises
    ``error`` instead of an Arrow exception."""
    import pyarrow as pa

    it = pf.iter_batches(**options)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (OSError, pa.ArrowException, ValueError, IndexError) as exc:
            raise error(f"{where}: the Parquet data cannot be read ({' '.join(str(exc).split())[:300]}); "
                        "re-download or regenerate the file") from None
        yield batch


# ---- tar members ----------------------------------------------------------------------------------
def iter_tar_members(path: str | os.PathLike, what: str, error: type[Exception] = InputFileError, *,
                     want: Any = None, max_member_bytes: int = MAX_MEMBER_BYTES,
                     on_skipped: Any = None) -> Iterator[tuple[str, bytes | None]]:
    """``(name, bytes)`` of the regular members of a tar file, streamed in order. ``want(name)``
    (when given) says whether a member's bytes are read (else ``None`` is yielded for them).
    A member name that is not UTF-8, a member over ``max_member_bytes`` or a shard that cannot
    be read to its end raises ``error``; non-file members are passed to ``on_skipped(name)``."""
    fh = open_input(path, what, error)
    where = f"{what} {shown_path(path)}"
    try:
        with tarfile.open(fileobj=fh, mode="r|*", encoding="utf-8", errors="surrogateescape") as tar:
            for m in tar:
                name = m.name
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    raise error(f"{where}: member name {shown_path(os.fsencode(name))!r} is not UTF-8; expected "
                                "'<key>.<suffix>' names written by hive render; re-render this shard") from None
                if not m.isfile():
                    if on_skipped is not None:
                        on_skipped(name)
                    continue
                if m.size > max_member_bytes:
                    raise error(f"{where}: member {name!r} is {m.size} bytes; expected at most {max_member_bytes}")
                if want is not None and not want(name):
                    yield name, None
                    continue
                member = tar.extractfile(m)
                yield name, member.read() if member is not None else b""
    except (tarfile.TarError, EOFError) as exc:
        raise error(f"{where}: the tar cannot be read to its end ({exc}); re-render or re-download it") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
            raise
        raise error(f"{where}: the tar cannot be read ({exc.strerror or exc}); re-render or re-download it") from None
    finally:
        fh.close()


def is_readable_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an existing regular file (never opens it; False for a FIFO)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def regular_files(paths) -> list[Path]:
    """The entries of ``paths`` that are regular files (FIFOs, sockets, devices, folders dropped)."""
    return [Path(p) for p in paths if is_readable_file(p)]
