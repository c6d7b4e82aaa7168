"""argparse types for the numbers every ``hive`` command takes, built from the one checked-number
rule (:mod:`mixing.numbers`): a bad value is refused while the command line is parsed, with one
line saying what was given and what is expected. Every numeric option of every subcommand uses
one of these types (a test walks the parsers), and options whose default comes from an
environment variable (``$RANK``, ``$WORLD_SIZE``) check the variable with the same type.
"""

from __future__ import annotations

import argparse
from typing import Any

from mixing import numbers as n
from mixing.errors import short_repr


class CheckedType:
    """An argparse ``type``: text -> number by a :class:`mixing.numbers.Rule`; a bad value is an
    ``ArgumentTypeError`` saying what was given and what is expected (naming the environment
    variable when the text came from one)."""

    def __init__(self, rule: n.Rule, name: str):
        self.rule = rule
        self.__name__ = name  # argparse names the type in some messages

    def __call__(self, text: str) -> Any:
        if self.rule.problem(text):
            raw = str(text)
            plain = raw and raw.isprintable() and raw.strip() == raw and len(raw) <= 60
            shown = raw if plain else short_repr(raw, 60)
            env = getattr(text, "env", None)
            if env:
                raise argparse.ArgumentTypeError(f"environment variable {env}={shown} is not "
                                                 f"{self.rule.expected}; fix or unset {env}")
            raise argparse.ArgumentTypeError(f"{shown} is not {self.rule.expected}")
        return self.rule.convert(text)

    def __repr__(self) -> str:
        return f"<checked {self.__name__}: {self.rule.expected}>"


def from_rule(rule: n.Rule, name: str | None = None) -> CheckedType:
    """The argparse type of ``rule`` (e.g. for stage options declared with a rule)."""
    return CheckedType(rule, name or rule.what or rule.kind.__name__)


def is_checked(type_: Any) -> bool:
    """Whether ``type_`` is one of the checked number types (the parser-walking test asks)."""
    return isinstance(type_, CheckedType)


#: an integer >= 1 (counts, sizes)
positive_int = CheckedType(n.COUNT, "positive_int")
#: an integer >= 0 (retries, example counts)
non_negative_int = CheckedType(n.NON_NEGATIVE, "non_negative_int")
#: worker processes / threads
workers = CheckedType(n.WORKERS, "workers")
#: a rank of a distributed run
rank = CheckedType(n.RANK, "rank")
#: the number of ranks
world_size = CheckedType(n.WORLD_SIZE, "world_size")
#: a seed (non-negative: numpy's generators refuse negative seeds)
seed = CheckedType(n.SEED, "seed")
#: a sample rate in Hz, 1 .. MAX_SAMPLE_RATE (an unbounded rate would allocate without limit)
sample_rate = CheckedType(n.SAMPLE_RATE, "sample_rate")
#: 1 .. 5 sources
num_sources = CheckedType(n.NUM_SOURCES, "num_sources")
#: a number of mixtures to synthesize
mixtures = CheckedType(n.MIXTURES, "mixtures")
#: retries of a failed call (bounded: each may wait)
retries = CheckedType(n.RETRIES, "retries")
#: a sampling temperature
temperature = CheckedType(n.TEMPERATURE, "temperature")
#: a number in [0, 1]
fraction = CheckedType(n.FRACTION, "fraction")
#: a duration or timeout in seconds (> 0, bounded)
seconds = CheckedType(n.SECONDS, "seconds")
#: a finite number > 0 (tolerances)
positive_float = CheckedType(n.POSITIVE, "positive_float")
#: a finite number >= 0 (temperatures, margins)
non_negative_float = CheckedType(n.NON_NEGATIVE_REAL, "non_negative_float")
#: a level in dB (bounded both ways: 10 ** (dB / 20) must stay finite)
decibels = CheckedType(n.DECIBELS, "decibels")
#: any finite number
finite_float = CheckedType(n.FINITE, "finite_float")


class MemorySize:
    """argparse type of ``--max-memory``: a size (``8G``, ``512MiB``), a percentage of the
    available memory (``90%``) or ``none``, checked (finite, bounded) and returned as its text,
    which the command puts in ``$HIVE_MAX_MEMORY`` for itself and its workers."""

    __name__ = "memory_size"

    def __call__(self, text: str) -> str:
        from mixing.memory_estimate import parse_size

        try:
            parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return str(text).strip()


memory_size = MemorySize()


def add_max_memory(p: argparse.ArgumentParser) -> None:
    """``--max-memory SIZE``: the memory cap of a command that holds audio (default: 80% of the
    available memory; the same as ``$HIVE_MAX_MEMORY``)."""
    p.add_argument("--max-memory", type=memory_size, metavar="SIZE",
                   help="refuse work whose memory estimate (duration x rate x sources) exceeds SIZE: bytes "
                        "with a unit (8G, 512MiB), a percentage of the available memory (90%%) or 'none' "
                        "(default: $HIVE_MAX_MEMORY, else 80%% of the memory available)")


def env_int(name: str, default: int) -> str:
    """``$name`` as an option default that argparse checks with the option's own type (a string
    default goes through ``type``), so ``RANK=abc`` is refused in one line naming the variable
    instead of running as rank 0; ``str(default)`` when the variable is unset or empty."""
    return n.env_text(name, default)


def numeric_actions(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """``(command path, action)`` of every option of ``parser`` and its subparsers that takes a
    number: a checked type, ``int``/``float`` as type, or a numeric default without a type."""
    found: list[tuple[str, argparse.Action]] = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
                continue
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._CountAction,
                                   argparse._StoreConstAction)):
                continue  # store_true/false are StoreConst subclasses
            default = action.default
            numeric_default = isinstance(default, (int, float)) and not isinstance(default, bool)
            if is_checked(action.type) or action.type in (int, float) or (action.type is None and numeric_default):
                found.append((path, action))

    walk(parser, parser.prog)
    return found


class HiveArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``hive <cmd>: error: ...; see --help``."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}; see '{self.prog} --help'\n")
