"""api: /get_data with 32 concurrent clients, hot (cached) and cold keys, on the local stack; the baseline, in
the same run, is one BigQuery query per request (the same API with its cache off, as the seed's design).
Target: hot p99 ≤ 20 ms with 0 errors. Also, without the stack: BigQuery requests per cold answer on Google Cloud
(`gcp_round_trips`, counted in the strict fake's request log), the API as it is against its old query path.

Load generators. The Python client (32 asyncio httpx clients in this process) competes with the API for the
machine's cores, and on a 2-core machine it, not the API, sets much of the measured latency. So when `wrk` is on
PATH (Debian: `apt-get install wrk`), the hot figures come from wrk instead: one thread, 32 connections, for
WRK_SECONDS, a Lua script that adds the assertion header and rotates over the hot keys, and its `--latency`
distribution parsed for p50/p99; non-2xx answers and socket errors count as errors. The Python client's hot
figures are printed too ("hot (python client)"), so both are visible side by side. Cold keys (each requested once)
and the baseline always use the Python client: they are bound by BigQuery, not by the client. Without wrk
everything uses the Python client, as before. Set LTM_BENCH_NO_WRK=1 to force the Python client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from bench.common import local_stack, percentile, report

CLIENTS = 32
HOT_REQUESTS = 3200
COLD_KEYS = 320
HOT_KEYS = 4
WRK_SECONDS = 10

_WRK_SCRIPT = """\
local paths = {%(paths)s}
local i = 0
wrk.headers["x-goog-iap-jwt-assertion"] = "%(token)s"
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


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


def _duration(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """req/s, p50, p99 and errors from `wrk --latency` output."""
    latency = {q: _duration(v) for q, v in re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.M)}
    rate = re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.M)
    if set(latency) != {"50", "99"} or not rate:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)",
                                            (re.search(r"^\s+Socket errors:.*$", output, re.M) or [""])[0]))
    non_2xx = re.search(r"^\s+Non-2xx or 3xx responses:\s+(\d+)", output, re.M)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return {"req/s": float(rate.group(1)), "p50 ms": latency["50"] * 1000, "p99 ms": latency["99"] * 1000,
            "errors": errors}


def _wrk(base: str, paths: list[str], token: str) -> dict[str, float]:
    """Hot-key figures from wrk: one thread (the other core is the API's), CLIENTS connections."""
    lua = _WRK_SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths), "token": token}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{CLIENTS}", f"-d{WRK_SECONDS}s", "--timeout", "30s", "--latency",
                              "-s", f.name, base], capture_output=True, text=True, timeout=WRK_SECONDS + 60,
                             check=True).stdout
    finally:
        os.unlink(f.name)
    return parse_wrk(out)


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


GCP_COLD_KEYS = 32


def _old_run(client, sql, config, timeout_s):  # type: ignore[no-untyped-def]
    """The API's query path before short queries: a job inserted, then its results fetched."""
    from google.cloud.bigquery import DEFAULT_RETRY
    from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

    retry, job_retry = DEFAULT_RETRY.with_timeout(timeout_s), DEFAULT_JOB_RETRY.with_timeout(timeout_s)
    job = client.query(sql, job_config=config, retry=retry, job_retry=None, timeout=timeout_s)
    return job.result(timeout=timeout_s, retry=retry, job_retry=job_retry)


def gcp_round_trips() -> dict[str, float]:
    """BigQuery requests per cold /get_data answer on Google Cloud, counted in the strict fake's request log: the
    API as it is (one jobs.query in short-query mode) and, in the same process, with the old query path."""
    from pathlib import Path

    from fastapi.testclient import TestClient
    from google.cloud import bigquery
    from google.oauth2.credentials import Credentials

    from api_service import iap_local, queries
    from api_service.app import build_bigquery_client, create_app
    from api_service.iap import HEADER
    from api_service.settings import Settings
    from ltmctl.gcp.fake import FakeGcp

    audience = "/projects/123456789012/global/backendServices/1"
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, FakeGcp("bench-project", "123456789012") as fake:
        fake.enable("bigquery.googleapis.com")
        private_path, jwks_path = iap_local.generate_keypair(Path(tmp))
        pem = private_path.read_bytes()
        header = {HEADER: iap_local.mint(pem, iap_local.key_id(pem), audience, "bench@example.com")}
        settings = Settings(project="bench-project", iap_audience=audience, iap_jwks_file=str(jwks_path))
        client = build_bigquery_client(settings, credentials=Credentials(fake.token_for(fake.owner)),
                                       api_endpoint=fake.endpoint)
        client.create_dataset("bench-project.ltm")
        client.create_table(bigquery.Table(settings.table_id, schema=[bigquery.SchemaField("event_id", "STRING")]))
        current = queries._run
        try:
            for name, run_query in (("before (client.query)", _old_run), ("after (query_and_wait)", current)):
                queries._run = run_query
                fake.clear_requests()
                with TestClient(create_app(settings, bigquery_client=client)) as http:
                    for i in range(GCP_COLD_KEYS):
                        answer = http.get(f"/get_data/cold-{name[:5]}-{i}:u@example.com", headers=header)
                        assert answer.status_code == 404  # the fake evaluates no such SQL: every answer is cold
                out[name] = len([r for r in fake.requests if r.method_id.startswith("bigquery.")]) / GCP_COLD_KEYS
        finally:
            queries._run = current
            client.close()
    return out


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
        hot_python = _figures(*asyncio.run(_load(state.api_url, hot_paths, token)))
        use_wrk = shutil.which("wrk") is not None and not os.environ.get("LTM_BENCH_NO_WRK")
        hot = _wrk(state.api_url, hot_paths[:HOT_KEYS], token) if use_wrk else hot_python
        cold = _figures(*asyncio.run(_load(state.api_url, cold_paths, token)))
        port = free_ports(1)[0]
        baseline_proc = _uncached_api(state, resolved, port)
        try:
            base_paths = hot_paths[: len(cold_paths)]  # the hot keys again, but every request queries BigQuery
            baseline = _figures(*asyncio.run(_load(f"http://127.0.0.1:{port}", base_paths, token)))
        finally:
            baseline_proc.terminate()
            baseline_proc.wait(10)
    round_trips = gcp_round_trips()
    ratio = hot["req/s"] / baseline["req/s"]
    met = hot["p99 ms"] <= 20 and hot["errors"] == 0 and cold["errors"] == 0
    return report("api", [
        *((f"hot {k}", v) for k, v in hot.items()),
        *(((f"hot (python client) {k}", v) for k, v in hot_python.items()) if use_wrk else ()),
        *((f"cold {k}", v) for k, v in cold.items()),
        *((f"baseline (1 query/request) {k}", v) for k, v in baseline.items()),
        *((f"gcp cold: BigQuery requests per answer, {k}", v) for k, v in round_trips.items()),
        ("concurrent clients", CLIENTS), ("hot load generator", "wrk" if use_wrk else "python httpx"),
    ], ratio_name="hot req/s / baseline req/s", ratio=ratio, target="hot p99 ≤ 20 ms, 0 errors", met=met)


if __name__ == "__main__":
    run()
