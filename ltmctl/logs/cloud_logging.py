"""A gcp environment's service logs from Cloud Logging, as the same entries the local stack's files give.

The client is passed in: google-cloud-logging's `Client` on its JSON-over-HTTP transport (`_use_grpc=False`):
its GAPIC client has no REST transport, and REST is what the fake in tests, and any HTTP proxy, can answer.
`--follow` polls entries:list with a moving lower bound on the timestamp: Cloud Logging's live tail is a gRPC
stream (TailLogEntries), and polling needs nothing more than the read permission `logging.entries.list`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from ltmctl.logs.entries import Entry

POLL_S = 3.0  # entries:list allows 60 reads a minute per project; 20 leaves room for other readers
LATE_S = 30.0  # entries may reach Cloud Logging this much after their timestamp; each poll looks that far back
BACKOFF_S = 15.0  # after a 429 while following


def services(resolved: Any, which: str) -> dict[str, str]:
    """Cloud Run service name -> the short name `ltmctl logs` prints (api, ingest)."""
    names = {"api": resolved.env.api.service}
    if resolved.pipeline.ingest_mode == "push":
        names["ingest"] = resolved.env.ingest.service
    chosen = names if which == "all" else {which: names[which]} if which in names else {}
    return {service: short for short, service in chosen.items()}


def client(clients: Any) -> Any:
    """google-cloud-logging's HTTP client with the credentials and endpoint of `ltmctl.gcp.clients.GcpClients`."""
    from google.cloud import logging as cloud_logging

    options = {"api_endpoint": clients.endpoint} if clients.endpoint else None
    return cloud_logging.Client(project=clients.project, credentials=clients.credentials, _use_grpc=False,
                                client_options=options)


def rfc3339(when: datetime) -> str:
    from datetime import UTC

    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_filter(service_names: list[str], since: datetime, min_severity: str | None = None) -> str:
    """resource.type="cloud_run_revision" AND (service_name = each service OR'ed) AND timestamp>= AND severity>=."""
    names = " OR ".join(f'resource.labels.service_name="{name}"' for name in service_names)
    parts = ['resource.type="cloud_run_revision"', f"({names})" if len(service_names) > 1 else names,
             f'timestamp>="{rfc3339(since)}"']
    if min_severity:
        parts.append(f"severity>={min_severity}")
    return " AND ".join(parts)


def to_entry(item: Any, short_names: dict[str, str]) -> Entry:
    """A google.cloud.logging LogEntry as the line the service wrote: Cloud Logging moved `severity`, `time`,
    `httpRequest` and the trace out of the JSON payload into the entry; put them back where local lines have them."""
    labels = dict(getattr(item.resource, "labels", None) or {})
    service = short_names.get(labels.get("service_name", ""), labels.get("service_name") or "?")
    payload = item.payload
    if isinstance(payload, dict):
        data, message = dict(payload), str(payload.get("message", ""))
    elif payload is None:
        data, message = {}, ""
    else:
        data, message = {}, str(payload)
    if item.http_request:
        data["httpRequest"] = dict(item.http_request)
        message = message or f"{item.http_request.get('requestMethod', '')} {item.http_request.get('status', '')}"
    if item.trace:
        data["logging.googleapis.com/trace"] = item.trace
    return Entry(service, item.timestamp, str(item.severity or "DEFAULT").upper(), message, data)


def read(client: Any, project: str, short_names: dict[str, str], *, since: datetime,
         min_severity: str | None = None, follow: bool = False, poll_s: float = POLL_S,
         stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep) -> Iterator[Entry]:
    """Entries oldest first; with follow, keep polling for newer ones (each shown once)."""
    from google.api_core import exceptions

    cursor = since
    seen: dict[tuple[str, str], datetime] = {}
    while True:
        newest = cursor
        try:
            for item in client.list_entries(resource_names=[f"projects/{project}"],
                                            filter_=build_filter(list(short_names), cursor, min_severity),
                                            order_by="timestamp asc", page_size=1000):
                key = (item.log_name or "", item.insert_id or "")
                if key in seen:
                    continue
                seen[key] = item.timestamp or cursor
                newest = max(newest, item.timestamp or cursor)
                yield to_entry(item, short_names)
        except (exceptions.TooManyRequests, exceptions.ResourceExhausted):
            if not follow:
                raise
            sleep(BACKOFF_S)  # the read quota refills each minute; a tail should outlast a burst of other readers
            continue
        if not follow or stop():
            return
        # Look back LATE_S behind the newest entry seen, so late arrivals still show; forget ids older than that.
        cursor = max(cursor, newest - timedelta(seconds=LATE_S))
        seen = {k: t for k, t in seen.items() if t >= cursor}
        sleep(poll_s)
