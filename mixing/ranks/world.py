"""This process's rank and the world size, checked in one place, and this rank's share of the work.

A :class:`Ranks` is made from keyword arguments (the Python API), the command line
(:mod:`mixing.cli.rank_options`), ``$RANK``/``$WORLD_SIZE`` (:meth:`Ranks.from_env`) or accelerate's
``PartialState`` (:meth:`Ranks.from_accelerate`). Whichever way, both numbers pass the one
checked-number rule (:data:`mixing.numbers.RANK`, :data:`mixing.numbers.WORLD_SIZE`: ``RANK=abc``
and ``--world-size 1e20`` are refused) and the rank must lie in ``0 .. world_size - 1``.

Work is split deterministically: the caller sorts it (or numbers it in a fixed order), and rank
``r`` of ``w`` takes ``items[r::w]`` (:meth:`Ranks.share`) or the items whose index ``i`` has
``i % w == r`` (:meth:`Ranks.owns`). What a rank does never depends on how many workers it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

from .. import numbers

T = TypeVar("T")

#: how the API names the two numbers in messages (the command line says --rank / --world-size)
API_NAMES = ("rank", "world_size")


def checked(rank: Any, world_size: Any, names: tuple[str, str] = API_NAMES,
            error: type[Exception] = numbers.NumberError) -> tuple[int, int]:
    """``(rank, world_size)`` as integers, or ``error`` in one line: each must be a number of its
    kind in range, and the rank below the world size."""
    rank = numbers.RANK.check(rank, names[0], error)
    world_size = numbers.WORLD_SIZE.check(world_size, names[1], error)
    if rank >= world_size:
        raise error(f"{names[0]} is {rank} but {names[1]} is {world_size}; expected a rank in "
                    f"0..{world_size - 1}: give each process its own rank below the number of ranks "
                    "(accelerate launch sets both)")
    return rank, world_size


@dataclass(frozen=True)
class Ranks:
    """Rank ``rank`` of ``world_size`` processes splitting one job (checked when made)."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        rank, world = checked(self.rank, self.world_size)
        object.__setattr__(self, "rank", rank)
        object.__setattr__(self, "world_size", world)

    @classmethod
    def of(cls, rank: Any = 0, world_size: Any = 1, *, names: tuple[str, str] = API_NAMES,
           error: type[Exception] = numbers.NumberError) -> "Ranks":
        """Checked ranks, a bad value reported under ``names`` as ``error``."""
        return cls(*checked(rank, world_size, names, error))

    @classmethod
    def from_env(cls) -> "Ranks":
        """``$RANK`` / ``$WORLD_SIZE`` (set by ``accelerate launch`` and ``torchrun``); 0 of 1 when unset."""
        return cls.of(numbers.env_number("RANK", numbers.RANK, 0),
                      numbers.env_number("WORLD_SIZE", numbers.WORLD_SIZE, 1), names=("$RANK", "$WORLD_SIZE"))

    @classmethod
    def from_accelerate(cls, state: Any = None, *, cpu: bool = False) -> "Ranks":
        """The ranks of an accelerate launch: ``state`` (a ``PartialState``), or one made here."""
        if state is None:
            from .. import optional

            state = optional.require("accelerate", "Ranks.from_accelerate", "models").PartialState(cpu=cpu)
        return cls.of(state.process_index, state.num_processes, names=("process_index", "num_processes"))

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes run-wide files and reports."""
        return self.rank == 0

    @property
    def single(self) -> bool:
        return self.world_size == 1

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items of ``items`` (sorted by the caller): ``items[rank::world_size]``."""
        return list(items[self.rank::self.world_size])

    def owns(self, index: int) -> bool:
        """Whether the item numbered ``index`` (in a fixed order) is this rank's."""
        return index % self.world_size == self.rank

    def indices(self, n: int) -> range:
        """This rank's indices of ``n`` items: ``rank, rank + world_size, ...``."""
        return range(self.rank, n, self.world_size)

    def flags(self) -> list[str]:
        """The command-line options that give a ``hive`` command these ranks."""
        return ["--rank", str(self.rank), "--world-size", str(self.world_size)]

    def __str__(self) -> str:
        return f"{self.rank}/{self.world_size}"

