"""`ltmctl init`: checks the project with the credentials at hand, writes the environment, enables APIs."""

from __future__ import annotations

from infra.model import REQUIRED_APIS
from ltmctl import config
from tests.gcp.support import PROJECT


def test_init_writes_a_valid_environment_and_keeps_the_rest_of_the_file(fake, ltmctl, config_path):
    before = config_path.read_text()
    config_path.write_text("# keep this comment\n" + before)
    result = ltmctl("init", "--project", PROJECT, "--region", "europe-west1", "--env", "staging", env=None)
    assert result.exit_code == 0, result.output
    text = config_path.read_text()
    assert text.startswith("# keep this comment\n" + before)  # appended, nothing else touched
    resolved = config.load(config_path, "staging")
    assert resolved.env.backend == "gcp"
    assert (resolved.env.project, resolved.env.region) == (PROJECT, "europe-west1")
    assert resolved.env.gcp.project_number == 123456789012
    # It lists what is off, and changes nothing in the project without --enable-apis.
    assert "Not enabled yet" in result.output and "run.googleapis.com" in result.output
    assert fake.mutating_requests() == []


def test_init_updates_an_existing_environment_in_place(fake, ltmctl, config_path):
    result = ltmctl("init", "--project", PROJECT, "--region", "us-east1", env=None)  # default name: dev
    assert result.exit_code == 0, result.output
    resolved = config.load(config_path, "dev")
    assert resolved.env.region == "us-east1" and resolved.env.gcp.project_number == 123456789012
    assert config_path.read_text().count("dev:") == 1


def test_init_enable_apis_enables_the_missing_ones_in_one_batch(fake, ltmctl):
    result = ltmctl("init", "--project", PROJECT, "--region", "us-central1", "--enable-apis", env=None)
    assert result.exit_code == 0, result.output
    assert set(REQUIRED_APIS) <= fake.enabled_services
    (batch,) = fake.find("POST", r"services:batchEnable$")
    assert set(batch.body["serviceIds"]) == set(REQUIRED_APIS) - {"cloudresourcemanager.googleapis.com"}
    assert "Every API the pipeline needs is enabled" in result.output


def test_init_without_a_terminal_needs_the_flags(fake, ltmctl, config_path):
    before = config_path.read_text()
    result = ltmctl("init", "--region", "us-central1", env=None)
    assert result.exit_code == 2
    assert "--project" in result.output
    assert config_path.read_text() == before
    assert fake.requests == []


def test_init_without_a_terminal_names_both_missing_flags_in_one_sentence(fake, ltmctl):
    result = ltmctl("init", env=None)
    assert result.exit_code == 2
    assert "--project and --region are required" in " ".join(result.output.split())


def test_init_takes_the_global_env_before_or_after_the_command(fake, ltmctl, config_path):
    # One --env, the global one: before the command (as every command takes it) or after it (as init's own did).
    before = ltmctl("init", "--project", PROJECT, "--region", "europe-west1", env="qa-1")
    after = ltmctl("init", "--project", PROJECT, "--region", "us-east1", "-e", "qa-2", env=None)
    assert before.exit_code == 0 and after.exit_code == 0, before.output + after.output
    assert config.load(config_path, "qa-1").env.region == "europe-west1"
    assert config.load(config_path, "qa-2").env.region == "us-east1"
    clash = ltmctl("init", "--project", PROJECT, "--region", "us-east1", "--env", "qa-3", env="qa-4")
    assert clash.exit_code == 2 and "given twice" in clash.output
    assert "qa-3" not in config_path.read_text() and "qa-4" not in config_path.read_text()


def test_init_for_a_project_the_credentials_cannot_read(fake, ltmctl, config_path):
    before = config_path.read_text()
    result = ltmctl("init", "--project", "someone-elses", "--region", "us-central1", env=None)
    assert result.exit_code == 4, result.output
    assert "someone-elses" in result.output
    assert config_path.read_text() == before


def test_init_refuses_to_turn_a_local_environment_into_a_gcp_one(fake, ltmctl):
    result = ltmctl("init", "--project", PROJECT, "--region", "us-central1", "--env", "local", env=None)
    assert result.exit_code == 2
    assert "local environment" in result.output


def test_init_creates_the_config_when_there_is_none(fake, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ltmctl.cli import app

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    monkeypatch.setenv("LTM_GCP_ENDPOINT", fake.endpoint)
    monkeypatch.delenv("LTM_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["init", "--project", PROJECT, "--region", "us-central1"])
    assert result.exit_code == 0, result.output
    resolved = config.load(fresh / "config" / "ltm.yaml", "dev")
    assert resolved.env.project == PROJECT
    assert config.load(fresh / "config" / "ltm.yaml").env.backend == "local"


def test_init_without_credentials_says_how_to_get_them(tmp_path, monkeypatch, config_path):
    # No endpoint override: the real ADC lookup, hermetically finding nothing.
    monkeypatch.delenv("LTM_GCP_ENDPOINT")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    from typer.testing import CliRunner

    from ltmctl.cli import app

    before = config_path.read_text()
    result = CliRunner().invoke(app, ["--config", str(config_path), "init", "--project", PROJECT,
                                      "--region", "us-central1"])
    assert result.exit_code == 4, result.output
    assert "gcloud auth application-default login" in result.output
    assert config_path.read_text() == before


FLEET = """\
bases:
  prod-base:
    backend: gcp
    region: europe-west1
    gcp: {artifact_repository: fleet}
environments:
  local: {backend: local, project: ltm-local}
  prod-1: {extends: prod-base, project: other-project}   # the short form
  prod-2:
    extends: prod-base
    project: other-project
"""


def test_init_on_an_inheriting_environment_writes_only_what_it_does_not_inherit(fake, ltmctl, config_path):
    config_path.write_text(FLEET)
    result = ltmctl("init", "--project", PROJECT, "--region", "europe-west1", "--env", "prod-2", env=None)
    assert result.exit_code == 0, result.output
    # The region and backend it inherits are not written again; the project is its own; project_number is added
    # beside it, merged with the base's gcp settings rather than replacing them.
    assert config_path.read_text() == FLEET.replace(
        "  prod-2:\n    extends: prod-base\n    project: other-project\n",
        f"  prod-2:\n    extends: prod-base\n    project: {PROJECT}\n    gcp: {{project_number: 123456789012}}\n")
    env = config.load(config_path, "prod-2").env
    assert (env.region, env.gcp.project_number, env.gcp.artifact_repository) == ("europe-west1", 123456789012,
                                                                                 "fleet")


def test_init_on_a_short_inheriting_environment_edits_inside_its_braces(fake, ltmctl, config_path):
    config_path.write_text(FLEET)
    result = ltmctl("init", "--project", PROJECT, "--region", "us-east1", "--env", "prod-1", env=None)
    assert result.exit_code == 0, result.output
    assert config_path.read_text() == FLEET.replace(
        "prod-1: {extends: prod-base, project: other-project}",
        f"prod-1: {{extends: prod-base, project: {PROJECT}, region: us-east1, gcp: {{project_number: 123456789012}}}}")
    env = config.load(config_path, "prod-1").env
    assert (env.project, env.region, env.gcp.artifact_repository) == (PROJECT, "us-east1", "fleet")
    assert config.load(config_path, "prod-2").env.region == "europe-west1"  # the base is untouched


def test_init_refuses_a_base_and_an_environment_that_inherits_local(fake, ltmctl, config_path):
    config_path.write_text(FLEET + "  sandbox: {extends: local, project: ltm-sandbox}\n")
    before = config_path.read_text()
    result = ltmctl("init", "--project", PROJECT, "--region", "europe-west1", "--env", "prod-base", env=None)
    assert result.exit_code == 2, result.output
    assert "is a base" in result.output
    result = ltmctl("init", "--project", PROJECT, "--region", "europe-west1", "--env", "sandbox", env=None)
    assert result.exit_code == 2, result.output
    assert "local environment (through `extends`)" in result.output
    assert config_path.read_text() == before
