"""`extends` and `bases`: environments inheriting from a named base, merged deeply; errors still name file, line
and key, in the base when the offending value is inherited."""

import json

import pytest
from typer.testing import CliRunner

from ltmctl import config
from ltmctl.cli import app
from ltmctl.errors import ConfigError
from tests.conftest import make_project

runner = CliRunner()

FLEET = """\
pipeline:
  topic: ltm-events
bases:
  gcp-base:                    # no project: not an environment, only shared settings
    backend: gcp
    region: us-central1
    api: {memory: 4Gi, cpu: "2"}
    iap: {members: ["group:a@example.com", "group:b@example.com"]}
    gcp:
      artifact_repository: fleet
      service_accounts: {api: fleet-api, ingest: fleet-ingest}
  prod-base:
    extends: gcp-base
    region: europe-west1
    slo: {latency_p99_ms: 300}
environments:
  local:
    backend: local
    project: ltm-local
  prod-1: {extends: prod-base, project: ltm-prod-1}
  prod-2:
    extends: prod-base
    project: ltm-prod-2
    region: us-east1
    api: {cpu: "4"}
    iap: {members: ["group:c@example.com"]}
    gcp: {service_accounts: {ingest: prod2-ingest}}
  canary:
    extends: prod-2
    project: ltm-canary
"""


def _lines(text):
    return text.splitlines()


def _line(text, fragment, after=0):
    """1-based line of the first line containing `fragment` at or after line `after`."""
    return next(i for i, t in enumerate(_lines(text), 1) if i >= after and fragment in t)


def _error(tmp_path, text, env=None):
    path = make_project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path, env)
    return path, info.value.message


def test_an_environment_inherits_at_any_depth_through_a_chain_of_bases(tmp_path):
    env = config.load(make_project(tmp_path, FLEET), "prod-1").env
    assert (env.backend, env.project, env.region) == ("gcp", "ltm-prod-1", "europe-west1")  # prod-base wins
    assert (env.api.memory, env.api.cpu) == ("4Gi", "2")  # from gcp-base, two links up
    assert env.slo.latency_p99_ms == 300 and env.slo.error_rate == 0.01  # merged with the defaults
    assert env.gcp.artifact_repository == "fleet"
    assert (env.gcp.service_accounts.api, env.gcp.service_accounts.ingest) == ("fleet-api", "fleet-ingest")
    assert env.iap.members == ["group:a@example.com", "group:b@example.com"]


def test_the_child_wins_key_by_key_and_lists_are_replaced_whole(tmp_path):
    env = config.load(make_project(tmp_path, FLEET), "prod-2").env
    assert env.region == "us-east1"
    assert (env.api.cpu, env.api.memory) == ("4", "4Gi")  # one key of a mapping overridden, the other inherited
    assert (env.gcp.service_accounts.ingest, env.gcp.service_accounts.api) == ("prod2-ingest", "fleet-api")
    assert env.gcp.artifact_repository == "fleet"
    assert env.iap.members == ["group:c@example.com"]  # not appended to the base's two


def test_an_environment_may_extend_another_environment(tmp_path):
    env = config.load(make_project(tmp_path, FLEET), "canary").env
    assert (env.project, env.region, env.api.cpu, env.slo.latency_p99_ms) == ("ltm-canary", "us-east1", "4", 300)


def test_a_base_cannot_be_selected(tmp_path):
    path, message = _error(tmp_path, FLEET, "prod-base")
    assert message.startswith(f"{path}:{_line(FLEET, '  prod-base:')}: bases.prod-base: is a base")


def test_an_unknown_name_is_refused_at_its_line(tmp_path):
    text = FLEET.replace("prod-1: {extends: prod-base,", "prod-1: {extends: prod-bse,")
    path, message = _error(tmp_path, text)
    assert (f"{path}:{_line(text, 'prod-bse')}: environments.prod-1.extends: no environment or base is named "
            "'prod-bse'; did you mean 'prod-base'?") in message


def test_extends_must_be_a_name(tmp_path):
    text = FLEET.replace("prod-1: {extends: prod-base,", "prod-1: {extends: [prod-base, gcp-base],")
    path, message = _error(tmp_path, text)
    assert f"{path}:{_line(text, 'prod-1:')}: environments.prod-1.extends: must name one environment or base " \
           "(a string), not a list" in message


def test_a_lone_environment_with_a_broken_extends_is_one_problem(tmp_path):
    text = "environments:\n  only: {extends: missing, project: ltm-only}\n"
    path, message = _error(tmp_path, text, "only")
    assert message == f"{path}:2: environments.only.extends: no environment or base is named 'missing'; " \
                      "define it under `bases:` or `environments:`."  # not also "no environments"


def test_an_alias_bomb_in_a_base_is_still_refused_before_merging(tmp_path):
    levels = "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    text = (f"anchors:\n  l0: &l0 [x, x, x, x, x, x, x, x, x]\n{levels}"
            "bases:\n  b: {backend: gcp, region: us-central1, iap: {members: *l8}}\n"
            "environments:\n  e: {extends: b, project: ltm-eeeee}\n")
    _, message = _error(tmp_path, text, "e")
    assert "through YAML aliases" in message


def test_a_cycle_is_refused_once_where_it_starts(tmp_path):
    text = FLEET.replace("  gcp-base:                    # no project", "  gcp-base:\n    extends: prod-base  #")
    path, message = _error(tmp_path, text)
    line = _line(text, "extends: prod-base  #")
    assert (f"{path}:{line}: bases.gcp-base.extends: `extends` goes round in a circle "
            "(gcp-base → prod-base → gcp-base)") in message
    assert message.count("circle") == 1  # four environments lead into it; one problem
    _, message = _error(tmp_path, FLEET.replace("prod-1: {extends: prod-base,", "prod-1: {extends: prod-1,"))
    assert "environments.prod-1.extends: `extends` goes round in a circle (prod-1 → prod-1)" in message


def test_a_chain_longer_than_the_bound_is_refused(tmp_path):
    def chain(links):
        bases = "".join(f"  b{i}:\n    extends: b{i + 1}\n" for i in range(links - 1))
        return (f"bases:\n{bases}  b{links - 1}: {{backend: gcp, region: us-central1}}\n"
                "environments:\n  deep:\n    extends: b0\n    project: ltm-deep\n")

    # deep → b0 → … → b15 is 16 links: allowed; one more is refused, at the environment's `extends`.
    assert config.load(make_project(tmp_path, chain(config.MAX_CHAIN)), "deep").env.region == "us-central1"
    text = chain(config.MAX_CHAIN + 1)
    path, message = _error(tmp_path, text, "deep")
    assert f"{path}:{_line(text, 'extends: b0')}: environments.deep.extends: more than 16 `extends`" in message


def test_inheritance_cannot_multiply_the_file_past_the_bound(tmp_path):
    # One base of 5,000 values, fifty environments each carrying a copy: 250,000 values, more than validation
    # should ever walk, from a 150 kB file that the alias guard (20,000 values) lets through.
    members = ", ".join(f'"user:u{i}@example.com"' for i in range(5000))
    envs = "".join(f"  e{i}: {{extends: big, project: ltm-e{i:03d}}}\n" for i in range(50))
    text = f"bases:\n  big:\n    backend: gcp\n    region: us-central1\n    iap: {{members: [{members}]}}\n" \
           f"environments:\n{envs}"
    path, message = _error(tmp_path, text, "e0")
    assert "the environments hold more than 200,000 values; refused" in message
    assert message.startswith(f"{path}:")
    # Ten of them fit.
    fits = text.split("  e10:")[0]
    assert len(config.load(make_project(tmp_path, fits), "e9").env.iap.members) == 5000


def test_an_inherited_bad_value_is_named_at_its_line_in_the_base(tmp_path):
    text = FLEET.replace("slo: {latency_p99_ms: 300}", "slo: {latency_p99_ms: -1}")
    path, message = _error(tmp_path, text)
    line = _line(text, "latency_p99_ms: -1")
    # prod-1, prod-2 and canary all inherit it: one problem, the first environment named, the others counted.
    assert (f"{path}:{line}: environments.prod-1.slo.latency_p99_ms: Input should be greater than 0 "
            "(inherited from bases.prod-base; the same in 2 more environments: prod-2, canary)") in message
    assert len(message.splitlines()) == 1


def test_a_bad_value_set_in_the_child_is_named_in_the_child(tmp_path):
    text = FLEET.replace('api: {cpu: "4"}', 'api: {cpu: "3"}')
    path, message = _error(tmp_path, text)
    line = _line(text, 'cpu: "3"')
    assert f"{path}:{line}: environments.prod-2.api.cpu: Input should be" in message
    assert f"{path}:{line}: environments.canary.api.cpu:" not in message  # grouped with prod-2's own problem
    assert "the same in 1 more environment: canary" in message
    assert "inherited" not in message


def test_an_unknown_key_in_a_base_is_named_there(tmp_path):
    text = FLEET.replace('    api: {memory: 4Gi, cpu: "2"}', '    api: {memory: 4Gi, cpu: "2", memroy: 1Gi}')
    path, message = _error(tmp_path, text)
    assert (f"{path}:{_line(text, 'memroy')}: environments.prod-1.api.memroy: unknown key "
            "(inherited from bases.gcp-base;") in message


def test_a_missing_required_key_names_the_environments_line(tmp_path):
    text = FLEET.replace("prod-1: {extends: prod-base, project: ltm-prod-1}", "prod-1: {extends: prod-base}")
    path, message = _error(tmp_path, text)
    assert (f"{path}:{_line(text, 'prod-1:')}: environments.prod-1.project: required key is missing "
            "(set neither here nor in bases.prod-base, bases.gcp-base)") in message


def test_a_cross_field_rule_sees_the_merged_environment(tmp_path):
    # The base has no region; the environment forgot it: the rule runs on the merge and names the environment.
    text = FLEET.replace("    region: europe-west1\n", "").replace("    region: us-central1\n", "")
    path, message = _error(tmp_path, text)
    assert f"{path}:{_line(text, 'prod-1:')}: environments.prod-1: a gcp environment needs `region`" in message
    assert "environments.prod-2:" not in message  # it sets its own


def test_base_names_are_checked(tmp_path):
    _, message = _error(tmp_path, FLEET.replace("  prod-base:\n", "  prod-1:\n").replace("extends: prod-base",
                                                                                          "extends: gcp-base"))
    assert "bases.prod-1: an environment has the same name" in message
    _, message = _error(tmp_path, FLEET.replace("bases:\n", "bases: [x]\nunused:\n"))
    assert "bases: must be a mapping" in message


def test_key_line_follows_inheritance(tmp_path):
    text = FLEET.replace("    region: europe-west1\n", "    region: europe-west1\n    ingest_mode: bigquery\n")
    path = make_project(tmp_path, text)
    resolved = config.load(path, "prod-1")
    assert config.ingest_mode_key(resolved) == ("environments", "prod-1", "ingest_mode")
    assert config.key_line(path, config.ingest_mode_key(resolved)) == _line(text, "ingest_mode: bigquery")
    assert config.key_line(path, ("environments", "prod-2", "region")) == _line(text, "region: us-east1")
    assert config.key_line(path, ("environments", "prod-1", "iap", "oauth_client_id")) == _line(text, "iap: {")


def test_config_show_prints_the_merged_environment_and_where_each_value_is_written(tmp_path):
    path = make_project(tmp_path, FLEET)
    result = runner.invoke(app, ["--config", str(path), "--env", "canary", "config", "show", "-o", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["environment"], shown["project"], shown["region"]) == ("canary", "ltm-canary", "us-east1")
    assert shown["api"] == {"service": "ltm-api", "memory": "4Gi", "cpu": "4", "min_instances": 1,
                            "max_instances": 10, "port": 8000}
    assert "extends" not in shown and "bases" not in shown
    result = runner.invoke(app, ["--config", str(path), "--env", "canary", "config", "show", "--origin", "-o",
                                 "json"])
    assert result.exit_code == 0, result.output
    origins = json.loads(result.stdout)
    assert origins["project"] == f"environments.canary (line {_line(FLEET, 'project: ltm-canary')})"
    cpu_line = _line(FLEET, 'api: {cpu: "4"}')
    assert origins["api.cpu"] == f"environments.prod-2 (line {cpu_line})"
    assert origins["api.memory"] == f"bases.gcp-base (line {_line(FLEET, 'memory: 4Gi')})"
    assert origins["slo.latency_p99_ms"] == f"bases.prod-base (line {_line(FLEET, 'latency_p99_ms')})"
    assert origins["api.port"] == "default"
    assert set(origins) >= {"backend", "iap.members", "gcp.service_accounts.ingest"}


def test_config_validate_checks_every_environment_and_reports_every_problem(tmp_path):
    # No `local` environment (the default selection) and a broken one: validate selects none, reports all.
    text = (FLEET.replace("  local:\n    backend: local\n    project: ltm-local\n", "")
            .replace("prod-1: {extends: prod-base,", "prod-1: {extends: nowhere,")
            .replace("project: ltm-canary", "project: X")
            .replace("slo: {latency_p99_ms: 300}", "slo: {latency_p99_ms: 300, error_rate: 2}"))
    path = make_project(tmp_path, text)
    result = runner.invoke(app, ["--config", str(path), "config", "validate"], terminal_width=400)
    assert result.exit_code == 3, result.output
    out = result.output
    assert f"{path}:{_line(text, 'nowhere')}: environments.prod-1.extends: no environment or base" in out
    assert f"{path}:{_line(text, 'project: X')}: environments.canary.project:" in out
    assert (f"{path}:{_line(text, 'error_rate: 2')}: environments.prod-2.slo.error_rate: Input should be less "
            "than or equal to 1 (inherited from bases.prod-base; the same in 1 more environment: canary)") in out
    assert "environments.prod-1.project" not in out  # left out for its broken `extends`, not reported twice


def test_config_validate_passes_a_fleet_without_selecting_one(tmp_path):
    text = FLEET.replace("  local:\n    backend: local\n    project: ltm-local\n", "")
    path = make_project(tmp_path, text)
    result = runner.invoke(app, ["--config", str(path), "config", "validate"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "is valid (3 environment(s): prod-1, prod-2, canary)" in result.output
    assert runner.invoke(app, ["--config", str(path), "config", "show"]).exit_code == 3  # `local` is not defined
