"""ingest: events published → every row queryable, on the local stack.

`python -m bench ingest` (LTM_BENCH_INGEST_EVENTS, default 100,000): events/s from the publish's start until every
event is queryable, publish→stored p50/p99 (the row's ingest_time − publish_time), lost and duplicated rows, and
the CPU each piece spent per event (from /proc: where the time goes). Baselines in the same run, on the same stack:
today's path before the delivery process, the emulator's own push into the same function and sink
(LTM_BENCH_INGEST_BASELINE events, default 5,000: rates compare), and the broker's delivery ceiling, a bare
synchronous pull-and-ack loop on the same emulator (and, for the record, the client's streaming pull).
Target: ≥ 15× the emulator's push, ≥ 1,000 events/s, 0 lost, 0 duplicated.

`python -m bench ingest --steady 500` (events/s, for LTM_BENCH_STEADY_S, default 60 s): publish→stored p99 ≤ 2 s.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any

from bench.common import local_stack, percentile, report

EVENTS = int(os.environ.get("LTM_BENCH_INGEST_EVENTS", "100000"))
BASELINE_EVENTS = int(os.environ.get("LTM_BENCH_INGEST_BASELINE", "5000"))
CEILING_MESSAGES = 20_000
STREAMING_MESSAGES = 5_000
STEADY_S = float(os.environ.get("LTM_BENCH_STEADY_S", "60"))
TIMEOUT_S = 3600
POLL_S = 2.0  # each poll is a query the local BigQuery answers with the same CPU the inserts need


def _scratch_subscription(state: Any, clients: Any, count: int) -> str:
    """A new topic with a pull subscription holding `count` small messages; returns the subscription path."""
    name = f"ceiling-{uuid.uuid4().hex[:8]}"
    topic = f"projects/{state.project}/topics/{name}"
    path = f"projects/{state.project}/subscriptions/{name}"
    clients.publisher.create_topic(request={"name": topic})
    clients.subscriber.create_subscription(request={"name": path, "topic": topic, "ack_deadline_seconds": 60})
    for start in range(0, count, 1000):  # one request per 1,000, as `ltmctl publish` sends them
        clients.publisher.api.publish(topic=topic, messages=[{"data": b'{"a":1}'}] * min(1000, count - start))
    return path


def _pull_ceiling(state: Any, clients: Any) -> float:
    """Messages/s a bare loop of synchronous pulls (1,000 asked) and acknowledgements takes off the emulator."""
    path = _scratch_subscription(state, clients, CEILING_MESSAGES)
    got = 0
    started = time.perf_counter()
    while got < CEILING_MESSAGES:
        response = clients.subscriber.pull(request={"subscription": path, "max_messages": 1000}, timeout=30)
        ack_ids = [m.ack_id for m in response.received_messages]
        clients.subscriber.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
        got += len(ack_ids)
    rate = got / (time.perf_counter() - started)
    clients.subscriber.delete_subscription(request={"subscription": path})
    return rate


def _streaming_ceiling(state: Any, clients: Any) -> float:
    """The same with the client's streaming pull (subscribe(), default flow control, ack in the callback)."""
    import threading

    path = _scratch_subscription(state, clients, STREAMING_MESSAGES)
    got, done = [0], threading.Event()
    lock = threading.Lock()

    def callback(message: Any) -> None:
        message.ack()
        with lock:
            got[0] += 1
            if got[0] >= STREAMING_MESSAGES:
                done.set()

    started = time.perf_counter()
    future = clients.subscriber.subscribe(path, callback)
    done.wait(300)
    rate = got[0] / (time.perf_counter() - started)
    future.cancel()
    clients.subscriber.delete_subscription(request={"subscription": path})
    return rate


def _query_one(clients: Any, sql: str, run_id: str) -> Any:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("run", "STRING", run_id)])
    return next(iter(clients.bigquery.query(sql, job_config=config).result()))


def _stored(clients: Any, table: str, run_id: str) -> int:
    """How many of the run's events are queryable: one row back, so waiting costs the emulator little."""
    return _query_one(clients, f"SELECT COUNT(DISTINCT event_id) AS n FROM `{table}` WHERE app_department = @run",
                      run_id).n


def _latencies(clients: Any, table: str, run_id: str) -> list[float]:
    from google.cloud import bigquery

    sql = (f"SELECT TIMESTAMP_DIFF(ingest_time, publish_time, MICROSECOND) AS us FROM `{table}` "
           "WHERE app_department = @run")
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("run", "STRING", run_id)])
    return [r.us / 1e6 for r in clients.bigquery.query(sql, job_config=config).result(page_size=50_000)]


def _cpu_seconds(resolved: Any) -> dict[str, float]:
    """CPU seconds (user + system) each piece's process group has used so far (a restarted piece from 0)."""
    from ltmctl.local import stack

    state = stack.read_state(resolved)
    tick = os.sysconf("SC_CLK_TCK")
    groups = {piece.pid: name for name, piece in state.pieces.items()}
    used = dict.fromkeys(groups.values(), 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 - one read
        except OSError:
            continue
        if int(fields[2]) in groups:  # the process group a piece leads: the piece and its children
            used[groups[int(fields[2])]] += (int(fields[11]) + int(fields[12])) / tick
    return used


def _run(resolved: Any, state: Any, clients: Any, count: int, *, seed: int, rate: float | None = None
         ) -> dict[str, Any]:
    """Publish `count` events of a fresh run (at `rate`/s if given), wait until all are queryable; the figures."""
    from ingest_fn.contract import EventValidator
    from ltmctl import clients as clients_module
    from ltmctl import publishing, synthetic

    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    table = f"{state.project}.{resolved.pipeline.dataset}.{resolved.pipeline.table}"
    events = ({**e, "app_department": run_id} for e in synthetic.events(count, seed=seed))
    cpu_before = _cpu_seconds(resolved)
    started = time.perf_counter()
    # As publish_to_env does, with a publisher of its own: the baseline runs with the delivery process stopped,
    # which publish_to_env would refuse as a partly-down stack.
    publisher = clients_module.publisher_for_emulator(
        state.pubsub_host, **publishing.publisher_options(False, count > publishing.IN_FLIGHT_MESSAGES))
    try:
        summary = publishing.publish(publisher, f"projects/{state.project}/topics/{resolved.pipeline.topic}",
                                     publishing.from_synthetic(events, EventValidator()), rate=rate)
    finally:
        publisher.stop()
    published_s = time.perf_counter() - started
    stored = 0
    while time.perf_counter() - started < TIMEOUT_S:
        stored = _stored(clients, table, run_id)
        if stored >= summary.published:
            break
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    cpu = {name: used - cpu_before[name] for name, used in _cpu_seconds(resolved).items()}
    totals = _query_one(clients, f"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM `{table}` "
                                 "WHERE app_department = @run", run_id)
    latencies = _latencies(clients, table, run_id)
    return {"published": summary.published, "publish_s": published_s, "elapsed_s": elapsed,
            "rate": totals.d / elapsed, "lost": summary.published - totals.d, "duplicated": totals.n - totals.d,
            "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "cpu_ms_per_event": {name: 1000 * s / max(1, totals.d) for name, s in cpu.items()}}


def _emulator_push(resolved: Any, state: Any, clients: Any, on: bool) -> None:
    """Switch the ingest subscription to the emulator's own push into the function (on) or back to pull for the
    delivery process (off), stopping or restarting the delivery process so exactly one of them delivers."""
    from ltmctl.local import stack

    path = f"projects/{state.project}/subscriptions/{resolved.pipeline.subscription}"
    if on:
        stack.restart_piece(resolved, "delivery", stop_only=True)
    push = {"push_endpoint": state.ingest_url} if on else {}
    clients.subscriber.update_subscription(request={"subscription": {"name": path, "push_config": push},
                                                    "update_mask": {"paths": ["push_config"]}})
    if not on:
        stack.restart_piece(resolved, "delivery")


def _cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(cpu.items(), key=lambda kv: -kv[1]) if ms >= 0.005)


def run(args: list[str] | None = None) -> dict:
    args = list(args or [])
    if args[:1] == ["--steady"]:
        return steady(float(args[1]) if len(args) > 1 else 500.0)
    if args:
        raise SystemExit(f"ingest: unknown arguments {args}; use --steady EVENTS_PER_S")
    with local_stack() as (resolved, state, clients):
        pull = _pull_ceiling(state, clients)
        streaming = _streaming_ceiling(state, clients)
        _emulator_push(resolved, state, clients, on=True)
        try:
            base = _run(resolved, state, clients, BASELINE_EVENTS, seed=7)
        finally:
            _emulator_push(resolved, state, clients, on=False)
        main = _run(resolved, state, clients, EVENTS, seed=11)
    ratio = main["rate"] / base["rate"]
    met = ratio >= 15 and main["rate"] >= 1000 and main["lost"] == 0 and main["duplicated"] == 0
    return report("ingest", [
        ("events published", main["published"]), ("publish s", main["publish_s"]),
        ("all stored after s", main["elapsed_s"]), ("events/s stored", main["rate"]),
        ("publish→stored p50 s", main["p50"]), ("publish→stored p99 s", main["p99"]),
        ("lost", main["lost"]), ("duplicated rows", main["duplicated"]),
        ("CPU ms per event, by piece", _cpu_line(main["cpu_ms_per_event"])),
        ("CPU ms per event, all pieces", sum(main["cpu_ms_per_event"].values())),
        (f"baseline: emulator push, {base['published']:,} events, events/s", base["rate"]),
        ("baseline publish→stored p99 s", base["p99"]),
        ("baseline lost / duplicated", f"{base['lost']} / {base['duplicated']}"),
        ("broker ceiling: synchronous pull+ack msgs/s", pull),
        ("streaming pull msgs/s (for the record)", streaming),
        ("stored/s ÷ pull ceiling", main["rate"] / pull),
    ], ratio_name="stored/s ÷ emulator push", ratio=ratio, target="≥ 15× and ≥ 1,000 events/s, 0 lost, 0 duplicated",
        met=met, extra={"config": {"events": EVENTS, "baseline_events": BASELINE_EVENTS,
                                   "ceiling_messages": CEILING_MESSAGES},
                        "cpu_ms_per_event": main["cpu_ms_per_event"],
                        "baseline_cpu_ms_per_event": base["cpu_ms_per_event"]})


def steady(rate: float) -> dict:
    with local_stack() as (resolved, state, clients):
        result = _run(resolved, state, clients, int(rate * STEADY_S), seed=13, rate=rate)
    met = result["p99"] <= 2.0 and result["lost"] == 0
    return report("ingest_steady", [
        ("events published", result["published"]), ("target rate events/s", rate),
        ("publish s", result["publish_s"]), ("all stored after s", result["elapsed_s"]),
        ("publish→stored p50 s", result["p50"]), ("publish→stored p99 s", result["p99"]),
        ("lost", result["lost"]), ("duplicated rows", result["duplicated"]),
        ("CPU ms per event, by piece", _cpu_line(result["cpu_ms_per_event"])),
    ], ratio_name="publish→stored p99 s", ratio=result["p99"], target="≤ 2 s, 0 lost", met=met,
        extra={"config": {"rate": rate, "seconds": STEADY_S}})


if __name__ == "__main__":
    run(sys.argv[1:])
