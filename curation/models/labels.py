"""AudioSet ``class_labels_indices.csv`` (``index,mid,display_name``), as taggers use it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mixing.errors import HiveError


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


def read_labels_csv(path: str | Path) -> LabelTable:
    """Read an AudioSet labels CSV; rows must number ``0..N-1`` in order."""
    path = Path(path)
    if not path.is_file():
        raise LabelsFileError(
            f"labels file {str(path)!r} does not exist; expected AudioSet's "
            "class_labels_indices.csv (columns index,mid,display_name)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        if not {"index", "mid", "display_name"} <= fields:
            raise LabelsFileError(
                f"labels file {path}: columns {sorted(fields)}; expected index, mid, display_name")
        names: list[str] = []
        mids: list[str] = []
        for row_no, row in enumerate(reader):
            try:
                index = int(row["index"])
            except (TypeError, ValueError):
                raise LabelsFileError(f"labels file {path}: row {row_no + 2} has index "
                                      f"{row['index']!r}; expected an integer") from None
            if index != row_no:
                raise LabelsFileError(f"labels file {path}: row {row_no + 2} has index {index}; "
                                      f"expected {row_no} (rows in index order)")
            names.append(row["display_name"])
            mids.append(row["mid"])
    if not names:
        raise LabelsFileError(f"labels file {path} has no rows")
    return LabelTable(tuple(names), tuple(mids))
