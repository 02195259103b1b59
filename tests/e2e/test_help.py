"""Help (issue 6, section 8): every subcommand has a one-line description and every option has
help text. Walks the parser itself, so a flag added later without help fails here."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from janitor import cli


def _subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse._SubParsersAction[argparse.ArgumentParser], str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name in action.choices:
                yield action, name


def _missing_help(parser: argparse.ArgumentParser, where: str) -> Iterator[str]:
    for action in parser._actions:
        label = "/".join(action.option_strings) or action.dest
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            yield f"{where} {label}: no help text"
    for subparsers, name in _subcommands(parser):
        child = subparsers.choices[name]
        summaries = {a.dest: a.help for a in subparsers._choices_actions}
        if not (summaries.get(name) or "").strip():
            yield f"{where} {name}: no help= (its line in `{where} -h`)"
        description = (child.description or "").strip()
        if not description:
            yield f"{where} {name}: no description="
        elif "\n" in description:
            yield f"{where} {name}: the description is more than one line"
        yield from _missing_help(child, f"{where} {name}")


def test_every_subcommand_and_option_has_help() -> None:
    problems = list(_missing_help(cli.build_parser(), "janitor"))
    assert problems == []


def test_the_walk_finds_every_command() -> None:
    """The walk above sees every command `main` dispatches to (else it would pass vacuously)."""
    names = {name for _, name in _subcommands(cli.build_parser())}
    assert names == set(cli.COMMANDS)


def test_the_walk_catches_an_option_without_help() -> None:
    parser = cli.build_parser()
    (subparsers, _), *_ = _subcommands(parser)
    subparsers.choices["scan"].add_argument("--undocumented")
    subparsers.add_parser("bare")
    problems = list(_missing_help(parser, "janitor"))
    assert "janitor scan --undocumented: no help text" in problems
    assert "janitor bare: no description=" in problems
    assert "janitor bare: no help= (its line in `janitor -h`)" in problems


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_command_help_starts_with_its_description(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "-h"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    parser = cli.build_parser()
    (description,) = {
        subparsers.choices[name].description
        for subparsers, name in _subcommands(parser)
        if name == command
    }
    assert description
    assert description.split(".")[0] in " ".join(out.split())
