"""The HTTP routes: two data routes behind IAP, health, readiness and metrics."""

# No `from __future__ import annotations`: FastAPI must see the parameter types built inside router().

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from api_service import queries
from api_service.answers import get_data_body
from api_service.auth import require_identity
from api_service.cache import TTLCache
from api_service.contract import FieldRule
from api_service.iap import KeySource, VerifiedAssertions
from api_service.metrics import Metrics
from api_service.models import (
    AppInfoResponse,
    ErrorResponse,
    GetDataResponse,
    Status,
    ValidationErrorResponse,
)
from api_service.settings import Settings


class _Key(Convertor[str]):
    # The part before the colon; ids never contain ':' so the first colon splits. Empty matches too, so an
    # empty part gets a 422 naming its field instead of an anonymous 404.
    regex = "[^/:]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _Rest(_Key):
    regex = "[^/]*"  # e-mail addresses may contain ':'


register_url_convertor("ltm_key", _Key())
register_url_convertor("ltm_rest", _Rest())


@dataclass(frozen=True)
class Services:
    """What the routes use, built once by create_app and kept on app.state."""

    settings: Settings
    bigquery: Any
    keys: KeySource
    cache: TTLCache
    metrics: Metrics
    verified: VerifiedAssertions
    # Misses being loaded, by cache key: identical concurrent misses await the same query (single flight).
    inflight: dict[tuple[Any, ...], "asyncio.Future[tuple[int, bytes]]"] = field(default_factory=dict)


async def services(request: Request) -> Services:  # async: a plain def would cost a worker-thread hop per request
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]

_X_CACHE = {"X-Cache": {"description": "hit when served from the TTL cache, miss when BigQuery was asked.",
                        "schema": {"type": "string", "enum": ["hit", "miss"]}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": _X_CACHE},
    401: {"model": ErrorResponse, "description": "Missing or invalid IAP assertion."},
    404: {"model": ErrorResponse, "description": "No events in the look-back window.", "headers": _X_CACHE},
    422: {"model": ValidationErrorResponse, "description": "A path or query value breaks the contract."},
    503: {"model": ErrorResponse, "description": "BigQuery or the IAP keys are unavailable."},
    504: {"model": ErrorResponse, "description": "The query took too long."},
}
_JSON = "application/json"
DEFAULT_LIMIT = 100  # get_data's `limit` when the query string has none (the hot path keys on it too)
READY_TIMEOUT_S = 5.0


def get_data_key(action_id: str, user_email: str, limit: int, days: int) -> tuple[Any, ...]:
    """The response-cache key of a get_data answer; the hot path (fastpath.py) builds it with this too."""
    return ("get_data", action_id, user_email, limit, days)


def app_info_key(app_id: str, app_department: str, days: int) -> tuple[Any, ...]:
    return ("app_info", app_id, app_department, days)


async def _cached(svc: Services, key: tuple[Any, ...], load: Callable[[], tuple[int, bytes]]) -> Response:
    """The cached answer for key, or a fresh one (200 for the full TTL, 404 for the shorter one).

    The cache holds the serialized body, so a hit is a dict lookup on the event loop; only a miss goes to a worker
    thread, where the blocking BigQuery query and the model validation run. Concurrent misses of one key share
    that one load (the key holds every parameter, so they share only identical answers); the load runs as a task of
    its own, so a caller that disconnects does not cancel it for the others."""
    hit = svc.cache.get(key)
    if hit is not None:
        status, body = hit
        return Response(body, status, media_type=_JSON, headers={"X-Cache": "hit"})
    flight = svc.inflight.get(key)
    if flight is None:
        flight = asyncio.ensure_future(run_in_threadpool(load))
        svc.inflight[key] = flight

        def settle(done: "asyncio.Future[tuple[int, bytes]]") -> None:
            svc.inflight.pop(key, None)
            if done.cancelled() or done.exception() is not None:  # exception() also marks it retrieved
                return
            status, body = done.result()
            ttl = svc.settings.cache_ttl_s if status == 200 else min(svc.settings.cache_ttl_s,
                                                                     svc.settings.cache_not_found_ttl_s)
            svc.cache.put(key, (status, body), ttl, size=len(body))

        flight.add_done_callback(settle)
    status, body = await asyncio.shield(flight)
    return Response(body, status, media_type=_JSON, headers={"X-Cache": "miss"})


def _not_found(detail: str) -> tuple[int, bytes]:
    return 404, ErrorResponse(error="not_found", detail=detail).model_dump_json().encode()


def router(settings: Settings, rules: dict[str, FieldRule]) -> APIRouter:
    """The routes, with path rules from the contract and the default look-back from settings."""

    def path(name: str) -> Any:
        rule = rules[name]
        return Path(pattern=rule.pattern, max_length=rule.max_length, description=f"The event's {name}.")

    Days = Annotated[int, Query(ge=1, le=365, description="Look-back window in days (partition filter).")]
    Limit = Annotated[int, Query(ge=1, le=1000, description="Newest events to return.")]
    api = APIRouter()

    @api.get("/get_data/{action_id:ltm_key}:{user_email:ltm_rest}", response_model=GetDataResponse,
             operation_id="get_data", responses=_RESPONSES, dependencies=[Depends(require_identity)],
             tags=["data"])
    async def get_data(svc: ServicesDep, action_id: Annotated[str, path("action_id")],
                       user_email: Annotated[str, path("user_email")],
                       limit: Limit = DEFAULT_LIMIT,
                       days: Days = settings.lookback_days) -> Response:
        """Events of one action by one user, newest first."""
        email = user_email.lower()  # stored lower-cased

        def load() -> tuple[int, bytes]:
            count, rows = queries.get_data(
                svc.bigquery, svc.settings.table_id, action_id=action_id, user_email=email, limit=limit,
                days=days, max_bytes=svc.settings.max_bytes_billed, timeout_s=svc.settings.query_timeout_s,
                max_answer_bytes=svc.settings.max_answer_bytes)
            if not rows:
                return _not_found(f"no events for action_id {action_id!r} and user_email {email!r} "
                                  f"in the last {days} days")
            # the client parses JSON columns; the body is built event by event within the answer-size limit
            return 200, get_data_body(action_id, email, count, rows, limit, svc.settings.max_answer_bytes)

        return await _cached(svc, get_data_key(action_id, email, limit, days), load)

    @api.get("/app_info/{app_id:ltm_key}:{app_department:ltm_rest}", response_model=AppInfoResponse,
             operation_id="app_info", responses=_RESPONSES, dependencies=[Depends(require_identity)],
             tags=["data"])
    async def app_info(svc: ServicesDep, app_id: Annotated[str, path("app_id")],
                       app_department: Annotated[str, path("app_department")],
                       days: Days = settings.lookback_days) -> Response:
        """Summary of one app's events: totals, distinct users and actions, first and last seen, top actions."""

        def load() -> tuple[int, bytes]:
            summary = queries.app_info(
                svc.bigquery, svc.settings.table_id, app_id=app_id, app_department=app_department, days=days,
                max_bytes=svc.settings.max_bytes_billed, timeout_s=svc.settings.query_timeout_s)
            if summary is None:
                return _not_found(f"no events for app_id {app_id!r} and app_department {app_department!r} "
                                  f"in the last {days} days")
            body = AppInfoResponse(app_id=app_id, app_department=app_department, **summary)
            return 200, body.model_dump_json().encode()

        return await _cached(svc, app_info_key(app_id, app_department, days), load)

    @api.get("/healthz", response_model=Status, operation_id="healthz", tags=["ops"])
    def healthz() -> Status:
        """Liveness: the process answers."""
        return Status(status="ok")

    @api.get("/readyz", response_model=Status, operation_id="readyz", responses={503: {"model": Status}},
             tags=["ops"])
    def readyz(svc: ServicesDep) -> Any:
        """Readiness: the events table is reachable (a metadata call, free of query cost)."""
        from google.cloud.bigquery import DEFAULT_RETRY

        try:  # bounded: the library's default retry would hold the probe for 10 minutes
            svc.bigquery.get_table(svc.settings.table_id, retry=DEFAULT_RETRY.with_timeout(READY_TIMEOUT_S),
                                   timeout=READY_TIMEOUT_S)
        except Exception as exc:  # any failure means "not ready", and the probe must never 500
            detail = f"BigQuery table {svc.settings.table_id} is not reachable ({type(exc).__name__})"
            return Response(Status(status="unavailable", detail=detail).model_dump_json(), 503, media_type=_JSON)
        return Status(status="ready")

    @api.get("/metrics", include_in_schema=False)
    def metrics(svc: ServicesDep) -> Response:
        """Prometheus text exposition."""
        return Response(svc.metrics.render(), media_type=svc.metrics.content_type)

    return api
