"""How verify reaches each part of the pipeline: the local stack (emulators on loopback, the API's own /metrics) or
a gcp environment (Google's clients as the caller's identity, the API through IAP, Cloud Monitoring).

Both take their clients as arguments. Every failure becomes CheckFailed with what went wrong; the check's hint
(`hints()`) says where to look, with the command, log filter or console page of that backend.
"""

from __future__ import annotations

import time
from typing import Any

from ltmctl.verify.core import RUN_ATTRIBUTE, Answer, CheckFailed

# IAP tells a browser's request from a program's: without cookies it redirects a browser to Google's sign-in (302)
# and answers an AJAX request 401 (cloud.google.com/iap/docs/sessions-howto, "Expired session responses"); this
# header is how it recognises one. Sent to the local stack too, which answers 401 either way.
AJAX_HEADERS = {"X-Requested-With": "XMLHttpRequest"}
PULL_WAIT_S = 2.0


def _rows(bigquery: Any, table: str, event_id: str) -> list[dict[str, Any]]:
    from google.api_core import exceptions
    from google.cloud import bigquery as bq

    # event_time bounds the partitions read: verify's events are stamped now.
    sql = (f"SELECT * FROM `{table}` WHERE event_id = @event_id "
           "AND event_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 2 DAY)")
    config = bq.QueryJobConfig(query_parameters=[bq.ScalarQueryParameter("event_id", "STRING", event_id)])
    try:
        return [dict(row) for row in bigquery.query(sql, job_config=config).result(timeout=60)]
    except exceptions.GoogleAPICallError as exc:
        raise CheckFailed(f"reading {table} failed: {getattr(exc, 'message', exc)}") from None


def _publish(publisher: Any, topic_path: str, data: bytes, attributes: dict[str, str]) -> str:
    from google.api_core import exceptions

    try:
        return publisher.publish(topic_path, data, **attributes).result(timeout=60)
    except (exceptions.GoogleAPICallError, TimeoutError) as exc:
        raise CheckFailed(f"publishing to {topic_path} failed: {getattr(exc, 'message', exc)}") from None


def _http_get(url: str, headers: dict[str, str]) -> Answer:
    import httpx

    try:
        # Redirects are answers here (IAP's sign-in redirect), not something to follow.
        response = httpx.get(url, headers=headers, timeout=30, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Answer(None, None, f"{type(exc).__name__}: {exc}")
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Answer(response.status_code, body, response.headers.get("location", ""))


def own_dead_letter(subscriber: Any, path: str, run_id: str, wait_s: float,
                    clock: Any = time.monotonic) -> dict[str, str] | None:
    """Pull until this run's dead letter shows up or time is up; acknowledge only it. Anyone else's dead letters are
    released at once (ack deadline 0), so `ltmctl dlq` still finds them."""
    from google.api_core import exceptions

    def call(fn: Any, **request: Any) -> Any:
        try:
            return fn(request=request, timeout=30)
        except exceptions.NotFound:
            raise CheckFailed(f"the dead-letter subscription {path} does not exist") from None
        except exceptions.GoogleAPICallError as exc:
            raise CheckFailed(f"reading {path} failed: {getattr(exc, 'message', exc)}") from None

    deadline = clock() + wait_s
    while True:
        try:
            response = subscriber.pull(request={"subscription": path, "max_messages": 100},
                                       timeout=PULL_WAIT_S, retry=None)
            received = list(response.received_messages)
        except exceptions.DeadlineExceeded:
            received = []
        except exceptions.NotFound:
            raise CheckFailed(f"the dead-letter subscription {path} does not exist") from None
        except exceptions.GoogleAPICallError as exc:
            raise CheckFailed(f"reading {path} failed: {getattr(exc, 'message', exc)}") from None
        mine = [m for m in received if m.message.attributes.get(RUN_ATTRIBUTE) == run_id]
        others = [m.ack_id for m in received if m not in mine]
        if others:
            call(subscriber.modify_ack_deadline, subscription=path, ack_ids=others, ack_deadline_seconds=0)
        if mine:
            call(subscriber.acknowledge, subscription=path, ack_ids=[m.ack_id for m in mine])
            return dict(mine[0].message.attributes)
        if clock() >= deadline:
            return None
        time.sleep(0.5)


class _DataPath:
    """What both backends do the same way through Google's clients: publish to the topic, read the table."""

    clients: Any

    def _names(self, project: str, pipeline: Any) -> None:
        self.table = f"{project}.{pipeline.dataset}.{pipeline.table}"
        self.topic_path = f"projects/{project}/topics/{pipeline.topic}"
        self.dlq_path = f"projects/{project}/subscriptions/{pipeline.dead_letter_subscription}"

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        return _publish(self.clients.publisher, self.topic_path, data, attributes)

    def rows(self, event_id: str) -> list[dict[str, Any]]:
        return _rows(self.clients.bigquery, self.table, event_id)


class LocalProbe(_DataPath):
    """The running local stack: its emulators, its services' ports, assertions minted with its IAP key."""

    metrics_poll_s, metrics_lag = 0.5, None  # the API's /metrics counts a request as it answers it

    def __init__(self, resolved: Any, state: Any, clients: Any, mint: Any) -> None:
        self.resolved, self.state, self.clients, self.mint = resolved, state, clients, mint
        self._names(state.project, resolved.pipeline)

    def get(self, path: str, *, authenticated: bool) -> Answer:
        from ltmctl.api_calls import IAP_HEADER

        headers = dict(AJAX_HEADERS)
        if authenticated:
            headers[IAP_HEADER] = self.mint("ltm-verify@ltm.local", 300)
        return _http_get(self.state.api_url + path, headers)

    def dead_letter(self, run_id: str, wait_s: float) -> dict[str, str] | None:
        return own_dead_letter(self.clients.subscriber, self.dlq_path, run_id, wait_s)

    def api_requests(self) -> float | None:
        from ltmctl.metrics import prometheus

        answer = _http_get(self.state.api_url + "/metrics", {})
        if answer.status != 200 or not isinstance(answer.body, str):
            raise CheckFailed(f"the API's /metrics answered {answer.status or answer.detail}")
        from ltmctl.metrics.scrape import DATA_ROUTES

        # The data routes only: verify's own /readyz and /metrics calls must not count as the API serving.
        samples = prometheus.parse(answer.body)
        return sum(prometheus.total(samples, "ltm_api_requests_total", route=route) for route in DATA_ROUTES)

    def hints(self) -> dict[str, str]:
        logs = self.resolved.state_dir / "logs"
        status = "`ltmctl local status` (a piece that is down), then "
        return {
            "api": status + f"{logs / 'api.log'}; bring it back with `ltmctl local down && ltmctl local up`.",
            "stored": status + f"{logs / 'ingest.log'} (`ltmctl logs ingest`) and `ltmctl dlq list`.",
            "get_data": f"{logs / 'api.log'} (`ltmctl logs api`); try `ltmctl api get-data ACTION EMAIL`.",
            "refused": "The API answers its data routes without an IAP assertion: check how it was started "
                       f"(LTM_IAP_AUDIENCE, LTM_IAP_JWKS_FILE) in {logs / 'api.log'}.",
            "duplicate": "Reads must de-duplicate on event_id: api_service/queries.py; `ltmctl query --action-id A "
                         "--user-email E` shows the copies.",
            "dead_letter": "`ltmctl dlq list`; the dead-letter subscription is re-created by `ltmctl local up` "
                           f"(after `ltmctl local down`); {logs / 'ingest.log'}.",
            "metrics": "`ltmctl metrics`; the API's /metrics endpoint.",
        }


class GcpProbe(_DataPath):
    """A gcp environment as `identity` (the build's account in CI): Google's clients with its credentials, the API
    through IAP with a JWT that identity signs for itself, Cloud Monitoring for the API's request count."""

    metrics_poll_s, metrics_lag = 5.0, "Cloud Monitoring"  # Cloud Run's counts arrive minutes later

    def __init__(self, resolved: Any, clients: Any, monitoring: Any, api_url: str, identity: str,
                 sign: Any) -> None:
        self.resolved, self.clients, self.monitoring = resolved, clients, monitoring
        self.api_url, self.identity, self.sign = api_url.rstrip("/"), identity, sign
        self.project = resolved.env.project
        self._names(self.project, resolved.pipeline)
        self._token: str | None = None

    def get(self, path: str, *, authenticated: bool) -> Answer:
        headers = dict(AJAX_HEADERS)
        if authenticated:
            if self._token is None:
                try:
                    self._token = self.sign(self.identity)
                except Exception as exc:  # noqa: BLE001 - whatever refused it, the check says so
                    raise CheckFailed(f"signing a JWT for IAP as {self.identity} failed: "
                                      f"{getattr(exc, 'message', exc)}") from None
            headers["Authorization"] = f"Bearer {self._token}"
        return _http_get(self.api_url + path, headers)

    def dead_letter(self, run_id: str, wait_s: float) -> dict[str, str] | None:
        letter = own_dead_letter(self.clients.subscriber, self.dlq_path, run_id, wait_s)
        if letter is not None and self.resolved.pipeline.ingest_mode == "bigquery":
            letter = {**letter, "mode": "bigquery"}
        return letter

    def api_requests(self) -> float | None:
        from datetime import UTC, datetime, timedelta

        from google.api_core import exceptions

        from ltmctl.metrics.cloud_monitoring import REQUEST_COUNT

        end = datetime.now(UTC)
        service = self.resolved.env.api.service
        query_filter = (f'metric.type="{REQUEST_COUNT}" AND resource.type="cloud_run_revision" AND '
                        f'resource.labels.service_name="{service}"')
        try:
            series = self.monitoring.list_time_series(
                f"projects/{self.project}", query_filter, end - timedelta(minutes=10), end,
                {"alignmentPeriod": "600s", "perSeriesAligner": "ALIGN_DELTA", "crossSeriesReducer": "REDUCE_SUM"})
        except exceptions.GoogleAPICallError as exc:
            raise CheckFailed(f"Cloud Monitoring refused: {getattr(exc, 'message', exc)}") from None
        total = 0.0
        for one in series:
            for point in one.get("points", []):
                value = point.get("value", {})
                total += float(value.get("int64Value") or value.get("doubleValue") or 0)
        return total

    def hints(self) -> dict[str, str]:
        env, p = self.resolved.env, self.resolved.pipeline
        project, region = env.project, env.region
        console = "https://console.cloud.google.com"
        run = lambda s: f"{console}/run/detail/{region}/{s}/observability/logs?project={project}"  # noqa: E731
        api_filter = f'resource.type="cloud_run_revision" resource.labels.service_name="{env.api.service}"'
        ingest_filter = f'resource.type="cloud_run_revision" resource.labels.service_name="{env.ingest.service}"'
        stored = (f"`ltmctl --env {self.resolved.name} logs ingest`, log filter {ingest_filter}; "
                  f"`ltmctl --env {self.resolved.name} dlq list`; {run(env.ingest.service)}")
        if p.ingest_mode == "bigquery":
            stored = (f"The BigQuery subscription {p.subscription}: "
                      f"{console}/cloudpubsub/subscription/detail/{p.subscription}?project={project}; "
                      f"`ltmctl --env {self.resolved.name} dlq list`")
        return {
            "api": f"`ltmctl --env {self.resolved.name} status`; log filter {api_filter}; {run(env.api.service)}",
            "stored": stored,
            "get_data": f"Who may pass IAP: {console}/security/iap?project={project} ({self.identity} needs "
                        f"roles/iap.httpsResourceAccessor, `ltmctl provision` grants it); log filter {api_filter}",
            "refused": f"IAP must be on for {env.api.service}: `ltmctl --env {self.resolved.name} status`, "
                       f"{console}/security/iap?project={project}",
            "duplicate": "Reads must de-duplicate on event_id (api_service/queries.py); "
                         f"`ltmctl --env {self.resolved.name} query --action-id A --user-email E` shows the copies.",
            "dead_letter": f"`ltmctl --env {self.resolved.name} dlq list`; the subscription "
                           f"{p.dead_letter_subscription} comes from `ltmctl provision`; "
                           f"{console}/cloudpubsub/subscription/detail/{p.dead_letter_subscription}?project={project}",
            "metrics": f"`ltmctl --env {self.resolved.name} metrics --since 15m`; Cloud Run's request_count reaches "
                       "Cloud Monitoring a few minutes late (raise --metrics-wait); "
                       f"{console}/monitoring/metrics-explorer?project={project}",
        }
