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


IAP_JWT_MAX_TTL_S = 3600  # Google's signed-JWT samples for IAP expire within the hour


def auth_headers(resolved: Resolved, email: str, ttl_s: int = 300) -> dict[str, str]:
    """Local: a minted assertion, as IAP would add. GCP: `Authorization: Bearer` with what IAP on Cloud Run accepts
    from a program (its Google-managed OAuth client refuses ID tokens made for it): a service account's JWT whose
    `aud` is the service's URL with a `/*` path wildcard, or a person's ID token of an OAuth client listed in
    `iap.programmatic_clients`. IAP verifies either and sends the API its own signed assertion."""
    if resolved.env.backend == "local":
        from ltmctl.local.stack import mint_token

        return {IAP_HEADER: mint_token(resolved, email, ttl_s)}
    audience = resource_audience(base_url(resolved))
    account = resolved.env.iap.service_account
    credentials = None
    if account is None:
        credentials = adc_credentials(resolved)
        account = service_account_of(credentials)
    if account is not None:
        return {"Authorization": f"Bearer {sign_iap_jwt(resolved, account, audience, min(ttl_s, IAP_JWT_MAX_TTL_S))}"}
    return {"Authorization": f"Bearer {_person_id_token(resolved, credentials)}"}


def resource_audience(url: str) -> str:
    """The `aud` of a service account's JWT for IAP: the resource's URL, any path (`https://HOST/*`)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/*"


def sign_iap_jwt(resolved: Resolved, account: str, audience: str, ttl_s: int) -> str:
    """A JWT for IAP signed with `account`'s Google-managed key (IAM Credentials signJwt, as the caller: it needs
    iam.serviceAccounts.signJwt on the account, in roles/iam.serviceAccountTokenCreator)."""
    import json
    import time

    from ltmctl.gcp.clients import GcpClients
    from ltmctl.gcp.errors import google_errors

    now = int(time.time())
    claims = {"iss": account, "sub": account, "aud": audience, "iat": now, "exp": now + ttl_s}
    with GcpClients.for_env(resolved) as clients, \
            google_errors(resolved.env.project, f"signing a JWT for IAP as {account}"):
        # `-`: the project is inferred from the account, and IAM Credentials refuses anything else there.
        answer = clients.iam_credentials.sign_jwt(request={
            "name": f"projects/-/serviceAccounts/{account}", "payload": json.dumps(claims)})
    return answer.signed_jwt


def adc_credentials(resolved: Resolved) -> object:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    from ltmctl.gcp.clients import ADC_HINT, ENDPOINT_ENV

    if os.environ.get(ENDPOINT_ENV):
        raise ConfigError(f"{resolved.path}: environments.{resolved.name}.iap.service_account is not set, and with "
                          f"{ENDPOINT_ENV} there are no Application Default Credentials to take an account from.",
                          hint="Set iap.service_account to the account to call the API as.")
    try:
        credentials, _ = google.auth.default(scopes=["openid", "https://www.googleapis.com/auth/userinfo.email"])
    except DefaultCredentialsError as exc:
        raise BackendError(f"No Application Default Credentials to call the API through IAP: {exc}",
                           hint=ADC_HINT) from None
    return credentials


def service_account_of(credentials: object) -> str | None:
    """The account of service-account credentials (a key, an attached account, impersonation); None for a person."""
    email = getattr(credentials, "service_account_email", None)
    if email and email != "default":
        return str(email)
    if email == "default":  # on Google Cloud, the attached account is named once the metadata server is asked
        import google.auth.transport.requests

        credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[attr-defined]
        return str(credentials.service_account_email)  # type: ignore[attr-defined]
    return None


def _person_id_token(resolved: Resolved, credentials: object) -> str:
    """A person's ID token from their Application Default Credentials: its `aud` is the OAuth client they logged in
    with, which IAP accepts only when that client is in `iap.programmatic_clients` (deploy lists them)."""
    import base64
    import json

    import google.auth.transport.requests

    where = f"{resolved.path}: environments.{resolved.name}.iap"
    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[attr-defined]
    token = getattr(credentials, "id_token", None)
    if not token:
        raise BackendError("Your Application Default Credentials carry no ID token.",
                           hint="Log in with `gcloud auth application-default login` (it asks for the openid "
                                "scope), or set iap.service_account and hold roles/iam.serviceAccountTokenCreator "
                                "on it.")
    # Only the audience is read here (IAP verifies the token): which OAuth client it was issued to.
    claims = token.split(".")[1]
    client_id = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))).get("aud")
    if client_id not in resolved.env.iap.programmatic_clients:
        raise ConfigError(f"{where}.programmatic_clients does not list {client_id}, the OAuth client of your "
                          "Application Default Credentials, so IAP would refuse its ID token.",
                          hint="Add it to iap.programmatic_clients and run `ltmctl deploy api`, or set "
                               "iap.service_account to call as a service account.")
    return str(token)


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
