"""Artifact Registry API v1: repositories (create and delete are long-running operations) and their IAM."""

from __future__ import annotations

from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, PolicyStore, Request, already_exists, invalid

_TYPE = "type.googleapis.com/google.devtools.artifactregistry.v1."
_FORMATS = {0: "FORMAT_UNSPECIFIED", 1: "DOCKER", 2: "MAVEN", 3: "NPM", 5: "APT", 6: "YUM", 8: "PYTHON",
            9: "KFP", 10: "GO", 11: "GENERIC", 12: "RUBY"}
_MODES = {0: "MODE_UNSPECIFIED", 1: "STANDARD_REPOSITORY", 2: "VIRTUAL_REPOSITORY", 3: "REMOTE_REPOSITORY"}
_NOW = "2024-01-01T00:00:00Z"


def _enum(value: Any, names: dict[int, str], default: str) -> str:
    # Clients send `$alt=json;enum-encoding=int`, so enums arrive as numbers; store the names.
    if value is None:
        return default
    return names.get(value, str(value)) if isinstance(value, int) else str(value)


class ArtifactRegistryApi(Api):
    discovery = ("artifactregistry.v1",)
    service = "artifactregistry.googleapis.com"
    title = "Artifact Registry API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.repositories: dict[str, dict[str, Any]] = {}
        self.policies = PolicyStore(fake)

    def routes(self):
        base = "/v1/projects/{project}/locations/{location}/repositories"
        return [
            ("GET", base, self.list),
            ("POST", base, self.create),
            ("GET", base + "/{repo}", self.get),
            ("PATCH", base + "/{repo}", self.patch),
            ("DELETE", base + "/{repo}", self.delete),
            ("GET", base + "/{repo}:getIamPolicy", self.get_iam_policy),
            ("POST", base + "/{repo}:setIamPolicy", self.set_iam_policy),
        ]

    def _name(self, project: str, location: str, repo: str) -> str:
        return f"projects/{self.fake.project_id(project)}/locations/{location}/repositories/{repo}"

    def _get(self, name: str) -> dict[str, Any]:
        if name not in self.repositories:
            raise ApiError(404, "NOT_FOUND", f"Requested entity was not found. (resource={name})")
        return self.repositories[name]

    def list(self, req: Request, project: str, location: str):
        prefix = self._name(project, location, "")
        return {"repositories": [r for n, r in self.repositories.items() if n.startswith(prefix)]}

    def create(self, req: Request, project: str, location: str):
        repo_id = req.query.get("repositoryId", "")
        if not repo_id:
            raise invalid("repositoryId is required.")
        name = self._name(project, location, repo_id)
        if name in self.repositories:
            raise already_exists(name)
        body = dict(req.data or {})
        repo = {**body, "name": name, "format": _enum(body.get("format"), _FORMATS, "FORMAT_UNSPECIFIED"),
                "mode": _enum(body.get("mode"), _MODES, "STANDARD_REPOSITORY"), "createTime": _NOW,
                "updateTime": _NOW}
        self.repositories[name] = repo
        parent = f"projects/{self.fake.project_id(project)}/locations/{location}"
        return self.fake.operation(parent, {"@type": _TYPE + "Repository", **repo},
                                   {"@type": _TYPE + "OperationMetadata"})

    def get(self, req: Request, project: str, location: str, repo: str):
        return self._get(self._name(project, location, repo))

    def patch(self, req: Request, project: str, location: str, repo: str):
        current = self._get(self._name(project, location, repo))
        body = req.data or {}
        for path in [p for p in req.query.get("updateMask", "").split(",") if p]:
            key = {"cleanup_policies": "cleanupPolicies"}.get(path, path)
            if key in body:
                current[key] = body[key]
            else:
                current.pop(key, None)
        return current

    def delete(self, req: Request, project: str, location: str, repo: str):
        name = self._name(project, location, repo)
        self._get(name)
        del self.repositories[name]
        self.policies.drop(name)
        parent = f"projects/{self.fake.project_id(project)}/locations/{location}"
        return self.fake.operation(parent, {"@type": "type.googleapis.com/google.protobuf.Empty"},
                                   {"@type": _TYPE + "OperationMetadata"})

    def get_iam_policy(self, req: Request, project: str, location: str, repo: str):
        name = self._name(project, location, repo)
        self._get(name)
        return self.policies.get(name)

    def set_iam_policy(self, req: Request, project: str, location: str, repo: str):
        name = self._name(project, location, repo)
        self._get(name)
        return self.policies.set(name, (req.data or {}).get("policy", {}))
