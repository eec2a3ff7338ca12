"""The FastAPI dependency that admits a request to the data routes only with a valid IAP assertion."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from api_service.errors import ApiError
from api_service.iap import HEADER, Identity, KeysUnavailable, Unauthenticated, verify_assertion

# Declared as a security scheme so the OpenAPI document (and its fuzzers) know where the assertion goes.
iap_header = APIKeyHeader(name=HEADER, scheme_name="IAP", auto_error=False,
                          description="The signed assertion Identity-Aware Proxy adds to every request.")


def require_identity(request: Request, token: Annotated[str | None, Security(iap_header)]) -> Identity:
    """FastAPI dependency: a verified identity, or a 401 answer before anything else about the request is read."""
    try:
        services = request.app.state.services
        identity = verify_assertion(token, services.keys, services.settings.iap_audience)
    except Unauthenticated as exc:
        request.state.error = str(exc)  # which check failed goes into the log line; the token never does
        raise ApiError(401, "unauthenticated", str(exc),
                       headers={"WWW-Authenticate": f'IAP header="{HEADER}"'}) from None
    except KeysUnavailable as exc:
        request.state.error = str(exc)
        raise ApiError(503, "keys_unavailable", "IAP signing keys are unavailable; try again later") from None
    request.state.email = identity.email
    return identity
