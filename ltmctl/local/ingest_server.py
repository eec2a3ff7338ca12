"""The local stack's server for the ingest function: `python -m ltmctl.local.ingest_server --target ingest
--signature-type cloudevent --source ingest_fn/main.py --host H --port P` (functions-framework's arguments).

On Google Cloud the function runs under functions-framework (gunicorn, Flask), as `ingest_fn/Procfile` and the
image say, and that does not change. Locally that server cost more CPU per delivery than the function itself
(about 0.9 ms of Flask and CloudEvent handling for a function that does nothing, plus gunicorn's HTTP parsing,
measured with 80 threads on two cores), while every other piece of the stack shares the same two cores. So the
local stack serves the same function with this smaller HTTP/1.1 server, and what the function sees is made by
functions-framework's own code: the module is loaded by its registry (`--source`, `--target`), a request that
is a CloudEvent is read by `cloudevents.http.from_http` and anything else (Pub/Sub's push body) goes through its
`background_event_to_cloud_event`, exactly as its Flask view does, so the function gets the same CloudEvent
(id, type, source, time, and `data` = {"message": {...}}). The answers are functions-framework's too: 200 `OK`
when the function returns, 500 with `X-Google-Status: crash` when it raises (so the delivery nacks and Pub/Sub
retries), 400 when the body converts to no event, 405 to anything but POST (the stack's health check).

THREADS (functions-framework's variable) bounds the requests handled at once, as gunicorn's threads do; one
thread serves each connection (the delivery keeps one per request slot open). WORKERS (its variable too) is how
many worker processes serve, each with its own copy of the function, as gunicorn's workers do: the local stack
runs one per function instance it stands for, so each has its own group commit as each Cloud Run instance has.
They accept on one listening socket. Their Prometheus counters are kept in files (prometheus_client's multiprocess
mode, in PROMETHEUS_MULTIPROC_DIR) and this process serves their sum on LTM_METRICS_PORT, the port one worker
would serve.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_LINE = 8190  # gunicorn's limit on the request line and each header line
MAX_HEADERS = 100
MAX_BODY = 32 * 1024 * 1024  # Cloud Run refuses requests over 32 MiB
STOP_GRACE_S = 4.0  # SIGTERM: requests in flight get this long (the stack sends SIGKILL after 5 s)


class HttpError(Exception):
    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.status, self.reason, self.detail = status, reason, detail or reason


class Request:
    """The parts of a request functions-framework's conversion reads: `path`, `headers`, `get_json()`."""

    __slots__ = ("method", "path", "headers", "body", "_json")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self._json: Any = None

    def get_json(self) -> Any:
        # As Flask's: JSON only for a JSON content type (else 415), 400 for a body that does not parse.
        if self._json is None:
            mimetype = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if not (mimetype == "application/json"
                    or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
                raise HttpError(415, "Unsupported Media Type",
                                "Did not attempt to load JSON data because the request Content-Type was not "
                                "'application/json'.")
            try:
                self._json = json.loads(self.body)
            except ValueError as exc:
                raise HttpError(400, "Bad Request", f"Failed to decode JSON object: {exc}") from None
        return self._json


def load_function(target: str, source: str, signature_type: str) -> Callable[[Any], Any]:
    """The function as functions-framework loads it: its module executed from `source`, `target` taken from it."""
    from functions_framework import _function_registry

    if not os.path.exists(source):
        raise SystemExit(f"File {source} that is expected to define function doesn't exist")
    module, spec = _function_registry.load_function_module(source)
    spec.loader.exec_module(module)
    function = _function_registry.get_user_function(source, module, target)
    kind = _function_registry.get_func_signature_type(target, signature_type)
    if kind != _function_registry.CLOUDEVENT_SIGNATURE_TYPE:
        raise SystemExit(f"{target} is a {kind!r} function; this server serves CloudEvent functions only")
    return function


def to_cloud_event(request: Request) -> Any:
    """The CloudEvent functions-framework's view hands a CloudEvent function for this request."""
    from cloudevents import exceptions as cloud_exceptions
    from cloudevents.http import from_http
    from functions_framework import event_conversion
    from functions_framework.exceptions import EventConversionException

    not_a_cloud_event: Exception | None = None
    if _plainly_no_cloud_event(request):
        # What from_http would raise after parsing the body, without its parse: the body is parsed once, here,
        # and the conversion below reads the same parse (a push body, every delivery).
        not_a_cloud_event = cloud_exceptions.MissingRequiredFields("Failed to find specversion in HTTP request")
    else:
        try:
            return from_http(request.headers, request.body)
        except (cloud_exceptions.MissingRequiredFields, cloud_exceptions.InvalidRequiredFields) as exc:
            not_a_cloud_event = exc
    try:
        return event_conversion.background_event_to_cloud_event(request)
    except EventConversionException as exc:
        raise HttpError(400, "Bad Request",
                        "Function was defined with FUNCTION_SIGNATURE_TYPE=cloudevent but parsing CloudEvent "
                        "failed and converting from background event to CloudEvent also failed.\n"
                        f"Got CloudEvent exception: {not_a_cloud_event!r}\n"
                        f"Got background event conversion exception: {exc!r}") from None


def _plainly_no_cloud_event(request: Request) -> bool:
    """Whether from_http would refuse the request as no CloudEvent: not binary mode (no ce-specversion header)
    and a JSON object body without `specversion` (from_http reads a structured event from any body it can parse).
    Only for a JSON content type, whose parse the conversion reuses; for any other, from_http decides."""
    if "ce-specversion" in request.headers:
        return False
    try:
        body = request.get_json()
    except HttpError:
        return False
    return isinstance(body, dict) and "specversion" not in body


class App:
    def __init__(self, function: Callable[[Any], Any], threads: int) -> None:
        self.function = function
        self.slots = threading.BoundedSemaphore(threads)
        self.active = 0  # requests being handled, for a graceful stop
        self._lock = threading.Lock()

    def respond(self, request: Request) -> tuple[int, str, dict[str, str], bytes]:
        """(status, reason, extra headers, body)."""
        if request.method != "POST":
            return 405, "Method Not Allowed", {"Allow": "POST"}, b"Method Not Allowed"
        with self.slots:
            with self._lock:
                self.active += 1
            try:
                self.function(to_cloud_event(request))
            except HttpError as exc:
                return exc.status, exc.reason, {}, exc.detail.encode("utf-8", "replace")
            except Exception as exc:  # noqa: BLE001 - functions-framework's crash handler: 500, retried by Pub/Sub
                sys.stderr.write(f"Exception on {request.path} [POST]\n{traceback.format_exc()}")
                sys.stderr.flush()
                return 500, "Internal Server Error", {"X-Google-Status": "crash"}, str(exc).encode("utf-8", "replace")
            finally:
                with self._lock:
                    self.active -= 1
        return 200, "OK", {}, b"OK"


def _read_line(rfile: Any) -> bytes:
    line = rfile.readline(MAX_LINE + 2)
    if len(line) > MAX_LINE + 1 and not line.endswith(b"\n"):
        raise HttpError(431 if line else 400, "Request Header Fields Too Large")
    return line


def read_request(rfile: Any, wfile: Any) -> tuple[Request, bool] | None:
    """The next request on a connection and whether to keep the connection open after it; None at its end."""
    line = _read_line(rfile)
    while line in (b"\r\n", b"\n"):  # a stray empty line between requests is allowed (RFC 9112 §2.2)
        line = _read_line(rfile)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "Bad Request", "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    while True:
        line = _read_line(rfile)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            return None  # the client went away mid-request
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, "Bad Request", "malformed header line")
        if len(headers) >= MAX_HEADERS:
            raise HttpError(431, "Request Header Fields Too Large")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    if headers.get("expect", "").lower() == "100-continue":
        wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(rfile)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise HttpError(400, "Bad Request", "invalid Content-Length") from None
        if length < 0 or length > MAX_BODY:
            raise HttpError(413 if length > 0 else 400, "Content Too Large" if length > 0 else "Bad Request")
        body = rfile.read(length)
        if len(body) < length:
            return None
    path = target.split("?", 1)[0]
    if "://" in path:  # an absolute-form target
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return Request(method, path or "/", headers, body), keep


def _read_chunked(rfile: Any) -> bytes:
    chunks, size = [], 0
    while True:
        try:
            length = int(_read_line(rfile).split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "Bad Request", "invalid chunk size") from None
        if length == 0:
            while _read_line(rfile) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        size += length
        if size > MAX_BODY:
            raise HttpError(413, "Content Too Large")
        chunks.append(rfile.read(length))
        rfile.readline()  # the CRLF after the chunk


def _answer(wfile: Any, status: int, reason: str, headers: dict[str, str], body: bytes, keep: bool) -> None:
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/html; charset=utf-8",
            f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep else 'close'}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


class _Connection(socketserver.StreamRequestHandler):
    app: App  # set on the subclass the server is made with

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        while True:
            try:
                got = read_request(self.rfile, self.wfile)
                if got is None:
                    return
                request, keep = got
                status, reason, headers, body = self.app.respond(request)
            except HttpError as exc:
                _answer(self.wfile, exc.status, exc.reason, {}, exc.detail.encode("utf-8", "replace"), False)
                return
            except OSError:
                return
            try:
                _answer(self.wfile, status, reason, headers, body, keep)
            except OSError:
                return
            if not keep:
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def serve(app: App, host: str, port: int) -> Server:
    handler = type("Connection", (_Connection,), {"app": app})
    return Server((host, port), handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ltmctl.local.ingest_server")
    parser.add_argument("--target", default=os.environ.get("FUNCTION_TARGET", ""))
    parser.add_argument("--source", default=os.environ.get("FUNCTION_SOURCE", "main.py"))
    parser.add_argument("--signature-type", default=os.environ.get("FUNCTION_SIGNATURE_TYPE", "cloudevent"))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    parser.add_argument("--metrics-dir", type=Path, default=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
                        help="where the workers keep their counters (emptied at start; default: a temporary one)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    # Before the function's module is loaded: prometheus_client chooses file-backed counters when it is imported.
    metrics = _counters_in_files(args.metrics_dir)
    app = App(load_function(args.target, args.source, args.signature_type), int(os.environ.get("THREADS", "80")))
    server = serve(app, args.host, args.port)
    # Every worker accepts on this one socket. Non-blocking, so the workers that lose the race for a connection get
    # EAGAIN, which socketserver ignores, instead of blocking in accept() until the next connection.
    server.socket.setblocking(False)
    # As gunicorn does: the module is imported here and the workers that serve are forked, so the function's own
    # after-fork hooks run as they do under functions-framework (ingest_fn builds its clients there).
    parent = os.getpid()
    workers = []
    for _ in range(args.workers):
        worker = os.fork()
        if worker == 0:
            _die_with(parent)
            _work(app, server)
        workers.append(worker)
    server.server_close()
    if metrics is not None:
        _serve_counters(*metrics)  # after the forks, so no worker holds the metrics port
    sys.exit(_supervise(workers))


def _counters_in_files(directory: Path | None) -> tuple[str, Path] | None:
    """(port, directory) when LTM_METRICS_PORT asks for the function's counters: then every process keeps them in
    files there and this one serves their sum. The variable is taken out of the environment, so no worker starts
    an endpoint of its own on that port."""
    port = os.environ.pop("LTM_METRICS_PORT", None)
    if not port:
        return None
    if directory is None:
        import atexit
        import shutil
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="ltm-ingest-metrics-"))
        atexit.register(shutil.rmtree, directory, True)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # a previous run's counts: a restarted function counts from zero
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return port, directory


def _serve_counters(port: str, directory: Path) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    start_http_server(int(port), addr=os.environ.get("LTM_METRICS_HOST", "127.0.0.1"), registry=registry)


def _supervise(workers: list[int]) -> int:
    """Wait for the workers; SIGTERM and ^C are passed to each. When one ends on its own, the others are stopped
    too and this process exits with its status: the stack sees the function down (a piece that serves only
    some of its deliveries would hide it)."""
    def stop(*_: Any) -> None:
        for worker in workers:
            try:
                os.kill(worker, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    code, alive = None, set(workers)
    while alive:
        worker, status = os.wait()
        alive.discard(worker)
        if code is None:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it
            stop()
    return code or 0


def _die_with(parent: int) -> None:
    """The worker ends when the process that forked it does, killed or not, as gunicorn's workers do: the stack
    watches (and kills) the pid it started, and a worker left behind would go on taking deliveries."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)  # Linux: at once
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # elsewhere, and for a parent that died before prctl: within half a second
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _work(app: App, server: Server) -> None:
    # SIGTERM: stop taking connections, let the requests in flight be answered, then exit.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C reaches the whole group: the parent forwards it as SIGTERM
    # shutdown() is seen at the next poll: 0.1 s, not socketserver's 0.5, is what SIGTERM waits before the grace.
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    deadline = time.monotonic() + STOP_GRACE_S
    while app.active and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.stdout.flush()
    os._exit(0)  # connection threads may be waiting on idle keep-alive sockets

if __name__ == "__main__":
    main()
