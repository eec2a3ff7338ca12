"""Every Google Cloud control-plane client for an environment: Application Default Credentials against Google,
or all of them pointed at one base endpoint (the fake, in tests and `--dry-run`).

Each client is built on first use. All generated clients use the REST transport, so the requests are the same
whichever endpoint answers them. `LTM_GCP_ENDPOINT=http://127.0.0.1:PORT` (testing and advanced use) points
every command that talks to Google Cloud at such an endpoint, sending the bearer token in `LTM_GCP_TOKEN`.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

ENDPOINT_ENV = "LTM_GCP_ENDPOINT"
TOKEN_ENV = "LTM_GCP_TOKEN"  # with LTM_GCP_ENDPOINT: the bearer token to send (the fake issues one per principal)
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
ADC_HINT = ("Run `gcloud auth application-default login` (a person), or set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key file (CI); on Cloud Build and Cloud Run the attached service account is used.")


class GcpClients:
    def __init__(self, project: str, credentials: Any, endpoint: str | None = None) -> None:
        self.project = project
        self.credentials = credentials
        self.endpoint = endpoint  # None: Google's own endpoint for each API
        self._built: list[Any] = []

    @classmethod
    def for_endpoint(cls, project: str, endpoint: str, token: str | None = None) -> GcpClients:
        """Every client against one base URL (scheme included), sending `token` (default: $LTM_GCP_TOKEN) as a
        bearer token, or nothing without one."""
        from google.auth.credentials import AnonymousCredentials

        token = token or os.environ.get(TOKEN_ENV)
        if token:
            from google.oauth2.credentials import Credentials

            return cls(project, Credentials(token), endpoint.rstrip("/"))
        return cls(project, AnonymousCredentials(), endpoint.rstrip("/"))

    @classmethod
    def from_adc(cls, project: str) -> GcpClients:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        from ltmctl.clients import no_credentials

        try:
            credentials, _ = google.auth.default(scopes=list(SCOPES))
        except DefaultCredentialsError as exc:
            raise no_credentials(exc) from None
        return cls(project, credentials)

    @classmethod
    def for_project(cls, project: str) -> GcpClients:
        """LTM_GCP_ENDPOINT when set, else Application Default Credentials."""
        endpoint = os.environ.get(ENDPOINT_ENV)
        return cls.for_endpoint(project, endpoint) if endpoint else cls.from_adc(project)

    @classmethod
    def for_env(cls, resolved: Any) -> GcpClients:
        """Clients for the selected (gcp) environment's project."""
        return cls.for_project(resolved.env.project)

    # --- construction helpers ----------------------------------------------------------------------------------

    def _keep(self, client: Any) -> Any:
        self._built.append(client)
        return client

    def _gapic(self, factory: Any, **extra: Any) -> Any:
        options = {"api_endpoint": self.endpoint} if self.endpoint else None
        return self._keep(factory(credentials=self.credentials, transport="rest", client_options=options, **extra))

    def _http_options(self) -> dict[str, Any]:
        return {"client_options": {"api_endpoint": self.endpoint}} if self.endpoint else {}

    # --- the clients -------------------------------------------------------------------------------------------

    @cached_property
    def service_usage(self) -> Any:
        from google.cloud import service_usage_v1

        return self._gapic(service_usage_v1.ServiceUsageClient)

    @cached_property
    def projects(self) -> Any:
        from google.cloud import resourcemanager_v3

        return self._gapic(resourcemanager_v3.ProjectsClient)

    @cached_property
    def iam(self) -> Any:
        from ltmctl.gcp.iam_admin import DEFAULT_ENDPOINT, IamAdminRest

        return self._keep(IamAdminRest(self.credentials, self.endpoint or DEFAULT_ENDPOINT))

    @cached_property
    def iap(self) -> Any:
        """IAP's IAM policies (`projects/NUMBER/iap_web`, a Cloud Run service's IAP resource) and IAP settings."""
        from google.cloud import iap_v1

        return self._gapic(iap_v1.IdentityAwareProxyAdminServiceClient)

    @cached_property
    def iam_credentials(self) -> Any:
        """signJwt: a service account's JWT for IAP, signed with its Google-managed key."""
        from google.cloud import iam_credentials_v1

        return self._gapic(iam_credentials_v1.IAMCredentialsClient)

    @cached_property
    def artifact_registry(self) -> Any:
        from google.cloud import artifactregistry_v1

        return self._gapic(artifactregistry_v1.ArtifactRegistryClient)

    @cached_property
    def publisher(self) -> Any:
        from google.cloud import pubsub_v1

        return self._gapic(pubsub_v1.PublisherClient)

    def publisher_with(self, **options: Any) -> Any:
        """A publisher of its own with batch/flow/ordering options (`ltmctl publish`); the caller stops it."""
        from google.cloud import pubsub_v1

        return self._gapic(pubsub_v1.PublisherClient, **options)

    @cached_property
    def subscriber(self) -> Any:
        from google.cloud import pubsub_v1

        return self._gapic(pubsub_v1.SubscriberClient)

    @cached_property
    def storage(self) -> Any:
        from google.cloud import storage

        return self._keep(storage.Client(project=self.project, credentials=self.credentials, **self._http_options()))

    @cached_property
    def bigquery(self) -> Any:
        from google.cloud import bigquery

        return self._keep(bigquery.Client(project=self.project, credentials=self.credentials,
                                          **self._http_options()))

    # Part of deploy: `run_services` (run_v2.ServicesClient) and `cloud_build` follow the same pattern.

    def providers(self, on_wait: Any = None) -> dict[str, Any]:
        """infra providers for every resource `provision` manages; `on_wait(message)` hears what they wait for."""
        from infra.providers import gcp_providers_for

        return gcp_providers_for(
            service_usage=self.service_usage, projects=self.projects, iam=self.iam, iap=self.iap,
            artifact_registry=self.artifact_registry, storage=self.storage, publisher=self.publisher,
            subscriber=self.subscriber, bigquery=self.bigquery,
            run_services=getattr(self, "run_services", None), on_wait=on_wait)

    def close(self) -> None:
        for client in self._built:
            transport = getattr(client, "transport", None) or getattr(client, "_transport", None)
            closer = getattr(transport, "close", None) or getattr(client, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
        self._built.clear()

    def __enter__(self) -> GcpClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
