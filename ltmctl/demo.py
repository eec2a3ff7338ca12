"""The one-command walkthrough: stack up → publish → wait for rows → call the API → dead letters → metrics."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ltmctl.config import Resolved
from ltmctl.errors import BackendError

VALID_EVENTS = 10_000  # about 8 s of the local stack's ingest on two cores (README, Performance)
# One of each kind of bad event the ingest function recognises.
INVALID_EVENTS: list[tuple[str, bytes]] = [
    ("not_json", b"{this is not json"),
    ("not_utf8", b"\xff\xfe\x00bad bytes"),
    ("schema", json.dumps({"action_id": "login", "user_email": "not-an-email"}).encode()),
    ("schema", json.dumps({"action_id": "x; DROP TABLE events", "user_email": "a@b.co", "app_id": "crm",
                           "app_department": "sales", "event_time": "2026-11-30T00:00:00Z"}).encode()),
    ("too_large", json.dumps({"blob": "x" * (1024 * 1024 + 1)}).encode()),
]


@dataclass
class Context:
    env: Any  # ltmctl.environments.Environment of a local environment
    run_id: str
    on_progress: Callable[[int, int], None]  # (done, total) while waiting
    count: int = VALID_EVENTS
    started_stack: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    clients: Any = None
    ingest_before: Any = None  # the ingest function's /metrics figures before publishing
    prepared: Future | None = None  # (events, publishable items), made while the stack starts
    letters: Future | None = None  # this run's dead letters, looked for while the rows are awaited
    rows_done_at: float | None = None  # time.monotonic() when every row was found

    @property
    def resolved(self) -> Resolved:
        return self.env.resolved


def steps(ctx: Context, keep: bool) -> Iterator[tuple[str, Callable[[], str]]]:
    # The events need no stack: they are made (and the Pub/Sub client imported) while it starts, when its pieces
    # leave CPU idle waiting on each other (about 1.4 s of the publish step for 10,000 events, measured).
    ctx.prepared = _in_background(lambda: _prepare(ctx.count))
    yield "Local stack", lambda: _stack(ctx)
    yield f"Publish {ctx.count:,} synthetic events and {len(INVALID_EVENTS)} invalid ones", lambda: _publish(ctx)
    yield "Wait until every valid event is queryable", lambda: _wait_rows(ctx)
    yield "Call the API with an IAP assertion, and once without", lambda: _call_api(ctx)
    yield "Dead letters, each with its reason", lambda: _dead_letters(ctx)
    yield "Metrics", lambda: _metrics(ctx)
    if not keep:
        yield "Stop the local stack", lambda: _down(ctx)


def _stack(ctx: Context) -> str:
    from ltmctl.local import stack

    state, ctx.started_stack = stack.up(ctx.resolved)
    ctx.clients = ctx.env.clients()
    return ("started" if ctx.started_stack else "already running") + f"; API at {state.api_url}"


def _in_background(work: Callable[[], Any]) -> Future:
    """work() in a daemon thread (a failed demo exits without waiting for it); its result or exception when asked."""
    done: Future = Future()

    def run() -> None:
        try:
            done.set_result(work())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            done.set_exception(exc)

    threading.Thread(target=run, name="demo-background", daemon=True).start()
    return done


def _prepare(count: int) -> tuple[list[dict[str, Any]], list[Any]]:
    from google.cloud import pubsub_v1  # noqa: F401 - imported now, so the publish step does not wait for it

    from ingest_fn.contract import EventValidator
    from ltmctl import publishing, synthetic

    events = list(synthetic.events(count, seed=random.SystemRandom().randrange(2**32)))
    return events, list(publishing.from_synthetic(events, EventValidator()))


def _publish(ctx: Context) -> str:
    from ltmctl import publishing

    ctx.ingest_before = _ingest_figures(ctx)
    assert ctx.prepared is not None  # steps() started it
    ctx.events, items = ctx.prepared.result()
    attributes = {"demo_run": ctx.run_id}
    # The invalid events first: delivered ahead of the valid ones, their dead letters are found within a second or
    # two, by a search that runs while the rows are awaited (behind 10,000 valid events it kept pulling all along).
    bad_items = [publishing.Item(i, data, ("invalid",)) for i, (_, data) in enumerate(INVALID_EVENTS, 1)]
    bad = publishing.publish_to_env(ctx.env, bad_items, attributes=attributes, allow_invalid=True)
    ctx.letters = _in_background(lambda: _find_dead_letters(ctx))
    good = publishing.publish_to_env(ctx.env, items, attributes=attributes)
    if good.failed or bad.failed:
        raise BackendError(f"{len(good.failed) + len(bad.failed)} publishes failed: {(good.failed + bad.failed)[:3]}")
    return f"{good.published} valid at {good.rate:,.0f} msg/s, {bad.published} invalid"


def _ingest_figures(ctx: Context) -> Any:
    from ltmctl.metrics import scrape

    return scrape.snapshot(ctx.env.state()).ingest


def _stored(ctx: Context) -> int:
    from google.cloud import bigquery

    p = ctx.resolved.pipeline
    sql = (f"SELECT COUNT(DISTINCT event_id) AS n FROM `{ctx.resolved.env.project}.{p.dataset}.{p.table}` "
           "WHERE event_id IN UNNEST(@ids)")
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ArrayQueryParameter("ids", "STRING", [e["event_id"] for e in ctx.events])])
    return next(iter(ctx.clients.bigquery.query(sql, job_config=config).result())).n


def _wait_rows(ctx: Context, timeout_s: float = 600.0) -> str:
    started = time.monotonic()
    while True:
        # The function's own count says how far ingest got, for the cost of one HTTP GET; BigQuery is asked only
        # once that count is complete. Asked every second instead, its query over every published id took the
        # local BigQuery the CPU the inserts needed: 10,000 events were stored at half the stack's rate.
        done = int(_ingest_figures(ctx).stored - ctx.ingest_before.stored)
        ctx.on_progress(min(done, len(ctx.events)), len(ctx.events))
        if done >= len(ctx.events):
            stored = _stored(ctx)  # redeliveries count twice in the function's figure, never here
            if stored >= len(ctx.events):
                ctx.rows_done_at = time.monotonic()
                elapsed = ctx.rows_done_at - started
                return f"{stored} rows, none missing; the last arrived {elapsed:.1f}s after publishing ended"
        if time.monotonic() - started > timeout_s:
            raise BackendError(f"only {_stored(ctx)} of {len(ctx.events)} events stored after {timeout_s:.0f}s",
                               hint="See .ltm/local/logs/ingest.log.")
        time.sleep(0.2)


def _call_api(ctx: Context) -> str:
    from ltmctl import api_calls

    action, user = Counter((e["action_id"], e["user_email"]) for e in ctx.events).most_common(1)[0][0]
    app_id, department = Counter((e["app_id"], e["app_department"]) for e in ctx.events).most_common(1)[0][0]
    data = api_calls.call(ctx.env, api_calls.get_data_path(action, user), {"limit": 3}, email="demo@ltm.local")
    info = api_calls.call(ctx.env, api_calls.app_info_path(app_id, department), email="demo@ltm.local")
    anonymous = api_calls.call(ctx.env, api_calls.app_info_path(app_id, department), headers={})
    if not (data.ok and info.ok and anonymous.status == 401):
        raise BackendError(f"unexpected answers: get_data {data.status}, app_info {info.status}, "
                           f"without assertion {anonymous.status} {anonymous.body}")
    return (f"GET /get_data/{action}:{user} → 200, {data.body['count']} events\n"
            f"GET /app_info/{app_id}:{department} → 200, {info.body['events']} events from "
            f"{info.body['users']} users, top action {info.body['top_actions'][0]['action_id']}\n"
            f"GET /app_info/{app_id}:{department} without an assertion → {anonymous.status} "
            f"{json.dumps(anonymous.body)}")


def _find_dead_letters(ctx: Context, patience_s: float = 60.0) -> list[Any]:
    """This run's dead letters, looked for until all are found or patience_s after the last row was (a large
    --count keeps the function busy with valid events before it reaches the invalid ones)."""
    from ltmctl import dead_letters

    subscription = ctx.resolved.pipeline.dead_letter_subscription
    while True:
        letters = [d for d in dead_letters.peek(ctx.clients, subscription, limit=1000)
                   if d.attributes.get("demo_run") == ctx.run_id]
        if len(letters) >= len(INVALID_EVENTS):
            return letters
        if ctx.rows_done_at is not None and time.monotonic() - ctx.rows_done_at > patience_s:
            return letters
        time.sleep(1.0)


def _dead_letters(ctx: Context) -> str:
    assert ctx.letters is not None  # _publish started the search
    letters = ctx.letters.result()
    errors = Counter(d.error for d in letters)
    if errors != Counter(kind for kind, _ in INVALID_EVENTS):
        raise BackendError(f"expected {len(INVALID_EVENTS)} dead letters, found {dict(errors)}")
    # Each reason whole: it is what the step is there to show (#17).
    return "\n".join(f"{d.error:9} {d.error_detail}" for d in letters)


def _metrics(ctx: Context) -> str:
    import httpx

    from ltmctl.metrics import prometheus

    text = httpx.get(ctx.env.api_url() + "/metrics", timeout=10).text
    lines = []
    for route in ("/get_data/{action_id}:{user_email}", "/app_info/{app_id}:{app_department}"):
        s = prometheus.summary(text, "ltm_api_request_duration_seconds", "ltm_api_requests", route=route)
        if s["p50"] is not None:
            # A histogram knows which bucket a percentile falls in, not its value: say so (#17).
            lines.append(f"API {route}: {s['requests']:.0f} requests, p50 {prometheus.shown_bucket(s['p50'])}, "
                         f"p99 {prometheus.shown_bucket(s['p99'])} (histogram buckets)")
    # What the ingest function says it did, not what was published: a row lost or stored twice shows here.
    # A delivery is counted once answered, a moment after its row is queryable: wait a little for the last ones.
    deadline = time.monotonic() + ctx.env.metrics_wait_s
    while True:
        now = _ingest_figures(ctx)
        stored = now.stored - ctx.ingest_before.stored
        dead = now.dead_lettered - ctx.ingest_before.dead_lettered
        if (stored >= len(ctx.events) and dead >= len(INVALID_EVENTS)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lines.append(f"ingest: {stored:.0f} stored, {dead:.0f} dead-lettered (its /metrics)")
    return "\n".join(lines)


def _down(ctx: Context) -> str:
    from ltmctl.local import stack

    if ctx.clients is not None:
        ctx.clients.close()
    if not ctx.started_stack:
        return "left running: it was running before the demo"
    stack.down(ctx.resolved)
    return "stopped (run with --keep to leave it running)"
