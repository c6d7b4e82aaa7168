"""Hive mixing room: metadata model, corpora resolution, audio, rendering, synthesis, toy corpus."""

__version__ = "0.1.0"

from . import api  # noqa: E402  (light: each function imports its implementation when called)

__all__ = ["api", "__version__"]
