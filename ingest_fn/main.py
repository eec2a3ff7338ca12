"""functions-framework entry point: `functions-framework --target ingest --signature-type cloudevent`.

This module is the composition root: it builds the clients once per process from the environment and
hands them to the Ingestor, which takes everything it uses as arguments.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

import functions_framework

from ingest_fn import metrics
from ingest_fn.handler import Ingestor
from ingest_fn.logs import log
from ingest_fn.settings import Settings


def build(settings: Settings, *, credentials: Any = None, api_endpoint: str | None = None) -> Ingestor:
    """The Ingestor with its clients. `api_endpoint` (with `credentials`) points both clients at one base URL that
    speaks Google's REST APIs, as a stand-in for Google (tests run them against a fake of Google's APIs that
    authorizes each call as the account whose token `credentials` carries); otherwise Application Default
    Credentials, or the emulators."""
    from google.cloud import bigquery, pubsub_v1

    from ingest_fn.contract import EventValidator
    from ingest_fn.dead_letter import DeadLetter
    from ingest_fn.group_commit import GroupCommitter
    from ingest_fn.sink import BigQuerySink

    if api_endpoint:
        bq = bigquery.Client(project=settings.project, credentials=credentials,
                             client_options={"api_endpoint": api_endpoint})
        # REST rather than gRPC: the same publish call, over the transport such an endpoint speaks.
        publisher = pubsub_v1.PublisherClient(credentials=credentials, transport="rest",
                                              client_options={"api_endpoint": api_endpoint})
    else:
        if settings.bigquery_endpoint:
            from google.auth.credentials import AnonymousCredentials

            bq = bigquery.Client(project=settings.project, credentials=AnonymousCredentials(),
                                 client_options={"api_endpoint": settings.bigquery_endpoint})
        else:
            bq = bigquery.Client(project=settings.project)
        # PUBSUB_EMULATOR_HOST, when set, points the publisher at the emulator.
        publisher = pubsub_v1.PublisherClient()
    return Ingestor(
        committer=GroupCommitter(BigQuerySink(bq, settings.table_id, settings.insert_timeout_s)),
        dead_letter=DeadLetter(publisher, settings.dead_letter_topic_path),
        validator=EventValidator(),
        max_event_bytes=settings.max_event_bytes,
    )


metrics.serve_in_workers()

_building = threading.Lock()


@cache
def _built() -> Ingestor:
    metrics.serve()  # a process that was never forked (flask's debug server) serves from here
    return build(Settings.from_env())


def _ingestor() -> Ingestor:
    # Once per process: the first deliveries come together (80 at once), and each building its own clients and
    # compiling the contract cost seconds of one core before the first row was stored.
    with _building:
        return _built()


def _warm() -> None:
    try:
        _ingestor()
    except Exception as exc:  # noqa: BLE001 - the first delivery builds it again and reports the error
        log("ERROR", "building the ingest clients failed", error=str(exc))


# In the worker gunicorn forks (never before: gRPC channels do not survive a fork), build the clients while the
# server starts, not on the first deliveries' time.
os.register_at_fork(after_in_child=lambda: threading.Thread(target=_warm, name="ingest-warm", daemon=True).start())


@functions_framework.cloud_event
def ingest(cloud_event: Any) -> None:
    try:
        with metrics.HANDLE_SECONDS.time():
            outcome = _ingestor().handle_push(cloud_event.data or {})
        metrics.MESSAGES.labels(outcome=outcome).inc()
    except Exception as exc:
        metrics.MESSAGES.labels(outcome="retried").inc()
        # Raising makes functions-framework answer 500, so Pub/Sub redelivers with backoff; the
        # dead-letter policy moves the message after max_delivery_attempts.
        log("ERROR", "ingest failed; the delivery will be retried", error=str(exc), event_id=cloud_event["id"])
        raise
