"""The ASGI middleware that times every request, counts it in the metrics and writes its log line."""

from __future__ import annotations

import time
from typing import Any

from api_service.logs import AccessLog, request_record
from api_service.metrics import Metrics
from api_service.text import cut

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


def client_address(forwarded_for: str, trusted_hops: int) -> str:
    """The client address from X-Forwarded-For, as the trusted proxies recorded it, or "" when there is none.

    Each proxy appends the address it received the request from, so only entries from the right are trustworthy;
    the leftmost is whatever the client wrote. Cloud Run's front end (Google Front End) appends the address of
    the client that connected to it: with the service reached directly (run.app, IAP on Cloud Run), that is the
    rightmost entry (trusted_hops 1). Behind an external Application Load Balancer Google documents
    `<unverified…>, <client IP>, <load balancer IP>`, so the client is second from the right (trusted_hops 2).
    With fewer entries than trusted hops, the leftmost is the best there is: every entry was appended by a
    trusted proxy."""
    if trusted_hops <= 0 or not forwarded_for:
        return ""
    entries = [part.strip() for part in forwarded_for.split(",")]
    return cut(entries[-min(trusted_hops, len(entries))], 64)


class Observe:
    """Pure ASGI (no BaseHTTPMiddleware) so it adds no task or copy per request."""

    def __init__(self, app: Any, metrics: Metrics, access_log: AccessLog, project: str, trusted_hops: int = 1) -> None:
        self.app, self.metrics, self.access_log, self.project = app, metrics, access_log, project
        self.trusted_hops = trusted_hops

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
        forwarded = client_address(headers.get("x-forwarded-for", ""), self.trusted_hops)
        client = scope.get("client")
        self.access_log.write(request_record(
            self.project, method=scope["method"], url=_url(scope, headers), status=seen["status"],
            latency_s=elapsed, response_size=seen["size"], headers=headers,
            remote_ip=forwarded or (client[0] if client else None), protocol=f"HTTP/{scope.get('http_version')}",
            route=route, email=state.get("email"), cache=seen["cache"], error=state.get("error")))
