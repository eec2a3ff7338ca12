"""memory: the API's resident memory (RSS of the uvicorn process of a local stack) under many distinct keys and
under large-answer keys, against its own idle RSS measured first in the same run (the baseline).

Distinct keys: LTM_BENCH_KEYS (10,000) distinct get_data cache keys, requested once each by 16 concurrent
clients (every answer a cache miss, every answer kept). They are 100 action:user keys of 5 events each, each
asked with up to 100 different `limit`s: the hostile reader's pattern. The local BigQuery answers about 5 queries
a second whatever the table holds, so 10,000 keys take over half an hour here.

Large answers: 4 keys of 40 events with 800 KB payloads each (32 MB a key), requested with every `limit` from 1
to 40 and two `days`: the trial's pattern that took the API from 129 MB to 1 GB in 20 requests.

The cache is bounded at its default 128 MiB, every answer at 4 MiB. Target: peak RSS ≤ 1 GiB, half of the 2 GiB
Cloud Run instance, the other half room for requests in flight and the runtime."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import local_stack, report

CLIENTS = 16
TARGET_BYTES = 1024**3
LARGE_KEYS, LARGE_EVENTS, LARGE_PAYLOAD = 4, 40, 800_000


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _row(action: str, payload: dict, age_s: int) -> dict:
    moment = (datetime.now(UTC) - timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"event_id": str(uuid.uuid4()), "action_id": action, "user_email": "mem@example.com", "app_id": "bench",
            "app_department": "mem", "event_time": moment, "message_id": "m", "publish_time": moment,
            "ingest_time": moment, "payload": json.dumps(payload)}


TOKEN_TTL_S = 3600
REMINT_S = 600  # a run at 10,000 keys outlives one assertion: each is replaced long before it expires


async def _get_all(base: str, paths: list[str], mint: Callable[[int], str], peak: list[int],
                   pid: int) -> dict[int, int]:
    import httpx

    statuses: dict[int, int] = {}
    queue = list(reversed(paths))
    token = [mint(TOKEN_TTL_S), time.monotonic()]

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            if time.monotonic() - token[1] > REMINT_S:
                token[:] = [mint(TOKEN_TTL_S), time.monotonic()]
            response = await client.get(queue.pop(), headers={"x-goog-iap-jwt-assertion": token[0]})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if sum(statuses.values()) % 50 == 0:
                peak[0] = max(peak[0], rss(pid))

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(CLIENTS)))
    peak[0] = max(peak[0], rss(pid))
    return statuses


def run() -> dict:
    from ltmctl.local.stack import mint_token

    keys = int(os.environ.get("LTM_BENCH_KEYS", "10000"))
    with local_stack() as (resolved, state, clients):
        pid = state.pieces["api"].pid
        table = f"{state.project}.{resolved.pipeline.dataset}.{resolved.pipeline.table}"
        token = functools.partial(mint_token, resolved, "bench@example.com")
        tag = uuid.uuid4().hex[:6]
        actions = [f"k{tag}-{i}" for i in range(100)]
        rows = [_row(action, {"i": i}, 600 + i) for action in actions for i in range(5)]
        assert clients.bigquery.insert_rows_json(table, rows) == []
        per_action = -(-keys // len(actions))
        small = [f"/get_data/{a}:mem@example.com?limit={n}" for n in range(1, per_action + 1) for a in actions][:keys]

        asyncio.run(_get_all(state.api_url, ["/healthz"] * 50, token, [0], pid))
        idle = rss(pid)
        peak = [idle]
        started = time.monotonic()
        distinct = asyncio.run(_get_all(state.api_url, small, token, peak, pid))
        distinct_s, after_distinct = time.monotonic() - started, rss(pid)
        # Inserted only now: bqemulator scans the whole table for every query, so 128 MB of large rows would make
        # the distinct-keys phase measure the emulator instead of the API.
        large = [f"big{tag}-{k}" for k in range(LARGE_KEYS)]
        for action in large:
            for start in range(0, LARGE_EVENTS, 5):  # 4 MB a request
                rows = [_row(action, {"blob": "x" * LARGE_PAYLOAD, "i": i}, 60 + i)
                        for i in range(start, start + 5)]
                assert clients.bigquery.insert_rows_json(table, rows) == []
        paths = [f"/get_data/{a}:mem@example.com?limit={limit}&days={days}"
                 for a in large for limit in range(1, LARGE_EVENTS + 1) for days in (30, 90)]
        started = time.monotonic()
        peak_distinct = peak[0]
        large_statuses = asyncio.run(_get_all(state.api_url, paths, token, peak, pid))
        large_s, after_large = time.monotonic() - started, rss(pid)

    mib = 1024 * 1024
    errors = sum(n for status, n in distinct.items() if status != 200) + sum(
        n for status, n in large_statuses.items() if status != 200)
    rows = [("idle RSS (baseline), MiB", idle / mib),
            (f"after {keys:,} distinct keys, MiB", after_distinct / mib),
            ("peak during distinct keys, MiB", peak_distinct / mib),
            ("distinct keys: requests/s", keys / distinct_s),
            (f"after {len(paths):,} large answers, MiB", after_large / mib),
            ("peak overall, MiB", peak[0] / mib),
            ("large answers offered, MiB (sum of event bytes asked for)",
             LARGE_KEYS * 2 * sum(range(1, LARGE_EVENTS + 1)) * LARGE_PAYLOAD / mib),
            ("large answers: seconds", large_s),
            ("non-200 answers", errors),
            ("answers by status (distinct; large)", f"{sorted(distinct.items())}; {sorted(large_statuses.items())}")]
    return report("memory", rows, ratio_name="peak / idle RSS", ratio=peak[0] / idle,
                  target=f"peak ≤ {TARGET_BYTES // mib} MiB (half a 2 GiB instance), 0 errors",
                  met=peak[0] <= TARGET_BYTES and errors == 0)
