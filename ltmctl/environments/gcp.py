"""A Google Cloud environment: Google's clients with Application Default Credentials, or all of them pointed at
one endpoint with a bearer token (`LTM_GCP_ENDPOINT`, `LTM_GCP_TOKEN`: the fake in tests), as
`ltmctl.gcp.clients.GcpClients` builds the control plane's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ltmctl.environments import Environment
from ltmctl.errors import ConfigError, UsageError
from ltmctl.gcp.clients import ENDPOINT_ENV, GcpClients


class GcpEnvironment(Environment):
    backend = "gcp"
    metrics_wait_s = 300.0  # Cloud Run's request counts reach Cloud Monitoring minutes later
    counts_bytes = True

    def google(self) -> GcpClients:
        """The control plane's clients for the project (the caller closes them)."""
        return GcpClients.for_project(self.project)

    def ready(self) -> None:
        self.google().close()  # without an endpoint: Application Default Credentials, else BackendError with a hint

    def clients(self) -> Any:
        from ltmctl import clients

        endpoint = os.environ.get(ENDPOINT_ENV)
        if not endpoint:
            return clients.for_gcp(self.project)
        # REST: gRPC cannot reach a plain HTTP endpoint, and its requests are the ones the fake checks.
        google = GcpClients.for_endpoint(self.project, endpoint)
        return clients.Clients(self.project, google.publisher, google.subscriber, google.bigquery)

    def publisher(self, **options: Any) -> Any:
        from ltmctl import clients

        endpoint = os.environ.get(ENDPOINT_ENV)
        if not endpoint:
            return clients.publisher_for_adc(**options)
        return GcpClients.for_endpoint(self.project, endpoint).publisher_with(**options)

    @contextmanager
    def metrics(self, since: str | None, until: str | None, step: str | None) -> Iterator[Any]:
        from ltmctl.gcp.monitoring_rest import MonitoringRest
        from ltmctl.metrics.cloud_monitoring import MonitoringSource, window
        from ltmctl.metrics.figures import parse_duration

        step_s = parse_duration(step) if step else 60.0
        if step_s < 60 or step_s != int(step_s):
            raise UsageError("--step: Cloud Monitoring aligns to whole seconds, at least 1m.")
        window(since or "1h", until)  # a bad window fails before any credentials are looked for
        with self.google() as google, MonitoringRest(google.credentials, google.endpoint) as client:
            yield MonitoringSource(client, self.resolved, since or "1h", until, int(step_s))

    @property
    def metrics_scope(self) -> str | None:
        return self.resolved.env.monitoring.metrics_scope

    def figures(self, start: Any, end: Any, step_s: int) -> list[Any]:
        from ltmctl.gcp.errors import google_errors
        from ltmctl.gcp.monitoring_rest import MonitoringRest
        from ltmctl.metrics.cloud_monitoring import report

        with self.google() as google, MonitoringRest(google.credentials, google.endpoint) as client, \
                google_errors(self.project, "reading metrics from Cloud Monitoring"):
            return [figure.row() for figure in report(client, self.resolved, start, end, step_s).figures]

    def logs(self, service: str, since: str | None, follow: bool, min_severity: str | None) -> Iterator[Any]:
        from ltmctl.logs import cloud_logging
        from ltmctl.logs.entries import parse_since

        names = cloud_logging.services(self.resolved, service)
        if not names:
            raise UsageError(f"{self.name!r} has no {service} service: with ingest_mode bigquery, Pub/Sub writes "
                             "to BigQuery itself.", hint="Use `ltmctl logs api`.")
        return self._logs(names, parse_since(since or "1h"), follow, min_severity)

    def _logs(self, names: dict[str, str], since: Any, follow: bool, min_severity: str | None) -> Iterator[Any]:
        from ltmctl.gcp.errors import google_errors
        from ltmctl.logs import cloud_logging

        with self.google() as google, google_errors(self.project, "reading logs from Cloud Logging"):
            yield from cloud_logging.read(cloud_logging.client(google), self.project, names, since=since,
                                          min_severity=min_severity, follow=follow)

    def api_url(self) -> str:
        url = os.environ.get("LTM_API_URL") or self.resolved.env.api.url
        if not url:
            raise ConfigError(f"{self.resolved.path}: environments.{self.name}.api.url is not set.",
                              hint="Set it to the API's URL (behind IAP), or export LTM_API_URL.")
        return url.rstrip("/")

    def auth_headers(self, email: str, ttl_s: int = 300) -> dict[str, str]:
        """`Authorization: Bearer` with what IAP accepts from a program (`ltmctl.gcp.iap_caller`); the identity is
        the configured service account or the caller's own, not `email`."""
        from ltmctl.gcp.iap_caller import bearer

        return {"Authorization": f"Bearer {bearer(self.resolved, self.api_url(), ttl_s)}"}

    @contextmanager
    def probe(self, identity: str | None = None) -> Iterator[Any]:
        from ltmctl.deploy.clients import DeployClients
        from ltmctl.gcp import iap_caller
        from ltmctl.gcp.monitoring_rest import MonitoringRest
        from ltmctl.verify.probes import GcpProbe

        env = self.resolved.env
        identity = identity or env.iap.service_account
        if identity is None and not os.environ.get(ENDPOINT_ENV):
            identity = iap_caller.service_account_of(iap_caller.adc_credentials(self.resolved))
        if identity is None:
            raise ConfigError(f"{self.resolved.path}: no service account to call the API through IAP as.",
                              hint="Pass --service-account EMAIL (CI: the build's account, ltm-deployer), or set "
                                   f"environments.{self.name}.iap.service_account.")
        with DeployClients.for_env(self.resolved) as clients:
            url = os.environ.get("LTM_API_URL") or env.api.url or _service_url(self.resolved, clients)
            monitoring = MonitoringRest(clients.credentials, clients.endpoint)
            audience = iap_caller.resource_audience(url)

            def sign(account: str) -> str:
                return iap_caller.sign_iap_jwt(self.resolved, account, audience, 600)

            yield GcpProbe(self.resolved, clients, monitoring, url, identity, sign)


def _service_url(resolved: Any, clients: Any) -> str:
    """The API's URL as Cloud Run reports it, when the config does not name one (a first deploy in CI)."""
    from ltmctl.gcp.errors import google_errors

    env = resolved.env
    name = f"projects/{env.project}/locations/{env.region}/services/{env.api.service}"
    with google_errors(env.project, f"reading the API service {env.api.service}"):
        return clients.run_services.get_service(name=name).uri
