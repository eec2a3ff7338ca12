"""One JSON line per request on stdout, in the shape Cloud Logging reads (severity, httpRequest, trace)."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from typing import Any, TextIO

from api_service.text import cut

# X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1 and W3C traceparent: 00-TRACE_ID-SPAN_ID-FLAGS.
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
MAX_URL_CHARS = 4096  # hostile 10 kB paths must not turn every log line into a blob
# One encoder for every line: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":"))
_second: tuple[int, str] = (-1, "")  # the formatted whole second last used; lines of one second share it


def timestamp(now: float | None = None) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-30T08:03:09.489220Z (the seconds part formatted once a second)."""
    global _second
    now = time.time() if now is None else now
    whole = int(now)
    micros = int((now - whole) * 1_000_000)
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{micros:06d}Z"


def severity(status: int) -> str:
    return "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"


def trace_fields(project: str, cloud_trace: str | None, traceparent: str | None) -> dict[str, Any]:
    """The logging.googleapis.com/trace fields that tie the line to its trace; {} when no valid header came."""
    if cloud_trace and (m := _CLOUD_TRACE.match(cloud_trace.strip())):
        trace, span, sampled = m.group(1).lower(), m.group(2), m.group(3) == "1"
    elif traceparent and (m := _TRACEPARENT.match(traceparent.strip())):
        trace, span, sampled = m.group(1), m.group(2), int(m.group(3), 16) & 1 == 1
    else:
        return {}
    fields: dict[str, Any] = {"logging.googleapis.com/trace": f"projects/{project}/traces/{trace}",
                              "logging.googleapis.com/trace_sampled": sampled}
    if span:
        fields["logging.googleapis.com/spanId"] = span
    return fields


def request_record(project: str, *, method: str, url: str, status: int, latency_s: float, response_size: int,
                   headers: dict[str, str], remote_ip: str | None, protocol: str, route: str,
                   email: str | None = None, cache: str | None = None, error: str | None = None) -> dict[str, Any]:
    """The log entry of one answered request. `headers` holds only the few named here, never the assertion."""
    record: dict[str, Any] = {
        # Cloud Logging takes `time` as the entry's timestamp; local readers (`ltmctl logs`) need it too.
        "time": timestamp(),
        "severity": severity(status),
        "message": f"{method} {route} {status}" + (f": {error}" if error else ""),
        "httpRequest": {
            "requestMethod": method,
            "requestUrl": cut(url, MAX_URL_CHARS),
            "status": status,
            "responseSize": str(response_size),
            "latency": f"{latency_s:.6f}s",
            "userAgent": headers.get("user-agent", ""),
            "remoteIp": remote_ip or "",
            "protocol": protocol,
        },
        "route": route,
        **trace_fields(project, headers.get("x-cloud-trace-context"), headers.get("traceparent")),
    }
    if email:
        record["email"] = email
    if cache:
        record["cache"] = cache
    return record


class AccessLog:
    """Writes records as JSON lines; the lock keeps lines whole when handlers run in threads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = _ENCODER.encode(record)
        stream = self._stream or sys.stdout  # looked up late: pytest and uvicorn may swap sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()
