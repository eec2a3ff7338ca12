"""The probe for the selected environment, with its clients: the one place verify's clients are made."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ltmctl.errors import ConfigError, StackNotRunning


@contextmanager
def probe_for(resolved: Any, identity: str | None = None) -> Iterator[Any]:
    if resolved.env.backend == "local":
        yield from _local(resolved)
    else:
        yield from _gcp(resolved, identity)


def _local(resolved: Any) -> Iterator[Any]:
    from ltmctl import clients
    from ltmctl.local import stack
    from ltmctl.verify.probes import LocalProbe

    # Not running_state(): a stack with a piece down is exactly what verify must describe, check by check.
    state = stack.read_state(resolved)
    if state is None:
        raise StackNotRunning(str(resolved.root))
    c = clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint)
    try:
        yield LocalProbe(resolved, state, c, lambda email, ttl: stack.mint_token(resolved, email, ttl))
    finally:
        c.close()


def _gcp(resolved: Any, identity: str | None) -> Iterator[Any]:
    from ltmctl import api_calls
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.gcp.clients import ENDPOINT_ENV
    from ltmctl.gcp.monitoring_rest import MonitoringRest
    from ltmctl.verify.probes import GcpProbe

    env = resolved.env
    identity = identity or env.iap.service_account
    if identity is None and not os.environ.get(ENDPOINT_ENV):
        identity = api_calls.service_account_of(api_calls.adc_credentials(resolved))
    if identity is None:
        raise ConfigError(f"{resolved.path}: no service account to call the API through IAP as.",
                          hint="Pass --service-account EMAIL (CI: the build's account, ltm-deployer), or set "
                               f"environments.{resolved.name}.iap.service_account.")
    with DeployClients.for_env(resolved) as clients:
        url = os.environ.get("LTM_API_URL") or env.api.url or _service_url(resolved, clients)
        monitoring = MonitoringRest(clients.credentials, clients.endpoint)
        audience = api_calls.resource_audience(url)

        def sign(account: str) -> str:
            return api_calls.sign_iap_jwt(resolved, account, audience, 600)

        yield GcpProbe(resolved, clients, monitoring, url, identity, sign)


def _service_url(resolved: Any, clients: Any) -> str:
    """The API's URL as Cloud Run reports it, when the config does not name one (a first deploy in CI)."""
    from ltmctl.gcp.errors import google_errors

    env = resolved.env
    name = f"projects/{env.project}/locations/{env.region}/services/{env.api.service}"
    with google_errors(env.project, f"reading the API service {env.api.service}"):
        return clients.run_services.get_service(name=name).uri
