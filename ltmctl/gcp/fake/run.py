"""Cloud Run Admin API v2: services (create, get, patch, delete, list are long-running where Google's are), their
IAM policies, and the output fields a deploy reads back: uri, revisions, traffic statuses, conditions.

Revisions as Google keeps them: each create or update whose template differs makes one
(`…/services/S/revisions/S-0000N-abc`, N counting the service's revisions), ready or not; `revisions.list` and
`revisions.get` answer them. Traffic goes to the latest ready revision (LATEST) or to named ones (REVISION), and an
update that changes only `traffic` (update mask `traffic`) moves it without a new revision. A revision that never
became ready, or does not exist, cannot take traffic: the update's operation fails with Google's message and the
service keeps serving what it served (Google also records the refused spec; the fake keeps the service as it was).
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, PolicyStore, Request, already_exists, etag, invalid, not_found

_SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
_NOW = "2024-01-01T00:00:00.000000Z"
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_LATEST, _REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
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
        self.revisions: dict[str, dict[str, Any]] = {}  # full name -> Revision, every service's
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
            ("GET", base + "/{service}/revisions", self.list_revisions),
            ("GET", base + "/{service}/revisions/{revision}", self.get_revision),
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

    def _time(self) -> str:
        """Now on the fake's clock, a microsecond later than the last answer: creation times order revisions."""
        self._ticks = getattr(self, "_ticks", 0) + 1
        moment = _EPOCH + timedelta(seconds=self.fake.clock, microseconds=self._ticks)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def revisions_of(self, service_name: str) -> list[dict[str, Any]]:
        """The service's revisions, oldest first."""
        return sorted((r for r in self.revisions.values() if r["service"] == service_name),
                      key=lambda r: r["createTime"])

    def _new_revision(self, name: str, spec: dict[str, Any], failure: str | None) -> dict[str, Any]:
        """The revision a template change makes: what the template says, and whether it became ready."""
        from ltmctl.gcp.fake import discovery

        service = name.rsplit("/", 1)[-1]
        n = self.fake.next_id()
        suffix = "".join(string.ascii_lowercase[(n // 26**i) % 26] for i in range(3))
        revision_id = f"{service}-{len(self.revisions_of(name)) + 1:05d}-{suffix}"
        fields = discovery.load("run.v2").schemas["GoogleCloudRunV2Revision"]["properties"]
        template = {k: v for k, v in (spec.get("template") or {}).items()
                    if k in fields and not fields[k].get("readOnly")}
        now = self._time()
        ready = ({"type": "Ready", "state": "CONDITION_FAILED", "message": failure, "lastTransitionTime": now}
                 if failure else {"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": now})
        project, location = name.split("/")[1], name.split("/")[3]
        return {
            **template, "name": f"{name}/revisions/{revision_id}", "service": name,
            "uid": f"00000000-0000-4000-8000-{self.fake.next_id():012d}",
            "generation": "1", "observedGeneration": "1", "createTime": now, "updateTime": now,
            "labels": dict((spec.get("template") or {}).get("labels") or {}),
            "launchStage": spec.get("launchStage", "GA"), "conditions": [ready], "reconciling": False,
            "logUri": f"https://console.cloud.google.com/logs/viewer?project={project}&resource=cloud_run_revision"
                      f"/service_name/{service}/revision_name/{revision_id}&location={location}",
            "etag": f'"{etag(self.fake.next_id())}"',
        }

    def _traffic_error(self, name: str, traffic: list[dict[str, Any]]) -> tuple[int, str] | None:
        """Why the rollout of this traffic fails, as Google's operation says it, or None."""
        ours = {r["name"].rsplit("/", 1)[-1]: r for r in self.revisions_of(name)}
        for target in traffic:
            if target.get("type") != _REVISION:
                continue
            revision = ours.get(target.get("revision", ""))
            if revision is None:
                return 13, (f"Revision '{target.get('revision', '')}' does not exist or is deleted. Update all "
                            "traffic to route to currently available revisions.")
            if revision["conditions"][0]["state"] != "CONDITION_SUCCEEDED":
                return 9, f"Revision '{target['revision']}' is not ready and cannot serve traffic."
        return None

    @staticmethod
    def _check_traffic(traffic: list[dict[str, Any]]) -> None:
        """What Cloud Run refuses outright (400), before any rollout."""
        for i, target in enumerate(traffic):
            if target.get("type") == _REVISION and not target.get("revision"):
                raise invalid(f"spec.traffic[{i}].revision: a REVISION traffic target must name a revision.")
            if target.get("type") == _LATEST and target.get("revision"):
                raise invalid(f"spec.traffic[{i}]: a LATEST traffic target cannot name a revision.")
        if traffic and sum(int(t.get("percent", 0)) for t in traffic) != 100:
            raise invalid("spec.traffic: traffic percentages must add up to 100.")

    def _reconcile(self, name: str, spec: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        """The service as Google answers once a create or update has rolled out (or failed to)."""
        project, _, location, _, service = name.split("/")[1:6]
        number = self.fake.number(project)
        generation = int(previous["generation"]) + 1 if previous else 1
        template_changed = previous is None or previous.get("template") != spec.get("template")
        failure = self._failing_revisions.pop(0) if template_changed and self._failing_revisions else None
        if template_changed:
            revision = self._new_revision(name, spec, failure)
            self.revisions[revision["name"]] = revision
            created = revision["name"]
            if failure:
                failure = f"Revision '{created.rsplit('/', 1)[-1]}' is not ready and cannot serve traffic. {failure}"
                revision["conditions"][0]["message"] = failure
        else:
            created = previous["latestCreatedRevision"]
        ready = (previous or {}).get("latestReadyRevision", "") if failure else created
        # Empty traffic is 100% to the latest ready revision (GoogleCloudRunV2Service.traffic).
        traffic = spec.get("traffic") or [{"type": _LATEST, "percent": 100}]
        uri = f"https://{service}-{number}.{location}.run.app"
        condition = ({"type": "Ready", "state": "CONDITION_FAILED", "message": failure,
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
            "trafficStatuses": [{"type": t.get("type", _LATEST), "percent": t.get("percent", 0),
                                 **({"revision": t["revision"]} if t.get("revision") else {})} for t in traffic],
            "uri": uri, "urls": [uri],
            "reconciling": False, "etag": f'"{etag(self.fake.next_id())}"',
        }

    def _operation(self, name: str, service: dict[str, Any], failure: str | None = None,
                   code: int = 9) -> dict[str, Any]:
        parent = name.rsplit("/services/", 1)[0]
        error = {"code": code, "message": failure} if failure else None
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
        self._check_traffic(spec.get("traffic") or [])
        if req.query.get("validateOnly") == "true":
            return self._operation(name, {**spec, "name": name})
        refused = self._traffic_error(name, spec.get("traffic") or [])
        if refused:
            return self._operation(name, {**spec, "name": name}, refused[1], refused[0])
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
        given = _normalise({k: v for k, v in body.items() if k in _SPEC_FIELDS})
        mask = self._mask(req.query.get("updateMask", ""))
        if mask and previous is not None:
            # Only the masked fields change; one in the mask but not in the body goes back to its default.
            kept = {k: v for k, v in previous.items() if k in _SPEC_FIELDS and k not in mask}
            spec = {**kept, **{k: v for k, v in given.items() if k in mask}}
        else:
            # Without a mask an update replaces the whole spec: fields left out go back to their defaults.
            spec = given
        self._validate(spec)
        self._check_traffic(spec.get("traffic") or [])
        if req.query.get("validateOnly") == "true":
            return self._operation(name, {**spec, "name": name})
        refused = self._traffic_error(name, spec.get("traffic") or [])
        if refused:
            return self._operation(name, previous or {**spec, "name": name}, refused[1], refused[0])
        updated = self._reconcile(name, spec, previous)
        self.services[name] = updated
        return self._operation(name, updated, updated["terminalCondition"].get("message")
                               if updated["terminalCondition"]["state"] == "CONDITION_FAILED" else None)

    def delete(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        gone = self._get(name)
        del self.services[name]
        for revision in self.revisions_of(name):
            del self.revisions[revision["name"]]
        self.policies.drop(name)
        return self._operation(name, gone)

    @staticmethod
    def _mask(value: str) -> set[str]:
        """An update mask's fields (`traffic`, `template`; snake_case as the REST transport may send them)."""
        fields = set()
        for path in filter(None, (p.strip() for p in value.split(","))):
            head, *rest = path.split(".")
            field = head.split("_")[0] + "".join(w.title() for w in head.split("_")[1:])
            if field not in _SPEC_FIELDS:
                raise invalid(f"update_mask: {path!r} is not a field of Service that can be updated.")
            if rest:
                raise ApiError(501, "UNIMPLEMENTED", f"fake: update masks below a top-level field ({path!r}) are "
                                                     "not modelled.")
            fields.add(field)
        return fields

    def list_revisions(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        self._get(name)
        # Newest first, as the console lists them.
        return {"revisions": list(reversed(self.revisions_of(name)))}

    def get_revision(self, req: Request, project: str, location: str, service: str, revision: str):
        full = f"{self._full(project, location, service)}/revisions/{revision}"
        if full not in self.revisions:
            raise not_found(full)
        return self.revisions[full]

    def get_iam_policy(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        self._get(name)
        return self.policies.get(name)

    def set_iam_policy(self, req: Request, project: str, location: str, service: str):
        name = self._full(project, location, service)
        self._get(name)
        return self.policies.set(name, (req.data or {}).get("policy", {}))
