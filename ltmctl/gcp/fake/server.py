"""The fake's core: a threaded HTTP server on loopback, a router, Google's JSON errors, long-running operations,
the request log and failure injection. Each API lives in its own module (an `Api` subclass with its routes).

Only the standard library here: `deploy --dry-run` runs this in-process, and tests start it per test.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Custom methods that only read, although sent as POST (resourcemanager's getIamPolicy, batchGet, ...), and
# generateServiceIdentity, which returns the agent that exists and creates it only when none does.
READ_ONLY_VERBS = (":getIamPolicy", ":testIamPermissions", ":batchGet", ":generateServiceIdentity")

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
# Service agents Google creates when their API is enabled; the rest exist only through generateServiceIdentity.
AGENTS_ON_ENABLE = frozenset({"pubsub.googleapis.com"})


@dataclass
class Request:
    """One recorded request: what a dry-run prints and what tests assert on."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, or None
    headers: dict[str, str]
    raw: bytes = b""
    status: int = 0  # filled in once answered
    params: dict[str, list[str]] = field(default_factory=dict)  # every value of repeated query parameters
    raw_path: str = ""  # as sent, still percent-encoded: what Google's path templates match
    method_id: str = ""  # the discovery method this request called, once resolved
    parsed: Any = None  # the body as Google parses it (enum names); handlers read `data`
    principal: str = ""  # who sent it (the member its token was issued for), once authenticated
    error: dict[str, Any] = field(default_factory=dict)  # Google's error, when the fake refused it

    @property
    def denied_permission(self) -> str | None:
        """The permission a 403 PERMISSION_DENIED named, if any."""
        for detail in self.error.get("details", []):
            permission = (detail.get("metadata") or {}).get("permission")
            if permission:
                return permission
        return None

    @property
    def data(self) -> Any:
        """The body as Google would have parsed it: what handlers store and echo."""
        return self.parsed if self.parsed is not None else self.body

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING and not self.path.endswith(READ_ONLY_VERBS)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        query = {k: v for k, v in self.query.items() if k not in ("$alt", "prettyPrint")}
        if query:
            out["query"] = query
        if self.body is not None:
            out["body"] = self.body
        elif self.raw:
            out["bytes"] = len(self.raw)
        return out


class ApiError(Exception):
    """Google's JSON error: {"error": {"code", "message", "status", "details"}} (plus legacy `errors`)."""

    def __init__(self, code: int, status: str, message: str, details: Iterable[dict[str, Any]] = (),
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, list(details)
        self.reason = reason

    def body(self, legacy: bool = False) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        if legacy:
            # BigQuery and Cloud Storage (JSON APIs) also carry the older `errors` list with a reason.
            error["errors"] = [{"message": self.message, "domain": "global",
                                "reason": self.reason or _LEGACY_REASONS.get(self.status, "invalid")}]
        return {"error": error}


_LEGACY_REASONS = {"NOT_FOUND": "notFound", "ALREADY_EXISTS": "duplicate", "PERMISSION_DENIED": "accessDenied",
                   "FAILED_PRECONDITION": "conditionNotMet", "RESOURCE_EXHAUSTED": "quotaExceeded",
                   "INVALID_ARGUMENT": "invalid", "ABORTED": "conditionNotMet"}


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"Resource not found (resource={what}).")


def already_exists(what: str) -> ApiError:
    return ApiError(409, "ALREADY_EXISTS", f"Resource already exists in the project (resource={what}).")


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def error_info(reason: str, domain: str, **metadata: str) -> dict[str, Any]:
    return {"@type": ERROR_INFO, "reason": reason, "domain": domain, "metadata": metadata}


def permission_denied(permission: str, resource: str) -> ApiError:
    return ApiError(403, "PERMISSION_DENIED",
                    f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
                    [error_info("IAM_PERMISSION_DENIED", "iam.googleapis.com", permission=permission)])


def service_disabled(service: str, title: str, project_number: str) -> ApiError:
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={project_number}"
    return ApiError(
        403, "PERMISSION_DENIED",
        f"{title} has not been used in project {project_number} before or it is disabled. Enable it by visiting "
        f"{url} then retry. If you enabled this API recently, wait a few minutes for the action to propagate to "
        "our systems and retry.",
        [error_info("SERVICE_DISABLED", "googleapis.com", service=service, consumer=f"projects/{project_number}",
                    serviceTitle=title, activationUrl=url),
         {"@type": "type.googleapis.com/google.rpc.Help",
          "links": [{"description": "Google developers console API activation", "url": url}]}],
        reason="accessNotConfigured")


def quota_exceeded(service: str, metric: str, limit: str) -> ApiError:
    return ApiError(
        429, "RESOURCE_EXHAUSTED",
        f"Quota exceeded for quota metric '{metric}' and limit '{limit}' of service '{service}'.",
        [error_info("RATE_LIMIT_EXCEEDED", "googleapis.com", service=service, quota_metric=metric,
                    quota_limit=limit)])


def etag(counter: int) -> str:
    """IAM etags are bytes in the proto, so base64 in JSON."""
    return base64.b64encode(f"etag-{counter}".encode()).decode()


Handler = Callable[..., Any]


@dataclass
class Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler
    api: Api


def compile_path(template: str) -> re.Pattern[str]:
    """'/v1/projects/{project}/topics/{topic}:getIamPolicy' → a regex; `{x}` is one segment, `{x*}` any rest."""
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)(\*?)\}", template):
        out += re.escape(template[pos:m.start()])
        out += f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/:]+)"
        pos = m.end()
    return re.compile(out + re.escape(template[pos:]) + "$")


class Api:
    """One Google API: its routes, its state, the service name that must be enabled to call it."""

    service: str | None = None  # e.g. "pubsub.googleapis.com"; None: always callable
    title: str = ""  # as in Google's SERVICE_DISABLED message, e.g. "Cloud Pub/Sub API"
    legacy_errors = False
    # The discovery documents (`api.version`, as in googleapiclient's discovery_cache) whose methods these routes
    # implement: every request and answer is checked against them (ltmctl.gcp.fake.discovery).
    discovery: tuple[str, ...] = ()

    def __init__(self, fake: FakeGcp) -> None:
        self.fake = fake

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(METHOD, path template, handler(request, **path_params)) → JSON-able dict, or (status, dict)."""
        return []


@dataclass
class Failure:
    method: str | None
    path: re.Pattern[str]
    error: ApiError
    times: int | None  # None: every time


@dataclass
class Operation:
    name: str
    response: dict[str, Any] | None
    metadata: dict[str, Any] | None
    polls_left: int
    error: dict[str, Any] | None = None
    on_done: Callable[[], None] | None = None  # what the operation does, at the moment it is done

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "done": self.polls_left <= 0}
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if out["done"]:
            if self.error is not None:
                out["error"] = self.error
            elif self.response is not None:
                out["response"] = self.response
        return out


class FakeGcp:
    """In-memory Google Cloud control plane for one project, served over HTTP on 127.0.0.1.

    `api_modules` are `Api` subclasses; default: every built-in module. Use as a context manager or
    `start()`/`stop()`; point clients at `endpoint`.
    """

    DEFAULT_ENABLED = ("serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com")

    def __init__(self, project: str = "my-project-id", project_number: str = "123456789012", *,
                 api_modules: Iterable[type[Api]] | None = None, enabled_services: Iterable[str] | None = None,
                 enforce_services: bool = True, lro_polls: int = 0,
                 owner: str = "user:owner@example.com", iam_delay_s: float = 0.0) -> None:
        from ltmctl.gcp.fake import builtin_apis

        self.project = project
        self.project_number = project_number
        self.projects: dict[str, str] = {project: project_number}  # id -> number
        self.owner = owner
        # Google's timing runs on this clock (seconds), which only `advance` moves: tests wait without sleeping.
        self.clock = 0.0
        # IAM's delay: an account (or service agent) created less than this long ago is refused in policy bindings
        # with "does not exist", as Google does for a while after creating one. 0: visible at once.
        self.iam_delay_s = iam_delay_s
        # Google's service agents of this project that exist, by email, with when they were created: Pub/Sub's
        # once its API is enabled, others (IAP's) only through generateServiceIdentity.
        self.agents: dict[str, float] = {}
        self.lock = threading.RLock()
        self.enabled_services: set[str] = set()
        self.enable(*(self.DEFAULT_ENABLED if enabled_services is None else enabled_services))
        self.enforce_services = enforce_services
        self.lro_polls = lro_polls  # GETs that still answer done=false; 0: operations come back done
        self.requests: list[Request] = []
        self.operations: dict[str, Operation] = {}
        self.failures: list[Failure] = []
        self._ids = itertools.count(1)
        self.apis: dict[str, Api] = {}
        self._routes: list[Route] = []
        for cls in (builtin_apis() if api_modules is None else api_modules):
            self.add_api(cls)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.tokens: dict[str, str] = {}  # bearer token -> member, as issued by token_for

    # --- composition -------------------------------------------------------------------------------------------

    def add_api(self, cls: type[Api]) -> Api:
        api = cls(self)
        self.apis[cls.__name__] = api
        for method, template, handler in api.routes():
            self._routes.append(Route(method.upper(), compile_path(template), handler, api))
        return api

    def api(self, cls: type[Api]) -> Any:
        return self.apis[cls.__name__]

    def next_id(self) -> int:
        return next(self._ids)

    # --- life cycle --------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGcp:
        fake = self

        class _Handler(_RequestHandler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-gcp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGcp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls -----------------------------------------------------------------------------------------

    def fail(self, path: str, error: ApiError, *, method: str | None = None, times: int | None = None) -> None:
        """Answer requests whose path matches the regex `path` (searched) with `error`."""
        with self.lock:
            self.failures.append(Failure(method.upper() if method else None, re.compile(path), error, times))

    def deny(self, permission: str, path: str, *, method: str | None = None, times: int | None = None) -> None:
        """403 PERMISSION_DENIED naming `permission`, as IAM answers a caller who lacks it."""
        self.fail(path, permission_denied(permission, path.strip("^$")), method=method, times=times)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock: IAM's delay passes, idle subscriptions expire."""
        with self.lock:
            self.clock += seconds

    def enable(self, *services: str) -> None:
        with self.lock:
            self.enabled_services.update(services)
            for service in services:
                if service in AGENTS_ON_ENABLE:
                    self.create_agent(service)

    def agent_email(self, service: str) -> str:
        return f"service-{self.project_number}@gcp-sa-{service.split('.', 1)[0]}.iam.gserviceaccount.com"

    def create_agent(self, service: str) -> str:
        """Make the service agent of `service` (e.g. "iap.googleapis.com") exist from now on; return its email."""
        email = self.agent_email(service)
        with self.lock:
            self.agents.setdefault(email, self.clock)
        return email

    def disable(self, *services: str) -> None:
        with self.lock:
            self.enabled_services.difference_update(services)

    def token_for(self, member: str) -> str:
        """A bearer token that identifies `member` (`user:ana@example.com`, `serviceAccount:x@p.iam...`) to the
        fake: clients built with it act as that principal, with exactly the roles it holds."""
        if ":" not in member:
            raise ValueError(f"a member is kind:email, not {member!r}")
        with self.lock:
            for token, who in self.tokens.items():
                if who == member:
                    return token
            token = f"ya29.fake-{len(self.tokens) + 1:04d}-{abs(hash(member)) % 10**8:08d}"
            self.tokens[token] = member
            return token

    def principal(self, req: Request) -> str | None:
        auth = req.headers.get("Authorization") or req.headers.get("authorization") or ""
        scheme, _, token = auth.partition(" ")
        return self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None

    def authorize(self, member: str, permission: str, resource: str) -> bool:
        """Whether IAM would let `member` use `permission` on `resource` (a full resource name), from the policies the
        fake holds: for what Google checks outside any API call (Cloud Run invoking a service, Pub/Sub's agent
        forwarding a dead letter)."""
        from ltmctl.gcp.fake import authz

        with self.lock:
            return authz.holds(self, member, permission, authz.scope(permission, authz._by_id(self, resource)))

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def mutating_requests(self) -> list[Request]:
        return [r for r in self.requests if r.mutating]

    def find(self, method: str | None = None, path: str = "") -> list[Request]:
        """Recorded requests with this method whose path matches the regex `path` (searched)."""
        pattern = re.compile(path)
        return [r for r in self.requests if (method is None or r.method == method.upper()) and pattern.search(r.path)]

    # --- helpers for API modules -------------------------------------------------------------------------------

    def operation(self, prefix: str, response: dict[str, Any] | None = None,
                  metadata: dict[str, Any] | None = None, error: dict[str, Any] | None = None,
                  on_done: Callable[[], None] | None = None) -> dict[str, Any]:
        """Register a long-running operation named `{prefix}/operations/{id}` (prefix may be empty);
        it answers done=false to the first `lro_polls` GETs. `on_done` runs once it is done (at once with 0)."""
        name = f"{prefix}/operations/op-{self.next_id()}".lstrip("/")
        op = Operation(name, response, metadata, self.lro_polls, error, on_done)
        with self.lock:
            self.operations[name] = op
            self._finish(op)
        return op.as_json()

    @staticmethod
    def _finish(op: Operation) -> None:
        if op.polls_left <= 0 and op.on_done is not None:
            done, op.on_done = op.on_done, None
            done()

    def project_id(self, ref: str) -> str:
        """A project id for `ref` (an id or a number); unknown projects answer as Google does: 403."""
        if ref in self.projects:
            return ref
        for pid, number in self.projects.items():
            if ref == number:
                return pid
        raise ApiError(403, "PERMISSION_DENIED",
                       f"The caller does not have permission, or project '{ref}' does not exist.",
                       [error_info("IAM_PERMISSION_DENIED", "cloudresourcemanager.googleapis.com",
                                   permission="resourcemanager.projects.get")])

    def number(self, ref: str) -> str:
        return self.projects[self.project_id(ref)]

    def member_exists(self, member: str) -> bool:
        """IAM refuses bindings for service accounts that do not exist, and for a while (`iam_delay_s` on the
        fake's clock) for ones just created: service agents exist once created (see `agents`)."""
        if not member.startswith("serviceAccount:"):
            return True
        email = member.split(":", 1)[1]
        if re.match(r"^service-\d+@gcp-sa-[a-z-]+\.iam\.gserviceaccount\.com$", email):
            created = self.agents.get(email)
        elif email.endswith(".gserviceaccount.com") and ".iam." not in email:
            return True  # Google-managed accounts such as PROJECT_NUMBER@cloudbuild.gserviceaccount.com
        else:
            created = getattr(self.apis.get("IamApi"), "created", {}).get(email)
        return created is not None and self.clock >= created + self.iam_delay_s

    def check_policy_members(self, policy: dict[str, Any]) -> None:
        for binding in policy.get("bindings", []):
            for member in binding.get("members", []):
                if not self.member_exists(member):
                    raise invalid(f"Service account {member.split(':', 1)[1]} does not exist.")

    # --- dispatch ----------------------------------------------------------------------------------------------

    def handle(self, req: Request) -> tuple[int, dict[str, Any], bool]:
        """Answer one request: (status, JSON body, legacy error format)."""
        with self.lock:
            self.requests.append(req)
            found = self._route(req)
            api = found[0].api if found else None
            legacy = bool(api and api.legacy_errors)
            op = self._operation_for(req.path) if req.method == "GET" else None
            try:
                match = self._method(req, api if op is None else None)
            except ApiError as exc:
                return exc.code, exc.body(legacy), legacy
            if match is not None:
                try:
                    self._authorize(req, match)
                except ApiError as exc:
                    return exc.code, exc.body(legacy), legacy
            for failure in self.failures:
                if (failure.method in (None, req.method) and failure.path.search(req.path)
                        and failure.times != 0):
                    if failure.times is not None:
                        failure.times -= 1
                    return failure.error.code, failure.error.body(legacy), False
            if op is not None:
                if op.polls_left > 0:
                    op.polls_left -= 1
                    self._finish(op)
                return self._checked(match, 200, op.as_json())
            if found is None:
                if match is not None:
                    return 501, ApiError(501, "UNIMPLEMENTED", f"The fake does not implement {match.method.id} "
                                                               f"({req.method} {req.path}).").body(), False
                return 404, ApiError(404, "NOT_FOUND", f"No method of Google's APIs answers {req.method} "
                                                       f"{req.path}.").body(), False
            route, params = found
            try:
                if self.enforce_services and api.service and api.service not in self.enabled_services:
                    raise service_disabled(api.service, api.title, self.project_number)
                result = route.handler(req, **params)
            except ApiError as exc:
                return exc.code, exc.body(api.legacy_errors), api.legacy_errors
            if isinstance(result, tuple):
                return self._checked(match, result[0], result[1])
            return self._checked(match, 200, result if result is not None else {})

    def _method(self, req: Request, api: Api | None) -> Any:
        """The discovery method `req` calls (a `discovery.Match`), checked: path parameters, query, body. A route of
        the fake that Google's document does not have answers 404, as Google would; a malformed request 400."""
        from ltmctl.gcp.fake import discovery

        names = api.discovery if api is not None else tuple(
            dict.fromkeys(n for a in self.apis.values() for n in a.discovery))
        if not names:
            return None  # an API module without a discovery document (tests may add one): nothing to check against
        docs = [discovery.load(n) for n in names]
        raw_path = req.raw_path or req.path
        try:
            match = discovery.resolve(docs, req.method, raw_path)
            if match is None:
                if api is not None:
                    raise ApiError(404, "NOT_FOUND", f"No method of {', '.join(names)} answers {req.method} "
                                                     f"{req.path}.")
                return None
            req.method_id = match.method.id
            discovery.check_request(match, req.params, req.body, req.raw, req.headers.get("Content-Type", ""))
            if isinstance(req.body, dict) and match.method.request and not match.method.upload:
                # What a handler sees is what Google would have parsed: enum names, camelCase fields. The request
                # log keeps what was sent.
                req.parsed = discovery.canonical(match.method.doc, {"$ref": match.method.request}, req.body)
        except discovery.Violation as exc:
            raise ApiError(400, "INVALID_ARGUMENT", exc.message, [
                {"@type": "type.googleapis.com/google.rpc.BadRequest",
                 "fieldViolations": [{"field": exc.field, "description": exc.message}]}]) from None
        return match

    def _authorize(self, req: Request, match: Any) -> None:
        """401 without a token the fake issued; 403 naming the first permission the caller lacks."""
        from ltmctl.gcp.fake import authz

        member = self.principal(req)
        if member is None:
            raise ApiError(401, "UNAUTHENTICATED", authz.UNAUTHENTICATED,
                           [error_info("CREDENTIALS_MISSING", "googleapis.com", method=match.method.id)])
        req.principal = member
        try:
            authz.check(self, member, match, req.data)
        except authz.Denied as exc:
            raise permission_denied(exc.permission, exc.resource) from None
        except authz.Unmapped:
            raise ApiError(500, "INTERNAL", f"fake: no permission is known for {match.method.id}; add it to "
                                            "ltmctl.gcp.fake.authz.PERMISSIONS with the page that says so.") from None

    def _checked(self, match: Any, status: int, body: Any) -> tuple[int, Any, bool]:
        """The fake's own answer must fit the method's response schema: it may not invent what Google never sends."""
        from ltmctl.gcp.fake import discovery

        if match is None or status != 200 or not isinstance(body, dict) or match.method.response is None:
            return status, body, False
        try:
            discovery.check_value(match.method.doc, {"$ref": match.method.response}, body, "", response=True)
        except discovery.Violation as exc:
            return 500, ApiError(500, "INTERNAL", f"fake: its answer to {match.method.id} does not fit Google's "
                                                  f"{match.method.response} schema: {exc.message}").body(), False
        return status, body, False

    def _route(self, req: Request) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            if route.method == req.method:
                m = route.regex.match(req.path)
                if m:
                    return route, m.groupdict()
        return None

    def _operation_for(self, path: str) -> Operation | None:
        m = re.match(r"^/v\d+(?:beta\d*|alpha\d*)?/(.+)$", path)
        return self.operations.get(m.group(1)) if m else None


class _RequestHandler(BaseHTTPRequestHandler):
    owner: FakeGcp
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' sessions expect

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, delayed ACKs add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw and "json" in (self.headers.get("Content-Type") or "application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        params = parse_qs(split.query, keep_blank_values=True)
        req = Request(self.command, unquote(split.path), {k: v[-1] for k, v in params.items()}, body,
                      dict(self.headers.items()), raw if body is None else b"", params=params, raw_path=split.path)
        try:
            status, payload, _ = self.owner.handle(req)
        except Exception as exc:  # a bug in the fake must surface as a 500, never hang the client
            status, payload = 500, ApiError(500, "INTERNAL", f"fake: {type(exc).__name__}: {exc}").body()
        req.status = status
        if status >= 400 and isinstance(payload, dict):
            req.error = payload.get("error") or {}
        # A handler may answer with bytes instead of JSON (object downloads): anything with `data` and
        # `content_type` attributes (and optionally `headers`) is written as-is.
        raw_data = getattr(payload, "data", None)
        content_type = getattr(payload, "content_type", None)
        extra: dict[str, str] = {}
        if isinstance(raw_data, bytes) and content_type:
            data = raw_data
            extra = dict(getattr(payload, "headers", None) or {})
        else:
            data = b"" if status == 204 else json.dumps(payload).encode()
            content_type = "application/json; charset=UTF-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815


@dataclass
class PolicyStore:
    """IAM policies by resource name, with etags: the read-modify-write protocol of every setIamPolicy."""

    fake: FakeGcp
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, resource: str) -> dict[str, Any]:
        policy = self.policies.get(resource)
        if policy is None:
            policy = self.policies[resource] = {"version": 1, "etag": etag(self.fake.next_id()), "bindings": []}
        return json.loads(json.dumps(policy))

    def set(self, resource: str, policy: dict[str, Any]) -> dict[str, Any]:
        current = self.get(resource)
        sent = policy.get("etag")
        if sent and sent != current["etag"]:
            raise ApiError(409, "ABORTED", "There were concurrent policy changes. Please retry the whole "
                                           "read-modify-write with exponential backoff.")
        self.fake.check_policy_members(policy)
        stored = {"version": policy.get("version", 1) or 1, "etag": etag(self.fake.next_id()),
                  "bindings": [b for b in policy.get("bindings", []) if b.get("members")]}
        self.policies[resource] = stored
        return json.loads(json.dumps(stored))

    def drop(self, resource: str) -> None:
        self.policies.pop(resource, None)
