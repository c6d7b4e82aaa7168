"""The one checked-number rule: every number that reaches Hive from outside (a command-line
option, an environment variable, a config file, a keyword argument of the Python API, a backend
spec option) passes through a :class:`Rule` before it is used.

A rule says what kind of number is expected (integer or finite float) and its range. Every
range is bounded, so a value such as ``--world-size 1e20`` or ``--seed -1`` is refused in one
line before it can make a loop run for ever, an allocation explode, or NumPy raise deep inside.
``nan`` and ``inf`` are never accepted. ``bool`` is not a number here (``True`` is not ``1``).

:mod:`mixing.cli.argtypes` turns these rules into argparse types; config dataclasses and API
functions call :meth:`Rule.check` (or :func:`check_fields`); environment variables are read with
:func:`env_number`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import HiveError, short_repr
from .validation import MAX_SAMPLE_RATE

#: largest count of items of any kind (mixtures, rows, retries, problems listed)
MAX_COUNT = 10**9
#: most mixtures one synthesis run may ask for (every record is held until written)
MAX_MIXTURES = 100_000_000
#: most worker processes or threads on one machine
MAX_WORKERS = 1024
#: most ranks of a distributed run (``--world-size``, ``$WORLD_SIZE``)
MAX_RANKS = 65_536
#: largest seed (seeds feed ``numpy.random.default_rng``, which needs a non-negative integer)
MAX_SEED = 2**63 - 1
#: largest duration or timeout in seconds (about 11.6 days)
MAX_SECONDS = 1_000_000.0
#: largest level in dB either way (10 ** (200 / 20) = 1e10 still fits every float type used)
MAX_DB = 200.0


class NumberError(HiveError, ValueError):
    """A number from outside (option, environment variable, setting, argument) is not a finite
    number of the expected kind, or lies outside its range."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """A kind of number (``int`` or ``float``) in ``[lo, hi]`` (``lo_open``: ``lo`` excluded)."""

    kind: type
    lo: float
    hi: float
    lo_open: bool = False
    what: str = ""  # e.g. "a number of seconds"; the range is added to it

    @property
    def expected(self) -> str:
        noun = self.what or ("an integer" if self.kind is int else "a finite number")
        if self.kind is int:
            return f"{noun} in {int(self.lo)}..{int(self.hi)}"
        low = "(" if self.lo_open else "["
        return f"{noun} in {low}{self.lo:g}, {self.hi:g}]"

    def _in_range(self, x: float) -> bool:
        above = x > self.lo if self.lo_open else x >= self.lo
        return above and x <= self.hi

    def convert(self, value: Any) -> int | float | None:
        """The value as this rule's kind, or None when it is not one (no range check). Text is
        parsed (an integer in decimal; a float as Python reads it); an integral float is
        accepted where an integer is expected (``1e3`` from YAML), a fractional one is not."""
        if isinstance(value, str):
            text = value.strip()
            if self.kind is int:
                try:
                    return int(text, 10)
                except ValueError:  # not decimal, or too many digits to convert
                    return None
            try:
                x = float(text)
            except ValueError:
                return None
            return x if math.isfinite(x) else None
        if not _is_number(value):
            try:  # NumPy scalars
                import numpy as np

                if isinstance(value, np.integer):
                    value = int(value)
                elif isinstance(value, np.floating):
                    value = float(value)
                else:
                    return None
            except ImportError:  # pragma: no cover
                return None
        if self.kind is int:
            if isinstance(value, float):
                return int(value) if math.isfinite(value) and value.is_integer() else None
            return int(value)
        x = float(value) if not isinstance(value, int) or abs(value) < 2**1023 else math.inf
        return x if math.isfinite(x) else None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule (``"is ...; expected ..."``), or None."""
        x = self.convert(value)
        if x is None or not self._in_range(x):
            return f"is {short_repr(value, 60)}; expected {self.expected}"
        return None

    def check(self, value: Any, name: str, error: type[Exception] = NumberError) -> Any:
        """``value`` converted to the rule's kind; raises ``error`` naming ``name`` otherwise."""
        problem = self.problem(value)
        if problem:
            raise error(f"{name} {problem}")
        return self.convert(value)

    def check_optional(self, value: Any, name: str, error: type[Exception] = NumberError) -> Any:
        """Like :meth:`check`, but None passes through (an unset option)."""
        return None if value is None else self.check(value, name, error)


def integer(lo: int, hi: int, what: str = "") -> Rule:
    return Rule(int, lo, hi, what=what)


def real(lo: float, hi: float, *, lo_open: bool = False, what: str = "") -> Rule:
    return Rule(float, lo, hi, lo_open=lo_open, what=what)


# ---- the named rules every entry point uses ----------------------------------------------------
COUNT = integer(1, MAX_COUNT, "a positive integer")
NON_NEGATIVE = integer(0, MAX_COUNT, "an integer")
MIXTURES = integer(1, MAX_MIXTURES, "a number of mixtures")
WORKERS = integer(1, MAX_WORKERS, "a number of workers")
RANK = integer(0, MAX_RANKS - 1, "a rank")
WORLD_SIZE = integer(1, MAX_RANKS, "a number of ranks")
SEED = integer(0, MAX_SEED, "a seed")
SAMPLE_RATE = integer(1, MAX_SAMPLE_RATE, "a sample rate in Hz")
NUM_SOURCES = integer(1, 5, "a number of sources")
RETRIES = integer(0, 100, "a number of retries")
TEMPERATURE = real(0.0, 100.0, what="a sampling temperature")
FRACTION = real(0.0, 1.0, what="a fraction")
SECONDS = real(0.0, MAX_SECONDS, lo_open=True, what="a number of seconds")
POSITIVE = real(0.0, 1e300, lo_open=True, what="a positive number")
NON_NEGATIVE_REAL = real(0.0, 1e300, what="a number")
DECIBELS = real(-MAX_DB, MAX_DB, what="a level in dB")
FINITE = real(-1e300, 1e300, what="a finite number")


def check_fields(obj: Any, rules: Mapping[str, Rule], *, where: str = "", error: type[Exception] = NumberError,
                 optional: bool = True) -> None:
    """Check (and convert in place) the attributes of ``obj`` named in ``rules``: a config
    dataclass's numbers. None passes when ``optional``."""
    for name, rule in rules.items():
        value = getattr(obj, name)
        if value is None and optional:
            continue
        label = f"{where}{name}" if not where else f"{where} {name}"
        checked = rule.check(value, label, error)
        try:
            object.__setattr__(obj, name, checked)
        except (AttributeError, TypeError):  # pragma: no cover - a read-only attribute
            pass


class EnvText(str):
    """The text of an environment variable used as an option's default: remembers the
    variable's name, so a bad value is reported as ``$RANK='abc'`` rather than as a flag."""

    env: str

    def __new__(cls, text: str, env: str) -> "EnvText":
        obj = super().__new__(cls, text)
        obj.env = env
        return obj


def env_text(name: str, default: Any) -> str:
    """``$name`` as :class:`EnvText` (an option default that argparse checks with the option's
    type), or ``str(default)`` when unset or empty."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return str(default)
    return EnvText(value, name)


def env_number(name: str, rule: Rule, default: int | float) -> int | float:
    """``$name`` checked by ``rule`` (``default`` when unset or empty); a bad value is a
    :class:`NumberError` naming the variable, never a silent fallback."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    problem = rule.problem(value)
    if problem:
        raise NumberError(f"environment variable {name} {problem}; fix or unset it")
    return rule.convert(value)
