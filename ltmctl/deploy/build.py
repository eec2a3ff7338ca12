"""Stage a source archive in the staging bucket and build its image with Cloud Build, streaming status and log.

Builds run as the builder service account provision made (`service_account`), never as Cloud Build's default
one, which has no roles in new projects. With a user-specified account Cloud Build refuses its default logs bucket:
the build must name a logs bucket or log to Cloud Logging only. Builds write their log to the staging bucket
(`logs_bucket` + `GCS_ONLY`): the builder may write there (objectAdmin on that bucket) and the person deploying can
read it there (they just uploaded to that bucket). The log is read back while the build runs, so its lines appear
as they are written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ltmctl.deploy.package import Package
from ltmctl.deploy.progress import Progress
from ltmctl.errors import BackendError

BUILDER = "gcr.io/cloud-builders/docker"
BUILD_TIMEOUT_S = 1200
LOG_PREFIX = "cloudbuild-logs"
TAIL_LINES = 30
_DONE = frozenset({"SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED"})


class BuildFailed(BackendError):
    title = "Build failed"


@dataclass
class Build:
    """One running build, and how much of its log has been shown."""

    component: str
    image: str
    id: str
    name: str
    log_url: str
    log_bucket: str
    log_object: str
    status: str = "QUEUED"
    lines: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.status in _DONE


def stage(storage: Any, bucket: str, pkg: Package) -> bool:
    """Upload the archive unless an object of that (content-addressed) name is already there; True if uploaded."""
    blob = storage.bucket(bucket).blob(pkg.object_name)
    if blob.exists():
        return False
    blob.upload_from_string(pkg.data, content_type="application/gzip")
    return True


def build_request(project: str, region: str, bucket: str, pkg: Package, service_dir: str,
                  image: str, builder: str) -> dict[str, Any]:
    """A cloudbuild_v1.Build (as a mapping): one docker build from the unpacked repository layout, one push, run
    as the `builder` service account (an email)."""
    return {
        "source": {"storage_source": {"bucket": bucket, "object_": pkg.object_name}},
        "steps": [{
            "name": BUILDER,
            "args": ["build", "-f", f"{service_dir}/Dockerfile", "-t", image, "."],
            # BuildKit honours `<dir>/Dockerfile.dockerignore`, so only what the image copies is sent to docker.
            "env": ["DOCKER_BUILDKIT=1"],
        }],
        "images": [image],
        "service_account": f"projects/{project}/serviceAccounts/{builder}",
        # Required with a user-specified account: logs go to this bucket only, never Cloud Logging.
        "logs_bucket": f"gs://{bucket}/{LOG_PREFIX}",
        "options": {"logging": "GCS_ONLY"},
        "tags": ["ltmctl", pkg.component],
        "timeout": {"seconds": BUILD_TIMEOUT_S},
    }


def start(build_client: Any, project: str, region: str, component: str, request: dict[str, Any]) -> Build:
    # Regional, next to the bucket and the registry. Only `parent`: with `project_id` too, the client would pick
    # the global endpoint.
    operation = build_client.create_build(parent=f"projects/{project}/locations/{region}", build=request)
    b = operation.metadata.build
    bucket, _, prefix = (b.logs_bucket or request["logs_bucket"]).removeprefix("gs://").partition("/")
    log_object = f"{prefix.strip('/')}/log-{b.id}.txt".lstrip("/")
    return Build(component, request["images"][0], b.id, b.name or f"projects/{project}/locations/{region}/builds/"
                 f"{b.id}", b.log_url, bucket, log_object, _status(b.status))


def _status(value: Any) -> str:
    return getattr(value, "name", str(value))


def _read_log(storage: Any, build: Build) -> list[str]:
    from google.api_core.exceptions import NotFound

    try:
        text = storage.bucket(build.log_bucket).blob(build.log_object).download_as_bytes()
    except NotFound:  # nothing written yet
        return build.lines
    return text.decode("utf-8", "replace").splitlines()


def wait(build_client: Any, storage: Any, builds: list[Build], progress: Progress, poll_s: float = 2.0,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll every build until all are done, showing status changes and new log lines; raise on the first
    that did not succeed, with its log tail and console link."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S + 600  # the build's own timeout, plus time in the queue
    pending = list(builds)
    while pending:
        for build in list(pending):
            b = build_client.get_build(name=build.name)
            status = _status(b.status)
            if status != build.status:
                progress.step(f"{build.component}: build {build.id} {status.lower()}")
                build.status = status
            build.detail = b.status_detail or (b.failure_info.detail if "failure_info" in b else "")
            lines = _read_log(storage, build)
            for line in lines[len(build.lines):]:
                progress.log(build.component, line)
            build.lines = lines
            if build.done:
                pending.remove(build)
                if status != "SUCCESS":
                    raise failure(build)
        if pending:
            if time.monotonic() > deadline:
                raise BuildFailed(f"Cloud Build did not finish {', '.join(b.id for b in pending)} in time.",
                                  hint="Look at the build in the console: " + pending[0].log_url)
            sleep(poll_s)


def failure(build: Build) -> BuildFailed:
    tail = "\n".join(build.lines[-TAIL_LINES:]) or "(the build wrote no log)"
    detail = f": {build.detail}" if build.detail else ""
    return BuildFailed(
        f"The {build.component} image did not build (Cloud Build {build.id} ended {build.status}{detail}).\n\n"
        f"Last lines of the build log:\n{tail}",
        hint=f"Full log: {build.log_url} — fix the cause, then run `ltmctl deploy {build.component}` again.")
