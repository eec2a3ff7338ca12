"""The IAM Admin API v1 (service accounts and their own IAM policies) over REST.

google-cloud-iam ships `iam_admin_v1` with a gRPC transport only, while everything else here speaks REST (so the
same requests reach Google, the fake in tests, and `--dry-run`). This is the slice of `iam_admin_v1.IAMClient` that
ltmctl uses, with the same method names and request dicts, returning `iam_admin_v1.types` objects (google.iam.v1
Policy protos for `get_iam_policy` / `set_iam_policy`, from ltmctl.gcp.rest) and raising
`google.api_core.exceptions` like the generated clients do.
"""

from __future__ import annotations

from typing import Any

from ltmctl.gcp.rest import RestClient

DEFAULT_ENDPOINT = "https://iam.googleapis.com"
_CAMEL = {"display_name": "displayName", "description": "description", "name": "name"}


class IamAdminRest(RestClient):
    def __init__(self, credentials: Any, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 60.0) -> None:
        super().__init__(credentials, endpoint, timeout)

    @staticmethod
    def _account(text: str) -> Any:
        from google.cloud.iam_admin_v1 import types

        return types.ServiceAccount.from_json(text, ignore_unknown_fields=True)

    def get_service_account(self, request: dict[str, Any]) -> Any:
        return self._account(self._call("GET", request["name"]))

    def list_service_accounts(self, request: dict[str, Any]) -> list[Any]:
        import json

        data = json.loads(self._call("GET", f"{request['name']}/serviceAccounts"))
        return [self._account(json.dumps(a)) for a in data.get("accounts", [])]

    def create_service_account(self, request: dict[str, Any]) -> Any:
        account = {_CAMEL[k]: v for k, v in (request.get("service_account") or {}).items()}
        body = {"accountId": request["account_id"], "serviceAccount": account}
        return self._account(self._call("POST", f"{request['name']}/serviceAccounts", body))

    def patch_service_account(self, request: dict[str, Any]) -> Any:
        account = {_CAMEL[k]: v for k, v in request["service_account"].items()}
        paths = [_CAMEL[p] for p in request["update_mask"]["paths"]]
        body = {"serviceAccount": account, "updateMask": ",".join(paths)}
        return self._account(self._call("PATCH", account["name"], body))

    def delete_service_account(self, request: dict[str, Any]) -> None:
        self._call("DELETE", request["name"])
