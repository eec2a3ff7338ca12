"""Errors from Google APIs as hints, exit code 4: what to enable, which role is missing, what to create,
which quota to raise."""

from __future__ import annotations

from ltmctl.gcp.fake.server import ApiError, error_info, quota_exceeded, service_disabled
from tests.gcp.support import NUMBER, PROJECT


def test_permission_denied_names_the_permission_and_the_role(fake, ltmctl):
    fake.deny("pubsub.topics.create", r"/topics/ltm-events$", method="PUT")
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 4, result.output
    assert "pubsub.topics.create" in result.output
    assert "--role=roles/pubsub.admin" in result.output
    assert f"projects/{PROJECT}/topics/ltm-events" in result.output  # which resource it was doing
    assert "Traceback" not in result.output


def test_permission_denied_on_the_project_policy(fake, ltmctl):
    fake.deny("resourcemanager.projects.setIamPolicy", r":setIamPolicy$", method="POST")
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 4, result.output
    assert "roles/resourcemanager.projectIamAdmin" in result.output


def test_permission_named_only_in_the_message(fake, ltmctl):
    # BigQuery says it in words, without an ErrorInfo.
    fake.fail(r"/bigquery/v2/projects/[^/]+/datasets$", ApiError(
        403, "PERMISSION_DENIED", f"Access Denied: Project {PROJECT}: User does not have bigquery.datasets.create "
                                  f"permission in project {PROJECT}."), method="POST")
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 4, result.output
    assert "bigquery.datasets.create" in result.output and "roles/bigquery.dataOwner" in result.output


def test_service_disabled_prints_the_enable_command(fake, ltmctl):
    fake.enable("pubsub.googleapis.com")
    # Enabled moments ago, not yet propagated: Pub/Sub still answers SERVICE_DISABLED.
    fake.fail(r"/topics/", service_disabled("pubsub.googleapis.com", "Cloud Pub/Sub API", NUMBER))
    result = ltmctl("status")
    assert result.exit_code == 4, result.output
    assert f"gcloud services enable pubsub.googleapis.com --project {PROJECT}" in result.output


def test_quota_exceeded_says_what_to_raise(fake, ltmctl):
    fake.fail(r"/repositories$", quota_exceeded("artifactregistry.googleapis.com",
                                                 "artifactregistry.googleapis.com/project_requests",
                                                 "RequestsPerMinutePerProject"), method="POST")
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 4, result.output
    assert "artifactregistry.googleapis.com/project_requests" in result.output
    assert "iam-admin/quotas" in result.output


def test_unknown_project_is_a_permission_error_with_the_project_in_it(fake, ltmctl, config_path):
    config_path.write_text(config_path.read_text().replace("project: my-project-id", "project: other-project"))
    result = ltmctl("status")
    assert result.exit_code == 4, result.output
    assert "other-project" in result.output


def test_concurrent_policy_change_is_retried_not_overwritten(fake, ltmctl):
    fake.fail(r"/topics/ltm-events-dlq:setIamPolicy$", ApiError(
        409, "ABORTED", "There were concurrent policy changes.",
        [error_info("ETAG_MISMATCH", "pubsub.googleapis.com")]), method="POST", times=1)
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 0, result.output
    # one refused write, then a fresh read and a write that went through, for each grant on that topic
    assert len(fake.find("POST", r"/topics/ltm-events-dlq:setIamPolicy$")) == 3
