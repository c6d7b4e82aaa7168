"""The one CSV writer of the project: cells that a spreadsheet would run as a formula are
neutralised.

Labels and ids come from untrusted metadata, and a cell such as ``=HYPERLINK("http://…")`` opened
in a spreadsheet is a formula, not text. Every CSV the project writes (``hive eval``'s
``results.csv`` and ``summary.csv``, the toy corpus's labelled list, …) goes through
:class:`CsvWriter`: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return (after any leading apostrophes) gets one leading apostrophe, the spreadsheet convention
for "this is text". Numbers (``-3.5``, ``1e-3``) are left alone, so metric columns stay numeric.

:func:`restore` undoes it exactly (an apostrophe is added only where :func:`neutralise` says so,
and a cell that already starts with apostrophes before a trigger gets one more), so reading a CSV
back with :func:`read_rows` gives the original strings.
"""

from __future__ import annotations

import csv
from typing import IO, Any, Iterable, Iterator, Sequence

#: first characters that make a spreadsheet cell a formula (or inject one)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _needs_quote(text: str) -> bool:
    body = text.lstrip("'")
    return bool(body) and body.startswith(FORMULA_START) and not _is_number(body)


def neutralise(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet runs as a formula (non-strings unchanged)."""
    if isinstance(value, str) and _needs_quote(value):
        return "'" + value
    return value


def restore(text: str) -> str:
    """The string :func:`neutralise` was given (the inverse on what it wrote)."""
    if text.startswith("'") and _needs_quote(text[1:]):
        return text[1:]
    return text


class CsvWriter:
    """``csv.DictWriter`` over ``fh`` whose every cell (header included) is neutralised."""

    def __init__(self, fh: IO[str], fieldnames: Sequence[str]):
        self.fieldnames = list(fieldnames)
        self._writer = csv.writer(fh)

    def writeheader(self) -> None:
        self._writer.writerow([neutralise(name) for name in self.fieldnames])

    def writerow(self, row: dict[str, Any]) -> None:
        self._writer.writerow([neutralise(row.get(name, "")) for name in self.fieldnames])

    def writerows(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.writerow(row)


def read_rows(fh: IO[str]) -> Iterator[dict[str, str]]:
    """The rows of a CSV written by :class:`CsvWriter`, cells restored."""
    for row in csv.DictReader(fh):
        yield {restore(k) if isinstance(k, str) else k: restore(v) if isinstance(v, str) else v
               for k, v in row.items()}
