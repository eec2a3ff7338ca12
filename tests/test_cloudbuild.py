"""cloudbuild.yaml against Cloud Build's own `Build` schema (its discovery document), and its internal references:
every `waitFor` names a step before it, every user substitution used is declared, the audit gates the builds and
verify runs after deploy and rolls it back when it fails."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO

# Substitutions Cloud Build provides itself (cloud.google.com/build/docs/configuring-builds/substitute-variable-values).
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA", "REVISION_ID",
            "SHORT_SHA", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME", "REF_NAME",
            "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT"}


@pytest.fixture(scope="module")
def build() -> dict:
    return yaml.safe_load((REPO / "cloudbuild.yaml").read_text())


def test_it_fits_cloud_builds_build_schema(build):
    from ltmctl.gcp.fake import discovery

    discovery.check_value(discovery.load("cloudbuild.v1"), {"$ref": "Build"}, build, "build")


def test_the_schema_check_refuses_a_misspelt_field(build):
    from ltmctl.gcp.fake import discovery

    broken = {**build, "steps": [{**build["steps"][0], "waitfor": ["-"]}]}
    with pytest.raises(discovery.Violation):
        discovery.check_value(discovery.load("cloudbuild.v1"), {"$ref": "Build"}, broken, "build")


def test_every_wait_for_names_an_earlier_step(build):
    seen: set[str] = set()
    for step in build["steps"]:
        for wanted in step.get("waitFor", []):
            assert wanted == "-" or wanted in seen, f"{step['id']} waits for {wanted}, no step before it"
        seen.add(step["id"])


def test_every_substitution_used_is_declared_or_built_in(build):
    text = (REPO / "cloudbuild.yaml").read_text().split("\nsteps:", 1)[1]
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", text))
    assert used - BUILT_IN - set(build["substitutions"]) == set()
    assert all(name.startswith("_") for name in build["substitutions"])


def test_the_audit_gates_every_build_and_verify_follows_deploy(build):
    steps = {s["id"]: s for s in build["steps"]}
    audit = steps["audit"]
    assert "pip-audit" in audit["args"][-1]
    assert "api_service/requirements.txt" in audit["args"][-1] and "ingest_fn/requirements.txt" in audit["args"][-1]
    for name, step in steps.items():
        if step.get("name", "").endswith("cloud-builders/docker") and step["args"][0] == "build":
            assert "audit" in step["waitFor"], name
    script = steps["verify"]["args"][-1]
    assert steps["verify"]["waitFor"] == ["deploy"] and " verify " in script
    assert "--service-account ltm-deployer@$PROJECT_ID.iam.gserviceaccount.com" in script
    # A failed verify rolls back what deploy recorded, and still fails the build.
    assert "deploy all --rollback --from /workspace/deploy.json" in script
    assert "| tee /workspace/deploy.json" in steps["deploy"]["args"][-1]
