"""The one rule for text in plots: every string is drawn as it is written.

Labels, system names and titles come from untrusted metadata or from the user. Matplotlib reads
text between two ``$`` as mathtext, so a label such as ``$\\foo$`` used to fail the whole
``hive card`` / ``hive eval`` / ``hive inspect`` run (``ParseFatalException: Unknown symbol``),
and ``$x$`` silently drew something else than the label. Every plotting function of the project
is decorated with :func:`literal_text`, which draws with mathtext and TeX off, so any string is
shown literally and none can fail to parse.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: matplotlib settings under which text is never interpreted
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}


def literal_text(fn: F) -> F:
    """Run the plotting function ``fn`` with :data:`LITERAL_TEXT` (only while it runs)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from . import optional

        if not optional.available("matplotlib"):  # the function reports the missing extra in its own words
            return fn(*args, **kwargs)
        matplotlib = optional.require("matplotlib", "drawing a plot", "card")
        with matplotlib.rc_context(LITERAL_TEXT):
            return fn(*args, **kwargs)

    wrapper.__hive_literal_text__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def new_figure(width: float, height: float, what: str, extra: str = "card") -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches at 100 dpi on the Agg canvas (no
    display, no global pyplot state); a missing matplotlib is one line naming ``what`` and ``extra``."""
    from . import optional

    canvas = optional.require("matplotlib.backends.backend_agg", what, extra).FigureCanvasAgg
    fig = optional.require("matplotlib.figure", what, extra).Figure(figsize=(width, height), dpi=100)
    canvas(fig)
    return fig
