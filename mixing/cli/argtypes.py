"""argparse types for the numbers every ``hive`` command takes: a bad value is refused while the
command line is parsed, with one line saying what was given and what is expected."""

from __future__ import annotations

import argparse
import math
import os

from mixing.validation import MAX_SAMPLE_RATE


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes, workers)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer (expected >= 1)")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (ranks, retries, example counts)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative (expected an integer >= 0)")
    return value


def sample_rate(text: str) -> int:
    """A sample rate in Hz, 1 .. MAX_SAMPLE_RATE (an unbounded rate would allocate without limit)."""
    value = _int(text)
    if not 1 <= value <= MAX_SAMPLE_RATE:
        raise argparse.ArgumentTypeError(f"{text} Hz is not a sample rate in 1..{MAX_SAMPLE_RATE} Hz")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (durations, timeouts, tolerances)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number (expected > 0)")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (temperatures, margins)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number >= 0")
    return value


def finite_float(text: str) -> float:
    """Any finite number (e.g. decibels)."""
    return _float(text)


def env_int(name: str, default: int) -> int:
    """``int($name)`` as a flag default; an unset or non-integer variable gives ``default`` (the
    flag's own type then checks what is given on the command line)."""
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def check_rank(args: argparse.Namespace) -> str | None:
    """The problem with ``--rank`` / ``--world-size`` (None when fine or absent): the rank must be
    in ``0 .. world_size - 1``."""
    rank, world = getattr(args, "rank", None), getattr(args, "world_size", None)
    if rank is None or world is None:
        return None
    if world < 1:
        return f"--world-size is {world}; expected a positive number of ranks"
    if not 0 <= rank < world:
        return f"--rank is {rank} but --world-size is {world}; expected a rank in 0..{world - 1}"
    return None


class HiveArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``hive <cmd>: error: ...; see --help``."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")
