"""The errors of the curation job, and how a judge spec is shown in messages and provenance."""

from __future__ import annotations

import re
from typing import Any

from mixing.errors import HiveError
from mixing.locks import FolderLockedError


class CurateError(HiveError):
    """The curation job cannot run as asked."""


class CurateLockedError(FolderLockedError):
    """Another live process curates the same rank into the folder (or another run does)."""


class CurateFailedError(CurateError):
    """The judge failed for too many sources, or none could be judged: nothing was kept.
    ``result`` is the rank's :class:`CurateResult` (with the merged summary)."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


def redact(spec: str) -> str:
    """``spec`` with the values of key/token/password/secret options replaced by ``***``."""
    return re.sub(r"((?:api_?key|key|token|password|secret)=)[^,]*", r"\1***", spec, flags=re.I)
