"""Stage 3, ``single-event``: an audio LLM says whether the clip holds only one type of sound.

The answer is read robustly (:func:`parse_bool`): case, whitespace, punctuation and markdown are
ignored; the first word decides when it is a yes/no word (``true``, ``yes``, ``false``, ``no``,
...); otherwise the answer counts when exactly one polarity appears in it and no negation
(``not true`` is asked again rather than guessed). An unreadable answer
is asked again (``retries`` times), then the clip is dropped as ``judge_unparseable``; a clip
whose calls all failed is dropped as ``judge_failed``. Clips judged to hold several sounds are
dropped as ``multiple_events``. Every clip gets an outcome; no batch is silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mixing import numbers

from .base import (
    AUDIO_ERRORS, Drop, Item, Result, Stage, StageError, UnparseableAnswer, ask_judge, load_backend,
    opt, read_error_reason, sha256_text,
)

DEFAULT_PROMPT = ("Listen to this audio clip. Does it contain only one type of sound (a single sound "
                  "event or source, with no other distinct sounds)? Answer with one word: True or False.")
_TRUE = {"true", "yes"}
_FALSE = {"false", "no"}
_FIRST_ONLY = {"y": True, "t": True, "n": False, "f": False}
_NEGATION = {"not", "isn", "doesn", "don", "never", "neither", "nor"}
_WORD = re.compile(r"[a-z]+")


def parse_bool(answer: str) -> bool:
    """``True``/``False`` from a judge's answer; raises :class:`UnparseableAnswer`."""
    words = _WORD.findall(answer.lower())
    if not words:
        raise UnparseableAnswer(answer)
    first = words[0]
    if first in _TRUE:
        return True
    if first in _FALSE:
        return False
    if first in _FIRST_ONLY and len(words) == 1:
        return _FIRST_ONLY[first]
    found = {w in _TRUE for w in words if w in _TRUE or w in _FALSE}
    if len(found) == 1 and not _NEGATION.intersection(words):
        return found.pop()
    raise UnparseableAnswer(answer)


@dataclass
class SingleEventStage(Stage):
    name = "single-event"
    description = "keep clips an audio LLM judges to hold only one type of sound"
    default_batch_size = 8

    judge: str | None = opt(None, "judge backend: NAME[:key=value,...], e.g. "
                            "openai:url=http://127.0.0.1:8000/v1,model=M or qwen-omni:path=/local/model",
                            required=True)
    prompt: str = opt(DEFAULT_PROMPT, "the question asked about every clip")
    retries: int = opt(2, "times an unreadable answer or failed call is asked again", type=numbers.RETRIES)

    def setup(self) -> None:
        if not self.judge:
            raise StageError("the single-event stage needs --judge NAME[:options]")
        self._judge = load_backend("judge", self.judge, self.device)

    def models(self) -> dict:
        j = getattr(self, "_judge", None)
        return {"judge": {"spec": self.judge, "model_id": getattr(j, "model_id", None)}}

    def prompts(self) -> dict[str, str]:
        return {"single_event": self.prompt}

    def thresholds(self) -> dict:
        return {"retries": self.retries}

    def process_batch(self, items: list[Item]) -> list[Result]:
        results: list[Result] = [[] for _ in items]
        audios, where = [], []
        for i, item in enumerate(items):
            try:
                audios.append(self.audio.read(item))
                where.append(i)
            except AUDIO_ERRORS as exc:
                results[i] = [Drop.of(item, read_error_reason(exc), str(exc))]
        outcomes = ask_judge(self._judge, audios, self.prompt, parse_bool, self.retries) if audios else []
        prompt_hash = sha256_text(self.prompt)
        for i, o in zip(where, outcomes):
            item = items[i]
            record = {"judge": self._judge.model_id, "prompt_sha256": prompt_hash, **o.record()}
            if o.status == "failed":
                results[i] = [Drop.of(item, "judge_failed", "; ".join(o.errors[-1:]), judge=record)]
            elif o.status != "ok":
                results[i] = [Drop.of(item, "judge_unparseable", repr(o.answers[-1])[:200], judge=record)]
            elif not o.value:
                results[i] = [Drop.of(item, "multiple_events", repr(o.answers[-1])[:200], judge=record)]
            else:
                out = item.replace()
                out.provenance["single_event"] = record
                results[i] = [out]
        return results
