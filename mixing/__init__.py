"""Hive mixing room: metadata model, corpora resolution, audio, rendering, synthesis, toy corpus."""

__version__ = "0.1.0"
