"""Cloud Build API v1: builds (global and regional). Creating one answers with a long-running operation whose
metadata carries the build; each `get` moves it on QUEUED → WORKING → SUCCESS (or FAILURE) and appends to its log
object `{logsBucket}/log-{id}.txt`, as Cloud Build streams logs to Cloud Storage."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, Request, invalid, not_found

_TYPE = "type.googleapis.com/google.devtools.cloudbuild.v1."
_NOW = "2024-01-01T00:00:00Z"


@dataclass
class _Run:
    """How one build will play out: the statuses it passes through and the log lines it writes."""

    build: dict[str, Any]
    final: str = "SUCCESS"
    failure_lines: list[str] = field(default_factory=list)
    failure_detail: str = ""
    stage: int = 0  # 0 QUEUED, 1 WORKING, 2 final
    polls: int = 0
    log: list[str] = field(default_factory=list)


class CloudBuildApi(Api):
    discovery = ("cloudbuild.v1",)
    service = "cloudbuild.googleapis.com"
    title = "Cloud Build API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.runs: dict[str, _Run] = {}  # build id -> run
        self.polls_per_status = 1  # gets that answer the same status before it moves on
        self._failures: list[tuple[list[str], str]] = []

    def routes(self):
        return [
            ("POST", "/v1/projects/{project}/builds", self.create_global),
            ("POST", "/v1/projects/{project}/locations/{location}/builds", self.create),
            ("GET", "/v1/projects/{project}/builds/{build_id}", self.get_global),
            ("GET", "/v1/projects/{project}/locations/{location}/builds/{build_id}", self.get),
        ]

    # --- test controls -----------------------------------------------------------------------------------------

    def fail_next_build(self, lines: list[str] | None = None,
                        detail: str = "Build step failure: build step 0 \"gcr.io/cloud-builders/docker\" failed: "
                                      "step exited with non-zero status: 1") -> None:
        """The next build ends in FAILURE after writing `lines` to its log."""
        self._failures.append((lines or ["Step #0: ERROR: failed to build"], detail))

    @property
    def builds(self) -> list[dict[str, Any]]:
        return [run.build for run in self.runs.values()]

    # --- routes ------------------------------------------------------------------------------------------------

    def create_global(self, req: Request, project: str):
        return self.create(req, project, "global")

    def create(self, req: Request, project: str, location: str):
        pid = self.fake.project_id(project)
        body = dict(req.data or {})
        if not body.get("steps"):
            raise invalid("invalid build: a build must have at least one step.")
        self._check_service_account(pid, body)
        number = self.fake.number(pid)
        build_id = f"{self.fake.next_id():08d}-0000-4000-8000-000000000000"
        name = f"projects/{pid}/locations/{location}/builds/{build_id}"
        region = "" if location == "global" else f";region={location}"
        build = {
            **body, "id": build_id, "name": name, "projectId": pid, "status": "QUEUED",
            "createTime": _NOW, "timeout": body.get("timeout", "600s"),
            "logsBucket": body.get("logsBucket") or f"gs://{number}.cloudbuild-logs.googleusercontent.com",
            "logUrl": f"https://console.cloud.google.com/cloud-build/builds{region}/{build_id}?project={number}",
        }
        run = _Run(build)
        if self._failures:
            run.failure_lines, run.failure_detail = self._failures.pop(0)
            run.final = "FAILURE"
        if not self._source_exists(build):
            source = (build.get("source") or {}).get("storageSource") or {}
            run.final = "FAILURE"
            run.failure_lines = [f"ERROR: failed to fetch gs://{source.get('bucket')}/{source.get('object')}: "
                                 "object not found"]
            run.failure_detail = "failed to fetch source"
        denied = self._denied(pid, build)
        if denied:
            run.final = "FAILURE"
            run.failure_lines, run.failure_detail = [denied], denied
        self.runs[build_id] = run
        parent = "" if location == "global" else f"projects/{pid}/locations/{location}"
        return self.fake.operation(parent, None, {"@type": _TYPE + "BuildOperationMetadata", "build": build})

    def get_global(self, req: Request, project: str, build_id: str):
        return self.get(req, project, "global", build_id)

    def get(self, req: Request, project: str, location: str, build_id: str):
        run = self.runs.get(build_id)
        if run is None or run.build["projectId"] != self.fake.project_id(project):
            raise not_found(f"builds/{build_id}")
        self._advance(run)
        return run.build

    def _check_service_account(self, pid: str, body: dict[str, Any]) -> None:
        """As Cloud Build does: a user-specified account must exist, and its build must say where logs go (its own
        logs bucket, a regional user-owned bucket, or Cloud Logging only / nowhere), never the default bucket."""
        account = body.get("serviceAccount")
        if not account:
            return
        email = account.rsplit("/", 1)[-1]
        iam = self.fake.apis.get("IamApi")
        if iam is not None and email not in iam.accounts:
            raise invalid(f"invalid build: service account {account} does not exist.")
        options = body.get("options") or {}
        if not (body.get("logsBucket") or options.get("logging") in ("CLOUD_LOGGING_ONLY", "NONE")
                or options.get("defaultLogsBucketBehavior") == "REGIONAL_USER_OWNED_BUCKET"):
            raise invalid("if 'build.service_account' is specified, the build must either (a) specify "
                          "'build.logs_bucket', (b) use the REGIONAL_USER_OWNED_BUCKET "
                          "build.options.default_logs_bucket_behavior option, or (c) use either CLOUD_LOGGING_ONLY "
                          "/ NONE logging options")

    def _denied(self, pid: str, build: dict[str, Any]) -> str | None:
        """What the build's own account is refused, as the build would fail on it: fetching the source, writing
        the log to its bucket, pushing each image (https://cloud.google.com/build/docs/cloud-build-service-account
        and https://cloud.google.com/artifact-registry/docs/access-control#permissions)."""
        account = build.get("serviceAccount")
        if not account:
            return None
        email = account.rsplit("/", 1)[-1]
        member = f"serviceAccount:{email}"
        source = (build.get("source") or {}).get("storageSource") or {}
        needs = []
        if source:
            needs.append(("storage.objects.get", f"projects/_/buckets/{source.get('bucket')}",
                          f"{email} does not have storage.objects.get access to the Google Cloud Storage object."))
        logs = str(build.get("logsBucket") or "")
        if logs.startswith("gs://") and "googleusercontent.com" not in logs:
            bucket = logs.removeprefix("gs://").split("/", 1)[0]
            needs.append(("storage.objects.create", f"projects/_/buckets/{bucket}",
                          f"{email} does not have storage.objects.create access to the Google Cloud Storage "
                          f"object (the build's log in gs://{bucket})."))
        for image in build.get("images") or []:
            m = re.match(r"^[a-z0-9-]+-docker\.pkg\.dev/([^/]+)/([^/]+)/", image)
            if m:
                host_region = image.split("-docker.pkg.dev", 1)[0]
                repo = f"projects/{m.group(1)}/locations/{host_region}/repositories/{m.group(2)}"
                needs.append(("artifactregistry.repositories.uploadArtifacts", repo,
                              f"denied: Permission \"artifactregistry.repositories.uploadArtifacts\" denied on "
                              f"resource \"{repo}\" (or it may not exist)"))
        for permission, resource, said in needs:
            if not self.fake.authorize(member, permission, resource):
                return said
        return None

    # --- the build's life --------------------------------------------------------------------------------------

    def _source_exists(self, build: dict[str, Any]) -> bool:
        source = (build.get("source") or {}).get("storageSource")
        if not source:
            return True
        storage = self.fake.apis.get("StorageApi")
        objects = getattr(storage, "objects", {}).get(source.get("bucket"), {})
        return source.get("object") in objects

    def _advance(self, run: _Run) -> None:
        if run.stage >= 2:
            return
        run.polls += 1
        if run.polls < self.polls_per_status:
            return
        run.polls = 0
        run.stage += 1
        build = run.build
        if run.stage == 1:
            build["status"], build["startTime"] = "WORKING", _NOW
            source = (build.get("source") or {}).get("storageSource") or {}
            self._log(run, [f'starting build "{build["id"]}"', "", "FETCHSOURCE",
                            f"Fetching storage object: gs://{source.get('bucket')}/{source.get('object')}", "BUILD"])
            for i, step in enumerate(build.get("steps") or []):
                self._log(run, [f"Starting Step #{i}", f"Step #{i}: Already have image (with digest): "
                                                        f"{step.get('name')}",
                                f"Step #{i}: {' '.join(str(a) for a in step.get('args') or [])}"])
            return
        build["finishTime"] = _NOW
        if run.final == "SUCCESS":
            images = build.get("images") or []
            build["status"] = "SUCCESS"
            build["results"] = {"images": [{"name": image, "digest": "sha256:" + hashlib.sha256(
                (image + build["id"]).encode()).hexdigest()} for image in images],
                                "buildStepImages": ["sha256:" + "0" * 64 for _ in build.get("steps") or []]}
            self._log(run, ["PUSH", *(f"Pushing {image}" for image in images), "DONE"])
        else:
            build["status"] = run.final
            build["statusDetail"] = run.failure_detail
            build["failureInfo"] = {"type": "USER_BUILD_STEP", "detail": run.failure_detail}
            self._log(run, [*run.failure_lines, "ERROR", f"ERROR: {run.failure_detail}"])

    def _log(self, run: _Run, lines: list[str]) -> None:
        run.log.extend(lines)
        bucket, _, prefix = run.build["logsBucket"].removeprefix("gs://").partition("/")
        objects = self.fake.apis.get("StorageObjectsApi")
        if objects is None:
            return
        name = f"{prefix.strip('/')}/log-{run.build['id']}.txt".lstrip("/")
        try:
            objects.put(bucket, name, ("\n".join(run.log) + "\n").encode(), "text/plain")
        except ApiError:
            pass  # a logs bucket the fake does not hold (Google's default one): the log is only in `run.log`
