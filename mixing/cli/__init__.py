"""The ``hive`` command. Subcommands live in the room that owns them and are imported lazily,
so ``hive --help`` stays fast and a subcommand's heavy dependencies load only when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: name -> (module, one-line help). Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mixing.cli.demo", "build the embedded toy corpus and run the whole loop on it (offline)"),
    "check": ("mixing.cli.check", "report which referenced corpus files are missing or unreadable"),
    "render": ("mixing.cli.render", "render mixtures and stems into WebDataset or Parquet shards"),
    "verify": ("mixing.cli.verify", "check rendered shards for completeness and consistency"),
    "eval": ("mixing.cli.eval", "evaluate a query-based separator (SI-SDR, SI-SDRi, SDR) on rendered mixtures"),
    "synthesize": ("mixing.cli.synthesize", "synthesize new mixture metadata from a single-event pool"),
    "mine": ("curation.cli.mine", "run one stage of the six-stage single-event mining pipeline"),
    "curate": ("curation.cli.curate", "score mixtures with an audio LLM and keep the best"),
    "card": ("dataset_card.cli", "write the Hub layout and dataset card with statistics"),
    "publish": ("curation.cli.publish", "publish a Hub-layout folder as a new revision"),
}


def _load(name: str):
    module, _ = SUBCOMMANDS[name]
    return importlib.import_module(module)


def verbosity_parent() -> argparse.ArgumentParser:
    """A parent parser with ``-v/--verbose`` for subcommands (and nested ones such as ``mine STAGE``):
    the default is suppressed, so a level given before the subcommand is kept when none follows it."""
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                           help="more logging (-v info, -vv debug); quiet by default")
    return verbosity


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hive", description="Hive: render, stream, mine, synthesize, curate and publish the "
        "Hive universal sound separation data set.")
    verbosity = verbosity_parent()
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[verbosity])
        if name == only:
            _load(name).add_arguments(p)
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in SUBCOMMANDS:
        command = None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    from mixing.errors import HiveError

    try:
        return int(_load(args.command).run(args) or 0)
    except HiveError as exc:
        print(f"hive {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hive {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
