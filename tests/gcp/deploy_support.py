"""Helpers for the deploy tests: a provisioned fake project, a copy of the sources to edit, the config they use,
and the fake's state read back as plain facts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ltmctl.gcp.fake import FakeGcp
from tests.conftest import REPO, TEST_CONFIG, make_project
from tests.gcp.support import NUMBER, PROJECT

REGION = "us-central1"
IAP_MEMBERS = ("group:analysts@example.com", "user:ana@example.com")
# The dev environment of the shared test config, with IAP members and ingest sizes to look for in what is sent.
DEPLOY_CONFIG = TEST_CONFIG + f"""\
    gcp: {{project_number: {NUMBER}}}
    iap: {{members: [{", ".join(IAP_MEMBERS)}]}}
    ingest: {{service: ltm-ingest, concurrency: 40, max_instances: 7}}
"""
API_SERVICE = f"projects/{PROJECT}/locations/{REGION}/services/ltm-api"
INGEST_SERVICE = f"projects/{PROJECT}/locations/{REGION}/services/ltm-ingest"
IAP_AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-iap.iam.gserviceaccount.com"
# The API service's IAP resource: its policy says who may pass IAP (provision also grants on projects/N/iap_web).
API_IAP_RESOURCE = f"projects/{NUMBER}/iap_web/cloud_run-{REGION}/services/ltm-api"


def copy_sources(root: Path) -> Path:
    """The parts of the repository deploy packages, copied under `root` so a test can change them."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("api_service", "ingest_fn", "config/contract"):
        shutil.copytree(REPO / part, root / part, ignore=ignore)
    return root


def project_dir(tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch, text: str = DEPLOY_CONFIG) -> Path:
    """A project directory that is also a checkout (deploy packages from it), `ltmctl` pointed at the fake;
    returns the config path."""
    monkeypatch.setenv("LTM_GCP_ENDPOINT", endpoint)
    monkeypatch.delenv("LTM_ENV", raising=False)
    monkeypatch.delenv("LTM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    copy_sources(tmp_path)
    return make_project(tmp_path, text)


@contextmanager
def provisioned(fake: FakeGcp, resolved: Any) -> Iterator[Any]:
    """Deploy's clients against the fake, after `provision` has been applied to it (its requests forgotten)."""
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.gcp import provisioning

    with DeployClients.for_endpoint(PROJECT, fake.endpoint) as c:
        target = provisioning.target(resolved, c)
        provisioning.apply(target, provisioning.plan(target))
        fake.clear_requests()
        yield c


def deploy(resolved: Any, clients: Any, components: tuple[str, ...] = ("ingest", "api"), **options: Any) -> Any:
    """The deploy core, as the command runs it, without the waits between polls."""
    from ltmctl.deploy.deployer import deploy as run_deploy
    from ltmctl.deploy.progress import Recorder
    from ltmctl.deploy.target import target_for

    progress = options.pop("progress", None) or Recorder()
    return run_deploy(target_for(resolved, int(NUMBER)), clients, components=list(components),
                      root=options.pop("root", resolved.root), progress=progress, poll_s=0, **options)


def first(fake: FakeGcp, method: str, path: str) -> int:
    """Index of the first recorded request with this method whose path matches the regex."""
    import re

    return next(i for i, r in enumerate(fake.requests) if r.method == method and re.search(path, r.path))


def env_of(service_body: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in service_body["template"]["containers"][0].get("env", [])}


def run_policies(fake: FakeGcp) -> dict[str, list[dict[str, Any]]]:
    from ltmctl.gcp.fake.run import CloudRunApi

    return {name: policy["bindings"] for name, policy in fake.api(CloudRunApi).policies.policies.items()}
