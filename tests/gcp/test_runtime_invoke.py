"""After a deploy, who may invoke the Cloud Run services, as Cloud Run asks IAM (run.routes.invoke) before it lets a
request through: Pub/Sub's push identity the ingest service, IAP's service agent the API service, and nobody else."""

from __future__ import annotations

import pytest

from tests.gcp.deploy_support import API_SERVICE, IAP_AGENT, INGEST_SERVICE, deploy, project_dir, provisioned
from tests.gcp.runtime_support import revoke
from tests.gcp.support import API_SA, BUILDER_SA, DEPLOYER_SA, INGEST_SA, INVOKER_SA, PUBSUB_AGENT

INVOKE = "run.routes.invoke"
EVERYONE = ("allUsers", "allAuthenticatedUsers")


@pytest.fixture
def config_path(fake, tmp_path, monkeypatch):
    """Overrides tests/gcp/conftest.py's: a checkout deploy can package."""
    return project_dir(tmp_path, fake.endpoint, monkeypatch)


@pytest.fixture
def deployed(fake, config_path):
    from ltmctl import config

    resolved = config.load(config_path, "dev")
    with provisioned(fake, resolved) as clients:
        deploy(resolved, clients)
    return fake


CALLERS = [
    # (service, the one identity that invokes it)
    pytest.param(INGEST_SERVICE, INVOKER_SA, id="push-invoker-calls-ingest"),
    pytest.param(API_SERVICE, IAP_AGENT, id="iap-calls-the-api"),
]


@pytest.mark.parametrize(("service", "caller"), CALLERS)
def test_only_its_caller_may_invoke_each_service(deployed, service, caller):
    assert deployed.authorize(caller, INVOKE, service)

    # The CI deployer holds run.admin on the project, which carries run.routes.invoke: it may invoke both, but it
    # can deploy any code as these services anyway, so that is no power beyond its own.
    assert deployed.authorize(DEPLOYER_SA, INVOKE, service)
    others = {INVOKER_SA, IAP_AGENT, API_SA, INGEST_SA, BUILDER_SA, PUBSUB_AGENT,
              "user:ana@example.com", "group:analysts@example.com"} - {caller}
    assert [m for m in sorted(others) if deployed.authorize(m, INVOKE, service)] == []
    # No public access: nobody unauthenticated (allUsers) or merely signed in reaches either service.
    assert [m for m in EVERYONE if deployed.authorize(m, INVOKE, service)] == []


@pytest.mark.parametrize(("service", "caller"), CALLERS)
def test_without_run_invoker_its_caller_is_refused(deployed, service, caller):
    revoke(deployed, service, "roles/run.invoker", caller)

    assert not deployed.authorize(caller, INVOKE, service)
