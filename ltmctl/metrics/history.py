"""The local stack's metrics over a window: snapshots of the services' cumulative counters, kept in a bounded file
by the stack's recorder (`ltmctl.local.recorder`), and the figures of a window computed from them.

A window's figures are increases of cumulative counters and histograms between the snapshot at or before the
window's start and the one at or before its end (or a live read, for "now"), summed over the snapshots between,
as Prometheus' increase() does: a counter that went down means its service restarted, and what it counted since
is its whole new value.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltmctl.metrics import prometheus

DATA_ROUTES = ("/get_data/{action_id}:{user_email}", "/app_info/{app_id}:{app_department}")
INGEST_OUTCOMES = ("stored", "dead_lettered", "retried")


@dataclass
class Counts:
    """One service's cumulative counters at one moment (or their increase over a window)."""

    counters: dict[str, float] = field(default_factory=dict)
    buckets: list[tuple[float, float]] = field(default_factory=list)  # cumulative (upper bound, count)

    def went_down_from(self, before: Counts) -> bool:
        if any(value < before.counters.get(name, 0.0) for name, value in self.counters.items()):
            return True
        if any(name not in self.counters for name in before.counters):
            return True  # a series that vanished: a new process that has not counted it yet
        was = dict(before.buckets)
        return any(count < was.get(bound, 0.0) for bound, count in self.buckets)

    def minus(self, before: Counts) -> Counts:
        was = dict(before.buckets)
        return Counts({name: value - before.counters.get(name, 0.0) for name, value in self.counters.items()},
                      [(bound, count - was.get(bound, 0.0)) for bound, count in self.buckets])

    def plus(self, other: Counts) -> Counts:
        mine = dict(self.buckets)
        bounds = sorted(set(mine) | {bound for bound, _ in other.buckets})
        theirs = dict(other.buckets)
        names = set(self.counters) | set(other.counters)
        return Counts({n: self.counters.get(n, 0.0) + other.counters.get(n, 0.0) for n in names},
                      [(b, mine.get(b, 0.0) + theirs.get(b, 0.0)) for b in bounds])

    def as_json(self) -> dict[str, Any]:
        # JSON has no infinity: the +Inf bucket is written as the string "+Inf", as Prometheus writes it.
        return {"counters": self.counters,
                "buckets": [["+Inf" if bound == float("inf") else bound, count] for bound, count in self.buckets]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Counts:
        return cls({str(k): float(v) for k, v in raw.get("counters", {}).items()},
                   [(float(bound), float(count)) for bound, count in raw.get("buckets", [])])


@dataclass
class Snapshot:
    at: float  # time.time()
    services: dict[str, Counts]  # "api", "ingest"

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "services": {name: c.as_json() for name, c in self.services.items()}}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Snapshot:
        return cls(float(raw["at"]), {name: Counts.from_json(c) for name, c in raw["services"].items()})


def api_counts(text: str) -> Counts:
    """The API's data routes (health checks and /metrics left out): requests by status class, latency buckets."""
    samples = prometheus.parse(text)
    counters: dict[str, float] = {}
    merged: dict[float, float] = {}
    for route in DATA_ROUTES:
        for name, labels, value in samples:
            if name == "ltm_api_requests_total" and labels.get("route") == route:
                key = f"requests {labels['status_class']}"
                counters[key] = counters.get(key, 0.0) + value
        for bound, count in prometheus.buckets(samples, "ltm_api_request_duration_seconds", route=route):
            merged[bound] = merged.get(bound, 0.0) + count
    return Counts(counters, sorted(merged.items()))


def ingest_counts(text: str) -> Counts:
    samples = prometheus.parse(text)
    counters = {outcome: prometheus.total(samples, "ltm_ingest_messages_total", outcome=outcome)
                for outcome in INGEST_OUTCOMES}
    counters["inserts"] = prometheus.total(samples, "ltm_ingest_inserts_total")
    for name, labels, value in samples:
        if name == "ltm_ingest_dead_letters_total":
            counters[f"dead letters {labels['error']}"] = value
    return Counts(counters)


# --- the bounded file ---------------------------------------------------------------------------------------------


def append(path: Path, snapshot: Snapshot, max_bytes: int, max_count: int, count: int | None = None) -> int:
    """Add a snapshot; past either bound, rewrite the file with the newest three quarters of both (atomically:
    a reader sees the old file or the new one). `count`: the snapshots the file held before, when the caller
    keeps track (else the file is read to count them). Returns how many it holds now."""
    line = json.dumps(snapshot.as_json(), separators=(",", ":")) + "\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if count is None:
        count = len(_lines(path))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(line)
    count += 1
    if count <= max_count and path.stat().st_size <= max_bytes:
        return count
    kept: list[str] = []
    budget = max_bytes * 3 // 4
    for entry in reversed(_lines(path)[-max(1, max_count * 3 // 4):]):
        budget -= len(entry.encode())
        if budget < 0 and kept:
            break
        kept.append(entry)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(reversed(kept))
    os.replace(tmp, path)
    return len(kept)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines(keepends=True)
    except FileNotFoundError:
        return []


def read(path: Path) -> list[Snapshot]:
    """Every snapshot, oldest first; a line that does not parse (the recorder was killed mid-line) is skipped."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(Snapshot.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return sorted(out, key=lambda s: s.at)


# --- windows ------------------------------------------------------------------------------------------------------


def increase(snapshots: list[Snapshot], service: str) -> tuple[Counts, int]:
    """What `service` counted from the first snapshot to the last, and how many restarts that spans."""
    total, restarts = Counts(), 0
    present = [s.services[service] for s in snapshots if service in s.services]
    for before, after in zip(present, present[1:], strict=False):
        if after.went_down_from(before):
            restarts += 1
            total = total.plus(after)  # counted from zero since the restart
        else:
            total = total.plus(after.minus(before))
    return total, restarts


def span(snapshots: list[Snapshot], start: float, end: float) -> list[Snapshot]:
    """The snapshots a window [start, end] is computed from: the last at or before start, every one after it up to
    end. Empty when none is at or before start (the history does not reach back that far)."""
    first = max((i for i, s in enumerate(snapshots) if s.at <= start), default=None)
    if first is None:
        return []
    return [s for s in snapshots[first:] if s.at <= end]
