"""Every ``Example:`` in a command's ``--help`` is a command line that command takes: its
arguments and options parse (issue 28: ``translate showcase``'s example once lacked ``--out``
and failed with "Missing option"). Paths in examples need not exist: a value the command would
refuse as a file is not what is checked here, the shape of the command line is."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from translate.cli import app

# typer (0.29) carries its own copy of click: its command objects and their parsing errors.
ROOT = typer.main.get_command(app)
from typer._click.exceptions import UsageError  # noqa: E402  (unknown options)


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (translate data …)
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _examples() -> list[tuple[str, str]]:
    found = []
    for path, command in _commands(ROOT):
        text = " ".join((command.epilog or "").split())
        for line in re.findall(r"translate [^()]+", text):
            found.append((" ".join(path), line.strip()))
    return found


EXAMPLES = _examples()


def test_every_command_with_an_epilog_gives_an_example() -> None:
    assert len(EXAMPLES) >= 12
    assert {"showcase", "infer", "import", "train", "data prep"} <= {p for p, _ in EXAMPLES}


@pytest.mark.parametrize("where, line", EXAMPLES, ids=[e[1][:60] for e in EXAMPLES])
def test_help_example_parses(where: str, line: str) -> None:
    words = shlex.split(line)[1:]
    command = ROOT
    while hasattr(command, "commands"):
        command = command.commands[words.pop(0)]
    # The parse alone (no values converted: the example's paths do not exist here).
    ctx = command.make_context(where, [], resilient_parsing=True)
    try:
        values, extra, _ = command.make_parser(ctx).parse_args(args=words)
    except UsageError as e:  # an unknown option, an option without its value
        pytest.fail(f"`{line}` (in `translate {where} --help`): {e.format_message()}")
    missing = [max(p.opts, key=len) for p in command.params
               if p.required and values.get(p.name) is None]
    assert not missing, f"`{line}` (in `translate {where} --help`) lacks {missing}"
    assert not extra, f"`{line}` (in `translate {where} --help`) has extra arguments {extra}"
