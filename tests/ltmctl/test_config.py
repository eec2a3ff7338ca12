"""Config loading: strict validation naming file, line and key; `config show` and `config validate`."""

import json

import pytest
from typer.testing import CliRunner

from ltmctl import config
from ltmctl.cli import app
from ltmctl.errors import ConfigError
from tests.conftest import TEST_CONFIG, make_project

runner = CliRunner()


def _error(tmp_path, text):
    path = make_project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    return path, info.value.message


def test_repository_config_is_valid_and_local_is_the_default():
    resolved = config.load(config.find_config()[0])
    assert resolved.name == "local"
    assert resolved.env.backend == "local"
    assert resolved.pipeline.topic == "ltm-events"


def test_unknown_key_names_file_line_and_key(tmp_path):
    text = TEST_CONFIG.replace("  table: events\n", "  table: events\n  tabel: typo\n")
    path, message = _error(tmp_path, text)
    line = text.splitlines().index("  tabel: typo") + 1
    assert f"{path}:{line}: pipeline.tabel: unknown key" in message


def test_wrong_type_names_the_nested_key(tmp_path):
    text = TEST_CONFIG.replace("max_delivery_attempts: 5", 'max_delivery_attempts: "five"')
    path, message = _error(tmp_path, text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "max_delivery_attempts" in t)
    assert f"{path}:{line}: pipeline.max_delivery_attempts:" in message


def test_bad_value_in_an_environment(tmp_path):
    text = TEST_CONFIG.replace("project: my-project-id", "project: Not_A_Project")
    path, message = _error(tmp_path, text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "Not_A_Project" in t)
    assert f"{path}:{line}: environments.dev.project:" in message


def test_cross_field_rule(tmp_path):
    text = TEST_CONFIG.replace("retry: {minimum_backoff_s: 1, maximum_backoff_s: 5}",
                               "retry: {minimum_backoff_s: 50, maximum_backoff_s: 5}")
    path, message = _error(tmp_path, text)
    assert "pipeline.retry: minimum_backoff_s must not exceed maximum_backoff_s" in message


def test_gcp_environment_needs_a_region(tmp_path):
    _, message = _error(tmp_path, TEST_CONFIG.replace("    region: us-central1\n", ""))
    assert "environments.dev: a gcp environment needs `region`" in message


def test_broken_yaml_names_its_line(tmp_path):
    text = TEST_CONFIG.replace("  table: events\n", "  table: [events\n")
    path, message = _error(tmp_path, text)
    assert f"{path}:" in message and "not valid YAML" in message
    line = int(message.split(":")[1])
    assert line >= text.splitlines().index("  table: [events") + 1


def test_duplicate_key_is_refused(tmp_path):
    text = TEST_CONFIG.replace("  table: events\n", "  table: events\n  table: other\n")
    path, message = _error(tmp_path, text)
    line = text.splitlines().index("  table: other") + 1
    assert f"{path}:{line}: pipeline.table: duplicate key" in message


def test_unknown_environment(tmp_path):
    path = make_project(tmp_path)
    with pytest.raises(ConfigError, match="'prod' is not defined"):
        config.load(path, "prod")


def test_cli_exits_3_with_file_and_line(tmp_path):
    path = make_project(tmp_path, TEST_CONFIG.replace("  table: events\n", "  table: events\n  tabel: typo\n"))
    result = runner.invoke(app, ["--config", str(path), "config", "validate"])
    assert result.exit_code == 3
    assert "pipeline.tabel: unknown key" in result.output
    assert "ltm.yaml:" in result.output


def test_missing_config_file_exits_3(tmp_path):
    result = runner.invoke(app, ["--config", str(tmp_path / "nope.yaml"), "config", "show"])
    assert result.exit_code == 3
    assert "no such config file" in result.output


def test_config_show_json_and_yaml(project_dir):
    path = project_dir / "config" / "ltm.yaml"
    result = runner.invoke(app, ["--config", str(path), "--env", "dev", "config", "show", "--output", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["environment"] == "dev"
    assert shown["project"] == "my-project-id"
    assert shown["api"]["memory"] == "2Gi"  # defaults are filled in
    assert shown["pipeline"]["retry"]["minimum_backoff_s"] == 1
    result = runner.invoke(app, ["--config", str(path), "config", "show"])
    assert result.exit_code == 0
    assert "environment: local" in result.stdout


def test_env_var_selects_environment(project_dir, monkeypatch):
    monkeypatch.setenv("LTM_ENV", "dev")
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "config", "show",
                                 "-o", "json"])
    assert json.loads(result.stdout)["environment"] == "dev"


def test_config_validate_ok(project_dir):
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "config", "validate"])
    assert result.exit_code == 0
    assert "is valid" in result.output


def test_gcp_settings_default_from_the_project(tmp_path):
    env = config.load(make_project(tmp_path), "dev").env
    assert env.gcp.project_number is None
    assert env.gcp.artifact_repository == "ltm"
    assert env.staging_bucket == "my-project-id-ltm-sources"
    assert env.gcp.service_accounts.push_invoker == "ltm-push-invoker"
    assert env.gcp.service_accounts.builder == "ltm-builder"
    assert env.gcp.service_accounts.deployer == "ltm-deployer"


def test_gcp_settings_are_checked_strictly(tmp_path):
    text = TEST_CONFIG + "    gcp: {project_number: 123456789012, staging_bucket: my-sources, reposit: x}\n"
    path, message = _error(tmp_path, text)
    line = len(text.splitlines())
    assert f"{path}:{line}: environments.dev.gcp.reposit: unknown key" in message
    _, message = _error(tmp_path, TEST_CONFIG + "    gcp: {service_accounts: {api: Bad_Name}}\n")
    assert "environments.dev.gcp.service_accounts.api:" in message


def test_gcp_settings_belong_to_gcp_environments(tmp_path):
    text = TEST_CONFIG.replace("    project: ltm-test\n", "    project: ltm-test\n    gcp: {project_number: 1}\n")
    _, message = _error(tmp_path, text)
    assert "environments.local: `gcp` settings belong to a gcp environment only" in message


def test_repository_dev_example_has_gcp_settings():
    resolved = config.load(config.find_config()[0], "dev")
    assert resolved.env.gcp.artifact_repository == "ltm"
    assert "gcp" not in config.load(config.find_config()[0], "local").as_dict()


def test_key_line_finds_a_written_key_or_its_nearest_parent(tmp_path):
    text = TEST_CONFIG.replace("  table: events\n", "  table: events\n  ingest_mode: bigquery\n")
    path = make_project(tmp_path, text)
    lines = text.splitlines()
    assert config.key_line(path, ("pipeline", "ingest_mode")) == lines.index("  ingest_mode: bigquery") + 1
    assert config.key_line(path, ("pipeline", "not_written")) == lines.index("pipeline:") + 1
