"""Google REST APIs that none of our client libraries speaks over REST: an authorized session, Google's errors
raised as google.api_core exceptions, and the standard `:getIamPolicy` / `:setIamPolicy` in the generated clients'
shape (request dicts in, google.iam.v1 Policy protos out), so `infra.providers.iam.gapic_grants` drives these
resources like any other.

Used for IAM Admin only (the installed iam_admin_v1 is gRPC-only; see ltmctl.gcp.iam_admin); IAP goes through
google-cloud-iap's generated client. REST everywhere means the same requests reach Google, the fake in tests, and
`--dry-run`.
"""

from __future__ import annotations

from typing import Any


class RestClient:
    def __init__(self, credentials: Any, endpoint: str, timeout: float = 60.0) -> None:
        from google.auth.transport.requests import AuthorizedSession

        self._session = AuthorizedSession(credentials)
        self._base = endpoint.rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> str:
        from google.api_core import exceptions

        response = self._session.request(method, f"{self._base}/v1/{path}", json=body, params=params,
                                         timeout=self._timeout)
        if response.status_code >= 400:
            raise exceptions.from_http_response(response)
        return response.text or "{}"

    def get_iam_policy(self, request: dict[str, Any]) -> Any:
        """IAM's serviceAccounts.getIamPolicy is a POST without a body: the policy version is the query parameter
        `options.requestedPolicyVersion` (iam.v1.json), unlike the GetIamPolicyRequest body most APIs take."""
        version = (request.get("options") or {}).get("requested_policy_version")
        params = {"options.requestedPolicyVersion": version} if version else None
        return _policy(self._call("POST", f"{request['resource']}:getIamPolicy", params=params))

    def set_iam_policy(self, request: dict[str, Any]) -> Any:
        from google.protobuf import json_format

        # The etag read with the policy goes back with it (bytes in the proto, base64 in JSON): a concurrent change
        # makes the write fail instead of being overwritten.
        policy = json_format.MessageToDict(request["policy"])
        return _policy(self._call("POST", f"{request['resource']}:setIamPolicy", {"policy": policy}))

    def close(self) -> None:
        self._session.close()


def _policy(text: str) -> Any:
    from google.iam.v1 import policy_pb2
    from google.protobuf import json_format

    return json_format.Parse(text, policy_pb2.Policy(), ignore_unknown_fields=True)
