"""How ``hive eval`` runs the separator and which mixtures and sources it scores, in one checked object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..label_filter import LabelFilter
from .errors import EvalError


@dataclass(frozen=True)
class EvalOptions:
    """``batch_size``: (mixture, query) pairs per call of a batched separator; ``device``: where it
    runs (None: a module's own device, else CPU); ``num_workers``: processes computing the metrics;
    ``num_sources``: only mixtures of this many sources; ``labels``: a label subset (a
    :class:`~mixing.label_filter.LabelFilter` or names/mids), whose selected sources are the ones
    queried and scored."""

    batch_size: int = 8
    device: str | None = None
    num_workers: int = 1
    num_sources: int | None = None
    labels: LabelFilter | None = None

    def __post_init__(self) -> None:
        for name, lo in (("batch_size", 1), ("num_workers", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise EvalError(f"{name} is {v!r}; expected an integer >= {lo}")
        n = self.num_sources
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 5):
            raise EvalError(f"num_sources is {n!r}; expected 1..5 (Hive mixtures have 2-5 sources) or None")
        if self.device is not None and not isinstance(self.device, str):
            raise EvalError(f"device is {self.device!r}; expected a torch device name such as 'cpu' or 'cuda:0'")
        if self.labels is not None and not isinstance(self.labels, LabelFilter):
            object.__setattr__(self, "labels", LabelFilter.make(self.labels))

    @classmethod
    def coerce(cls, options: "EvalOptions | None" = None, **changes: Any) -> "EvalOptions":
        from dataclasses import replace

        base = options or cls()
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(base, **given) if given else base
