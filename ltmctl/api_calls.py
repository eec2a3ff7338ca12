"""Call the pipeline's API in the selected environment with an identity IAP accepts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ltmctl.config import Resolved
from ltmctl.errors import BackendError, ConfigError

IAP_HEADER = "x-goog-iap-jwt-assertion"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def base_url(resolved: Resolved) -> str:
    if resolved.env.backend == "local":
        from ltmctl.local.stack import running_state

        return running_state(resolved).api_url
    url = os.environ.get("LTM_API_URL") or resolved.env.api.url
    if not url:
        raise ConfigError(f"{resolved.path}: environments.{resolved.name}.api.url is not set.",
                          hint="Set it to the API's URL (behind IAP), or export LTM_API_URL.")
    return url.rstrip("/")


def auth_headers(resolved: Resolved, email: str, ttl_s: int = 300) -> dict[str, str]:
    """Local: a minted assertion, as IAP would add. GCP: an OIDC ID token for IAP's OAuth client id,
    which IAP verifies and replaces with its own signed assertion before the request reaches the API."""
    if resolved.env.backend == "local":
        from ltmctl.local.stack import mint_token

        return {IAP_HEADER: mint_token(resolved, email, ttl_s)}
    audience = resolved.env.iap.client_id
    if not audience:
        raise ConfigError(f"{resolved.path}: environments.{resolved.name}.iap.client_id is not set.",
                          hint="Set it to the OAuth client id of the IAP-protected API.")
    import google.auth.transport.requests
    from google.auth.exceptions import DefaultCredentialsError
    from google.oauth2 import id_token

    try:
        token = id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
    except DefaultCredentialsError as exc:
        raise BackendError(f"Cannot get an ID token for IAP: {exc}",
                           hint="Use a service account: set GOOGLE_APPLICATION_CREDENTIALS to its key, or run on "
                                "a machine with one attached; it needs roles/iap.httpsResourceAccessor.") from None
    return {"Authorization": f"Bearer {token}"}


def call(resolved: Resolved, path: str, params: dict[str, Any] | None = None, *, email: str | None = None,
         headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> Answer:
    """GET path as `email` (headers=None), or with exactly the given headers ({} for none)."""
    import httpx

    url = base_url(resolved) + path
    if headers is None:
        headers = auth_headers(resolved, email or "developer@ltm.local")
    try:
        response = httpx.get(url, params=params, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise BackendError(f"Cannot reach the API at {url}: {exc}",
                           hint="Check that the API is running (`ltmctl local status`).") from None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return Answer(response.status_code, body, str(response.url))


def get_data_path(action_id: str, user_email: str) -> str:
    return f"/get_data/{quote(action_id, safe='')}:{quote(user_email, safe='@')}"


def app_info_path(app_id: str, department: str) -> str:
    return f"/app_info/{quote(app_id, safe='')}:{quote(department, safe='')}"
