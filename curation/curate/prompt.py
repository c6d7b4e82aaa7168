"""The question put to the judge, and the robust reading of its answer.

The prompt lists the options numbered from 1 and asks for the number of the label that matches
the sound, or 0 if none does. :func:`parse_choice` reads the answer: a lone number (``"2"``,
``"2."``, ``"Answer: 2"``, ``"**2**"``), a "none" answer (``"0"``, ``"none"``, ``"none of the
above"``), or the text of exactly one option. Anything else (several different numbers, a number
out of range, prose naming no option) is unparseable: ``None``.
"""

from __future__ import annotations

import hashlib
import re

PROMPT_VERSION = "hive-curate-v1"
PROMPT_TEMPLATE = (
    "Listen to the audio clip. It contains one sound source.\n"
    "Which of the following labels describes it?\n"
    "{options}\n"
    "Answer with the number of the matching label only, or 0 if none of the labels matches."
)


def build_prompt(options: tuple[str, ...] | list[str]) -> str:
    """The prompt text for the options in the order shown (numbered from 1)."""
    lines = "\n".join(f"{i}. {label}" for i, label in enumerate(options, 1))
    return PROMPT_TEMPLATE.format(options=lines)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: identifies the template (and so the question) in provenance
TEMPLATE_SHA256 = sha256_text(PROMPT_VERSION + "\n" + PROMPT_TEMPLATE)

_NONE = re.compile(
    r"^(?:none(?: of (?:the|them|these)(?: above| options| labels)?)?|no(?:ne)? match(?:es)?|"
    r"no matching label|neither|nothing|no)$")
_INT = re.compile(r"(?<![\w.+\-\u2212])(\d+)(?![\w]|\.\d)")
_LEAD = re.compile(r"^(?:option|label|answer|choice|number)?\s*[:#]?\s*(\d+)\s*(?:[.):\]-](?!\d)|$)")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)  # reasoning, closed or cut off
_TOKEN = re.compile(r"<\|[^<>|]*\|>")  # special tokens such as <|im_end|>
_STRIP = str.maketrans({c: " " for c in "*_`\"'“”‘’()[]{}<>"})


def _norm(text: str) -> str:
    text = _TOKEN.sub(" ", _THINK.sub(" ", text))
    return " ".join(text.casefold().translate(_STRIP).split()).strip(" .!:;,")


def parse_choice(answer: str | None, options: tuple[str, ...] | list[str]) -> int | None:
    """0 for "none matches", 1..len(options) for an option, None when unreadable."""
    if answer is None:
        return None
    n = len(options)
    text = _norm(str(answer))
    if not text:
        return None
    for prefix in ("answer", "the answer is", "final answer", "option", "label", "choice"):
        if text.startswith(prefix + " ") or text.startswith(prefix + ":"):
            text = text[len(prefix):].lstrip(" :").strip()
            break
    if _NONE.match(text):
        return 0
    lead = _LEAD.match(text)
    if lead is not None:
        value = int(lead.group(1))
        return value if 0 <= value <= n else None
    numbers = {int(m) for m in _INT.findall(text)}
    if len(numbers) == 1:
        value = numbers.pop()
        return value if 0 <= value <= n else None
    # no usable number: the text of exactly one option
    names = [_norm(o) for o in options]
    if text in names:
        return names.index(text) + 1
    if numbers:
        return None
    hits = [i for i, name in enumerate(names, 1)
            if re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", text)]
    # a name inside another matched name ("bell" in "church bell") is not a second answer
    hits = [i for i in hits if not any(j != i and names[i - 1] in names[j - 1] for j in hits)]
    if len(hits) == 1:
        return hits[0]
    if not hits and re.search(r"\bnone of (?:the|them|these)\b|\bno (?:label|option) matches\b", text):
        return 0
    return None
