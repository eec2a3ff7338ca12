"""Service Usage API v1: which APIs are enabled; enable one, or a batch, as long-running operations."""

from __future__ import annotations

from typing import Any

from ltmctl.gcp.fake.server import Api, Request, invalid

_TYPE = "type.googleapis.com/google.api.serviceusage.v1."

TITLES = {
    "run.googleapis.com": "Cloud Run Admin API", "cloudbuild.googleapis.com": "Cloud Build API",
    "artifactregistry.googleapis.com": "Artifact Registry API", "pubsub.googleapis.com": "Cloud Pub/Sub API",
    "bigquery.googleapis.com": "BigQuery API", "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iap.googleapis.com": "Cloud Identity-Aware Proxy API", "storage.googleapis.com": "Cloud Storage API",
    "monitoring.googleapis.com": "Cloud Monitoring API", "logging.googleapis.com": "Cloud Logging API",
    "serviceusage.googleapis.com": "Service Usage API",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
}


class ServiceUsageApi(Api):
    discovery = ("serviceusage.v1",)
    service = None  # Service Usage itself is always callable

    def routes(self):
        base = "/v1/{kind}/{parent}/services"
        return [
            ("GET", base, self.list),
            ("GET", base + ":batchGet", self.batch_get),
            ("POST", base + ":batchEnable", self.batch_enable),
            ("GET", base + "/{service}", self.get),
            ("POST", base + "/{service}:enable", self.enable),
            ("POST", base + "/{service}:disable", self.disable),
        ]

    def _parent(self, kind: str, parent: str) -> str:
        return f"{kind}/{self.fake.number(parent) if kind == 'projects' else parent}"

    def _service(self, kind: str, parent: str, service: str) -> dict[str, Any]:
        p = self._parent(kind, parent)
        state = "ENABLED" if service in self.fake.enabled_services else "DISABLED"
        return {"name": f"{p}/services/{service}", "parent": p, "state": state,
                "config": {"name": service, "title": TITLES.get(service, service)}}

    def get(self, req: Request, kind: str, parent: str, service: str):
        return self._service(kind, parent, service)

    def list(self, req: Request, kind: str, parent: str):
        names = sorted(self.fake.enabled_services) if "ENABLED" in req.query.get("filter", "") else sorted(
            self.fake.enabled_services | set(TITLES))
        return {"services": [self._service(kind, parent, s) for s in names]}

    def batch_get(self, req: Request, kind: str, parent: str):
        names = req.params.get("names", [])
        if len(names) > 30:
            raise invalid("At most 30 services can be requested in one batchGet.")
        return {"services": [self._service(kind, parent, n.rsplit("/", 1)[-1]) for n in names]}

    def enable(self, req: Request, kind: str, parent: str, service: str):
        self.fake.enable(service)
        return self.fake.operation("", {"@type": _TYPE + "EnableServiceResponse",
                                        "service": self._service(kind, parent, service)},
                                   {"@type": _TYPE + "OperationMetadata"})

    def disable(self, req: Request, kind: str, parent: str, service: str):
        self.fake.disable(service)
        return self.fake.operation("", {"@type": _TYPE + "DisableServiceResponse",
                                        "service": self._service(kind, parent, service)},
                                   {"@type": _TYPE + "OperationMetadata"})

    def batch_enable(self, req: Request, kind: str, parent: str):
        ids = list((req.data or {}).get("serviceIds", []))
        if not ids or len(ids) > 20:
            raise invalid("serviceIds must name between 1 and 20 services.")
        self.fake.enable(*ids)
        return self.fake.operation("", {"@type": _TYPE + "BatchEnableServicesResponse",
                                        "services": [self._service(kind, parent, s) for s in ids]},
                                   {"@type": _TYPE + "OperationMetadata",
                                    "resourceNames": [f"{self._parent(kind, parent)}/services/{s}" for s in ids]})
