"""The app factory: `create_app(settings)` for tests and embedding, `from_env` for uvicorn --factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TextIO

from fastapi import FastAPI

from api_service import contract, errors, routes
from api_service.cache import TTLCache
from api_service.fastpath import HotPath
from api_service.iap import JwksFileKeys, KeySource, RemoteJwksKeys, VerifiedAssertions
from api_service.logs import AccessLog
from api_service.metrics import Metrics
from api_service.middleware import Observe
from api_service.settings import Settings

DESCRIPTION = """Reads the stored events. Both data routes need the Identity-Aware Proxy assertion in the
`x-goog-iap-jwt-assertion` header; it is checked before anything else about the request, so an unauthenticated
caller gets 401 whatever the path holds."""


def build_bigquery_client(settings: Settings, *, credentials: Any = None, api_endpoint: str | None = None) -> Any:
    """Google's endpoint with Application Default Credentials, or the emulator without credentials; or
    `api_endpoint` with `credentials`: a stand-in for Google's REST API (tests: a fake that authorizes each call as
    the account whose token `credentials` carries).

    Every client asks for BigQuery's short-query mode (jobCreationMode JOB_CREATION_OPTIONAL on jobs.query): a
    query that finishes within the request's timeout comes back in that one answer, without a job to create
    and poll (queries.py runs every query through query_and_wait, which sends it)."""
    from google.cloud import bigquery

    short = {"default_job_creation_mode": bigquery.enums.JobCreationMode.JOB_CREATION_OPTIONAL}
    if api_endpoint:
        return bigquery.Client(project=settings.project, credentials=credentials,
                               client_options={"api_endpoint": api_endpoint}, **short)
    if settings.bigquery_endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(project=settings.project, credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": settings.bigquery_endpoint}, **short)
    return bigquery.Client(project=settings.project, **short)


def build_key_source(settings: Settings) -> KeySource:
    """The local JWK set when one is configured, else Google's published IAP keys."""
    if settings.iap_jwks_file:
        return JwksFileKeys(settings.iap_jwks_file)
    return RemoteJwksKeys(settings.iap_jwks_url)


def create_app(settings: Settings, bigquery_client: Any = None, key_source: KeySource | None = None, *,
               clock: Callable[[], float] = time.monotonic, log_stream: TextIO | None = None,
               wall_clock: Callable[[], float] = time.time) -> FastAPI:
    """The API service; clients not passed in are built from settings and closed at shutdown. `clock` times the
    answer cache; `wall_clock` is what IAP assertions' exp, iat and nbf are checked against."""
    owned: list[Any] = []
    if bigquery_client is None:
        bigquery_client = build_bigquery_client(settings)
        owned.append(bigquery_client)
    if key_source is None:
        key_source = build_key_source(settings)
        owned.append(key_source)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for client in owned:
            if hasattr(client, "close"):
                client.close()

    # redirect_slashes off: a trailing slash is a different (unknown) path, not a 307 to follow.
    app = FastAPI(title="LTM events API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  redirect_slashes=False)
    metrics = Metrics()
    cache = TTLCache(settings.cache_max_entries, clock, max_bytes=settings.cache_max_bytes)
    app.state.services = routes.Services(settings, bigquery_client, key_source, cache, metrics,
                                         VerifiedAssertions(clock=wall_clock))
    errors.install(app)
    rules = contract.path_rules()
    app.include_router(routes.router(settings, rules))
    # Inside Observe (added after it), so hot answers are still timed, counted and logged.
    app.add_middleware(HotPath, services=app.state.services, rules=rules)
    app.add_middleware(Observe, metrics=metrics, access_log=AccessLog(log_stream), project=settings.project,
                       trusted_hops=settings.trusted_proxy_hops)
    return app


def from_env() -> FastAPI:
    """For `uvicorn api_service.app:from_env --factory`: settings from the environment."""
    return create_app(Settings.from_env())
