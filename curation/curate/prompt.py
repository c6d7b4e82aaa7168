"""The question put to the judge, and the robust reading of its answer.

The prompt is a template with the options inserted at a placeholder: ``{options_json}`` (the
reference's form: a JSON object ``{"1": label, "2": label, ...}`` indented by 2, non-ASCII kept)
or ``{options}`` (one ``N. label`` line per option). Options are numbered from 1 in the order
shown; the judge answers the number of the matching label, or 0 if none matches.

Templates (``--prompt``): ``reference`` (default; the wording of the reference
``mix_data_curation.py``), ``hive-v1`` (this project's earlier wording), any other text (a
template), or ``@PATH`` (a UTF-8 file holding the template). The system message (``--system``,
default the reference's ``"You are a helpful assistant."``; empty sends none) and the sampling
temperature (``--temperature``, default unset: not sent, so the server's default applies, as in
the reference) are part of :class:`PromptConfig`, whose digest enters the answer cache key.

:func:`parse_choice` reads the answer: a lone number (``"2"``, ``"2."``, ``"Answer: 2"``,
``"**2**"``), a "none" answer (``"0"``, ``"none"``, ``"none of the above"``), or the text of
exactly one option. Anything else (several different numbers, a number out of range, prose
naming no option) is unparseable: ``None``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixing.errors import HiveError

PROMPT_VERSION = "hive-curate-v1"
PROMPT_TEMPLATE = (
    "Listen to the audio clip. It contains one sound source.\n"
    "Which of the following labels describes it?\n"
    "{options}\n"
    "Answer with the number of the matching label only, or 0 if none of the labels matches."
)
#: the reference's prompt wording (``call_qwen3_omni`` in ``mix_data_curation.py``)
REFERENCE_TEMPLATE = (
    "You are an audio classification expert. Please listen to this audio carefully, then select "
    "the most matching label from the following label pool.\n"
    "\n"
    "Label pool (JSON format, key is number, value is label name):\n"
    "{options_json}\n"
    "\n"
    "Please only return the corresponding number key (e.g., 1, 2, 3, etc.), do not return anything "
    "else. If the audio does not match any label, return 0.\n"
    "\n"
    "Your answer (only return number):"
)
PRESETS = {"reference": REFERENCE_TEMPLATE, "hive-v1": PROMPT_TEMPLATE}
#: the reference's system message
REFERENCE_SYSTEM = "You are a helpful assistant."
PLACEHOLDERS = ("{options_json}", "{options}")


class PromptError(HiveError, ValueError):
    """A prompt template cannot be used."""


def options_json(options: tuple[str, ...] | list[str]) -> str:
    """The reference's option block: ``{"1": label, ...}`` as JSON, indent 2, non-ASCII kept."""
    return json.dumps({str(i): label for i, label in enumerate(options, 1)}, ensure_ascii=False, indent=2)


def build_prompt(options: tuple[str, ...] | list[str], template: str = PROMPT_TEMPLATE) -> str:
    """The prompt text for the options in the order shown (numbered from 1). Placeholders are
    replaced literally (other braces in the template are left as they are)."""
    text = template
    if "{options_json}" in text:
        text = text.replace("{options_json}", options_json(options))
    if "{options}" in text:
        text = text.replace("{options}", "\n".join(f"{i}. {label}" for i, label in enumerate(options, 1)))
    return text


def resolve_template(value: str | None) -> tuple[str, str]:
    """``(name, template)`` for a ``--prompt`` value: a preset name, ``@PATH`` or literal text."""
    if value is None or value in PRESETS:
        name = value or "reference"
        return name, PRESETS[name]
    if value.startswith("@"):
        from mixing.input_files import read_text

        path = Path(value[1:])
        try:
            template = read_text(path, "template file", PromptError, max_bytes=1 << 20)
        except PromptError as exc:
            raise PromptError(f"--prompt {value!r}: cannot read the template file ({exc}); expected @PATH of a "
                              "UTF-8 text file") from None
        name = f"file:{path.name}"
    else:
        template, name = value, "custom"
    if not any(p in template for p in PLACEHOLDERS):
        raise PromptError(f"prompt template {template[:80]!r} has no placeholder for the options; "
                          f"expected {PLACEHOLDERS[0]} (JSON pool, as the reference) or {PLACEHOLDERS[1]} "
                          f"(numbered lines), or a preset name {sorted(PRESETS)}")
    return name, template


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptConfig:
    """Everything about the request besides the clip: template, system message, temperature."""

    template: str = REFERENCE_TEMPLATE
    system: str = REFERENCE_SYSTEM
    temperature: float | None = None
    name: str = "reference"

    def __post_init__(self) -> None:
        if not any(p in self.template for p in PLACEHOLDERS):
            raise PromptError(f"prompt template {self.template[:80]!r} has no {PLACEHOLDERS[0]} or "
                              f"{PLACEHOLDERS[1]} placeholder")
        t = self.temperature
        if t is not None and (not math.isfinite(t) or t < 0):
            raise PromptError(f"temperature is {t!r}; expected a finite number >= 0, or unset "
                              "(not sent: the server's default)")

    @classmethod
    def from_options(cls, prompt: str | None = None, system: str | None = None,
                     temperature: float | None = None) -> "PromptConfig":
        name, template = resolve_template(prompt)
        return cls(template, REFERENCE_SYSTEM if system is None else system, temperature, name)

    def build(self, options: tuple[str, ...] | list[str]) -> str:
        return build_prompt(options, self.template)

    @property
    def template_sha256(self) -> str:
        return sha256_text(self.template)

    def request_sha256(self, prompt: str) -> str:
        """Identifies one request's text settings: the prompt as sent, the system message and
        the temperature (the answer cache key covers it)."""
        return sha256_text(json.dumps([prompt, self.system, self.temperature], ensure_ascii=False))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "template": self.template, "template_sha256": self.template_sha256,
                "system": self.system, "temperature": self.temperature,
                "temperature_sent": self.temperature is not None}


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
