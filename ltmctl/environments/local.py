"""The local stack: emulators and services on loopback, found through the state file `ltmctl local up` wrote.

This is the one reader of the running stack's state outside `ltmctl.local` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ltmctl.environments import Environment
from ltmctl.errors import StackNotRunning, UsageError


class LocalEnvironment(Environment):
    backend = "local"
    metrics_wait_s = 10.0  # the services' /metrics counts a request as it is answered
    counts_bytes = False  # the emulator checks the SQL but does not count bytes
    dry_run_note = " (the local BigQuery emulator checks the SQL but does not count bytes)"

    def state(self) -> Any:
        """The running stack (`ltmctl.local.stack.StackState`), else StackNotRunning or what is down."""
        from ltmctl.local.stack import running_state

        return running_state(self.resolved)

    def ready(self) -> None:
        self.state()

    def clients(self) -> Any:
        from ltmctl import clients

        state = self.state()
        return clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint)

    def publisher(self, **options: Any) -> Any:
        from ltmctl import clients

        return clients.publisher_for_emulator(self.state().pubsub_host, **options)

    def check_query(self, sql: str) -> None:
        from ltmctl import querying

        querying.refuse_local_script(sql)

    @contextmanager
    def metrics(self, since: str | None, until: str | None, step: str | None) -> Iterator[Any]:
        from ltmctl.metrics.figures import parse_duration
        from ltmctl.metrics.scrape import StackSource

        if since or until:
            from ltmctl.metrics.cloud_monitoring import window
            from ltmctl.metrics.local_window import WindowSource

            window(since or "1h", until)  # a bad window fails before the stack is looked for
            step_s = parse_duration(step) if step else None
            if step_s is not None and step_s < 1:
                raise UsageError("--step must be at least 1s for a window on the local stack.")
            yield WindowSource(self.state(), self.resolved, since or "1h", until,
                               None if step_s is None else round(step_s))
            return
        refresh = parse_duration(step) if step else 5.0
        if refresh < 0.5:
            raise UsageError("--step must be at least 0.5s on the local stack.")
        yield StackSource(self.state(), self.resolved.env.slo, refresh)

    def figures(self, start: Any, end: Any, step_s: int) -> list[Any]:
        from datetime import datetime

        from ltmctl.metrics.local_window import WindowSource, report

        # The window from the snapshots the stack's recorder keeps, as Cloud Monitoring gives it in GCP.
        source = WindowSource(self.state(), self.resolved, "1h", None, step_s)
        # A live read is the last snapshot; a window that ends earlier leaves it out.
        snapshots = source.snapshots()
        if end >= snapshots[-1].at - 60 and end.timestamp() < snapshots[-1].at:
            end = datetime.fromtimestamp(snapshots[-1].at, end.tzinfo)  # "now" was a moment before the live read
        got, _ = report(snapshots, start, end, step_s, self.project, self.resolved.env.slo, source.started,
                        source.slack)
        return [figure.row() for figure in got.figures]

    def logs(self, service: str, since: str | None, follow: bool, min_severity: str | None) -> Iterator[Any]:
        from ltmctl.logs import files
        from ltmctl.logs.entries import parse_since

        paths = files.of_stack(self.state(), service)
        return files.read(paths, since=parse_since(since) if since else None, min_severity=min_severity,
                          follow=follow)

    def api_url(self) -> str:
        return self.state().api_url

    def auth_headers(self, email: str, ttl_s: int = 300) -> dict[str, str]:
        """A minted assertion, as IAP would add it in front of Cloud Run."""
        from ltmctl.api_calls import IAP_HEADER
        from ltmctl.local.stack import mint_token

        return {IAP_HEADER: mint_token(self.resolved, email, ttl_s)}

    @contextmanager
    def probe(self, identity: str | None = None) -> Iterator[Any]:
        from ltmctl import clients
        from ltmctl.local import stack
        from ltmctl.verify.probes import LocalProbe

        # Not running_state(): a stack with a piece down is exactly what verify must describe, check by check.
        state = stack.read_state(self.resolved)
        if state is None:
            raise StackNotRunning(str(self.resolved.root))
        c = clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint)
        try:
            yield LocalProbe(self.resolved, state, c, lambda email, ttl: stack.mint_token(self.resolved, email, ttl))
        finally:
            c.close()
