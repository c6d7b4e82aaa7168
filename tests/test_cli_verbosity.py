"""``-v/--verbose`` is accepted after every subcommand, including the nested ``hive mine STAGE``."""

from __future__ import annotations

import argparse

import pytest

from mixing.cli import SUBCOMMANDS, build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(prefix: list[str], parser: argparse.ArgumentParser):
    """(argv prefix, parser) of every runnable leaf under ``parser``."""
    subs = _subparsers(parser)
    if not subs:
        yield prefix, parser
        return
    for name, sub in subs.items():
        yield from _leaves([*prefix, name], sub)


def _required_args(parser: argparse.ArgumentParser) -> list[str]:
    """A minimal valid command line for ``parser``: every required option and positional."""
    argv: list[str] = []
    for a in parser._actions:
        if isinstance(a, (argparse._SubParsersAction, argparse._HelpAction)):
            continue
        value = "1" if a.type in (int, float) else (a.choices[0] if a.choices else "x")
        if not a.option_strings:
            argv.append(str(value))
        elif a.required:
            argv += [a.option_strings[0], str(value)]
    for group in parser._mutually_exclusive_groups:  # a required choice of options: the first one
        if group.required:
            a = group._group_actions[0]
            argv += [a.option_strings[0], "x"]
    return argv


def _cases():
    for name in sorted(SUBCOMMANDS):
        top = build_parser(name)
        for prefix, leaf in _leaves([], _subparsers(top)[name]):
            yield pytest.param(name, prefix, id=" ".join([name, *prefix]))


@pytest.mark.parametrize("name,prefix", list(_cases()))
def test_every_subcommand_accepts_verbose_after_it(name, prefix):
    parser = build_parser(name)
    leaf = _subparsers(parser)[name]
    for p in prefix:
        leaf = _subparsers(leaf)[p]
    argv = [name, *prefix, *_required_args(leaf)]
    assert parser.parse_args(argv).verbose == 0
    assert parser.parse_args([*argv, "-v"]).verbose == 1
    assert parser.parse_args([*argv, "--verbose", "--verbose"]).verbose == 2
    assert parser.parse_args(["-v", *argv]).verbose == 1  # before the subcommand is kept


def test_mine_stages_are_all_covered():
    from curation.stages import STAGES

    cases = {c.id for c in _cases()}
    assert {f"mine {s}" for s in STAGES} | {"mine merge", "eval"} <= cases
    assert build_parser("mine").parse_args(["mine", "chunk", "--input", "i", "--output", "o", "-vv"]).verbose == 2
