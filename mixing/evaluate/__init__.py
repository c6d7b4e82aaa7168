"""``hive eval``: SI-SDR, SI-SDRi and SDR of a query-based separator on rendered Hive mixtures.

Modules: :mod:`.metrics` (the formulas), :mod:`.rendered` (streaming the render output),
:mod:`.estimates` (separator callable or estimates folder), :mod:`.report` (tables and plot),
:mod:`.job` (the loop).
"""

from .errors import EvalError
from .job import EvalResult, evaluate

__all__ = ["EvalError", "EvalResult", "evaluate"]
