"""How a program calls the API through IAP on Cloud Run: with a service account's JWT it signs through IAM
Credentials, or with a person's ID token from Application Default Credentials (of an OAuth client IAP lists)."""

from __future__ import annotations

import os

from ltmctl.config import Resolved
from ltmctl.errors import BackendError, ConfigError

IAP_JWT_MAX_TTL_S = 3600  # Google's signed-JWT samples for IAP expire within the hour


def bearer(resolved: Resolved, url: str, ttl_s: int = 300) -> str:
    """A token IAP on Cloud Run accepts from a program (its Google-managed OAuth client refuses ID tokens made for
    it): a service account's JWT whose `aud` is the service's URL with a `/*` path wildcard, or a person's ID token
    of an OAuth client listed in `iap.programmatic_clients`. IAP verifies either and sends the API its own signed
    assertion."""
    audience = resource_audience(url)
    account = resolved.env.iap.service_account
    credentials = None
    if account is None:
        credentials = adc_credentials(resolved)
        account = service_account_of(credentials)
    if account is not None:
        return sign_iap_jwt(resolved, account, audience, min(ttl_s, IAP_JWT_MAX_TTL_S))
    return _person_id_token(resolved, credentials)


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
        _refresh(credentials)
        return str(credentials.service_account_email)  # type: ignore[attr-defined]
    return None


def _refresh(credentials: object) -> None:
    """Refresh ADC, a refused grant or an unreachable token endpoint said as what to do, not as a traceback."""
    import google.auth.transport.requests
    from google.auth.exceptions import RefreshError, TransportError

    from ltmctl.gcp.clients import ADC_HINT

    try:
        credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[attr-defined]
    except RefreshError as exc:  # e.g. invalid_grant: the login was revoked or has expired
        raise BackendError(f"Your Application Default Credentials were refused when refreshed: {exc}",
                           hint=ADC_HINT) from None
    except TransportError as exc:
        raise BackendError(f"Could not reach Google's token endpoint to refresh your Application Default "
                           f"Credentials: {exc}", hint="Check the network or proxy settings.") from None


def _person_id_token(resolved: Resolved, credentials: object) -> str:
    """A person's ID token from their Application Default Credentials: its `aud` is the OAuth client they logged in
    with, which IAP accepts only when that client is in `iap.programmatic_clients` (deploy lists them)."""
    import base64
    import json

    where = f"{resolved.path}: environments.{resolved.name}.iap"
    _refresh(credentials)
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
