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
            raise UsageError("The local stack's counters run from its start; --since and --until apply to a gcp "
                             "environment.", hint="Drop them, or choose a gcp environment with --env NAME.")
        refresh = parse_duration(step) if step else 5.0
        if refresh < 0.5:
            raise UsageError("--step must be at least 0.5s on the local stack.")
        yield StackSource(self.state(), self.resolved.env.slo, refresh)

    def figures(self, start: Any, end: Any, step_s: int) -> list[Any]:
        from datetime import datetime

        from ltmctl.metrics import scrape

        # The stack's counters run from its start: the window does not apply (the row says since when).
        state = self.state()
        return scrape.rows(scrape.snapshot(state), None, datetime.fromisoformat(state.started_at).timestamp(),
                           self.resolved.env.slo)

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
