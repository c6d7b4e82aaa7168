"""The one error type of ``hive eval``: bad input (rendered folder, estimates, separator)."""

from __future__ import annotations

from ..errors import HiveError


class EvalError(HiveError, ValueError):
    """Evaluation input is missing or malformed; the message says what was found and what to do."""
