"""Every command documents itself: a one-line summary and an Example in --help."""

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
