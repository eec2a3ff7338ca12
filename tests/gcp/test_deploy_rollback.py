"""`ltmctl deploy --rollback` against the strict fake: traffic back to the previous ready revision and nothing else,
a clear refusal when there is none, a normal deploy afterwards back on the latest revision, and cloudbuild.yaml's
verify step rolling back exactly what its build changed when verify fails, as ltm-deployer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltmctl.gcp.fake.run import CloudRunApi
from tests.conftest import REPO
from tests.gcp.conftest import Ltmctl
from tests.gcp.deploy_support import API_SERVICE, INGEST_SERVICE, project_dir
from tests.gcp.support import DEPLOYER_SA, PROJECT

REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


@pytest.fixture
def ltmctl(fake, tmp_path, monkeypatch) -> Ltmctl:
    """Overrides tests/gcp/conftest.py's: a provisioned project (provision's requests forgotten)."""
    run = Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch))
    result = run("provision", "--yes")
    assert result.exit_code == 0, result.output
    fake.clear_requests()
    return run


def _deploy(ltmctl: Ltmctl, tag: str, which: str = "all") -> None:
    """Deploy images tagged `tag` (no build): each tag is a new template, so a new revision."""
    images = ([f"--image={c}=r/{c}:{tag}" for c in ("api", "ingest")] if which == "all" else
              [f"--image=r/{which}:{tag}"])
    result = ltmctl("deploy", which, *images)
    assert result.exit_code == 0, result.output


def _revisions(fake, service: str) -> list[str]:
    return [r["name"].rsplit("/", 1)[-1] for r in fake.api(CloudRunApi).revisions_of(service)]


def _serving(fake, service: str) -> list[dict]:
    return fake.api(CloudRunApi).services[service]["trafficStatuses"]


def test_rollback_moves_only_the_traffic_to_the_previous_ready_revision(ltmctl, fake):
    _deploy(ltmctl, "1")
    _deploy(ltmctl, "2")
    before = {s: json.loads(json.dumps(fake.api(CloudRunApi).services[s])) for s in (API_SERVICE, INGEST_SERVICE)}
    fake.clear_requests()

    result = ltmctl("deploy", "all", "--rollback")

    assert result.exit_code == 0, result.output
    api, ingest = _revisions(fake, API_SERVICE), _revisions(fake, INGEST_SERVICE)
    assert len(api) == len(ingest) == 2  # no revision made
    assert result.stdout.splitlines() == [f"ltm-ingest: from {ingest[1]} → {ingest[0]}",
                                          f"ltm-api: from {api[1]} → {api[0]}"]
    # Exactly one update per service: its traffic, masked, and no other field (no template: no revision).
    patches = fake.mutating_requests()
    assert [(r.method, r.path) for r in patches] == [("PATCH", f"/v2/{INGEST_SERVICE}"),
                                                     ("PATCH", f"/v2/{API_SERVICE}")]
    for request, old in zip(patches, (ingest[0], api[0]), strict=True):
        assert request.query["updateMask"] == "traffic"
        assert request.body == {"traffic": [{"type": 2, "revision": old, "percent": 100}]}
    for service, old in ((API_SERVICE, api[0]), (INGEST_SERVICE, ingest[0])):
        now = fake.api(CloudRunApi).services[service]
        assert _serving(fake, service) == [{"type": REVISION, "percent": 100, "revision": old}]
        for key in ("template", "latestCreatedRevision", "latestReadyRevision", "labels", "ingress", "iapEnabled"):
            assert now.get(key) == before[service].get(key), key


def test_a_revision_that_never_became_ready_is_passed_over(ltmctl, fake):
    _deploy(ltmctl, "1", "api")
    fake.api(CloudRunApi).fail_next_revision()
    assert ltmctl("deploy", "api", "--image", "r/api:2").exit_code == 4
    _deploy(ltmctl, "3", "api")
    first, failed, third = _revisions(fake, API_SERVICE)

    result = ltmctl("deploy", "api", "--rollback", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rolled_back"] == [
        {"component": "api", "service": "ltm-api", "from": third, "to": first}]
    assert _serving(fake, API_SERVICE) == [{"type": REVISION, "percent": 100, "revision": first}]


def test_without_a_previous_ready_revision_rollback_refuses_and_changes_nothing(ltmctl, fake):
    _deploy(ltmctl, "1", "api")
    fake.clear_requests()

    result = ltmctl("deploy", "api", "--rollback")

    assert result.exit_code == 4, result.output
    said = " ".join(result.stderr.split())
    (only,) = _revisions(fake, API_SERVICE)
    assert f"ltm-api has no ready revision older than {only}" in said and "ltmctl deploy" in said
    assert fake.mutating_requests() == []


def test_a_normal_deploy_after_a_rollback_puts_traffic_back_on_the_latest_revision(ltmctl, fake):
    _deploy(ltmctl, "1")
    _deploy(ltmctl, "2")
    assert ltmctl("deploy", "api", "--rollback").exit_code == 0
    fake.clear_requests()

    # The same images again: nothing to build, but the pinned traffic is not what deploy says.
    _deploy(ltmctl, "2")

    (patch,) = fake.find("PATCH", r"/services/")
    assert patch.path == f"/v2/{API_SERVICE}"
    assert patch.body["traffic"] == [{"type": 1, "percent": 100}]
    assert _serving(fake, API_SERVICE) == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    assert len(_revisions(fake, API_SERVICE)) == 2  # the template is the same: no new revision
    fake.clear_requests()
    _deploy(ltmctl, "2")
    assert fake.mutating_requests() == []


def test_the_fake_refuses_traffic_to_a_revision_that_never_became_ready_as_google_does(ltmctl, fake):
    from google.api_core.exceptions import GoogleAPICallError

    from ltmctl.deploy.clients import DeployClients

    _deploy(ltmctl, "1", "api")
    fake.api(CloudRunApi).fail_next_revision()
    assert ltmctl("deploy", "api", "--image", "r/api:2").exit_code == 4
    ready, failed = _revisions(fake, API_SERVICE)
    with DeployClients.for_endpoint(PROJECT, fake.endpoint) as clients:
        got = clients.run_revisions.get_revision(name=f"{API_SERVICE}/revisions/{failed}")
        assert got.conditions[0].type_ == "Ready" and got.conditions[0].state.name == "CONDITION_FAILED"
        for revision, message in ((failed, "is not ready and cannot serve traffic"),
                                  ("ltm-api-00009-zzz", "does not exist or is deleted")):
            operation = clients.run_services.update_service(request={
                "service": {"name": API_SERVICE, "traffic": [{"type_": REVISION, "revision": revision,
                                                               "percent": 100}]},
                "update_mask": {"paths": ["traffic"]}})
            with pytest.raises(GoogleAPICallError, match=message):
                operation.result(timeout=10)
    assert _serving(fake, API_SERVICE) == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    assert fake.api(CloudRunApi).services[API_SERVICE]["latestReadyRevision"].endswith(ready)


def test_rollback_from_a_report_refuses_a_service_changed_since_that_deploy(ltmctl, fake, tmp_path):
    _deploy(ltmctl, "1")
    deployed = ltmctl("deploy", "all", "--image=api=r/api:2", "--image=ingest=r/ingest:2", "-o", "json")
    report = tmp_path / "deploy.json"
    report.write_text(deployed.stdout)
    _deploy(ltmctl, "3", "api")  # someone else's deploy since
    fake.clear_requests()

    result = ltmctl("deploy", "all", "--rollback", "--from", str(report))

    assert result.exit_code == 4, result.output
    said = " ".join(result.stderr.split())
    assert "ltm-api serves" in said and "changed since" in said and "ltmctl deploy api --rollback" in said
    assert fake.mutating_requests() == []  # checked before moving anything: ingest stays too


@pytest.mark.parametrize("extra", [["--image", "r/api:1"], ["--force"], ["--dry-run"]])
def test_rollback_refuses_options_that_deploy_something(extra, config_path):
    result = Ltmctl(config_path)("deploy", "api", "--rollback", *extra)
    assert result.exit_code == 2, result.output
    assert extra[0] in result.stderr and "--rollback" in result.stderr


def test_from_goes_only_with_rollback(config_path, tmp_path):
    report = tmp_path / "deploy.json"
    report.write_text("{}")
    result = Ltmctl(config_path)("deploy", "--from", str(report))
    assert result.exit_code == 2 and "--from goes with --rollback" in result.stderr


# --- cloudbuild.yaml's deploy and verify steps, run as bash runs them, as ltm-deployer -----------------------------

STEPS = {s["id"]: s for s in yaml.safe_load((REPO / "cloudbuild.yaml").read_text())["steps"]}


def _step(step_id: str, workspace: Path, build_id: str) -> subprocess.CompletedProcess[str]:
    """The step's script with Cloud Build's substitutions made, /workspace/.venv/bin/ltmctl this ltmctl, run by bash
    with the step's own flags, in the checkout (as Cloud Build runs it, in /workspace)."""
    values = {"_ENV": "dev", "_REGION": "us-central1", "_REPOSITORY": "ltm", "PROJECT_ID": PROJECT,
              "BUILD_ID": build_id, "_VERIFY_TIMEOUT": "5"}
    step = STEPS[step_id]
    assert step["entrypoint"] == "bash"
    script = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], step["args"][-1])
    script = script.replace("/workspace/.venv/bin/ltmctl", str(Path(sys.executable).parent / "ltmctl"))
    script = script.replace("/workspace/", f"{workspace}/")
    env = {k: v for k, v in os.environ.items() if k not in ("LTM_ENV", "LTM_CONFIG")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(["bash", *step["args"][:-1], script], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_failed_verify_in_the_build_rolls_back_exactly_what_it_changed_and_fails(ltmctl, fake, tmp_path,
                                                                                  monkeypatch):
    from tests.gcp.support import IAP_WEB, revoke
    from tests.gcp.verify_support import Pipeline

    workspace = ltmctl.config_path.parent.parent
    monkeypatch.setenv("LTM_GCP_TOKEN", fake.token_for(DEPLOYER_SA))
    first = _step("deploy", workspace, "b1")
    assert first.returncode == 0, first.stderr
    # The ingest image of the next build is already running (a retried build): that build changes only the API.
    image = f"us-central1-docker.pkg.dev/{PROJECT}/ltm/ltm-ingest:b2"
    assert ltmctl("deploy", "ingest", "--image", image).exit_code == 0
    second = _step("deploy", workspace, "b2")
    assert second.returncode == 0, second.stderr
    report = {c["component"]: c for c in json.loads((workspace / "deploy.json").read_text())["components"]}
    assert {c: o["action"] for c, o in report.items()} == {"ingest": "unchanged", "api": "updated"}
    api_old, api_new = _revisions(fake, API_SERVICE)
    ingest_serving = fake.api(CloudRunApi).services[INGEST_SERVICE]["latestReadyRevision"]
    # verify fails: the deployer may no longer pass IAP.
    revoke(fake, (IAP_WEB, "roles/iap.httpsResourceAccessor", DEPLOYER_SA))
    pipeline = Pipeline(fake)
    monkeypatch.setenv("LTM_API_URL", pipeline.url)
    fake.clear_requests()
    try:
        verified = _step("verify", workspace, "b2")
    finally:
        pipeline.close()

    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert f"ltm-api: from {api_new} → {api_old}" in verified.stdout
    assert "verify failed" in verified.stderr
    assert _serving(fake, API_SERVICE) == [{"type": REVISION, "percent": 100, "revision": api_old}]
    # The service the build did not change is left alone, and says so.
    assert fake.api(CloudRunApi).services[INGEST_SERVICE]["latestReadyRevision"] == ingest_serving
    assert _serving(fake, INGEST_SERVICE) == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    assert "ltm-ingest: left as it is" in verified.stderr
    patches = fake.find("PATCH", r"/services/")
    assert [r.path for r in patches] == [f"/v2/{API_SERVICE}"]
    # All as the build's account, with what provision granted it: nothing refused but IAP's (verify's failure).
    assert {r.principal for r in patches} == {DEPLOYER_SA}
    assert not [r for r in fake.requests if r.status in (401, 403)]
