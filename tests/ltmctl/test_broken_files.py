"""A broken config or state file is a clear error with its exit code, naming the file (and line and key for
config), never a traceback and never a hang."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ltmctl.cli import app
from tests.conftest import REPO, TEST_CONFIG, make_project

runner = CliRunner()


def ltm(path, *args):
    return runner.invoke(app, ["--config", str(path), *args])


def flat(text: str) -> str:
    return "".join(text.split())  # the error panel wraps lines anywhere


def test_non_utf8_config_is_a_config_error_naming_file_and_line(tmp_path):
    path = make_project(tmp_path)
    text = TEST_CONFIG.replace("  table: events\n", "  table: caf\xe9\n")
    path.write_bytes(text.encode("latin-1"))
    line = text.splitlines().index("  table: caf\xe9") + 1
    result = ltm(path, "config", "validate")
    assert result.exit_code == 3, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}:{line}:" in flat(result.stderr) and "UTF-8" in result.stderr


def test_a_yaml_alias_bomb_is_refused_not_expanded(tmp_path):
    # Nine levels of nine aliases: 387 million leaves if expanded. Run in a subprocess with a generous bound so
    # a hang fails the test instead of holding up the run.
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = make_project(tmp_path, TEST_CONFIG + "\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run([sys.executable, "-c", "from ltmctl.cli import app; app()", "--config", str(path),
                               "config", "validate"], capture_output=True, text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("config validate hung on an alias bomb")
    assert proc.returncode == 3, proc.stderr
    assert str(path) in flat(proc.stderr) and "alias" in proc.stderr and "Traceback" not in proc.stderr


def test_two_pieces_on_one_port_are_refused_naming_both_keys(tmp_path):
    text = TEST_CONFIG.replace("    project: ltm-test\n", "    project: ltm-test\n    local:\n      ports:\n"
                                                         "        pubsub: 8085\n        api: 8085\n")
    path = make_project(tmp_path, text)
    result = ltm(path, "config", "validate")
    assert result.exit_code == 3, result.output
    message = flat(result.stderr)
    line = text.splitlines().index("      ports:") + 1
    assert f"{path}:{line}:environments.local.local.ports:" in message
    assert "pubsub" in message and "api" in message and "8085" in message


@pytest.mark.parametrize("content", ['{"pieces": [1]}', '[1, 2]', '{"pieces": {"api": 3}}', "\xff\xfe"],
                         ids=["pieces-a-list", "not-an-object", "piece-not-an-object", "not-utf8"])
def test_a_damaged_state_file_is_a_backend_error_with_a_hint(project_dir, content):
    state = project_dir / ".ltm" / "local" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(content.encode("latin-1"))
    for command in (["local", "status"], ["local", "down"], ["local", "env"]):
        result = ltm(project_dir / "config" / "ltm.yaml", *command)
        assert result.exit_code == 4, (command, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
        assert str(state) in flat(result.stderr) and "delete" in result.stderr.lower()


def test_a_state_file_that_is_a_directory_is_a_backend_error(project_dir):
    state = project_dir / ".ltm" / "local" / "state.json"
    state.mkdir(parents=True)
    result = ltm(project_dir / "config" / "ltm.yaml", "local", "status")
    assert result.exit_code == 4, result.output
    assert str(state) in flat(result.stderr) and "directory" in result.stderr
