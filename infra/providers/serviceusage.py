"""Google APIs enabled on the project, through google-cloud-service-usage."""

from __future__ import annotations

from typing import Any

from infra.model import ApiService

# Enabling can take minutes on a new project.
LRO_TIMEOUT_S = 900
BATCH = 20  # Service Usage's limit per batchEnable


class ApiServiceProvider:
    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, resource: ApiService) -> ApiService | None:
        service = self.client.get_service(request={"name": resource.key})
        return resource if getattr(service.state, "name", service.state) == "ENABLED" else None

    def create(self, resource: ApiService) -> None:
        self.create_many([resource])

    def create_many(self, resources: list[ApiService]) -> None:
        by_project: dict[str, list[str]] = {}
        for r in resources:
            by_project.setdefault(r.project, []).append(r.name)
        for project, names in by_project.items():
            for i in range(0, len(names), BATCH):
                operation = self.client.batch_enable_services(
                    request={"parent": f"projects/{project}", "service_ids": names[i:i + BATCH]})
                operation.result(timeout=LRO_TIMEOUT_S)

    def update(self, resource: ApiService, fields: list[str]) -> None:
        return None

    def immutable_fields(self, resource: ApiService) -> frozenset[str]:
        return frozenset()

    def delete(self, resource: ApiService) -> None:
        # Never disabled: other workloads in the project may depend on the same API.
        return None
