"""The clients deploy needs on top of provision's: Cloud Run (services and their revisions), Cloud Build, and an
authorized HTTP session for the one call no client library makes (Service Usage v1beta1 `generateServiceIdentity`,
for IAP's service agent).

`ltmctl.gcp.clients.GcpClients` builds every client of provisioning (REST transport, one endpoint or ADC); this
subclass adds deploy's in the same way, so `for_endpoint` / `from_adc` / `for_env` and `providers()` (which picks
up `run_services` for IAM on Cloud Run services) work unchanged.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from ltmctl.gcp.clients import GcpClients


class DeployClients(GcpClients):
    @cached_property
    def run_services(self) -> Any:
        from google.cloud import run_v2

        return self._gapic(run_v2.ServicesClient)

    @cached_property
    def run_revisions(self) -> Any:
        """For `deploy --rollback`: which revisions a service has and which of them are ready."""
        from google.cloud import run_v2

        return self._gapic(run_v2.RevisionsClient)

    @cached_property
    def cloud_build(self) -> Any:
        from google.cloud.devtools import cloudbuild_v1

        return self._gapic(cloudbuild_v1.CloudBuildClient)

    @cached_property
    def http(self) -> Any:
        """For Service Usage v1beta1 `generateServiceIdentity`: no client library ships that API version
        (google-cloud-service-usage is v1 only)."""
        from google.auth.transport.requests import AuthorizedSession

        return self._keep(AuthorizedSession(self.credentials))
