"""Asking an audio judge about clips: one answer per clip, unreadable answers asked again, a
failing batch retried clip by clip."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from mixing.errors import HiveError

from curation.models.registry import AudioJudge

from .items import StageError

log = logging.getLogger(__name__)

class UnparseableAnswer(HiveError, ValueError):
    """The judge's answer cannot be read; the question is asked again."""


class InvalidAnswer(HiveError, ValueError):
    """The judge's answer is readable but not allowed (e.g. an index out of range); not retried."""


@dataclass
class JudgeOutcome:
    """What the judge said about one clip over all attempts."""

    status: str = "pending"  # ok | unparseable | failed | invalid
    value: Any = None
    answers: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"answers": self.answers, "attempts": len(self.answers)}
        if self.errors:
            out["errors"] = self.errors[-3:]
        return out


def _safe_ask(judge: AudioJudge, audios: list[tuple[np.ndarray, int]],
              prompt: str) -> list[tuple[str | None, str | None]]:
    """One answer (or None and an error) per clip; a failing batch call is retried clip by clip,
    so one bad clip cannot take its batch with it."""
    def checked(answers: Any, n: int) -> list[str | None]:
        if not isinstance(answers, (list, tuple)) or len(answers) != n:
            raise StageError(f"judge {getattr(judge, 'model_id', '?')} returned {type(answers).__name__} "
                             f"of length {len(answers) if hasattr(answers, '__len__') else '?'} for {n} clips")
        return [a if isinstance(a, str) else None for a in answers]

    def no_answer() -> str:  # the backend's own account of its last failed call, if it keeps one
        cause = getattr(judge, "last_error", None)
        return f"no answer: {cause}"[:300] if isinstance(cause, str) and cause else "no answer"

    try:
        return [(a, None if a is not None else no_answer()) for a in checked(judge.ask(audios, prompt), len(audios))]
    except Exception as exc:  # noqa: BLE001 - a backend error is recorded per clip, never swallowed
        if len(audios) == 1:
            return [(None, f"{type(exc).__name__}: {exc}"[:300])]
        log.warning("judge batch of %d failed (%s: %s); asking clip by clip", len(audios),
                    type(exc).__name__, exc)
    out = []
    for audio in audios:
        try:
            (a,) = checked(judge.ask([audio], prompt), 1)
            out.append((a, None if a is not None else no_answer()))
        except Exception as exc:  # noqa: BLE001
            out.append((None, f"{type(exc).__name__}: {exc}"[:300]))
    return out


def ask_judge(judge: AudioJudge, audios: list[tuple[np.ndarray, int]], prompt: str,
              parse: Callable[[str], Any], retries: int) -> list[JudgeOutcome]:
    """Ask ``prompt`` about every clip; failed calls and unparseable answers are asked again up to
    ``retries`` more times. Every clip gets an outcome: nothing is silently lost."""
    outcomes = [JudgeOutcome() for _ in audios]
    pending = list(range(len(audios)))
    for _ in range(retries + 1):
        if not pending:
            break
        answers = _safe_ask(judge, [audios[i] for i in pending], prompt)
        again = []
        for i, (answer, error) in zip(pending, answers):
            o = outcomes[i]
            o.answers.append(answer)
            if answer is None:
                o.status = "failed"
                o.errors.append(error or "no answer")
                again.append(i)
                continue
            try:
                o.value = parse(answer)
                o.status = "ok"
            except UnparseableAnswer:
                o.status = "unparseable"
                again.append(i)
            except InvalidAnswer as exc:
                o.status = "invalid"
                o.errors.append(str(exc))
        pending = again
    return outcomes
