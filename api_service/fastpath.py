"""The hot path: a cached answer for an already-verified assertion, served before FastAPI's routing.

A cache hit through FastAPI costs its routing, dependency solving and parameter validation — most of the time of a
hot request. This pure ASGI layer answers exactly the requests whose answer is already settled, with the same bytes
and headers the route would send, and passes everything else on untouched:

- GET of a data route, no query string (the default `limit` and `days`), no root path;
- the assertion is in the verified-assertion cache (so a full check passed, the key is unchanged and exp has not
  come); anything else — no header, a new, expired or rotated-key assertion — goes on to the full check;
- both path values obey the contract's pattern and length rules (the same ones the route enforces), the e-mail is
  already lower-case, so the request is one the route would accept, under the same cache key;
- the response cache holds a live answer for that key.

It sits inside the Observe middleware, so such requests are still timed, counted and logged (route template, email,
cache hit) like any other."""

from __future__ import annotations

import re
from typing import Any

from api_service.contract import FieldRule
from api_service.iap import HEADER
from api_service.routes import DEFAULT_LIMIT, app_info_key, get_data_key

_HEADER = HEADER.encode()
_PATHS = {
    # route name: (prefix, first field, second field); the split is at the first ':' as the route's convertors do.
    "get_data": ("/get_data/", "action_id", "user_email"),
    "app_info": ("/app_info/", "app_id", "app_department"),
}


def _checker(rule: FieldRule) -> Any:
    # The contract's patterns are ECMA-262, as the route's (Rust regex) reads them: `$` is the end of the string.
    # Python's `$` would also match before a final newline; `\Z` does not.
    pattern = re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", rule.pattern))
    limit = rule.max_length

    def ok(value: str) -> bool:
        return (limit is None or len(value) <= limit) and pattern.search(value) is not None

    return ok


class HotPath:
    """Serve settled cache hits of the data routes without entering the router; pass on everything else."""

    def __init__(self, app: Any, services: Any, rules: dict[str, FieldRule]) -> None:
        self.app, self.services = app, services
        # The router's own route objects, taken from the first request it routes to each, so the metric label and
        # log line of a hot answer are exactly the route's; until then every request goes through the router.
        self.routes: dict[str, Any] = {}
        self.served = 0  # answers given here, for tests and curiosity
        self.check = {name: _checker(rule) for name, rule in rules.items()}

    def _key(self, path: str) -> tuple[str, tuple[Any, ...]] | None:
        for name, (prefix, first, second) in _PATHS.items():
            if not path.startswith(prefix):
                continue
            a, sep, b = path[len(prefix):].partition(":")
            if not sep or "/" in a or "/" in b or not self.check[first](a) or not self.check[second](b):
                return None
            days = self.services.settings.lookback_days
            if name == "get_data":
                if b != b.lower():
                    return None
                return name, get_data_key(a, b, DEFAULT_LIMIT, days)
            return name, app_info_key(a, b, days)
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string")
                or scope.get("root_path")):
            await self.app(scope, receive, send)
            return
        found = self._key(scope["path"])
        if found is not None:
            token = next((v for k, v in scope["headers"] if k == _HEADER), None)
            svc = self.services
            identity = None if token is None else svc.verified.lookup(token.decode("latin-1"), svc.keys,
                                                                      svc.settings.iap_audience)
            route = self.routes.get(found[0])
            hit = None if identity is None or route is None else svc.cache.get(found[1])
            if hit is not None:
                status, body = hit
                scope["route"] = route
                self.served += 1
                scope.setdefault("state", {})["email"] = identity.email
                await send({"type": "http.response.start", "status": status, "headers": [
                    (b"x-cache", b"hit"), (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
        if found is not None and found[0] not in self.routes:
            route = scope.get("route")
            if getattr(route, "name", None) == found[0]:
                self.routes[found[0]] = route
