"""Cloud Run Admin API v2: services (create, get, patch, delete, list are long-running where Google's are), their
IAM policies, and the output fields a deploy reads back: uri, revisions, traffic statuses, conditions."""

from __future__ import annotations

import json
import string
from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, PolicyStore, Request, already_exists, etag, invalid, not_found

_SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
_NOW = "2024-01-01T00:00:00.000000Z"
# Clients send `$alt=json;enum-encoding=int`; the fake keeps names, as a status display would want them.
_INGRESS = {0: "INGRESS_TRAFFIC_UNSPECIFIED", 1: "INGRESS_TRAFFIC_ALL", 2: "INGRESS_TRAFFIC_INTERNAL_ONLY",
            3: "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", 4: "INGRESS_TRAFFIC_NONE"}
_LAUNCH_STAGE = {0: "LAUNCH_STAGE_UNSPECIFIED", 1: "EARLY_ACCESS", 2: "ALPHA", 3: "BETA", 4: "GA",
                 5: "DEPRECATED", 6: "UNIMPLEMENTED", 7: "PRELAUNCH"}
_TRAFFIC_TYPE = {0: "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED", 1: "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST",
                 2: "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"}
_EXECUTION_ENV = {0: "EXECUTION_ENVIRONMENT_UNSPECIFIED", 1: "EXECUTION_ENVIRONMENT_GEN1",
                  2: "EXECUTION_ENVIRONMENT_GEN2"}
# Fields a caller may set; everything else in a Service is output only.
_SPEC_FIELDS = ("description", "labels", "annotations", "client", "clientVersion", "ingress", "launchStage",
                "binaryAuthorization", "template", "traffic", "scaling", "invokerIamDisabled",
                "defaultUriDisabled", "iapEnabled", "customAudiences", "multiRegionSettings", "buildConfig",
                "threatDetectionEnabled")


def _name(value: Any, names: dict[int, str]) -> Any:
    return names.get(value, str(value)) if isinstance(value, int) else value


def _normalise(spec: dict[str, Any]) -> dict[str, Any]:
    spec = json.loads(json.dumps(spec))
    if "ingress" in spec:
        spec["ingress"] = _name(spec["ingress"], _INGRESS)
    if "launchStage" in spec:
        spec["launchStage"] = _name(spec["launchStage"], _LAUNCH_STAGE)
    for target in spec.get("traffic") or []:
        if "type" in target:
            target["type"] = _name(target["type"], _TRAFFIC_TYPE)
    template = spec.get("template") or {}
    if "executionEnvironment" in template:
        template["executionEnvironment"] = _name(template["executionEnvironment"], _EXECUTION_ENV)
    return spec


class CloudRunApi(Api):
    discovery = ("run.v2",)
    service = "run.googleapis.com"
    title = "Cloud Run Admin API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.services: dict[str, dict[str, Any]] = {}
        self.policies = PolicyStore(fake)
        self._failing_revisions: list[str] = []

    def routes(self):
        base = "/v2/projects/{project}/locations/{location}/services"
        return [
            ("GET", base, self.list),
            ("POST", base, self.create),
            ("GET", base + "/{service}", self.get),
            ("PATCH", base + "/{service}", self.patch),
            ("DELETE", base + "/{service}", self.delete),
            ("GET", base + "/{service}:getIamPolicy", self.get_iam_policy),
            ("POST", base + "/{service}:setIamPolicy", self.set_iam_policy),
        ]

    # --- test controls -----------------------------------------------------------------------------------------

    def fail_next_revision(self, message: str = "The user-provided container failed to start and listen on the "
                                                "port defined provided by the PORT environment variable.") -> None:
        """The next create/update produces a revision that never becomes ready; the operation ends in error."""
        self._failing_revisions.append(message)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _full(self, project: str, location: str, service: str = "") -> str:
        return f"projects/{self.fake.project_id(project)}/locations/{location}/services/{service}".rstrip("/")

    def _get(self, name: str) -> dict[str, Any]:
        if name not in self.services:
            raise not_found(name)
        return self.services[name]

    def _validate(self, spec: dict[str, Any]) -> None:
        containers = (spec.get("template") or {}).get("containers") or []
        if not containers or not all(c.get("image") for c in containers):
            raise invalid("spec.template.containers[0].image: Required field is missing.")
        account = (spec.get("template") or {}).get("serviceAccount")
        if account and not self.fake.member_exists(f"serviceAccount:{account}"):
            raise invalid(f"spec.template.serviceAccount: Service account {account} does not exist.")
        limits = ((containers[0].get("resources") or {}).get("limits") or {})
        if "memory" in limits and not str(limits["memory"]).rstrip("MiG").isdigit():
            raise invalid(f"spec.template.containers[0].resources.limits.memory: invalid value {limits['memory']!r}")
        for key in list(spec.get("labels") or {}) + list((spec.get("template") or {}).get("labels") or {}):
            if key.startswith(("run.googleapis.com", "serving.knative.dev", "cloud.googleapis.com")):
                raise invalid(f"labels: the prefix of {key!r} is reserved.")

    def _revision(self, name: str, generation: int) -> str:
        service = name.rsplit("/", 1)[-1]
        n = self.fake.next_id()
        suffix = "".join(string.ascii_lowercase[(n // 26**i) % 26] for i in range(3))
        return f"{name}/revisions/{service}-{generation:05d}-{suffix}"

    def _reconcile(self, name: str, spec: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        """The service as Google answers once a create or update has rolled out (or failed to)."""
        project, _, location, _, service = name.split("/")[1:6]
        number = self.fake.number(project)
        generation = int(previous["generation"]) + 1 if previous else 1
        template_changed = previous is None or previous.get("template") != spec.get("template")
        created = self._revision(name, generation) if template_changed else previous["latestCreatedRevision"]
        failure = self._failing_revisions.pop(0) if template_changed and self._failing_revisions else None
        ready = (previous or {}).get("latestReadyRevision", "") if failure else created
        traffic = spec.get("traffic") or [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
        uri = f"https://{service}-{number}.{location}.run.app"
        condition = ({"type": "Ready", "state": "CONDITION_FAILED", "message": f"Revision "
                      f"'{created.rsplit('/', 1)[-1]}' is not ready and cannot serve traffic. {failure}",
                      "lastTransitionTime": _NOW} if failure else
                     {"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": _NOW})
        return {
            **spec, "name": name,
            "uid": (previous or {}).get("uid") or f"00000000-0000-4000-8000-{self.fake.next_id():012d}",
            "generation": str(generation), "observedGeneration": str(generation),
            "createTime": (previous or {}).get("createTime", _NOW), "updateTime": _NOW,
            "creator": (previous or {}).get("creator", self.fake.owner.split(":", 1)[1]),
            "lastModifier": self.fake.owner.split(":", 1)[1],
            "traffic": traffic,
            "terminalCondition": condition,
            "conditions": [{"type": "RoutesReady", "state": condition["state"], "lastTransitionTime": _NOW},
                           {"type": "ConfigurationsReady", "state": condition["state"],
                            "lastTransitionTime": _NOW}],
            "latestCreatedRevision": created, "latestReadyRevision": ready,
            "trafficStatuses": [{"type": t.get("type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"),
                                 "percent": t.get("percent", 0),
                                 **({"revision": t["revision"]} if t.get("revision") else {})} for t in traffic],
            "uri": uri, "urls": [uri],
            "reconciling": False, "etag": f'"{etag(self.fake.next_id())}"',
        }

    def _operation(self, name: str, service: dict[str, Any], failure: str | None = None) -> dict[str, Any]:
        parent = name.rsplit("/services/", 1)[0]
        error = {"code": 9, "message": failure} if failure else None
        return self.fake.operation(parent, {"@type": _SERVICE_TYPE, **service}, {"@type": _SERVICE_TYPE, **service},
                                   error=error)

    # --- routes ------------------------------------------------------------------------------------------------

    def list(self, req: Request, project: str, location: str):
        prefix = self._full(project, location) + "/"
        return {"services": [s for n, s in sorted(self.services.items()) if n.startswith(prefix)]}

    def create(self, req: Request, project: str, location: str):
        service_id = req.query.get("serviceId", "")
        if not service_id:
            raise invalid("serviceId: Required field is missing.")
        name = self._full(project, location, service_id)
        if name in self.services:
            raise already_exists(name)
        spec = _normalise({k: v for k, v in (req.data or {}).items() if k in _SPEC_FIELDS})
        self._validate(spec)
        if req.query.get("validateOnly") == "true":
            return self._operation(name, {**spec, "name": name})
        service = self._reconcile(name, spec, None)
        self.services[name] = service
        return self._operation(name, service, service["terminalCondition"].get("message")
                               if service["terminalCondition"]["state"] == "CONDITION_FAILED" else None)

    def get(self, req: Request, project: str, location: str, service: str):
        return self._get(self._full(project, location, service))

    def patch(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        previous = self.services.get(name)
        if previous is None and req.query.get("allowMissing") != "true":
            raise not_found(name)
        body = req.data or {}
        given_etag = body.get("etag")
        if previous is not None and given_etag and given_etag != previous["etag"]:
            raise ApiError(409, "ABORTED", "The service was modified concurrently; read it again and retry.")
        # An update replaces the whole spec: fields left out go back to their defaults.
        spec = _normalise({k: v for k, v in body.items() if k in _SPEC_FIELDS})
        self._validate(spec)
        if req.query.get("validateOnly") == "true":
            return self._operation(name, {**spec, "name": name})
        updated = self._reconcile(name, spec, previous)
        self.services[name] = updated
        return self._operation(name, updated, updated["terminalCondition"].get("message")
                               if updated["terminalCondition"]["state"] == "CONDITION_FAILED" else None)

    def delete(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        gone = self._get(name)
        del self.services[name]
        self.policies.drop(name)
        return self._operation(name, gone)

    def get_iam_policy(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        self._get(name)
        return self.policies.get(name)

    def set_iam_policy(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        self._get(name)
        return self.policies.set(name, (req.data or {}).get("policy", {}))
