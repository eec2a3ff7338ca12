"""Cloud Monitoring over REST: timeSeries.list and alertPolicies (v3), dashboards (v1).

google-cloud-monitoring (2.32) ships its GAPIC clients with gRPC transports only, and the dashboards client is a
separate distribution (google-cloud-monitoring-dashboards, also gRPC) that ltmctl does not depend on. Everything
else in ltmctl speaks REST, so that the same requests reach Google, the fake in tests, and `--dry-run`. This is the
slice of MetricServiceClient, AlertPolicyServiceClient and DashboardsServiceClient that ltmctl uses, on google-auth's
AuthorizedSession, taking and returning the documented REST JSON and raising `google.api_core.exceptions` as the
generated clients do (so `ltmctl.gcp.errors` turns them into hints).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

DEFAULT_ENDPOINT = "https://monitoring.googleapis.com"


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MonitoringRest:
    def __init__(self, credentials: Any, endpoint: str | None = None, timeout: float = 60.0) -> None:
        from google.auth.transport.requests import AuthorizedSession

        self._session = AuthorizedSession(credentials)
        self._base = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        from google.api_core import exceptions

        response = self._session.request(method, f"{self._base}/{path}", params=params, json=body,
                                         timeout=self._timeout)
        if response.status_code >= 400:
            raise exceptions.from_http_response(response)
        return response.json() if response.content else {}

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self._call("GET", path, params={**params, **({"pageToken": token} if token else {})})
            yield from page.get(key, [])
            token = page.get("nextPageToken")
            if not token:
                return

    # --- metrics -----------------------------------------------------------------------------------------------

    def list_time_series(self, name: str, filter: str, start: datetime, end: datetime,  # noqa: A002 - API name
                         aggregation: dict[str, Any] | None = None, view: str = "FULL") -> list[dict[str, Any]]:
        """projects.timeSeries.list. `aggregation` in REST names: alignmentPeriod ("60s"), perSeriesAligner,
        crossSeriesReducer, groupByFields (a list: sent as a repeated query parameter)."""
        params: dict[str, Any] = {"filter": filter, "interval.startTime": rfc3339(start),
                                  "interval.endTime": rfc3339(end), "view": view}
        for key, value in (aggregation or {}).items():
            params[f"aggregation.{key}"] = value
        return list(self._pages(f"v3/{name}/timeSeries", "timeSeries", params))

    # --- alert policies ----------------------------------------------------------------------------------------

    def list_alert_policies(self, name: str) -> list[dict[str, Any]]:
        return list(self._pages(f"v3/{name}/alertPolicies", "alertPolicies", {}))

    def create_alert_policy(self, name: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"v3/{name}/alertPolicies", body=policy)

    def update_alert_policy(self, policy: dict[str, Any]) -> dict[str, Any]:
        """Without an update mask the given policy replaces the stored one (same id, same condition names)."""
        return self._call("PATCH", f"v3/{policy['name']}", body=policy)

    # --- dashboards --------------------------------------------------------------------------------------------

    def list_dashboards(self, parent: str) -> list[dict[str, Any]]:
        return list(self._pages(f"v1/{parent}/dashboards", "dashboards", {}))

    def create_dashboard(self, parent: str, dashboard: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"v1/{parent}/dashboards", body=dashboard)

    def update_dashboard(self, dashboard: dict[str, Any]) -> dict[str, Any]:
        """The whole dashboard, with the etag it was read with (a concurrent change answers 409 ABORTED)."""
        return self._call("PATCH", f"v1/{dashboard['name']}", body=dashboard)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> MonitoringRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
