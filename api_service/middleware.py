"""The ASGI middleware that times every request, counts it in the metrics and writes its log line."""

from __future__ import annotations

import time
from typing import Any

from api_service.logs import AccessLog, request_record
from api_service.metrics import Metrics

# The only request headers the log reads; the IAP assertion is deliberately not among them.
_LOGGED_HEADERS = frozenset({b"user-agent", b"x-cloud-trace-context", b"traceparent", b"x-forwarded-for"})


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's template, so hostile paths never become metric labels; 'unmatched' otherwise."""
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"


def _url(scope: dict[str, Any], headers: dict[str, str]) -> str:
    raw = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string") or b""
    path = raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    host = headers.get("host") or "localhost"
    return f"{scope.get('scheme', 'http')}://{host}{path}"


class Observe:
    """Pure ASGI (no BaseHTTPMiddleware) so it adds no task or copy per request."""

    def __init__(self, app: Any, metrics: Metrics, access_log: AccessLog, project: str) -> None:
        self.app, self.metrics, self.access_log, self.project = app, metrics, access_log, project

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})  # shared with request.state, where auth puts the email
        seen: dict[str, Any] = {"status": 500, "size": 0, "cache": None}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["cache"] = next((v.decode("latin-1") for k, v in message.get("headers", ())
                                      if k.lower() == b"x-cache"), None)
            elif message["type"] == "http.response.body":
                seen["size"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception as exc:
            state.setdefault("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._record(scope, state, seen, time.perf_counter() - start)

    def _record(self, scope: dict[str, Any], state: dict[str, Any], seen: dict[str, Any], elapsed: float) -> None:
        route = route_template(scope)
        self.metrics.observe(route, seen["status"], elapsed)
        if seen["cache"]:
            self.metrics.cache_lookup(route, seen["cache"])
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
                   if k in _LOGGED_HEADERS or k == b"host"}
        forwarded = headers.get("x-forwarded-for", "").split(",")[0].strip()
        client = scope.get("client")
        self.access_log.write(request_record(
            self.project, method=scope["method"], url=_url(scope, headers), status=seen["status"],
            latency_s=elapsed, response_size=seen["size"], headers=headers,
            remote_ip=forwarded or (client[0] if client else None), protocol=f"HTTP/{scope.get('http_version')}",
            route=route, email=state.get("email"), cache=seen["cache"], error=state.get("error")))
