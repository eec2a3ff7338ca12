"""The global options (--config, --env/-e, --debug) before or after any command or group, with one meaning, listed
in every command's help; the same option given twice with different values is refused."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from ltmctl.cli import app
from tests.conftest import make_project

runner = CliRunner()


def _tree(command, prefix=()):
    """Every command and group below the root, as its path of names."""
    for name, sub in command.commands.items():
        yield (*prefix, name)
        if hasattr(sub, "commands"):
            yield from _tree(sub, (*prefix, name))


PATHS = list(_tree(typer.main.get_command(app)))
# The help lines of the global options, as the root's --help shows them.
GLOBAL_HELP = ("Config file (default: config/ltm.yaml).", "Environment to use", "Show tracebacks.")


@pytest.fixture
def config_path(tmp_path, monkeypatch):
    monkeypatch.delenv("LTM_ENV", raising=False)
    monkeypatch.delenv("LTM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path)


def test_the_walk_sees_every_group_and_its_commands():
    assert {("deploy",), ("init",), ("local",), ("local", "status"), ("config", "show"), ("dlq", "list"),
            ("api", "get-data"), ("monitoring", "apply")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_command_lists_the_global_options_in_its_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    # Plain or rich help (whichever the first import of typer chose), wrapped lines joined.
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
    for line in GLOBAL_HELP:
        assert line in text, f"`ltmctl {' '.join(path)} --help` does not list {line!r}"


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_command_takes_env_after_its_name_as_the_same_option(path, config_path):
    # Given after the command, --env reaches the same place as before it: the two clash, before the command runs
    # (nothing of the command's own is read, not even its required arguments).
    result = runner.invoke(app, ["--env", "local", *path, "--env", "dev"])
    assert result.exit_code == 2, result.output
    assert "--env is given twice with different values: 'local'" in " ".join(result.output.split())
    # The same value twice is no clash; -e is --env.
    same = runner.invoke(app, ["-e", "dev", *path, "-e", "dev", "--help"])
    assert same.exit_code == 0, same.output


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_command_takes_config_after_its_name(path, config_path, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(config_path.read_text())
    result = runner.invoke(app, ["--config", str(config_path), *path, "--config", str(other)])
    assert result.exit_code == 2 and "--config is given twice" in result.output, result.output


def test_env_after_the_command_selects_the_environment(config_path):
    before = runner.invoke(app, ["--env", "dev", "config", "show", "-o", "json"])
    after = runner.invoke(app, ["config", "show", "-o", "json", "--env", "dev"])
    inside = runner.invoke(app, ["config", "--env", "dev", "show", "-o", "json"])
    assert before.exit_code == after.exit_code == inside.exit_code == 0, before.output + after.output
    assert '"my-project-id"' in before.stdout
    assert after.stdout == before.stdout == inside.stdout


def test_env_after_the_command_wins_over_the_environment_variable(config_path, monkeypatch):
    # LTM_ENV is a default, not a value given twice.
    monkeypatch.setenv("LTM_ENV", "local")
    result = runner.invoke(app, ["config", "show", "-o", "json", "--env", "dev"])
    assert result.exit_code == 0, result.output
    assert '"my-project-id"' in result.stdout


def test_an_unknown_environment_after_a_nested_command_is_named(config_path):
    result = runner.invoke(app, ["local", "status", "--env", "nowhere"])
    assert result.exit_code == 3, result.output
    assert "nowhere" in result.output


def test_config_after_the_command_is_the_file_read(tmp_path, config_path):
    other = make_project(tmp_path / "elsewhere", config_path.read_text().replace("my-project-id", "other-project"))
    result = runner.invoke(app, ["config", "show", "-o", "json", "--env", "dev", "--config", str(other)])
    assert result.exit_code == 0, result.output
    assert '"other-project"' in result.stdout


def test_debug_after_the_command_shows_the_traceback(config_path):
    plain = runner.invoke(app, ["local", "status", "--env", "nowhere"])
    debug = runner.invoke(app, ["local", "status", "--env", "nowhere", "--debug"])
    assert "Traceback" not in plain.output
    assert "Traceback" in debug.output
