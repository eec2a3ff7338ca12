"""IAM API v1: service accounts (create, get, patch, delete, list) and their own IAM policies."""

from __future__ import annotations

import re
from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, PolicyStore, Request, already_exists, etag, invalid


class IamApi(Api):
    discovery = ("iam.v1",)
    service = "iam.googleapis.com"
    title = "Identity and Access Management (IAM) API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.accounts: dict[str, dict[str, Any]] = {}  # email -> ServiceAccount JSON
        self.created: dict[str, float] = {}  # email -> when, on the fake's clock (IAM's delay counts from there)
        self.policies = PolicyStore(fake)

    def routes(self):
        base = "/v1/projects/{project}/serviceAccounts"
        return [
            ("GET", base, self.list),
            ("POST", base, self.create),
            ("GET", base + "/{account}", self.get),
            ("PATCH", base + "/{account}", self.patch),
            ("DELETE", base + "/{account}", self.delete),
            ("POST", base + "/{account}:getIamPolicy", self.get_iam_policy),
            ("POST", base + "/{account}:setIamPolicy", self.set_iam_policy),
        ]

    def _find(self, account: str) -> dict[str, Any]:
        for sa in self.accounts.values():
            if account in (sa["email"], sa["uniqueId"]):
                return sa
        raise ApiError(404, "NOT_FOUND", f"Unknown service account: {account}")

    def list(self, req: Request, project: str):
        pid = self.fake.project_id(project) if project != "-" else None
        return {"accounts": [sa for sa in self.accounts.values() if pid in (None, sa["projectId"])]}

    def create(self, req: Request, project: str):
        pid = self.fake.project_id(project)
        body = req.data or {}
        account_id = body.get("accountId", "")
        if not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", account_id):
            raise invalid(f"accountId {account_id!r} must match [a-z][a-z0-9-]{{4,28}}[a-z0-9].")
        email = f"{account_id}@{pid}.iam.gserviceaccount.com"
        if email in self.accounts:
            raise already_exists(f"projects/{pid}/serviceAccounts/{email}")
        given = body.get("serviceAccount") or {}
        unique = str(100000000000000000000 + self.fake.next_id())
        self.created[email] = self.fake.clock
        self.accounts[email] = {
            "name": f"projects/{pid}/serviceAccounts/{email}", "projectId": pid, "uniqueId": unique,
            "email": email, "displayName": given.get("displayName", ""), "description": given.get("description", ""),
            "etag": etag(self.fake.next_id()), "oauth2ClientId": unique,
        }
        return self.accounts[email]

    def get(self, req: Request, project: str, account: str):
        return self._find(account)

    def patch(self, req: Request, project: str, account: str):
        sa = self._find(account)
        body = req.data or {}
        mask = [p.strip() for p in str(body.get("updateMask", "")).split(",") if p.strip()]
        if not mask:
            raise invalid("updateMask is required.")
        given = body.get("serviceAccount") or {}
        for path in mask:
            key = {"display_name": "displayName"}.get(path, path)
            if key not in ("displayName", "description"):
                raise invalid(f"Field {path} cannot be updated.")
            sa[key] = given.get(key, "")
        sa["etag"] = etag(self.fake.next_id())
        return sa

    def delete(self, req: Request, project: str, account: str):
        sa = self._find(account)
        del self.accounts[sa["email"]]
        self.created.pop(sa["email"], None)
        self.policies.drop(sa["email"])
        return {}

    def get_iam_policy(self, req: Request, project: str, account: str):
        # No request body (the discovery check refuses one): the version is a query parameter.
        version = req.query.get("options.requestedPolicyVersion", "0")
        if version not in ("", "0", "1", "3"):
            raise invalid(f"Invalid value for options.requestedPolicyVersion: {version}")
        return self.policies.get(self._find(account)["email"])

    def set_iam_policy(self, req: Request, project: str, account: str):
        return self.policies.set(self._find(account)["email"], (req.data or {}).get("policy", {}))
