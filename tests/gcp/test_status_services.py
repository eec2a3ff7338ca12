"""`ltmctl status` shows each Cloud Run service (URL, ready revision, traffic split, drift against this checkout
and config); `ltmctl destroy` deletes the services deploy made before the accounts they run as."""

from __future__ import annotations

import json

import pytest

from ltmctl.gcp.fake.iap import IapApi
from ltmctl.gcp.fake.run import CloudRunApi
from tests.gcp.conftest import Ltmctl
from tests.gcp.deploy_support import (
    API_IAP_RESOURCE,
    API_SERVICE,
    IAP_MEMBERS,
    INGEST_SERVICE,
    deploy,
    project_dir,
    provisioned,
)
from tests.gcp.support import PROJECT


@pytest.fixture
def config_path(fake, tmp_path, monkeypatch):
    return project_dir(tmp_path, fake.endpoint, monkeypatch)


@pytest.fixture
def deployed(fake, config_path):
    """A provisioned and deployed fake project, its requests forgotten; the deploy result."""
    from ltmctl import config

    resolved = config.load(config_path, "dev")
    with provisioned(fake, resolved) as clients:
        result = deploy(resolved, clients)
    fake.clear_requests()
    return result


def _services(ltmctl):
    result = ltmctl("status", "--output", "json")
    assert result.exit_code == 0, result.output
    return {row["component"]: row for row in json.loads(result.stdout)["services"]}


def test_status_shows_each_service_url_revision_and_traffic(fake, config_path, deployed):
    services = _services(Ltmctl(config_path))

    running = fake.api(CloudRunApi).services
    assert services["api"]["url"] == running[API_SERVICE]["uri"]
    assert services["ingest"]["url"] == running[INGEST_SERVICE]["uri"]
    revisions = {o.component: o.revision for o in deployed.components}
    assert {k: v["ready_revision"] for k, v in services.items()} == revisions
    assert services["api"]["traffic"] == [{"revision": "LATEST", "percent": 100}]
    assert {v["state"] for v in services.values()} == {"ok"}
    assert fake.mutating_requests() == []


def test_status_names_what_drifted_in_a_service(fake, config_path, deployed):
    routes = config_path.parent.parent / "api_service" / "routes.py"
    routes.write_text(routes.read_text() + "\n# not deployed yet\n")
    resource = API_IAP_RESOURCE
    policy = fake.api(IapApi).policies.get(resource)
    policy["bindings"][0]["members"].append("user:intruder@example.com")
    fake.api(IapApi).policies.set(resource, policy)
    config_path.write_text(config_path.read_text().replace("max_instances: 7", "max_instances: 8"))

    result = Ltmctl(config_path)("status")
    services = _services(Ltmctl(config_path))

    assert services["api"]["state"] == "drifted"
    assert set(services["api"]["drift"]) == {"source", "iap members"}
    assert services["api"]["drift"]["iap members"] == {
        "actual": sorted([*IAP_MEMBERS, "user:intruder@example.com"]), "desired": sorted(IAP_MEMBERS)}
    assert set(services["ingest"]["drift"]) == {"settings"}
    assert "Services not as configured: ltm-api, ltm-ingest" in result.output and "deploy" in result.output


def test_status_before_any_deploy_shows_the_services_missing(fake, config_path):
    services = _services(Ltmctl(config_path))
    assert {k: v["state"] for k, v in services.items()} == {"api": "missing", "ingest": "missing"}


def test_destroy_deletes_the_services_before_the_accounts_they_run_as(fake, config_path, deployed):
    result = Ltmctl(config_path)("destroy", "--yes")

    assert result.exit_code == 0, result.output
    assert fake.api(CloudRunApi).services == {}
    deletes = [r.path for r in fake.requests if r.method == "DELETE"]
    last_service = max(deletes.index(f"/v2/{name}") for name in (API_SERVICE, INGEST_SERVICE))
    first_account = min(i for i, p in enumerate(deletes) if "/serviceAccounts/" in p)
    assert last_service < first_account
    assert "deleted run_service ltm-api" in result.output


def test_destroy_leaves_a_service_ltmctl_did_not_make(fake, config_path, deployed):
    service = fake.api(CloudRunApi).services[API_SERVICE]
    service["labels"] = {"owner": "someone-else"}

    assert Ltmctl(config_path)("destroy", "--yes").exit_code == 0
    assert set(fake.api(CloudRunApi).services) == {API_SERVICE}
    assert PROJECT in API_SERVICE
