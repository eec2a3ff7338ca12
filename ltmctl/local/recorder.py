"""The local stack's metrics recorder: `python -m ltmctl.local.recorder --api URL --ingest URL --file PATH ...`.

Cloud Monitoring keeps every figure's history; the services' /metrics endpoints only know their totals now. So this
process reads both endpoints every `--every` seconds and appends their cumulative counters to a file bounded in
bytes and in snapshots (`ltmctl.metrics.history`), from which `ltmctl metrics --since/--until` computes a window.
`GET /` answers what it has recorded (the stack's health check of this piece).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ltmctl.metrics import history
from ltmctl.text import cut

SERVICE = "ltm-metrics-recorder"  # what `GET /` names itself as


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.read().decode()


class Recorder:
    def __init__(self, api_url: str, ingest_url: str | None, path: Path, every_s: float, max_bytes: int,
                 max_count: int) -> None:
        self.api_url, self.ingest_url, self.path = api_url, ingest_url, path
        self.every_s, self.max_bytes, self.max_count = every_s, max_bytes, max_count
        self.recorded, self.last_error, self.last_at = 0, "", 0.0
        self.held: int | None = None  # snapshots in the file; counted once, then kept track of

    def once(self) -> None:
        services: dict[str, history.Counts] = {}
        errors = []
        # Each service on its own: one that is down (being restarted) must not stop the other's record.
        for name, url, reduce in (("api", self.api_url, history.api_counts),
                                  ("ingest", self.ingest_url, history.ingest_counts)):
            if url is None:
                continue
            try:
                services[name] = reduce(_get(url))
            except (OSError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
        self.last_error = cut("; ".join(errors), 300)
        if errors:
            sys.stdout.write(json.dumps({"severity": "WARNING", "message": self.last_error}) + "\n")
            sys.stdout.flush()
        if services:
            self.held = history.append(self.path, history.Snapshot(time.time(), services), self.max_bytes,
                                       self.max_count, self.held)
            self.recorded += 1
            self.last_at = time.time()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.once()
            stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))

    def status(self) -> dict[str, Any]:
        return {"service": SERVICE, "file": str(self.path), "every_s": self.every_s, "recorded": self.recorded,
                "last_at": self.last_at, "last_error": self.last_error}


def serve_status(recorder: Recorder, port: int) -> ThreadingHTTPServer:
    from ltmctl.local.status_http import serve_json

    return serve_json(port, "recorder-status", lambda path: recorder.status())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltmctl.local.recorder", description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the API's /metrics URL")
    parser.add_argument("--ingest", help="the ingest function's /metrics URL")
    parser.add_argument("--file", required=True, type=Path, help="the snapshot file (JSON lines)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between snapshots")
    parser.add_argument("--max-bytes", type=int, default=4_000_000, help="the file's size at most")
    parser.add_argument("--max-snapshots", type=int, default=8640, help="snapshots kept at most")
    parser.add_argument("--port", type=int, required=True, help="port of the status endpoint (GET /)")
    args = parser.parse_args(argv)
    recorder = Recorder(args.api, args.ingest, args.file, args.every, args.max_bytes, args.max_snapshots)
    server = serve_status(recorder, args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    recorder.run(stop)
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
