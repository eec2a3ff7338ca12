"""Every command documents itself: a one-line summary and an Example in --help, and placeholders that say what a
value is."""

import re

import pytest
import typer
from typer.testing import CliRunner

from ltmctl.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_has_help_with_an_example(path, command):
    assert command.help and command.help.strip().splitlines()[0]
    assert "Example:" in command.help, f"`ltmctl {' '.join(path)}` has no Example in its help"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0


def test_root_help_lists_every_group():
    result = runner.invoke(app, ["--help"])
    for name in ("config", "local", "demo", "publish", "query", "api", "dlq"):
        assert name in result.output


def _all(group, prefix=()):
    yield prefix, group
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _all(command, (*prefix, name))
        else:
            yield (*prefix, name), command


# typer's own placeholders: Python type names rather than what the value is.
TYPE_NAMES = re.compile(r"<(str|int|float|bool|path|dir|file|list\[[^>]*\]|int range|float range)>")


def test_every_value_placeholder_in_help_says_what_the_value_is():
    from typer import _click

    shown = {}
    for path, command in _all(typer.main.get_command(app)):
        ctx = _click.Context(command, info_name="ltmctl")
        for param in command.params:
            record = param.get_help_record(ctx)
            if record:
                shown[f"ltmctl {' '.join(path)} {record[0]}"] = record[0]
    assert "ltmctl publish -n, --count N" in shown and "ltmctl api get-data ACTION_ID" in shown
    assert "ltmctl metrics --since WHEN" in shown and "ltmctl local down --drain-timeout SECONDS" in shown
    assert "ltmctl publish --attr KEY=VALUE" in shown and "ltmctl deploy --source DIR" in shown
    assert [line for line, record in shown.items() if TYPE_NAMES.search(record)] == []

