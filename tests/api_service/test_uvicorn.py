"""The service as it runs for real: `uvicorn api_service.app:from_env --factory`, called over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_service.iap import HEADER
from ltmctl.local.processes import free_ports
from tests.api_service.support import AUDIENCE, HOSTILE, Keys, event_row, unique

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    log_path: Path

    def log_lines(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def start_server(stack: Any, keys: Keys, directory: Path, **env: str) -> tuple[subprocess.Popen, Server]:
    """uvicorn in its own process, configured only through the environment, as in the container."""
    port = free_ports(1)[0]
    environment = {
        **os.environ, "LTM_PROJECT": stack.project, "BIGQUERY_EMULATOR_HOST": stack.state.bigquery_endpoint,
        "LTM_IAP_AUDIENCE": AUDIENCE, "LTM_IAP_JWKS_FILE": str(keys.jwks_path), **env}
    log_path = directory / f"api-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api_service.app:from_env", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"],
            cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log_path.read_text()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return process, server
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"uvicorn did not answer in 30 s: {log_path.read_text()}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def server(stack: Any, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    process, running = start_server(stack, keys, tmp_path_factory.mktemp("uvicorn"))
    try:
        yield running
    finally:
        stop_server(process)


def test_get_data_over_http(server: Server, stack: Any, keys: Keys, insert) -> None:
    action = unique("http")
    insert([event_row(action_id=action, user_email="web@example.com")])
    with httpx.Client(base_url=server.url, headers={HEADER: keys.token()}) as client:
        first = client.get(f"/get_data/{action}:web@example.com", headers={"X-Cloud-Trace-Context": "a" * 32})
        second = client.get(f"/get_data/{action}:web@example.com")
    assert first.status_code == 200 and first.json()["count"] == 1 and first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit" and second.content == first.content

    line = next(x for x in server.log_lines() if action in x.get("httpRequest", {}).get("requestUrl", ""))
    assert line["severity"] == "INFO" and line["email"] == "reader@example.com"
    assert line["logging.googleapis.com/trace"] == f"projects/{stack.project}/traces/{'a' * 32}"
    assert keys.token().split(".")[0] not in server.log_path.read_text()  # the header value is never logged


def test_app_info_without_authentication_is_401_over_http(server: Server) -> None:
    response = httpx.get(server.url + "/app_info/app-1:sales")
    assert response.status_code == 401 and response.json()["error"] == "unauthenticated"


def test_hostile_paths_over_http_are_4xx(server: Server, keys: Keys) -> None:
    """The real server decodes %2F and friends itself; none of it may reach a 5xx."""
    with httpx.Client(base_url=server.url, headers={HEADER: keys.token()}) as client:
        for value in HOSTILE + ["a%2F..%2F..%2Fmetrics:a@b.co", "a:%2e%2e@b.co", "%E2%80%AE:a@b.co"]:
            for route in ("get_data", "app_info"):
                response = client.get(f"/{route}/{value}")
                assert 400 <= response.status_code < 500, (route, value, response.status_code, response.text)


def test_raw_request_lines_are_4xx(server: Server, keys: Keys) -> None:
    """Bytes on the wire that no HTTP client library would send as they are."""
    port = int(server.url.rsplit(":", 1)[1])
    for target in (b"/get_data/a%2Fb:c@d.co", b"/get_data/a:b@c.co%00", b"/get_data//a:b@c.co",
                   b"/get_data/%:a@b.co", b"/get_data/a:" + b"%41" * 3000 + b"@b.co"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + HEADER.encode() + b": "
                         + keys.token().encode() + b"\r\nConnection: close\r\n\r\n")
            status = int(conn.recv(64).split(b" ")[1])
        assert 400 <= status < 500, (target[:60], status)


def test_readiness_over_http(server: Server) -> None:
    assert httpx.get(server.url + "/readyz").json() == {"status": "ready", "detail": None}


def test_a_bad_setting_stops_the_start_with_its_name(stack: Any, keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="LTM_LOOKBACK_DAYS"):
        start_server(stack, keys, tmp_path, LTM_LOOKBACK_DAYS="1000")
