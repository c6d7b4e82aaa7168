"""The label-subset flags, one definition for ``hive render``, ``inspect``, ``eval`` and ``synthesize``.

``--labels NAME [NAME ...]`` (names or AudioSet mids; a name with commas or spaces is one quoted
argument: ``--labels Dog "Violin, fiddle"``), ``--labels-file FILE`` (one per line, ``#``
comments), ``--exclude-labels NAME [NAME ...]``, ``--label-match all|any``, ``--no-descendants``.
See :mod:`mixing.label_filter` for what they select.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_label_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("label subset (names or AudioSet mids; a label also selects its descendants in the "
                             "Hive ontology)")
    g.add_argument("--labels", nargs="+", action="extend", metavar="LABEL",
                   help='keep mixtures of these labels (quote a label with commas: "Violin, fiddle")')
    g.add_argument("--labels-file", metavar="FILE", help="labels to keep, one name or mid per line (# comments)")
    g.add_argument("--exclude-labels", nargs="+", action="extend", metavar="LABEL",
                   help="leave out every mixture with a source of these labels")
    g.add_argument("--label-match", choices=("all", "any"),
                   help="all (default): every source has a kept label; any: at least one has")
    g.add_argument("--no-descendants", action="store_true", help="a label selects itself only, not its descendants")


def label_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as label settings (``labels``, ``exclude_labels``, ``include_descendants``,
    ``label_match``); None where not given."""
    from mixing.label_filter import read_labels_file

    labels = list(args.labels or [])
    if args.labels_file:
        labels += read_labels_file(args.labels_file)
    return {"labels": labels or None, "exclude_labels": list(args.exclude_labels or []) or None,
            "include_descendants": False if args.no_descendants else None, "label_match": args.label_match}


def label_filter(args: argparse.Namespace):
    """The flags as a :class:`~mixing.label_filter.LabelFilter` (None: no label flag given)."""
    from mixing.label_filter import LabelFilter, LabelFilterError

    s = label_settings(args)
    if s["labels"] is None and s["exclude_labels"] is None:
        if s["label_match"] is not None or s["include_descendants"] is not None:
            raise LabelFilterError("--label-match and --no-descendants need --labels, --labels-file or "
                                   "--exclude-labels")
        return None
    return LabelFilter.make(s["labels"], s["exclude_labels"], include_descendants=s["include_descendants"],
                            label_match=s["label_match"])
