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
          "BUILD_ID": "b-1", "_VERIFY_TIMEOUT": "300"}


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


def ltmctl_args(step_id: str) -> list[list[str]]:
    """The ltmctl command lines of a bash step's script, substituted, without `| tee` and `&& exit 0` tails."""
    import shlex

    step = STEPS[step_id]
    assert step["entrypoint"] == "bash" and step["args"][:3] == ["-euo", "pipefail", "-c"]
    lines = substitute(step["args"][-1]).replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        words = shlex.split(line.split("|", 1)[0].split("&&", 1)[0])
        if words and words[0] == "/workspace/.venv/bin/ltmctl":
            commands.append(words[1:])
    return commands


def test_the_deploy_step_deploys_the_pushed_images_and_ltmctl_accepts_it(tmp_path, monkeypatch):
    from ltmctl.cli import app

    (args,) = ltmctl_args("deploy")
    assert args[args.index("deploy") + 1] == "all"
    assert f"api={_image('api')}" in args and f"ingest={_image('ingest')}" in args
    # Its report is what the verify step rolls back from.
    assert "--output json" in " ".join(args) and "| tee /workspace/deploy.json" in STEPS["deploy"]["args"][-1]

    copy_sources(tmp_path)
    make_project(tmp_path, DEPLOY_CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LTM_GCP_ENDPOINT", raising=False)
    result = CliRunner().invoke(app, [*args, "--dry-run"])

    assert result.exit_code == 0, result.output
    requests = json.loads(result.stdout)
    created = {r["query"]["serviceId"]: r["body"]["template"]["containers"][0]["image"] for r in requests
               if r["method"] == "POST" and r["path"].endswith("/services")}
    assert created == {"ltm-api": _image("api"), "ltm-ingest": _image("ingest")}
    assert not [r for r in requests if r["path"].endswith("/builds")]  # CI built them already


def test_the_verify_step_rolls_back_from_the_deploy_report_only_when_verify_fails():
    verify, rollback = ltmctl_args("verify")
    assert verify[2] == "verify" and "ltm-deployer@my-project-id.iam.gserviceaccount.com" in verify
    assert rollback == ["--env", "dev", "deploy", "all", "--rollback", "--from", "/workspace/deploy.json"]
    script = STEPS["verify"]["args"][-1].splitlines()
    # verify passing ends the step; otherwise the rollback runs and the step (so the build) fails.
    assert script[1].rstrip().endswith("&& exit 0")
    assert script[-1] == "exit 1"
