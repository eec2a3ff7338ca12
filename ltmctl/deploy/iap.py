"""Who may pass IAP to the API: `roles/iap.httpsResourceAccessor` on the Cloud Run service's IAP resource.

With IAP enabled on the Cloud Run service itself, access is the IAM policy of
`projects/PROJECT_NUMBER/iap_web/cloud_run-REGION/services/SERVICE` in the IAP API v1 (`:getIamPolicy`,
`:setIamPolicy`). None of our client libraries covers that API, so this goes through an authorized HTTP session;
errors are raised as google.api_core exceptions so they get the same hints as every other call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ltmctl.deploy.target import ROLE_IAP_ACCESSOR


def _post(session: Any, url: str, body: dict[str, Any]) -> dict[str, Any]:
    from google.api_core.exceptions import from_http_response

    response = session.post(url, json=body, timeout=60)
    if response.status_code >= 400:
        raise from_http_response(response)
    return response.json() if response.content else {}


def _read(session: Any, url: str) -> dict[str, Any]:
    return _post(session, url + ":getIamPolicy", {"options": {"requestedPolicyVersion": 3}})


def _accessors(bindings: list[dict[str, Any]]) -> dict[str, Any] | None:
    # A conditional binding is someone else's intent: never read as, or merged into, the configured members.
    return next((b for b in bindings if b.get("role") == ROLE_IAP_ACCESSOR and not b.get("condition")), None)


def access_members(session: Any, endpoint: str, resource: str) -> list[str]:
    """Who may pass IAP to the service now (the accessor role's unconditional binding), for `status`."""
    binding = _accessors(_read(session, f"{endpoint.rstrip('/')}/v1/{resource}").get("bindings", []))
    return list(binding["members"]) if binding else []


def sync_access(session: Any, endpoint: str, resource: str, members: tuple[str, ...] | list[str],
                attempts: int = 5, sleep: Callable[[float], None] = time.sleep) -> tuple[list[str], list[str]]:
    """Make the accessor role's unconditional binding on this service's IAP resource hold exactly `members`;
    return (added, removed). Config is the source of truth here, as for every other resource deploy owns: a
    member taken out of `iap.members` loses access on the next deploy instead of keeping it forever. Other
    roles and conditional bindings (someone else's intent) are left alone, and the read-modify-write carries
    the policy's etag, so a concurrent change makes the write fail and the loop read again."""
    from google.api_core.exceptions import Aborted, Conflict

    url = f"{endpoint.rstrip('/')}/v1/{resource}"
    wanted = list(dict.fromkeys(members))
    for attempt in range(attempts):
        policy = _read(session, url)
        bindings = policy.setdefault("bindings", [])
        binding = _accessors(bindings)
        have = list(binding["members"]) if binding else []
        added = [m for m in wanted if m not in have]
        removed = [m for m in have if m not in wanted]
        if not added and not removed:
            return [], []
        if binding is not None:
            bindings.remove(binding)
        if wanted:
            bindings.append({"role": ROLE_IAP_ACCESSOR, "members": wanted})
        try:
            _post(session, url + ":setIamPolicy", {"policy": policy})
            return added, removed
        except (Aborted, Conflict):  # changed meanwhile: read again
            if attempt == attempts - 1:
                raise
            sleep(min(2.0**attempt, 8.0))
    return [], []

