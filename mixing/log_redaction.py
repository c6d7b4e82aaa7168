"""Secrets never reach a log: one filter on every handler, installed with the logging setup.

Under ``-vv`` third-party loggers (``httpcore``, ``httpx``, ``urllib3``, ``huggingface_hub``)
write raw request and response headers, and a server may echo the ``Authorization`` header back.
:class:`SecretFilter` rewrites each record before any handler formats it: the message with its
arguments, and the traceback text. It redacts

* ``Bearer``/``Basic``/``token`` credentials and the values of ``Authorization``, ``api-key``,
  ``x-api-key``, ``token``, ``secret``, ``password``, ``cookie`` fields (``key: value``,
  ``key=value``, JSON and ``(b'key', b'value')`` header tuples);
* Hugging Face (``hf_…``) and OpenAI-style (``sk-…``) tokens wherever they appear;
* the literal value of every environment variable whose name says it holds a secret (``*TOKEN*``,
  ``*KEY*``, ``*SECRET*``, ``*PASSWORD*``, ``*AUTH*``), however the server spelled it back.

Handler filters (not logger filters) are used because a record propagated from a child logger
passes only the handlers' filters.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

__all__ = ["REDACTED", "SecretFilter", "install", "redact"]

REDACTED = "***"
_SECRET_ENV = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|AUTH|CREDENTIAL", re.IGNORECASE)
_MIN_ENV_SECRET = 6  # shorter values (e.g. "1") would blank out ordinary text

_FIELDS = r"(?:proxy-)?authorization|x-api-key|api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|" \
          r"passwd|set-cookie|cookie|hf[_-]?token"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # header tuples as httpcore logs them: (b'authorization', b'Bearer abc')
    (re.compile(rf"(\(b?['\"](?:{_FIELDS})['\"],\s*b?['\"])([^'\"]*)(['\"])", re.IGNORECASE), rf"\1{REDACTED}\3"),
    # key: value / key=value / "key": "value"
    (re.compile(rf"((?<![A-Za-z0-9_-])(?:{_FIELDS})['\"]?\s*[:=]\s*['\"]?)([^\s'\",;&)}}\]]+(?:\s+[^\s'\",;&)}}\]]+)?)",
                re.IGNORECASE), rf"\1{REDACTED}"),
    # scheme credentials anywhere
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE), rf"\1 {REDACTED}"),
    # well-known token shapes anywhere
    (re.compile(r"\bhf_[A-Za-z0-9]{6,}"), f"hf_{REDACTED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), f"sk-{REDACTED}"),
]


def _env_secrets() -> list[str]:
    values = {v.strip() for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v.strip()) >= _MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by :data:`REDACTED`."""
    for secret in _env_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretFilter(logging.Filter):
    """Redacts the formatted message (arguments included) and the traceback of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to the handler
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> SecretFilter:
    """Put one :class:`SecretFilter` on every handler of ``logger`` (default: the root logger);
    idempotent."""
    target = logger or logging.getLogger()
    existing: Any = next((f for h in target.handlers for f in h.filters if isinstance(f, SecretFilter)), None)
    flt = existing or SecretFilter()
    for handler in target.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
