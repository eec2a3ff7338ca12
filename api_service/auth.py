"""The FastAPI dependency that admits a request to the data routes only with a valid IAP assertion."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from api_service.errors import ApiError
from api_service.iap import HEADER, Identity, KeysUnavailable, Unauthenticated, verify_assertion

# Declared as a security scheme so the OpenAPI document (and its fuzzers) know where the assertion goes.
iap_header = APIKeyHeader(name=HEADER, scheme_name="IAP", auto_error=False,
                          description="The signed assertion Identity-Aware Proxy adds to every request.")


async def require_identity(request: Request, token: Annotated[str | None, Security(iap_header)]) -> Identity:
    """FastAPI dependency: a verified identity, or a 401 answer before anything else about the request is read.

    A repeated assertion that passed before is answered from the verified-assertion cache on the event loop (no
    I/O, no signature check); anything else gets the full check in a worker thread, since a key source may fetch."""
    services = request.app.state.services
    audience = services.settings.iap_audience
    identity = services.verified.lookup(token, services.keys, audience)
    if identity is None:
        try:
            identity = await run_in_threadpool(verify_assertion, token, services.keys, audience, services.verified,
                                               now=services.verified.clock)
        except Unauthenticated as exc:
            request.state.error = str(exc)  # which check failed goes into the log line; the token never does
            raise ApiError(401, "unauthenticated", str(exc),
                           headers={"WWW-Authenticate": f'IAP header="{HEADER}"'}) from None
        except KeysUnavailable as exc:
            request.state.error = str(exc)
            raise ApiError(503, "keys_unavailable", "IAP signing keys are unavailable; try again later") from None
    request.state.email = identity.email
    return identity
