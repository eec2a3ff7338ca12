"""cloudbuild.yaml: test, then build and push both images from their Dockerfiles, then `ltmctl deploy` those
images; and its deploy command line is one ltmctl accepts (run here as a dry run)."""

from __future__ import annotations

import json
import re

import yaml
from typer.testing import CliRunner

from tests.conftest import REPO, make_project
from tests.gcp.deploy_support import DEPLOY_CONFIG, copy_sources

PIPELINE = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
STEPS = {step["id"]: step for step in PIPELINE["steps"]}
VALUES = {"_ENV": "dev", "_REGION": "us-central1", "_REPOSITORY": "ltm", "PROJECT_ID": "my-project-id",
          "BUILD_ID": "b-1"}


def substitute(text: str) -> str:
    """Cloud Build's substitutions: $NAME and ${NAME}; every one used must be defined."""
    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in VALUES, f"cloudbuild.yaml uses ${name}, which is neither built in nor a substitution"
        return VALUES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def _image(component: str) -> str:
    (tag,) = [a for a in STEPS[f"build-{component}"]["args"] if "docker.pkg.dev" in a]
    return substitute(tag)


def test_user_substitutions_have_defaults():
    used = set(re.findall(r"\$\{?(_\w+)", (REPO / "cloudbuild.yaml").read_text()))
    assert used <= set(PIPELINE["substitutions"])


def test_steps_run_audit_and_test_then_build_then_push_then_deploy_then_verify():
    ids = [s["id"] for s in PIPELINE["steps"]]
    assert ids[:2] == ["audit", "test"]
    assert "pytest" in " ".join(STEPS["test"]["args"])
    for component in ("api", "ingest"):
        assert STEPS[f"build-{component}"]["waitFor"] == ["test", "audit"]
        assert STEPS[f"push-{component}"]["waitFor"] == [f"build-{component}"]
    assert set(STEPS["deploy"]["waitFor"]) == {"push-api", "push-ingest"}
    assert ids[-2:] == ["deploy", "verify"]


def test_images_are_built_from_the_dockerfiles_in_the_repository_and_pushed_as_built():
    for component, directory in (("api", "api_service"), ("ingest", "ingest_fn")):
        args = STEPS[f"build-{component}"]["args"]
        dockerfile = args[args.index("-f") + 1]
        assert dockerfile == f"{directory}/Dockerfile" and (REPO / dockerfile).is_file()
        assert args[0] == "build" and args[-1] == "."  # the repository root is the context, as the Dockerfiles say
        assert substitute(STEPS[f"push-{component}"]["args"][1]) == _image(component)
        assert _image(component).startswith("us-central1-docker.pkg.dev/my-project-id/ltm/")
    assert [substitute(i) for i in PIPELINE["images"]] == [_image("api"), _image("ingest")]


def test_the_deploy_step_deploys_the_pushed_images_and_ltmctl_accepts_it(tmp_path, monkeypatch):
    from ltmctl.cli import app

    step = STEPS["deploy"]
    assert step["entrypoint"].endswith("/ltmctl")
    args = [substitute(a) for a in step["args"]]
    assert args[args.index("deploy") + 1] == "all"
    assert f"api={_image('api')}" in args and f"ingest={_image('ingest')}" in args

    copy_sources(tmp_path)
    make_project(tmp_path, DEPLOY_CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LTM_GCP_ENDPOINT", raising=False)
    result = CliRunner().invoke(app, [*args, "--dry-run", "--output", "json"])

    assert result.exit_code == 0, result.output
    requests = json.loads(result.stdout)
    created = {r["query"]["serviceId"]: r["body"]["template"]["containers"][0]["image"] for r in requests
               if r["method"] == "POST" and r["path"].endswith("/services")}
    assert created == {"ltm-api": _image("api"), "ltm-ingest": _image("ingest")}
    assert not [r for r in requests if r["path"].endswith("/builds")]  # CI built them already
