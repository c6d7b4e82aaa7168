"""Robust parsing of audio-LLM answers, shared by every judge backend and stage.

Language models do not answer in a fixed format: ``"True"``, ``"true."``, ``" **False**"``,
``"Yes, only one sound"``, ``"Answer: False"``, ``"<think>…</think>True"``. The parsers here
normalise case, whitespace, punctuation and markup, and return ``None`` for an answer they
cannot read, so that the caller can retry and then record a named reason — never guess.
"""

from __future__ import annotations

import re

__all__ = ["parse_bool", "parse_option", "normalise"]

_TRUE_WORDS = frozenset({"true", "yes"})
_FALSE_WORDS = frozenset({"false", "no"})
_LEAD_INS = frozenset({"answer", "response", "output", "result", "final", "the", "is", "my"})
_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<\|?[^<>\s]*\|?>")  # leftover special tokens such as <|im_end|>
_WORD = re.compile(r"[a-z]+|-?\d+")
_INT = re.compile(r"(?<![\w.])([-+−]?\d+)(?![\w.]*\d)")
_NONE_WORDS = frozenset({"none", "null", "nothing"})


def normalise(answer: str) -> str:
    """Drop reasoning blocks and special tokens, lower-case, collapse whitespace."""
    text = _THINK.sub(" ", answer)
    if "<think>" in text.lower():  # an unterminated reasoning block: nothing after it is an answer
        text = text[: text.lower().index("<think>")]
    text = _TAG.sub(" ", text)
    return " ".join(text.lower().split())


def parse_bool(answer: str | None) -> bool | None:
    """Read a True/False (or yes/no) answer; ``None`` when it is missing or ambiguous.

    The first word decides when it is a truth word (``"No, it is not true"`` is False). Else
    lead-in words such as ``"Answer:"`` are skipped; else the answer is read only when every
    truth word in it has the same polarity.
    """
    if answer is None:
        return None
    words = _WORD.findall(normalise(answer))
    if not words:
        return None
    for word in words:
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        if word not in _LEAD_INS:
            break
    polarities = {w in _TRUE_WORDS for w in words if w in _TRUE_WORDS or w in _FALSE_WORDS}
    if len(polarities) == 1:
        return polarities.pop()
    return None


def parse_option(answer: str | None, n_options: int, *, base: int = 0,
                 none_value: int = -1) -> int | None:
    """Read the index of a chosen option among ``n_options`` (numbered from ``base``).

    Returns a 0-based index in ``[0, n_options)``; ``-1`` when the model answers ``none_value``
    (or "none"), meaning no option fits; ``None`` when the answer holds no integer or an integer
    out of range (another negative number is an invalid answer, never Python's wrap-around).
    The first integer in the answer counts.
    """
    if n_options < 0:
        raise ValueError(f"n_options must be >= 0, got {n_options}")
    if answer is None:
        return None
    text = normalise(answer).replace("−", "-")
    match = _INT.search(text)
    if match is None:
        words = _WORD.findall(text)
        if words and any(w in _NONE_WORDS for w in words[:3]):
            return -1
        return None
    value = int(match.group(1))
    if value == none_value:
        return -1
    index = value - base
    if 0 <= index < n_options:
        return index
    return None
