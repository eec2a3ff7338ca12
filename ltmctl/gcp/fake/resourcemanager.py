"""Resource Manager API v3: read a project, and its IAM policy (getIamPolicy / setIamPolicy).

A project's `parent` is an organization by default; `parents[project_id] = None` makes it a project outside any
organization (Google then omits `parent`), `"folders/N"` one in a folder."""

from __future__ import annotations

from ltmctl.gcp.fake.server import Api, PolicyStore, Request, etag


class ResourceManagerApi(Api):
    discovery = ("cloudresourcemanager.v3",)
    service = "cloudresourcemanager.googleapis.com"
    title = "Cloud Resource Manager API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.policies = PolicyStore(fake)
        self.parents: dict[str, str | None] = {}  # project id -> parent; absent: ORGANIZATION
        # When the project was created (tests set an old one: push auth needs one more grant there).
        self.create_time = "2024-01-01T00:00:00Z"

    ORGANIZATION = "organizations/100000000001"

    def routes(self):
        return [
            ("GET", "/v3/projects/{project}", self.get),
            ("POST", "/v3/projects/{project}:getIamPolicy", self.get_iam_policy),
            ("POST", "/v3/projects/{project}:setIamPolicy", self.set_iam_policy),
        ]

    def get(self, req: Request, project: str):
        pid = self.fake.project_id(project)
        project = {"name": f"projects/{self.fake.projects[pid]}", "projectId": pid, "state": "ACTIVE",
                   "displayName": pid, "createTime": self.create_time, "etag": etag(0)}
        parent = self.parents.get(pid, self.ORGANIZATION)
        if parent:
            project["parent"] = parent
        return project

    def policy(self, project: str) -> dict:
        pid = self.fake.project_id(project)
        if pid not in self.policies.policies:
            # A new project: its creator owns it. Provisioning must leave this binding alone.
            self.policies.policies[pid] = {"version": 1, "etag": etag(self.fake.next_id()),
                                           "bindings": [{"role": "roles/owner", "members": [self.fake.owner]}]}
        return self.policies.get(pid)

    def get_iam_policy(self, req: Request, project: str):
        return self.policy(project)

    def set_iam_policy(self, req: Request, project: str):
        self.policy(project)
        return self.policies.set(self.fake.project_id(project), (req.data or {}).get("policy", {}))
