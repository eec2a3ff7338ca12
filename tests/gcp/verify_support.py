"""Playing the parts of Google Cloud that the fake control plane has no data plane for, so `ltmctl verify` can run
against it end to end: Pub/Sub pushing the main topic's messages into the ingest function's own code (acting as the
ingest account), and IAP in front of the API (checking the JWT IAM Credentials signed and `accessViaIAP` as IAM does,
answering from the rows the fake BigQuery holds, and counting each request into Cloud Monitoring as Cloud Run would).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.iamcredentials import IamCredentialsApi
from ltmctl.gcp.fake.monitoring import MonitoringApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from tests.gcp.deploy_support import API_IAP_RESOURCE
from tests.gcp.runtime_support import ingestor
from tests.gcp.support import EVENTS_TABLE, INGEST_SA, MAIN_TOPIC, PROJECT


class Pipeline:
    """Push delivery of the main topic to the ingest function, and IAP + the API at `url`."""

    def __init__(self, fake: FakeGcp) -> None:
        self.fake = fake
        self.seen: list[tuple[str, dict[str, str], int]] = []  # (path, headers, status) of every API request
        self._stop = threading.Event()
        self._delivered = 0
        self._pump = threading.Thread(target=self._push_loop, daemon=True)
        pipeline = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                status, body, headers = pipeline.answer(self.path, dict(self.headers.items()))
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._pump.start()

    def close(self) -> None:
        self._stop.set()
        self._pump.join(5)
        self.server.shutdown()
        self.server.server_close()

    # --- Pub/Sub push ----------------------------------------------------------------------------------------------

    def _push_loop(self) -> None:
        ingest = None
        while not self._stop.is_set():
            messages = self.fake.api(PubSubApi).published.get(MAIN_TOPIC, [])
            while self._delivered < len(messages):
                message = messages[self._delivered]
                ingest = ingest or ingestor(self.fake, INGEST_SA)
                ingest.handle_push({"message": {k: message[k] for k in ("data", "attributes", "messageId",
                                                                        "publishTime") if k in message}})
                self._delivered += 1
            time.sleep(0.05)

    # --- IAP and the API ------------------------------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        status, body, extra = self._answer(path, {k.lower(): v for k, v in headers.items()})
        self.seen.append((path, headers, status))
        if status != 302:
            self._count(status)
        return status, body, extra

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            # IAP without a session: the sign-in redirect for a browser, 401 for a request it sees as AJAX.
            if headers.get("x-requested-with") == "XMLHttpRequest":
                return 401, {"error": "IAP: no credential"}, {}
            return 302, {}, {"Location": "https://accounts.google.com/o/oauth2/v2/auth?client_id=iap"}
        claims = self.fake.api(IamCredentialsApi).verify(auth.removeprefix("Bearer "))
        if claims is None or claims.get("aud") != f"{self.url}/*" or claims.get("exp", 0) < time.time() \
                or claims.get("iss") != claims.get("sub"):
            return 401, {"error": "IAP: invalid JWT"}, {}
        if not self.fake.authorize(f"serviceAccount:{claims['sub']}", "iap.webServiceVersions.accessViaIAP",
                                   API_IAP_RESOURCE):
            return 403, {"error": "IAP: You don't have access"}, {}
        if path == "/readyz":
            return 200, {"status": "ready"}, {}
        if path.startswith("/get_data/"):
            action, _, user = unquote(path.split("?")[0].removeprefix("/get_data/")).partition(":")
            by_id: dict[str, dict[str, Any]] = {}
            for row in self.fake.api(BigQueryApi).rows.get(EVENTS_TABLE, []):
                if row["json"]["action_id"] == action and row["json"]["user_email"] == user:
                    by_id.setdefault(row["json"]["event_id"], row["json"])  # read-time de-duplication
            if not by_id:
                return 404, {"error": "not_found"}, {}
            return 200, {"action_id": action, "user_email": user, "count": len(by_id),
                         "events": list(by_id.values())}, {}
        return 404, {"error": "not_found"}, {}

    def _count(self, status: int) -> None:
        """One request into run.googleapis.com/request_count, as Cloud Run writes it."""
        end = datetime.now(UTC)
        iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
        self.fake.api(MonitoringApi).add_series({
            "metric": {"type": "run.googleapis.com/request_count",
                       "labels": {"response_code": str(status), "response_code_class": f"{status // 100}xx"}},
            "resource": {"type": "cloud_run_revision", "labels": {
                "project_id": PROJECT, "service_name": "ltm-api", "revision_name": "ltm-api-00001-abc",
                "location": "us-central1", "configuration_name": "ltm-api"}},
            "metricKind": "DELTA", "valueType": "INT64",
            "points": [{"interval": {"startTime": iso(end - timedelta(seconds=1)), "endTime": iso(end)},
                        "value": {"int64Value": "1"}}]})
