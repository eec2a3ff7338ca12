"""ingest: 10,000 events published → every row queryable, on the local stack: events/s, p50/p99 of
publish → stored latency, lost and duplicated rows. The baseline, in the same run, is the Pub/Sub emulator's
own push ceiling: pushes/s into an endpoint that only answers 204. Target: ≥ 80% of it, 0 lost, 0 duplicated."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.common import local_stack, percentile, report

EVENTS = 10_000
CEILING_MESSAGES = 3_000
TIMEOUT_S = 1800


def _push_ceiling(state, clients) -> float:
    """Pushes/s the emulator delivers to an endpoint that does nothing but answer 204."""
    received = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                received.append(time.perf_counter())
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = f"ceiling-{uuid.uuid4().hex[:8]}"
    topic = f"projects/{state.project}/topics/{name}"
    clients.publisher.create_topic(request={"name": topic})
    clients.subscriber.create_subscription(request={
        "name": f"projects/{state.project}/subscriptions/{name}", "topic": topic,
        "push_config": {"push_endpoint": f"http://127.0.0.1:{server.server_address[1]}/"}})
    futures = [clients.publisher.publish(topic, b'{"a":1}') for _ in range(CEILING_MESSAGES)]
    for f in futures:
        f.result(timeout=60)
    deadline = time.monotonic() + 300
    while len(received) < CEILING_MESSAGES and time.monotonic() < deadline:
        time.sleep(0.1)
    clients.subscriber.delete_subscription(request={"subscription": f"projects/{state.project}/subscriptions/{name}"})
    server.shutdown()
    return (len(received) - 1) / (received[-1] - received[0])


def _stored(clients, table: str, run_id: str) -> list[dict]:
    from google.cloud import bigquery

    sql = (f"SELECT event_id, publish_time, ingest_time FROM `{table}` WHERE app_department = @run")
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("run", "STRING", run_id)])
    return [dict(r) for r in clients.bigquery.query(sql, job_config=config).result()]


def _stored_count(clients, table: str, run_id: str) -> int:
    """How many of the run's events are queryable: one row back, so waiting costs the emulator little (fetching
    every stored row each time slowed the inserts being measured)."""
    from google.cloud import bigquery

    sql = f"SELECT COUNT(DISTINCT event_id) AS n FROM `{table}` WHERE app_department = @run"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("run", "STRING", run_id)])
    return next(iter(clients.bigquery.query(sql, job_config=config).result()))["n"]


def run() -> dict:
    from ingest_fn.contract import EventValidator
    from ltmctl import publishing, synthetic
    from ltmctl.environments import open_environment

    with local_stack() as (resolved, state, clients):
        ceiling = _push_ceiling(state, clients)
        run_id = f"bench-{uuid.uuid4().hex[:8]}"
        events = [{**e, "app_department": run_id} for e in synthetic.events(EVENTS, seed=11)]
        table = f"{state.project}.{resolved.pipeline.dataset}.{resolved.pipeline.table}"
        started = time.perf_counter()
        items = publishing.from_synthetic(events, EventValidator())
        summary = publishing.publish_to_env(open_environment(resolved), items, expected=EVENTS)
        published_at = time.perf_counter()
        while time.perf_counter() - started < TIMEOUT_S:
            if _stored_count(clients, table, run_id) >= EVENTS:
                break
            time.sleep(1.0)
        elapsed = time.perf_counter() - started
        rows = _stored(clients, table, run_id)
    ids = {r["event_id"] for r in rows}
    lost = len({e["event_id"] for e in events} - ids)
    duplicated = len(rows) - len(ids)
    latencies = [(r["ingest_time"] - r["publish_time"]).total_seconds() for r in rows]
    rate = len(ids) / elapsed
    ratio = rate / ceiling
    met = ratio >= 0.8 and lost == 0 and duplicated == 0
    return report("ingest", [
        ("events published", summary.published), ("publish s", published_at - started),
        ("all stored after s", elapsed), ("events/s stored", rate),
        ("publish→stored p50 s", percentile(latencies, 0.5)), ("publish→stored p99 s", percentile(latencies, 0.99)),
        ("lost", lost), ("duplicated rows", duplicated), ("push ceiling pushes/s (204 endpoint)", ceiling),
    ], ratio_name="stored/s ÷ push ceiling", ratio=ratio, target="≥ 0.8, 0 lost, 0 duplicated", met=met,
        extra={"config": json.loads(json.dumps({"events": EVENTS, "ceiling_messages": CEILING_MESSAGES}))})


if __name__ == "__main__":
    run()
