"""`deploy --plan` against the fake: a project that runs an older revision, with a setting changed out of band;
the plan names exactly what differs, sends nothing that changes anything, and agrees with what deploy then does."""

from __future__ import annotations

import json

import pytest

from ltmctl.gcp.fake.run import CloudRunApi
from tests.gcp.conftest import Ltmctl
from tests.gcp.deploy_support import API_SERVICE, INGEST_SERVICE, deploy, project_dir, provisioned


@pytest.fixture
def config_path(fake, tmp_path, monkeypatch):
    """Overrides tests/gcp/conftest.py's: a checkout with IAP members and ingest sizes (max_instances 7)."""
    return project_dir(tmp_path, fake.endpoint, monkeypatch)


@pytest.fixture
def running(fake, config_path):
    """The project after a first deploy, then drifted: the API's source is newer than what runs, and someone set
    the ingest service's max instances to 3 in the console."""
    from ltmctl import config

    resolved = config.load(config_path, "dev")
    with provisioned(fake, resolved) as clients:
        deploy(resolved, clients)
        service = clients.run_services.get_service(name=INGEST_SERVICE)
        service.template.scaling.max_instance_count = 3
        clients.run_services.update_service(service=service).result()
    (config_path.parent.parent / "api_service" / "app.py").open("a").write("\n# a newer API\n")
    fake.clear_requests()
    return Ltmctl(config_path)


def _by_resource(rows):
    return {(r["kind"], r["resource"]): r for r in rows}


def test_the_plan_names_the_drifted_setting_and_the_newer_source_and_changes_nothing(running, fake):
    result = running("deploy", "--plan", "--output", "json")

    assert result.exit_code == 0, result.output
    assert fake.requests and fake.mutating_requests() == []  # it read the project, and only read it
    rows = _by_resource(json.loads(result.stdout))
    ingest = rows[("run.service", "ltm-ingest")]
    assert ingest["action"] == "update"
    assert ingest["fields"] == {"scaling.max_instance_count": {"actual": 3, "desired": 7}}
    api = rows[("run.service", "ltm-api")]
    assert api["action"] == "update"
    assert set(api["fields"]) == {"source", "image"}  # a newer source: a new image, no setting changed
    new_image = api["fields"]["image"]["desired"]
    assert rows[("artifactregistry.image", new_image)]["action"] == "create"
    ingest_image = fake.api(CloudRunApi).services[INGEST_SERVICE]["template"]["containers"][0]["image"]
    assert rows[("artifactregistry.image", ingest_image)]["action"] == "no change"  # reused, not rebuilt
    unchanged = {kind for (kind, _), r in rows.items() if r["action"] == "no change"}
    assert {"pubsub.subscription", "iap.access", "iap.settings", "iam.member"} <= unchanged


def test_the_plan_in_words_and_then_deploy_does_what_it_said(running, fake):
    result = running("deploy", "--plan")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "~ update    run.service ltm-ingest" in lines
    assert "      scaling.max_instance_count: 3 → 7" in lines
    assert any(line.startswith("+ create    artifactregistry.image ") for line in lines)
    assert "= unchanged pubsub.subscription ltm-events-ingest" in lines
    assert "3 change(s) planned" in " ".join(result.stderr.split())  # the API's image and service, ingest
    assert fake.mutating_requests() == []

    assert running("deploy").exit_code == 0
    assert fake.api(CloudRunApi).services[INGEST_SERVICE]["template"]["scaling"]["maxInstanceCount"] == 7
    assert fake.api(CloudRunApi).services[API_SERVICE]
    fake.clear_requests()
    again = running("deploy", "--plan", "--output", "json")
    assert again.exit_code == 0, again.output
    assert [r for r in json.loads(again.stdout) if r["action"] != "no change"] == []
    assert "would change nothing" in " ".join(again.stderr.split())
    assert fake.mutating_requests() == []


def test_plan_and_dry_run_exclude_each_other(running):
    result = running("deploy", "--plan", "--dry-run")
    assert result.exit_code == 2 and "exclude each other" in result.output
