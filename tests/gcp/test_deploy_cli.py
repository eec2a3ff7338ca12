"""`ltmctl deploy` end to end through the CLI: exit codes, what is printed on failure, the dry run. The ingest
modes are in test_ingest_modes.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltmctl.gcp.fake.cloudbuild import CloudBuildApi
from ltmctl.gcp.fake.run import CloudRunApi
from tests.conftest import make_project
from tests.gcp.conftest import Ltmctl
from tests.gcp.deploy_support import DEPLOY_CONFIG, copy_sources, project_dir
from tests.gcp.support import NUMBER, PROJECT


@pytest.fixture
def ltmctl(fake, tmp_path, monkeypatch) -> Ltmctl:
    """Overrides tests/gcp/conftest.py's: `ltmctl` in a checkout with IAP members and ingest sizes in its config,
    on a provisioned project (provision's requests forgotten)."""
    run = Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch))
    result = run("provision", "--yes")
    assert result.exit_code == 0, result.output
    fake.clear_requests()
    return run


def test_deploy_prints_the_urls_and_a_second_run_changes_nothing(ltmctl, fake):
    result = ltmctl("deploy", "--output", "json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    running = fake.api(CloudRunApi).services
    assert {c["component"]: c["url"] for c in shown["components"]} == {
        c: running[f"projects/{PROJECT}/locations/us-central1/services/ltm-{c}"]["uri"] for c in ("api", "ingest")}

    fake.clear_requests()
    again = ltmctl("deploy")
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stderr
    assert fake.mutating_requests() == []


def test_a_failed_build_prints_the_log_tail_and_the_console_url_and_exits_4(ltmctl, fake):
    log = [f"Step #0: [{i}/9] RUN pip install -r requirements.txt" for i in range(40)]
    fake.api(CloudBuildApi).fail_next_build(log + ["Step #0: ERROR: No matching distribution found for fastapi==0"])

    result = ltmctl("deploy", "api")

    assert result.exit_code == 4, result.output
    err = " ".join(result.stderr.split())
    assert "[0/9] RUN pip install" in err  # streamed while it ran
    panel = err.split("Build failed", 1)[1]
    assert "No matching distribution found for fastapi==0" in panel
    assert "[38/9] RUN pip install" in panel  # the tail, brackets and all
    assert "[0/9]" not in panel  # ...and only the tail
    (build,) = fake.api(CloudBuildApi).builds
    assert build["logUrl"] in panel and build["logUrl"].startswith("https://console.cloud.google.com/cloud-build/")
    assert fake.find("POST", r"/services$") == []  # nothing rolled out


def test_permission_denied_names_the_missing_role_and_exits_4(ltmctl, fake):
    fake.deny("run.services.create", r"/locations/us-central1/services$", method="POST")

    result = ltmctl("deploy", "ingest")

    assert result.exit_code == 4, result.output
    err = " ".join(result.stderr.split())
    assert "run.services.create" in err and "roles/run.admin" in err


def test_a_revision_that_never_gets_ready_exits_4_with_where_to_look(ltmctl, fake):
    fake.api(CloudRunApi).fail_next_revision("The user-provided container failed to start and listen on the port.")

    result = ltmctl("deploy", "api")

    assert result.exit_code == 4, result.output
    err = " ".join(result.stderr.split())
    assert "failed to start and listen" in err
    assert "console.cloud.google.com/run/detail/us-central1/ltm-api" in err


def test_image_option_needs_a_component_with_all(ltmctl):
    result = ltmctl("deploy", "all", "--image", "us-docker.pkg.dev/p/r/i:1")
    assert result.exit_code == 2
    assert "--image api=URI --image ingest=URI" in " ".join(result.stderr.split())


def test_images_by_component_skip_both_builds(ltmctl, fake):
    result = ltmctl("deploy", "--image", "api=r/api:1", "--image", "ingest=r/ingest:1")
    assert result.exit_code == 0, result.output
    assert fake.find("POST", r"/builds$") == []
    images = {s["name"].rsplit("/", 1)[-1]: s["template"]["containers"][0]["image"]
              for s in fake.api(CloudRunApi).services.values()}
    assert images == {"ltm-api": "r/api:1", "ltm-ingest": "r/ingest:1"}


def test_deploy_refuses_a_local_environment(ltmctl):
    result = ltmctl("deploy", env="local")
    assert result.exit_code == 2
    assert "local" in result.stderr


def test_dry_run_needs_no_credentials_and_prints_the_planned_requests(tmp_path):
    project = tmp_path / "project"
    copy_sources(project)
    make_project(project, DEPLOY_CONFIG)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "LTM_GCP_ENDPOINT", "LTM_ENV", "LTM_CONFIG",
                        "CLOUDSDK_CONFIG", "GOOGLE_CLOUD_PROJECT")}
    env["HOME"] = str(home)
    # Any attempt to reach Google (or anything else) through a proxy-aware client fails fast.
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    script = Path(sys.executable).parent / "ltmctl"

    done = subprocess.run([str(script), "--env", "dev", "deploy", "--dry-run", "--output", "json"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    requests = json.loads(done.stdout)
    creates = {r["query"]["serviceId"]: r["body"] for r in requests
               if r["method"] == "POST" and r["path"].endswith("/services")}
    assert set(creates) == {"ltm-api", "ltm-ingest"}
    assert creates["ltm-api"]["iapEnabled"] is True
    assert any(r["method"] == "PATCH" and r["path"].endswith("/subscriptions/ltm-events-ingest") for r in requests)
    assert all(r["path"].startswith("/") and set(r) <= {"method", "path", "query", "body", "bytes", "mutating"}
               for r in requests)
    assert f"/projects/{NUMBER}/iap_web/cloud_run-us-central1/services/ltm-api:setIamPolicy".lstrip("/") in \
        " ".join(r["path"] for r in requests)
    assert "nothing was sent" in done.stderr
    # Enum names, as Google reads them, where the REST clients send numbers.
    assert creates["ltm-api"]["launchStage"] == "BETA"
    builds = [r["body"] for r in requests if r["method"] == "POST" and r["path"].endswith("/builds")]
    assert builds and all(b["options"]["logging"] == "GCS_ONLY" for b in builds)

    # In words, without --output json: the plan of a first deploy, and the requests only with --verbose.
    words = subprocess.run([str(script), "deploy", "--dry-run", "--env", "dev"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=120)
    assert words.returncode == 0, words.stderr
    lines = words.stdout.splitlines()
    assert {"+ create    run.service ltm-api", "+ create    run.service ltm-ingest",
            "~ update    pubsub.subscription ltm-events-ingest"} <= set(lines)
    assert "POST" not in words.stdout
    verbose = subprocess.run([str(script), "deploy", "--dry-run", "-v", "--env", "dev"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=120)
    assert verbose.returncode == 0 and "+ create    run.service ltm-api" in verbose.stdout
    assert '"launchStage": "BETA"' in verbose.stdout and '"launchStage": 3' not in verbose.stdout


@pytest.mark.parametrize(("which", "values", "expected"), [
    ("api", ["r/api:1"], {"api": "r/api:1"}),
    ("api", ["api=r/api:1"], {"api": "r/api:1"}),
    ("all", ["api=r/a:1", "ingest=r/i@sha256:ab"], {"api": "r/a:1", "ingest": "r/i@sha256:ab"}),
])
def test_image_values(which, values, expected):
    from ltmctl.deploy.deployer import parse_images

    assert parse_images(which, values) == expected


@pytest.mark.parametrize(("which", "values"), [("all", ["r/api:1"]), ("api", ["api="])])
def test_image_values_that_say_too_little(which, values):
    from ltmctl.deploy.deployer import parse_images
    from ltmctl.errors import UsageError

    with pytest.raises(UsageError):
        parse_images(which, values)
