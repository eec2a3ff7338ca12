"""Prometheus counters of the ingest function, served on LTM_METRICS_PORT when it is set (the local stack).

On Cloud Run the same figures come from Cloud Monitoring and the structured logs; locally `ltmctl metrics`
reads this endpoint.
"""

from __future__ import annotations

import os
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
MESSAGES = Counter("ltm_ingest_messages", "Deliveries handled, by outcome (stored, dead_lettered, retried).",
                   ["outcome"], registry=REGISTRY)
DEAD_LETTERS = Counter("ltm_ingest_dead_letters", "Events dead-lettered, by error code.", ["error"],
                       registry=REGISTRY)
INSERTS = Counter("ltm_ingest_inserts", "BigQuery insert requests (one per group commit).", registry=REGISTRY)
HANDLE_SECONDS = Histogram("ltm_ingest_handle_seconds", "Time to handle one delivery.", registry=REGISTRY,
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

_started = threading.Lock()
_serving = False


def serve() -> None:
    """Start the metrics endpoint once per process, if LTM_METRICS_PORT asks for one."""
    global _serving
    port = os.environ.get("LTM_METRICS_PORT")
    if not port:
        return
    with _started:
        if not _serving:
            start_http_server(int(port), addr=os.environ.get("LTM_METRICS_HOST", "127.0.0.1"), registry=REGISTRY)
            _serving = True


def serve_in_workers() -> None:
    # functions-framework imports the function in gunicorn's master and forks the worker that handles
    # requests: a server thread started in the master would count nothing, so start it in each child.
    os.register_at_fork(after_in_child=_after_fork)


def _after_fork() -> None:
    global _serving, _started
    _started = threading.Lock()
    _serving = False
    serve()
