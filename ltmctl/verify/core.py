"""The checks `ltmctl verify` runs, against a `Probe` (the local stack's or a gcp environment's; see probes.py).

Each check returns what it saw and how long it took; one failing never stops the others, so a broken pipeline is
described completely in one run. Every event carries the reserved app id `ltm-verify` (analysts exclude it) and a
run id, in its action id and in an attribute, so a run only ever looks at, and acknowledges, what it sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ltmctl.text import cut

APP_ID = "ltm-verify"  # reserved: every event verify publishes carries it (README, "ltmctl verify")
DEPARTMENT = "verify"
RUN_ATTRIBUTE = "ltm_verify_run"


class CheckFailed(Exception):
    """What a check saw when it failed; the check's hint says where to look."""


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all (connection refused, timeout)
    body: Any
    detail: str = ""  # why there is no answer, or a redirect's Location


class Probe(Protocol):
    """The pipeline's parts as verify reaches them; every call raises CheckFailed with what went wrong."""

    metrics_poll_s: float  # how often to look for the API's requests in metrics
    metrics_lag: str | None  # what they reach metrics through, when that takes a while (else None)

    def publish(self, data: bytes, attributes: dict[str, str]) -> str: ...
    def rows(self, event_id: str) -> list[dict[str, Any]]: ...
    def get(self, path: str, *, authenticated: bool) -> Answer: ...
    def dead_letter(self, run_id: str, wait_s: float) -> dict[str, str] | None: ...
    def api_requests(self) -> float | None: ...
    def hints(self) -> dict[str, str]: ...


@dataclass
class Result:
    name: str
    ok: bool
    saw: str
    seconds: float
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Run:
    """One verify run: its id, its events and what each check learnt that a later one needs."""

    probe: Probe
    timeout_s: float
    metrics_wait_s: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = 0.0
    event: dict[str, Any] = field(default_factory=dict)
    duplicate: dict[str, Any] = field(default_factory=dict)
    stored: bool = False
    requests_before: float | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()
        now = datetime.now(UTC).replace(microsecond=0)
        user = f"verify-{self.run_id}@ltm-verify.invalid"

        def make(action: str) -> dict[str, Any]:
            return {"event_id": str(uuid.uuid4()), "action_id": action, "user_email": user, "app_id": APP_ID,
                    "app_department": DEPARTMENT, "source": "other",
                    "event_time": now.isoformat().replace("+00:00", "Z"),
                    "payload": {"run": self.run_id, "nested": {"list": [1, 2.5, "x"], "flag": True}}}

        self.event = make(f"verify-{self.run_id}")
        self.duplicate = make(f"verify-{self.run_id}-dup")

    @property
    def deadline(self) -> float:
        return self.started + self.timeout_s

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def wait_for(self, look: Callable[[], Any], until: float | None = None, every: float = 1.0) -> Any:
        """`look()` until it answers something truthy or time is up (the run's deadline, or `until`)."""
        end = self.deadline if until is None else until
        while True:
            seen = look()
            if seen or self.clock() >= end:
                return seen
            self.sleep(min(every, max(0.0, end - self.clock())))


def _attributes(run: Run) -> dict[str, str]:
    return {RUN_ATTRIBUTE: run.run_id}


def _describe(answer: Answer) -> str:
    if answer.status is None:
        return f"no answer ({answer.detail})"
    body = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
    text = f"HTTP {answer.status} {cut(body, 160)}"
    return text + (f" → {answer.detail}" if answer.detail else "")


def _stamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return None


def _field_differences(sent: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """Where a stored row differs from what was sent: timestamps must come back as TIMESTAMP values (datetimes) and
    the payload as JSON (an object equal to the one sent), every other field unchanged."""
    out = []
    for key, value in sent.items():
        got = row.get(key)
        if key == "event_time":
            if not isinstance(got, datetime) or _stamp(got) != _stamp(value):
                out.append(f"event_time: sent {value}, stored {got!r} (want a TIMESTAMP equal to it)")
        elif key == "payload":
            decoded = json.loads(got) if isinstance(got, str) else got
            if not isinstance(decoded, dict) or decoded != value:
                out.append(f"payload: sent {json.dumps(value)}, stored {got!r} (want JSON equal to it)")
        elif got != value:
            out.append(f"{key}: sent {value!r}, stored {got!r}")
    return out


# --- the checks -----------------------------------------------------------------------------------------------------

def check_ready(run: Run) -> str:
    run.requests_before = _requests(run)
    # With a credential: on Cloud Run IAP guards every path, /readyz included.
    answer = run.probe.get("/readyz", authenticated=True)
    if answer.status != 200:
        raise CheckFailed(f"/readyz answered {_describe(answer)}")
    return "/readyz → 200"


def check_stored(run: Run) -> str:
    probe = run.probe
    message_id = probe.publish(json.dumps(run.event).encode(), _attributes(run))
    # The duplicate is sent now too (two messages, one event id), so its second copy has the whole run to arrive.
    duplicate = json.dumps(run.duplicate).encode()
    probe.publish(duplicate, _attributes(run))
    probe.publish(duplicate, _attributes(run))
    published = run.clock()
    rows = run.wait_for(lambda: probe.rows(run.event["event_id"]))
    if not rows:
        raise CheckFailed(f"event {run.event['event_id']} (message {message_id}) not stored within "
                          f"{run.timeout_s:.0f}s")
    arrived = run.clock() - published
    # Exactly once: a second copy would show within a moment (one delivery, one row id); look again briefly.
    run.sleep(min(2.0, run.remaining()))
    rows = probe.rows(run.event["event_id"])
    if len(rows) != 1:
        raise CheckFailed(f"event {run.event['event_id']} stored {len(rows)} times, want exactly once")
    differences = _field_differences(run.event, rows[0])
    if differences:
        raise CheckFailed("; ".join(differences))
    run.stored = True
    return f"event {run.event['event_id']} stored once after {arrived:.1f}s, every field as sent"


def check_get_data(run: Run) -> str:
    if not run.stored:
        raise CheckFailed("skipped: the event was not stored")
    path = f"/get_data/{run.event['action_id']}:{run.event['user_email']}"
    answer = run.probe.get(path, authenticated=True)
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise CheckFailed(f"GET {path} answered {_describe(answer)}")
    ids = [e.get("event_id") for e in answer.body.get("events", [])]
    if ids != [run.event["event_id"]]:
        raise CheckFailed(f"GET {path} → 200 with events {ids}, want [{run.event['event_id']}]")
    return f"GET {path} → 200 with the event"


def check_refused(run: Run) -> str:
    path = f"/app_info/{APP_ID}:{DEPARTMENT}"
    answer = run.probe.get(path, authenticated=False)
    if answer.status != 401:
        raise CheckFailed(f"GET {path} without a credential answered {_describe(answer)}, want 401")
    return f"GET {path} without a credential → 401"


def check_duplicate(run: Run) -> str:
    probe = run.probe
    event_id = run.duplicate["event_id"]
    # Both copies reach the table unless BigQuery's best-effort de-duplication on the row id drops one; either way
    # the API must count one. Wait for the first, then give the second a few seconds.
    rows = run.wait_for(lambda: probe.rows(event_id))
    if not rows:
        raise CheckFailed(f"duplicated event {event_id} not stored within {run.timeout_s:.0f}s")
    rows = run.wait_for(lambda: len(probe.rows(event_id)) >= 2 and 2,
                        until=min(run.deadline, run.clock() + 5.0)) or len(rows)
    path = f"/get_data/{run.duplicate['action_id']}:{run.duplicate['user_email']}"
    answer = probe.get(path, authenticated=True)
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise CheckFailed(f"GET {path} answered {_describe(answer)}")
    if answer.body.get("count") != 1 or len(answer.body.get("events", [])) != 1:
        raise CheckFailed(f"published twice, stored {rows} time(s); the API counted {answer.body.get('count')} "
                          f"with {len(answer.body.get('events', []))} event(s), want 1")
    return f"published twice, stored {rows} time(s), counted once by the API"


def check_dead_letter(run: Run) -> str:
    # Missing required fields: the contract refuses it (push mode: with reason `schema`), and so does the table
    # (bigquery mode: the write fails until the subscription's dead-letter policy moves it).
    bad = {"action_id": f"verify-{run.run_id}-invalid", "app_id": APP_ID, "app_department": DEPARTMENT}
    run.probe.publish(json.dumps(bad).encode(), _attributes(run))
    letter = run.probe.dead_letter(run.run_id, run.remaining())
    if letter is None:
        raise CheckFailed(f"the invalid event did not reach the dead letters within {run.timeout_s:.0f}s")
    if letter.get("mode") == "bigquery":  # the gcp probe marks it: no reason to expect
        return (f"invalid event dead-lettered after {letter.get('CloudPubSubDeadLetterSourceDeliveryCount', '?')} "
                "delivery attempts (bigquery mode: no reason)")
    if not letter.get("error"):
        raise CheckFailed(f"dead letter carries no reason: attributes {sorted(letter)}")
    return f"invalid event dead-lettered: {letter['error']}: {cut(letter.get('error_detail', ''), 80)}"


def _requests(run: Run) -> float | None:
    try:
        return run.probe.api_requests()
    except CheckFailed:
        return None


def check_metrics(run: Run) -> str:
    before = run.requests_before or 0.0
    end = run.clock() + run.metrics_wait_s
    # Cloud Monitoring shows Cloud Run's request counts only minutes later; locally /metrics is immediate.
    seen = run.wait_for(lambda: (n := run.probe.api_requests()) is not None and n > before and n, until=end,
                        every=run.probe.metrics_poll_s)
    if not seen:
        raise CheckFailed(f"the API's request count did not grow past {before:.0f} within {run.metrics_wait_s:.0f}s")
    waited = f" (waited {run.clock() - (end - run.metrics_wait_s):.0f}s for {run.probe.metrics_lag})" \
        if run.probe.metrics_lag else ""
    return f"API requests counted: {before:.0f} → {seen:.0f}{waited}"


CHECKS: list[tuple[str, str, Callable[[Run], str]]] = [
    ("api", "API ready", check_ready),
    ("stored", "event stored exactly once, as sent", check_stored),
    ("get_data", "GET /get_data with a credential answers the event", check_get_data),
    ("refused", "GET /app_info without a credential is refused", check_refused),
    ("duplicate", "an event published twice is counted once", check_duplicate),
    ("dead_letter", "an invalid event is dead-lettered with its reason", check_dead_letter),
    ("metrics", "the API's requests show in metrics", check_metrics),
]


def run(probe: Probe, *, timeout_s: float, metrics_wait_s: float, on_result: Callable[[Result], None] | None = None,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> list[Result]:
    """Every check in order; returns one Result each (and hands each to `on_result` as it is known)."""
    state = Run(probe, timeout_s, metrics_wait_s, clock=clock, sleep=sleep)
    hints = probe.hints()
    results = []
    for key, name, check in CHECKS:
        started = clock()
        try:
            result = Result(name, True, check(state), clock() - started)
        except CheckFailed as exc:
            result = Result(name, False, str(exc), clock() - started, hints.get(key))
        results.append(result)
        if on_result:
            on_result(result)
    return results
