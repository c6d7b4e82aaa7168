"""The ``hive`` command. Its subcommands are registered by the rooms that own them as entry points
(group ``hive.commands``; see :mod:`mixing.cli.registry`) and imported lazily, so ``hive --help``
stays fast, a subcommand's heavy dependencies load only when it runs, and ``mixing`` names nothing
of the floors above it."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mixing.cli.registry import CommandLoadError, Registry

#: name -> :class:`mixing.cli.registry.Command`, from the ``hive.commands`` entry points (read on first use)
SUBCOMMANDS = Registry()


def version() -> str:
    """The installed distribution's version (``hive-uss``), else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("hive-uss")
    except PackageNotFoundError:
        from mixing import __version__

        return __version__


def _load(name: str):
    """The module of subcommand ``name`` (:class:`~mixing.cli.registry.CommandLoadError` if it cannot be loaded)."""
    return SUBCOMMANDS.load(name)


def verbosity_parent() -> argparse.ArgumentParser:
    """A parent parser with ``-v/--verbose`` for subcommands (and nested ones such as ``mine STAGE``):
    the default is suppressed, so a level given before the subcommand is kept when none follows it."""
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                           help="more logging (-v info, -vv debug); quiet by default")
    return verbosity


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from mixing.cli.argtypes import HiveArgumentParser

    parser = HiveArgumentParser(
        prog="hive", description="Hive: render, stream, mine, synthesize, curate and publish the "
        "Hive universal sound separation data set.")
    verbosity = verbosity_parent()
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    parser.add_argument("--version", action="version", version=f"hive {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        # the help line of every command is read (from its source) only where it is shown: `hive
        # --help` lists them all; `hive render ...` needs render's alone
        text = command.help if only is None or name == only else None
        p = sub.add_parser(name, help=text, description=text, parents=[verbosity])
        if name == only:
            _load(name).add_arguments(p)
    return parser


def setup_logging(verbosity: int) -> None:
    """Quiet by default (-v info, -vv debug); every handler redacts secrets (tokens, API keys,
    Authorization headers) from every record, whichever library logs it."""
    from mixing import log_redaction

    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_redaction.install()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not SUBCOMMANDS:
        print(f"hive: error: {SUBCOMMANDS.missing_message()}", file=sys.stderr)
        return 2
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in SUBCOMMANDS:
        command = None
    try:
        parser = build_parser(command)
    except CommandLoadError as exc:
        return _refuse(command or "", str(exc))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed) returns its status;
        if exc.code in (0, None):  # --help exits as argparse does
            raise
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    from mixing.errors import HiveError, describe_os_error
    from mixing.memory_estimate import ENV as MEMORY_ENV
    from mixing.output_folder import release_all

    previous_cap = os.environ.get(MEMORY_ENV)
    claims: list = []
    try:
        _check_args(args)
        if getattr(args, "max_memory", None) is not None:  # the cap of this process and its workers
            os.environ[MEMORY_ENV] = args.max_memory
        claims = claim_outputs(args.command, args)
        return int(_load(args.command).run(args) or 0)
    except HiveError as exc:
        release_all(claims)
        return _refuse(args.command, str(exc))
    except OSError as exc:  # output folder is a file, read-only, disk full, ...
        release_all(claims)
        return _refuse(args.command, describe_os_error(exc, getattr(args, "output", None)))
    except KeyboardInterrupt:
        print(f"hive {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:  # main() may run again in this process (demo, tests): the flag's cap ends here
        if previous_cap is None:
            os.environ.pop(MEMORY_ENV, None)
        else:
            os.environ[MEMORY_ENV] = previous_cap


def claim_outputs(command: str, args: argparse.Namespace) -> list:
    """The output-folder rule (:mod:`mixing.output_folder`) for what ``command``'s module says it
    reads and writes (its ``io(args)``), applied before the command does any work."""
    from mixing.output_folder import claim

    io = getattr(_load(command), "io", None)
    if io is None:
        raise RuntimeError(f"hive {command}: its module declares no io(args); every command must (see "
                           "mixing/output_folder.py)")
    return claim(command, io(args))


def _refuse(command: str, message: str) -> int:
    """Print ``hive <cmd>: error: <message>`` as one line (the traceback only with -vv) -> status 2."""
    logging.getLogger(__name__).debug("hive %s failed", command, exc_info=True)
    print(f"hive {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _check_args(args: argparse.Namespace) -> None:
    """Checks across flags, before any work: the rank fits the world size, and a --split /
    --num-sources filter of --metadata selects something (else the error lists what exists)."""
    from mixing.cli.rank_options import rank_problem
    from mixing.errors import HiveError

    problem = rank_problem(args)
    if problem:
        raise HiveError(problem)
    metadata = getattr(args, "metadata", None)
    split, num_sources = getattr(args, "split", None), getattr(args, "num_sources", None)
    if metadata and (split is not None or num_sources is not None):
        from mixing.metadata_selection import check_selection

        check_selection(metadata, split, num_sources, revision=getattr(args, "revision", None),
                        config=getattr(args, "config", None))


if __name__ == "__main__":
    sys.exit(main())
