"""``hive eval``: SI-SDR, SI-SDRi and SDR of a query-based separator on rendered Hive mixtures.

Modules: :mod:`.metrics` (the formulas), :mod:`.rendered` (streaming the render output),
:mod:`.estimates` (separator callable or estimates folder), :mod:`.separator` (batched or
per-source separators on their device), :mod:`.scoring` (metric rows per mixture, in worker
processes), :mod:`.options` (:class:`EvalOptions`), :mod:`.report` (tables and plot), :mod:`.job`
(the loop).
"""

from .errors import EvalError
from .job import EvalResult, evaluate
from .options import EvalOptions

__all__ = ["EvalError", "EvalOptions", "EvalResult", "evaluate"]
