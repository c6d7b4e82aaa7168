"""AudioSet ``class_labels_indices.csv`` (``index,mid,display_name``), as taggers use it.

:func:`read_labels_csv` is the one parser of label files: it reads standard CSV (quoted or
unquoted fields, names with commas and quotes, LF or CRLF line ends, an optional UTF-8 BOM) and
checks every row, so a malformed file is reported as :class:`LabelsFileError` with its line number
before any model backend sees it. ``packaged.audioset_labels_path()`` is the shipped 527-row index.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mixing.errors import HiveError, short_repr

COLUMNS = ("index", "mid", "display_name")


class LabelsFileError(HiveError, ValueError):
    """The labels CSV is missing or malformed."""


@dataclass(frozen=True)
class LabelTable:
    """Output index -> ``(display name, mid)``, plus the reverse lookup by name."""

    names: tuple[str, ...]
    mids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def mid_of(self, index: int, name: str | None = None) -> str:
        """The mid of output ``index``; with ``name``, only if that row has the same name, else by name."""
        if 0 <= index < len(self.names) and (name is None or self.names[index] == name):
            return self.mids[index]
        if name is not None:
            return self._by_name.get(name, "")
        return ""

    @property
    def _by_name(self) -> dict[str, str]:
        cache = self.__dict__.get("_name_cache")
        if cache is None:
            cache = dict(zip(self.names, self.mids))
            object.__setattr__(self, "_name_cache", cache)
        return cache


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def read_labels_csv(path: str | Path) -> LabelTable:
    """Read and check an AudioSet labels CSV; rows must number ``0..N-1`` in order.

    Blank lines are skipped; any other malformed line raises :class:`LabelsFileError` naming the
    file, the line and the fix.
    """
    path = Path(path)
    expected = ("expected AudioSet's class_labels_indices.csv: a header 'index,mid,display_name' "
                "then one row per class, e.g. 0,/m/09x0r,\"Speech\"")
    if not path.is_file():
        raise LabelsFileError(f"labels file {str(path)!r} does not exist; {expected}")
    names: list[str] = []
    mids: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True, skipinitialspace=True)
            header = next(reader, None)
            if header is None:
                raise LabelsFileError(f"labels file {path} is empty; {expected}")
            header = [h.strip() for h in header]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise LabelsFileError(f"labels file {path}: header {short_repr(header)} lacks "
                                      f"{', '.join(missing)}; {expected}")
            pos = {c: header.index(c) for c in COLUMNS}
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise LabelsFileError(
                        f"labels file {path}, line {line}: {len(row)} fields {short_repr(row)}; "
                        f"expected {len(header)} ({','.join(header)}); quote a name that contains "
                        "a comma (\"Male speech, man speaking\")")
                text = row[pos["index"]].strip()
                try:
                    index = int(text)
                except ValueError:
                    raise LabelsFileError(f"labels file {path}, line {line}: index {text!r} is not "
                                          f"an integer; {expected}") from None
                if index != len(names):
                    raise LabelsFileError(f"labels file {path}, line {line}: index {index}; expected "
                                          f"{len(names)} (rows numbered 0, 1, 2, ... in order)")
                mid, name = row[pos["mid"]].strip(), row[pos["display_name"]]
                if not name.strip():
                    raise LabelsFileError(f"labels file {path}, line {line}: class {index} has an "
                                          "empty display_name; every class needs a name")
                if _has_control(name) or _has_control(mid):
                    raise LabelsFileError(
                        f"labels file {path}, line {line}: class {index} has a line break or "
                        f"control character in its mid or name ({short_repr(mid)}, "
                        f"{short_repr(name)}); names must be one line of text")
                names.append(name)
                mids.append(mid)
    except UnicodeDecodeError as exc:
        raise LabelsFileError(f"labels file {path} is not UTF-8 text ({exc}); {expected}") from None
    except csv.Error as exc:
        raise LabelsFileError(f"labels file {path}, line {reader.line_num}: not valid CSV ({exc}); "
                              f"{expected}") from None
    if not names:
        raise LabelsFileError(f"labels file {path} has a header but no rows; {expected}")
    return LabelTable(tuple(names), tuple(mids))
