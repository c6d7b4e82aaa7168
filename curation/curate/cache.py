"""The answer cache: one JSON line per judge answer, so no question is ever asked twice.

Key: ``sha256([mix_id, source_id, pool, model_id, prompt_sha256])`` where ``pool`` is the
canonical pool (true label, then siblings) and the prompt hash covers the prompt as sent (so the
template and the order of the options), the system message and the temperature
(:meth:`~.prompt.PromptConfig.request_sha256`). Each rank appends to its own file ``answers-{rank:05d}.jsonl`` in the cache
folder and reads every ``answers-*.jsonl`` there, so a rerun with another number of processes
still finds every answer. A line cut short by a crash is ignored; the next append starts on a
new line.

What is cached: every answer the judge gave, parseable or not (a deterministic model gives the
same text again). What is not: a judge *failure* (``None``: timeout, HTTP error after the
backend's retries), so that a rerun asks again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .pools import digest

log = logging.getLogger(__name__)


def cache_key(mix_id: str, source_id: str, pool: tuple[str, ...], model_id: str, prompt_sha256: str) -> str:
    return digest(json.dumps([mix_id, source_id, list(pool), model_id, prompt_sha256], ensure_ascii=False))


class AnswerCache:
    """Append-only JSONL answer cache with ``in``/``get``/``put``."""

    def __init__(self, folder: str | os.PathLike, rank: int = 0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"answers-{rank:05d}.jsonl"
        self._entries: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        for f in sorted(self.folder.glob("answers-*.jsonl")):
            self._load(f)
        self._fh = None

    def _load(self, path: Path) -> None:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    key = entry["key"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1  # a line cut short by a crash
                    continue
                self._entries[key] = entry
        if self.skipped_lines:
            log.info("answer cache %s: %d unreadable line(s) ignored", path, self.skipped_lines)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        entry = {"key": key, **entry}
        if self._fh is None:
            needs_newline = False
            if self.path.is_file() and self.path.stat().st_size > 0:
                with open(self.path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    needs_newline = fh.read(1) != b"\n"
            self._fh = open(self.path, "a", encoding="utf-8")
            if needs_newline:
                self._fh.write("\n")
        self._fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()
        self._entries[key] = entry

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "AnswerCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
