"""The options of ``hive eval`` / :func:`mixing.evaluate.evaluate`, in one checked object: how the
separator runs, which mixtures and sources it scores, and what is computed and written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import numbers
from ..label_filter import LabelFilter
from .errors import EvalError

#: names the oracle rows use; an evaluated system may not take one
ORACLE_NAMES = ("mixture", "irm")


@dataclass(frozen=True)
class EvalOptions:
    """``batch_size``: (mixture, query) pairs per call of a batched separator; ``device``: where it
    runs (None: a module's own device, else CPU); ``num_workers``: processes computing the metrics;
    ``num_sources``: only mixtures of this many sources; ``labels``: a label subset (a
    :class:`~mixing.label_filter.LabelFilter` or names/mids), whose selected sources are the ones
    queried and scored; ``name``: the evaluated system's name in the tables (default
    ``separator`` / ``estimates``); ``with_sdr``: also BSS-eval v4 SDR and SDRi (torchmetrics);
    ``allow_missing``: with an estimates folder, skip sources without a file (counted) instead of
    failing; ``limit``: stop after this many mixtures (default all); ``plot``: write the PNG plot
    (matplotlib); ``progress``: a tqdm bar (None: when stderr is a terminal)."""

    batch_size: int = 8
    device: str | None = None
    num_workers: int = 1
    num_sources: int | None = None
    labels: LabelFilter | None = None
    name: str | None = None
    with_sdr: bool = True
    allow_missing: bool = False
    limit: int | None = None
    plot: bool = True
    progress: bool | None = None

    def __post_init__(self) -> None:
        # the one checked-number rule, as every command's options (mixing.numbers)
        numbers.check_fields(self, {"batch_size": numbers.COUNT, "num_workers": numbers.WORKERS},
                             where="eval option", error=EvalError, optional=False)
        numbers.check_fields(self, {"num_sources": numbers.NUM_SOURCES, "limit": numbers.COUNT},
                             where="eval option", error=EvalError)
        if self.device is not None and not isinstance(self.device, str):
            raise EvalError(f"device is {self.device!r}; expected a torch device name such as 'cpu' or 'cuda:0'")
        if self.labels is not None and not isinstance(self.labels, LabelFilter):
            object.__setattr__(self, "labels", LabelFilter.make(self.labels))
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise EvalError(f"name is {self.name!r}; expected the evaluated system's name, e.g. 'audiosep'")
        if self.name in ORACLE_NAMES:
            raise EvalError(f"system name {self.name!r} is reserved for an oracle row; choose another --name")

    @classmethod
    def coerce(cls, options: "EvalOptions | None" = None, **changes: Any) -> "EvalOptions":
        from dataclasses import replace

        base = options or cls()
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(base, **given) if given else base
