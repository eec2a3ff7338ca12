"""Least privilege, proven by the strict fake: the whole laptop path as a person holding exactly the roles README
lists, the CI path as `ltm-deployer` holding exactly what provision granted it, and each of those roles and grants
both needed (without it a named step fails with a hint naming it) and, together, sufficient."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
from ltmctl.gcp.roles import DEPLOYER_ROLES, OPERATOR_ROLES
from tests.gcp.conftest import Ltmctl
from tests.gcp.deploy_support import copy_sources
from tests.gcp.support import (
    BUILDER_SA,
    DEPLOYER_GRANTS,
    DEPLOYER_SA,
    EXPECTED_GRANTS,
    NUMBER,
    PROJECT,
    REPOSITORY,
    revoke,
)

PERSON = "user:ana@example.com"
# The first deploy from a laptop, then what a person runs day to day, then taking it all down.
LAPTOP_PATH = (
    ("init", "--project", PROJECT, "--region", "us-central1", "--enable-apis"),
    ("provision", "--yes"),
    ("deploy",),
    ("status",),
    ("monitoring", "apply", "--yes"),
    ("metrics", "--since", "1h"),
    ("logs", "--since", "1h"),
    ("destroy", "--yes"),
)


def _grant_on_project(fake: FakeGcp, member: str, roles: list[str]) -> None:
    """What a project owner does in the console: bind `member` to each role on the project."""
    rm = fake.api(ResourceManagerApi)
    policy = rm.policy(PROJECT)
    policy["bindings"] += [{"role": role, "members": [member]} for role in roles]
    rm.policies.policies[PROJECT] = policy


def _revoke_on_project(fake: FakeGcp, member: str, role: str) -> None:
    rm = fake.api(ResourceManagerApi)
    policy = rm.policy(PROJECT)
    policy["bindings"] = [b for b in policy["bindings"] if not (b["role"] == role and member in b["members"])]
    rm.policies.policies[PROJECT] = policy


def _checkout(tmp_path: Path, fake: FakeGcp, monkeypatch: pytest.MonkeyPatch, member: str) -> Path:
    """A checkout with no config yet (init writes it), ltmctl pointed at the fake acting as `member`."""
    copy_sources(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTM_GCP_ENDPOINT", fake.endpoint)
    monkeypatch.setenv("LTM_GCP_TOKEN", fake.token_for(member))
    monkeypatch.delenv("LTM_ENV", raising=False)
    monkeypatch.delenv("LTM_CONFIG", raising=False)
    return tmp_path / "config" / "ltm.yaml"


def _run_path(fake: FakeGcp, config_path: Path) -> list[tuple[tuple[str, ...], object]]:
    """Each step of the laptop path in turn, stopping at the first that fails: [(step, result)]."""
    from typer.testing import CliRunner

    from ltmctl.cli import app

    ran = []
    for step in LAPTOP_PATH:
        head = [] if step[0] == "init" else ["--config", str(config_path), "--env", "dev"]
        result = CliRunner().invoke(app, [*head, *step])
        ran.append((step, result))
        if result.exit_code != 0:
            break
    return ran


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch):
    """A new project: only Service Usage and Resource Manager enabled, its creator the only owner."""
    with FakeGcp(PROJECT, NUMBER) as f:
        yield f


def test_a_person_with_exactly_the_readme_roles_runs_the_whole_laptop_path(fresh, tmp_path, monkeypatch):
    _grant_on_project(fresh, PERSON, sorted(DEPLOYER_ROLES))
    config_path = _checkout(tmp_path, fresh, monkeypatch, PERSON)

    ran = _run_path(fresh, config_path)

    failed = [(step, r.output) for step, r in ran if r.exit_code != 0]
    assert failed == [], failed[0][1] if failed else ""
    assert [step for step, _ in ran] == list(LAPTOP_PATH)
    # Every request was made as the person, and none was refused for want of a permission.
    assert {r.principal for r in fresh.requests if r.method_id} == {PERSON}
    assert not [r for r in fresh.requests if r.status in (401, 403)]


def test_without_any_role_the_first_step_says_which_role_is_missing(fresh, tmp_path, monkeypatch):
    config_path = _checkout(tmp_path, fresh, monkeypatch, PERSON)
    (step, result), = _run_path(fresh, config_path)
    assert step[0] == "init" and result.exit_code == 4
    said = " ".join(result.output.split())
    assert "resourcemanager.projects.get" in said and "roles/" in said


@pytest.mark.parametrize("role", sorted(DEPLOYER_ROLES))
def test_each_readme_role_is_needed_by_a_named_step(role, fresh, tmp_path, monkeypatch):
    _grant_on_project(fresh, PERSON, sorted(set(DEPLOYER_ROLES) - {role}))
    config_path = _checkout(tmp_path, fresh, monkeypatch, PERSON)

    ran = _run_path(fresh, config_path)

    step, result = ran[-1]
    assert result.exit_code != 0, f"the whole laptop path passed without {role}: README should not ask for it"
    said = " ".join(result.output.split())
    missing = [r.denied_permission for r in fresh.requests if r.status == 403 and r.denied_permission]
    assert missing, said
    from ltmctl.gcp.iamdata import role_permissions

    # The removed role was the one holding that permission, and the hint names a README role that holds it.
    assert missing[-1] in role_permissions()[role]
    assert f"`{missing[-1]}`" in said or missing[-1] in said
    assert any(r in said and missing[-1] in role_permissions()[r] for r in DEPLOYER_ROLES), said


@pytest.mark.parametrize("role", sorted(OPERATOR_ROLES))
def test_an_operator_with_exactly_the_operator_roles_reads_metrics_and_logs_and_each_role_is_needed(
        role, fresh, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ltmctl.cli import app
    from tests.conftest import make_project

    fresh.enable("monitoring.googleapis.com", "logging.googleapis.com")
    config_path = _checkout(tmp_path, fresh, monkeypatch, PERSON)
    make_project(tmp_path)
    config_path = tmp_path / "config" / "ltm.yaml"
    steps = {"roles/monitoring.viewer": ("metrics", "--since", "1h"), "roles/logging.viewer": ("logs", "--since", "1h")}

    def run(step: tuple[str, ...]) -> object:
        return CliRunner().invoke(app, ["--config", str(config_path), "--env", "dev", *step])

    _grant_on_project(fresh, PERSON, sorted(OPERATOR_ROLES))
    for step in steps.values():
        result = run(step)
        assert result.exit_code == 0, result.output
    # Without the role, its command is refused and the hint names it.
    _revoke_on_project(fresh, PERSON, role)
    result = run(steps[role])
    assert result.exit_code == 4, result.output
    assert role in " ".join(result.output.split())


def test_the_ci_path_runs_as_the_deployer_with_exactly_what_provision_granted(fake, tmp_path, monkeypatch):
    from tests.gcp.deploy_support import project_dir

    owner = Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch))
    assert owner("provision", "--yes").exit_code == 0
    monkeypatch.setenv("LTM_GCP_TOKEN", fake.token_for(DEPLOYER_SA))
    fake.clear_requests()

    images = [f"--image=api=us-central1-docker.pkg.dev/{PROJECT}/ltm/api:b1",
              f"--image=ingest=us-central1-docker.pkg.dev/{PROJECT}/ltm/ingest:b1"]
    result = owner("deploy", "all", *images)

    assert result.exit_code == 0, result.output
    for step, permission, resource in CI_BUILD_STEPS:
        assert fake.authorize(DEPLOYER_SA, permission, resource), step
    assert {r.principal for r in fake.requests if r.method_id} == {DEPLOYER_SA}
    assert not [r for r in fake.requests if r.status in (401, 403)]


# cloudbuild.yaml's trigger runs as ltm-deployer: its build writes its own log, pushes both images, then runs
# `ltmctl deploy all --image …`. The first two are Cloud Build's and Artifact Registry's doing, not requests ltmctl
# sends, so they are asked of the fake's IAM directly; the deploy step is ltmctl itself, as the deployer.
CI_BUILD_STEPS = (
    ("write the build's log (CLOUD_LOGGING_ONLY)", "logging.logEntries.create", f"projects/{PROJECT}"),
    ("docker push the images", "artifactregistry.repositories.uploadArtifacts", REPOSITORY),
)
IMAGES = [f"--image=api=us-central1-docker.pkg.dev/{PROJECT}/ltm/ltm-api:b1",
          f"--image=ingest=us-central1-docker.pkg.dev/{PROJECT}/ltm/ltm-ingest:b1"]


def _ci(fake: FakeGcp, owner: Ltmctl, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Run cloudbuild.yaml's steps as the deployer: ('', '') when all pass, else (failed step, what it said)."""
    for step, permission, resource in CI_BUILD_STEPS:
        if not fake.authorize(DEPLOYER_SA, permission, resource):
            return step, f"Permission '{permission}' denied on resource '{resource}'"
    monkeypatch.setenv("LTM_GCP_TOKEN", fake.token_for(DEPLOYER_SA))
    result = owner("deploy", "all", *IMAGES)
    return ("", "") if result.exit_code == 0 else ("ltmctl deploy all --image …", " ".join(result.output.split()))


@pytest.mark.parametrize("grant", sorted(DEPLOYER_GRANTS), ids=lambda g: f"{g[1]} on {g[0]}")
def test_each_grant_provision_gives_the_ci_deployer_is_needed_by_a_named_step(grant, fake, tmp_path, monkeypatch):
    from tests.gcp.deploy_support import project_dir

    owner = Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch))
    assert owner("provision", "--yes").exit_code == 0
    assert _ci(fake, owner, monkeypatch) == ("", "")  # sufficient: the first CI run deploys everything
    monkeypatch.setenv("LTM_GCP_TOKEN", fake.token_for(fake.owner))
    from ltmctl.gcp.fake.pubsub import PubSubApi
    from ltmctl.gcp.fake.run import CloudRunApi

    # And needed: a first deploy again (no services, a subscription not yet pushing), with one grant fewer.
    fake.api(CloudRunApi).services.clear()
    for sub in fake.api(PubSubApi).subscriptions.values():
        sub["pushConfig"] = {}
    revoke(fake, grant)

    step, said = _ci(fake, owner, monkeypatch)

    assert step, f"cloudbuild.yaml's steps all pass without {grant[1]} on {grant[0]}: provision should not grant it"
    from ltmctl.gcp.iamdata import role_permissions

    permission = said.split("Permission '", 1)[1].split("'", 1)[0] if "Permission '" in said else \
        said.split("missing `", 1)[1].split("`", 1)[0]
    assert permission in role_permissions()[grant[1]], said


BUILDER_GRANTS = sorted(g for g in EXPECTED_GRANTS if g[2] == BUILDER_SA)


@pytest.mark.parametrize("grant", BUILDER_GRANTS, ids=lambda g: f"{g[1]} on {g[0]}")
def test_each_grant_provision_gives_the_builder_is_needed_by_the_build(grant, fake, tmp_path, monkeypatch):
    from tests.gcp.deploy_support import project_dir

    person = Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch))
    assert person("provision", "--yes").exit_code == 0
    revoke(fake, grant)

    result = person("deploy", "api")

    assert result.exit_code == 4, result.output
    said = " ".join(result.output.split())
    from ltmctl.gcp.iamdata import role_permissions

    permission = next(p for p in ("storage.objects.get", "storage.objects.create",
                                  "artifactregistry.repositories.uploadArtifacts") if p in said)
    assert permission in role_permissions()[grant[1]]
    assert "Build failed" in said


def test_every_grant_provision_makes_has_a_test_that_removes_it():
    """Adding a grant to provision without proving it needed fails here: each grant in EXPECTED_GRANTS is removed by
    one of the parameterized tests (the CI deployer's, the builder's, the runtime accounts', Pub/Sub's agent's, and
    the deployer's for `ltmctl verify` in tests/gcp/test_verify_gcp.py)."""
    from tests.gcp import test_runtime_identities as runtime
    from tests.gcp.support import DATASET, EVENTS_TABLE, PUBSUB_AGENT

    places = {"table": f"table {EVENTS_TABLE}", "dataset": f"dataset {DATASET}", "project": f"project {PROJECT}"}
    legacy = {"roles/bigquery.dataViewer": "READER"}  # how a dataset's access list names the role
    runtime_grants = {(places.get(p.values[0], p.values[0]), legacy.get(p.values[1], p.values[1]), p.values[2])
                      for p in runtime.GRANTS}
    agent_grants = {(p.values[0], p.values[1], PUBSUB_AGENT) for p in runtime.AGENT_NEEDS}
    from tests.gcp import test_verify_gcp as verify

    verify_grants = set(verify.REMOVED)  # what its parameterized removal runs over
    covered = set(DEPLOYER_GRANTS) | set(BUILDER_GRANTS) | runtime_grants | agent_grants | verify_grants
    assert covered == EXPECTED_GRANTS, (EXPECTED_GRANTS - covered, covered - EXPECTED_GRANTS)
