"""api: /get_data with 32 concurrent clients, hot (cached) and cold keys, on the local stack; the baseline, in
the same run, is one BigQuery query per request (the same API with its cache off, as the seed's design).
Target: hot p99 ≤ 20 ms with 0 errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

from bench.common import local_stack, percentile, report

CLIENTS = 32
HOT_REQUESTS = 3200
COLD_KEYS = 320
HOT_KEYS = 4


def _rows(keys: list[tuple[str, str]]) -> list[dict]:
    rows = []
    for action, user in keys:
        for i in range(3):
            rows.append({"event_id": str(uuid.uuid4()), "action_id": action, "user_email": user, "app_id": "bench",
                         "app_department": "perf", "event_time": f"2026-11-2{i}T10:00:00Z", "message_id": "m",
                         "publish_time": "2026-11-29T10:00:00Z", "ingest_time": "2026-11-29T10:00:00Z",
                         "payload": json.dumps({"i": i})})
    return rows


async def _load(base: str, paths: list[str], token: str) -> tuple[list[float], int, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, headers={"x-goog-iap-jwt-assertion": token},
                                     timeout=30) as http:
            while not queue.empty():
                path = queue.get_nowait()
                started = time.perf_counter()
                response = await http.get(path)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return latencies, errors, time.perf_counter() - started


def _uncached_api(state, resolved, port: int) -> subprocess.Popen:
    from ltmctl.local.pieces import local_audience

    env = {**os.environ, "LTM_PROJECT": state.project, "LTM_DATASET": resolved.pipeline.dataset,
           "LTM_TABLE": resolved.pipeline.table, "BIGQUERY_EMULATOR_HOST": state.bigquery_endpoint,
           "LTM_IAP_AUDIENCE": local_audience(state.project), "LTM_CACHE_TTL_S": "0",
           "LTM_IAP_JWKS_FILE": str(resolved.state_dir / "iap" / "iap-jwks.json")}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api_service.app:from_env", "--factory", "--port",
                             str(port), "--no-access-log", "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the uncached API did not start")


def _figures(latencies: list[float], errors: int, seconds: float) -> dict[str, float]:
    return {"req/s": len(latencies) / seconds, "p50 ms": percentile(latencies, 0.5) * 1000,
            "p99 ms": percentile(latencies, 0.99) * 1000, "errors": errors}


def run() -> dict:
    from ltmctl.local.processes import free_ports
    from ltmctl.local.stack import mint_token

    with local_stack() as (resolved, state, clients):
        keys = [(f"bench-{i}", f"user{i}@example.com") for i in range(COLD_KEYS + HOT_KEYS)]
        rows = _rows(keys)
        table = f"{state.project}.{resolved.pipeline.dataset}.{resolved.pipeline.table}"
        for start in range(0, len(rows), 500):
            assert clients.bigquery.insert_rows_json(table, rows[start:start + 500]) == []
        token = mint_token(resolved, "bench@example.com", 3600)
        hot_paths = [f"/get_data/{a}:{u}" for a, u in keys[:HOT_KEYS]] * (HOT_REQUESTS // HOT_KEYS)
        cold_paths = [f"/get_data/{a}:{u}" for a, u in keys[HOT_KEYS:]]
        asyncio.run(_load(state.api_url, hot_paths[:HOT_KEYS], token))  # warm the hot keys
        hot = _figures(*asyncio.run(_load(state.api_url, hot_paths, token)))
        cold = _figures(*asyncio.run(_load(state.api_url, cold_paths, token)))
        port = free_ports(1)[0]
        baseline_proc = _uncached_api(state, resolved, port)
        try:
            base_paths = hot_paths[: len(cold_paths)]  # the hot keys again, but every request queries BigQuery
            baseline = _figures(*asyncio.run(_load(f"http://127.0.0.1:{port}", base_paths, token)))
        finally:
            baseline_proc.terminate()
            baseline_proc.wait(10)
    ratio = hot["req/s"] / baseline["req/s"]
    met = hot["p99 ms"] <= 20 and hot["errors"] == 0 and cold["errors"] == 0
    return report("api", [
        *((f"hot {k}", v) for k, v in hot.items()), *((f"cold {k}", v) for k, v in cold.items()),
        *((f"baseline (1 query/request) {k}", v) for k, v in baseline.items()),
        ("concurrent clients", CLIENTS),
    ], ratio_name="hot req/s / baseline req/s", ratio=ratio, target="hot p99 ≤ 20 ms, 0 errors", met=met)


if __name__ == "__main__":
    run()
