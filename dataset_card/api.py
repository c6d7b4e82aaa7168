"""The Python API of ``hive card`` (see :mod:`mixing.api` for the other commands)."""

from __future__ import annotations

import os
from typing import Any, Iterable

from mixing.metadata import MixtureRecord


def card(metadata: "str | os.PathLike | Iterable[MixtureRecord]", output: "str | os.PathLike", *,
         revision: str | None = None, repo_id: str | None = None, parent_revision: str | None = None,
         provenance: dict[str, Any] | None = None, license: str | None = None, top_labels: int = 30,
         example_revision: str = "main", rows_per_file: int | None = None):
    """Write the Hub layout (``output/data/...`` Parquet per config and split), the plots
    (``output/assets/*.png``) and the dataset card (``output/README.md``) with statistics.

    Args:
        metadata: Hub id, Parquet file/folder, legacy JSON folder or JSONL file, or an iterable of
            :class:`mixing.metadata.MixtureRecord`.
        output: folder to write into (its ``data/`` is rewritten; it must not contain ``metadata``).
        revision: revision to read when ``metadata`` is a Hub id.
        repo_id: the Hub repository the card's loading examples use (default ShandaAI/Hive).
        parent_revision, provenance: shown under Provenance (provenance: a JSON-able dict).
        license: Hub licence id of the metadata (default ``other``).
        top_labels: labels in the histogram; example_revision: revision in the loading examples.
        rows_per_file: rows per Parquet file (bounds memory too).

    Returns:
        A :class:`dataset_card.card.CardResult` (``layout``, ``stats``, ``card``, ``plots``).
    """
    from .card import DEFAULT_LICENSE, DEFAULT_REPO_ID, CardError, CardConfig, write_card_folder
    from .layout import DEFAULT_ROWS_PER_FILE

    from mixing import numbers

    rows = numbers.COUNT.check(DEFAULT_ROWS_PER_FILE if rows_per_file is None else rows_per_file,
                               "rows_per_file", CardError)
    top_labels = numbers.COUNT.check(top_labels, "top_labels", CardError)
    if provenance is not None and not isinstance(provenance, dict):
        raise CardError(f"provenance is a {type(provenance).__name__}; expected a dict of parameters")
    options = CardConfig(repo_id=repo_id or DEFAULT_REPO_ID, parent_revision=parent_revision,
                          provenance=dict(provenance or {}), license=license or DEFAULT_LICENSE,
                          top_labels=top_labels, example_revision=example_revision, rows_per_file=rows)
    return write_card_folder(metadata, output, options, revision=revision)
