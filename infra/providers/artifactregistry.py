"""Artifact Registry repositories through google-cloud-artifact-registry."""

from __future__ import annotations

from typing import Any

from google.api_core.exceptions import NotFound

from infra.model import ArtifactRepository

LRO_TIMEOUT_S = 300


class RepositoryProvider:
    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, resource: ArtifactRepository) -> ArtifactRepository | None:
        try:
            repo = self.client.get_repository(request={"name": resource.key})
        except NotFound:
            return None
        return ArtifactRepository(resource.project, resource.location, resource.name,
                                  format=repo.format_.name, description=repo.description)

    def create(self, resource: ArtifactRepository) -> None:
        operation = self.client.create_repository(request={
            "parent": f"projects/{resource.project}/locations/{resource.location}",
            "repository_id": resource.name,
            "repository": {"format_": resource.format, "description": resource.description},
        })
        operation.result(timeout=LRO_TIMEOUT_S)

    def update(self, resource: ArtifactRepository, fields: list[str]) -> None:
        self.client.update_repository(request={
            "repository": {"name": resource.key, "description": resource.description},
            "update_mask": {"paths": ["description"]},
        })

    def immutable_fields(self, resource: ArtifactRepository) -> frozenset[str]:
        return frozenset({"format"})

    def delete(self, resource: ArtifactRepository) -> None:
        try:
            self.client.delete_repository(request={"name": resource.key}).result(timeout=LRO_TIMEOUT_S)
        except NotFound:
            pass
