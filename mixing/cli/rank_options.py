"""``--rank`` / ``--world-size`` of every command that splits work across ranks (render, store
build, mine, curate): the same options, defaults (``$RANK`` / ``$WORLD_SIZE``, as ``accelerate
launch`` sets them), types and messages everywhere.

Each number is checked while the command line is parsed (the checked types of
:mod:`mixing.cli.argtypes`, which name the variable when a bad value came from the environment);
:func:`ranks_of_args` then checks the pair (:func:`mixing.ranks.world.checked`) before the command
does any work.
"""

from __future__ import annotations

import argparse

from mixing.numbers import NumberError
from mixing.ranks.world import Ranks

from . import argtypes as at

#: the names the command line gives the two numbers in messages
CLI_NAMES = ("--rank", "--world-size")


def add_rank_options(p: argparse.ArgumentParser) -> None:
    """Add ``--rank`` and ``--world-size`` (defaults ``$RANK`` and ``$WORLD_SIZE``)."""
    p.add_argument("--rank", type=at.rank, default=at.env_int("RANK", 0),
                   help="this process's rank (default $RANK; set by accelerate launch)")
    p.add_argument("--world-size", type=at.world_size, default=at.env_int("WORLD_SIZE", 1),
                   help="number of ranks (default $WORLD_SIZE)")


def ranks_of_args(args: argparse.Namespace) -> Ranks | None:
    """The checked ranks of parsed options (None for a command without them)."""
    rank, world = getattr(args, "rank", None), getattr(args, "world_size", None)
    if rank is None or world is None:
        return None
    return Ranks.of(rank, world, names=CLI_NAMES)


def rank_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the parsed ``--rank`` / ``--world-size`` (one line), or None."""
    try:
        ranks_of_args(args)
    except NumberError as exc:
        return str(exc)
    return None
