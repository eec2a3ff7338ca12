"""IAP on the API's Cloud Run service: who may pass it, how programs may, and IAP's service agent.

With IAP enabled on the Cloud Run service itself, IAP's resource for it is
`projects/PROJECT_NUMBER/iap_web/cloud_run-REGION/services/SERVICE`:
- its IAM policy says who may pass IAP (`roles/iap.httpsResourceAccessor`);
- its IAP settings say which OAuth clients may call it programmatically (`programmaticClients`) and, in a project
  outside any organization, which custom OAuth client IAP uses instead of the Google-managed one (`clientId`).
Both go through google-cloud-iap's IdentityAwareProxyAdminServiceClient (REST transport), whose errors are
google.api_core exceptions and get the same hints as every other call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ltmctl.deploy.target import ROLE_IAP_ACCESSOR

CLIENT_SECRET_ENV = "LTM_IAP_OAUTH_CLIENT_SECRET"
_OAUTH = "access_settings.oauth_settings"


def _read(client: Any, resource: str) -> Any:
    return client.get_iam_policy(request={"resource": resource, "options": {"requested_policy_version": 3}})


def _accessors(policy: Any) -> Any | None:
    # A conditional binding is someone else's intent: never read as, or merged into, the configured members.
    return next((b for b in policy.bindings if b.role == ROLE_IAP_ACCESSOR and not b.HasField("condition")), None)


def access_members(client: Any, resource: str) -> list[str]:
    """Who may pass IAP to the service now (the accessor role's unconditional binding), for `status`."""
    binding = _accessors(_read(client, resource))
    return list(binding.members) if binding else []


def sync_access(client: Any, resource: str, members: tuple[str, ...] | list[str], attempts: int = 5,
                sleep: Callable[[float], None] = time.sleep) -> tuple[list[str], list[str]]:
    """Make the accessor role's unconditional binding on this service's IAP resource hold exactly `members`;
    return (added, removed). Config is the source of truth here, as for every other resource deploy owns: a
    member taken out of `iap.members` loses access on the next deploy instead of keeping it forever. Other
    roles and conditional bindings (someone else's intent) are left alone, and the read-modify-write carries
    the policy's etag, so a concurrent change makes the write fail and the loop read again."""
    from google.api_core.exceptions import Aborted, Conflict

    wanted = list(dict.fromkeys(members))
    for attempt in range(attempts):
        policy = _read(client, resource)
        binding = _accessors(policy)
        have = list(binding.members) if binding else []
        added = [m for m in wanted if m not in have]
        removed = [m for m in have if m not in wanted]
        if not added and not removed:
            return [], []
        if binding is not None:
            policy.bindings.remove(binding)
        if wanted:
            policy.bindings.add(role=ROLE_IAP_ACCESSOR, members=wanted)
        try:
            client.set_iam_policy(request={"resource": resource, "policy": policy})
            return added, removed
        except (Aborted, Conflict):  # changed meanwhile: read again
            if attempt == attempts - 1:
                raise
            sleep(min(2.0**attempt, 8.0))
    return [], []


def settings_changes(clients_now: list[str], client_id_now: str, programmatic_clients: tuple[str, ...] | list[str],
                     oauth_client_id: str | None) -> dict[str, tuple[Any, Any]]:
    """Which IAP settings differ from the config: {field: (actual, desired)}."""
    out: dict[str, tuple[Any, Any]] = {}
    wanted = list(dict.fromkeys(programmatic_clients))
    if sorted(clients_now) != sorted(wanted):
        out["programmatic_clients"] = (sorted(clients_now), wanted)
    if oauth_client_id and client_id_now != oauth_client_id:
        out["client_id"] = (client_id_now or None, oauth_client_id)
    return out


def programmatic_clients(client: Any, resource: str) -> list[str]:
    """The OAuth clients IAP accepts programmatic ID tokens for on this resource now, for `status`."""
    return list(client.get_iap_settings(request={"name": resource}).access_settings.oauth_settings
                .programmatic_clients)


def sync_settings(client: Any, resource: str, programmatic_clients: tuple[str, ...] | list[str],
                  oauth_client_id: str | None = None, client_secret: str | None = None) -> list[str]:
    """Make the service's IAP settings allow exactly `programmatic_clients` (OAuth client ids whose ID tokens IAP
    accepts from programs: the Google-managed OAuth client IAP uses on Cloud Run refuses programmatic access) and,
    when given, use the custom OAuth client `oauth_client_id`. Only the fields that differ are written (an update
    mask names them), so a second deploy sends no write; return one line per change.

    `programmatic_clients` is authoritative like `iap.members`; a custom client is only ever set, never removed
    (going back to the Google-managed client is a console decision, and needs an organization)."""
    from ltmctl.errors import ConfigError

    current = client.get_iap_settings(request={"name": resource}).access_settings.oauth_settings
    oauth: dict[str, Any] = {}
    paths: list[str] = []
    changes: list[str] = []
    wanted = list(dict.fromkeys(programmatic_clients))
    differ = settings_changes(list(current.programmatic_clients), current.client_id or "", programmatic_clients,
                              oauth_client_id)
    if "programmatic_clients" in differ:
        oauth["programmatic_clients"] = wanted
        paths.append(f"{_OAUTH}.programmatic_clients")
        changes.append("IAP programmatic clients: " + (", ".join(wanted) or "none"))
    if "client_id" in differ:
        if not client_secret:
            raise ConfigError(
                f"IAP must use the custom OAuth client {oauth_client_id}, and its secret is not set.",
                hint=f"Export {CLIENT_SECRET_ENV} with the client's secret for this deploy (IAP keeps only its "
                     "hash; later deploys do not need it).")
        oauth.update(client_id=oauth_client_id, client_secret=client_secret)
        paths += [f"{_OAUTH}.client_id", f"{_OAUTH}.client_secret"]
        changes.append(f"IAP OAuth client: {oauth_client_id}")
    if paths:
        client.update_iap_settings(request={
            "iap_settings": {"name": resource, "access_settings": {"oauth_settings": oauth}},
            "update_mask": {"paths": paths}})
    return changes

