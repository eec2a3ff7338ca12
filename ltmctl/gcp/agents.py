"""Google's service agents (service-NUMBER@gcp-sa-SERVICE.iam.gserviceaccount.com) exist only once created: some
when their API is enabled (Pub/Sub's), others only when someone asks (IAP's). IAM refuses to bind an agent that does
not exist, so `provision`, which holds Service Usage rights, creates the ones the pipeline grants to with Service
Usage v1beta1 `generateServiceIdentity` (idempotent: an existing agent is returned) and waits for its long-running
operation. `deploy` then only grants to them; in CI it runs as `ltm-deployer`, which holds no Service Usage role.

No client library among ours speaks v1beta1, so this goes through an authorized session; errors are raised as
google.api_core exceptions, so they get the same hints as every other call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

SERVICE_USAGE_ENDPOINT = "https://serviceusage.googleapis.com"
OPERATION_TIMEOUT_S = 300.0


def _json(response: Any) -> dict[str, Any]:
    from google.api_core.exceptions import from_http_response

    if response.status_code >= 400:
        raise from_http_response(response)
    return response.json() if response.content else {}


def generate(session: Any, endpoint: str | None, project: str, service: str, *,
             sleep: Callable[[float], None] = time.sleep, timeout_s: float = OPERATION_TIMEOUT_S) -> str:
    """Create (or find) the service agent of `service` (e.g. "iap.googleapis.com") and wait until its operation is
    done; return the agent's email."""
    from google.api_core.exceptions import DeadlineExceeded, from_grpc_status

    base = (endpoint or SERVICE_USAGE_ENDPOINT).rstrip("/") + "/v1beta1"
    # The method takes no request body (serviceusage.v1beta1.json): none is sent.
    op = _json(session.post(f"{base}/projects/{project}/services/{service}:generateServiceIdentity", timeout=60))
    waited, delay = 0.0, 1.0
    while not op.get("done"):
        if waited >= timeout_s:
            raise DeadlineExceeded(f"Creating the service agent of {service} did not finish in {timeout_s:.0f} s "
                                   f"(operation {op.get('name')}).")
        sleep(delay)
        waited, delay = waited + delay, min(delay * 2, 10.0)
        op = _json(session.get(f"{base}/{op['name']}", timeout=60))
    if op.get("error"):
        error = op["error"]
        # An operation's error is a google.rpc.Status: its code is gRPC's, as for api_core's own operation polling.
        raise from_grpc_status(error.get("code", 2), error.get("message", "unknown error"))
    return str((op.get("response") or {}).get("email", ""))


def ensure(credentials: Any, endpoint: str | None, project: str, services: Iterable[str],
           on_step: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Make the service agent of each of `services` exist; return their emails."""
    from google.auth.transport.requests import AuthorizedSession

    session = AuthorizedSession(credentials)
    try:
        emails = []
        for service in services:
            email = generate(session, endpoint, project, service, sleep=sleep)
            emails.append(email)
            if on_step is not None:
                on_step(f"service agent {email} ({service}) exists")
        return emails
    finally:
        session.close()
