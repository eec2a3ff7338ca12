"""One Environment per backend: everything that differs between the local stack and Google Cloud, behind one
interface, so the core below the commands never asks which backend it runs on.

A command resolves it once (`ctx.obj.environment()`) and hands it, or what it gives (clients, a publisher, a
metrics source, log entries, the API's URL and credential, verify's probe), to the core. `open_environment` is the
one place that reads `backend`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from ltmctl.config import Resolved
from ltmctl.errors import UsageError

# How to pick an environment of the backend a command needs.
CHOOSE = {
    "gcp": "Choose a gcp environment with --env NAME (create one with `ltmctl init --project P --region R`). The "
           "local stack is provisioned by `ltmctl local up`.",
    "local": "Use --env local (or another environment with `backend: local`).",
}


class Environment:
    """The selected environment of a resolved config, as its backend reaches it."""

    backend: ClassVar[str]
    # verify: how long the API's requests may take to show in metrics by default (Cloud Monitoring lags minutes).
    metrics_wait_s: ClassVar[float]
    # query: whether the dry run's byte estimate means something (and so gates the query) here.
    counts_bytes: ClassVar[bool]

    def __init__(self, resolved: Resolved) -> None:
        self.resolved = resolved

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def project(self) -> str:
        return self.resolved.env.project

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.resolved.pipeline.topic}"

    def require(self, backend: str, command: str) -> None:
        """Refuse, as a usage error, a command that works on one backend only."""
        if backend != self.backend:
            raise UsageError(f"`ltmctl {command}` works on {backend} environments only; {self.name!r} is a "
                             f"{self.backend} environment.", hint=CHOOSE.get(backend))

    # --- readiness and data ------------------------------------------------------------------------------------

    def ready(self) -> None:
        """Raise what stands in the way of reaching the environment at all (no stack, no credentials)."""
        raise NotImplementedError

    def clients(self) -> Any:
        """`ltmctl.clients.Clients` (publisher, subscriber, bigquery); the caller closes them."""
        raise NotImplementedError

    def publisher(self, **options: Any) -> Any:
        """A Pub/Sub publisher with these batch/flow/ordering options; the caller stops it."""
        raise NotImplementedError

    def check_query(self, sql: str) -> None:
        """Refuse, before anything is sent, SQL this backend's dry run cannot judge."""

    dry_run_note: ClassVar[str] = ""  # what to add to the dry run's estimate here

    # --- observing -----------------------------------------------------------------------------------------------

    def metrics(self, since: str | None, until: str | None, step: str | None) -> AbstractContextManager[Any]:
        """A metrics source (`ltmctl.metrics.figures.Source`) for these options, checked before anything is read."""
        raise NotImplementedError

    def logs(self, service: str, since: str | None, follow: bool,
             min_severity: str | None) -> Iterator[Any]:
        """The services' log entries (`ltmctl.logs.entries.Entry`), oldest first; with follow, without end."""
        raise NotImplementedError

    @property
    def metrics_scope(self) -> str | None:
        """The Cloud Monitoring metrics scope (scoping project) that also holds this environment's figures."""
        return None

    def figures(self, start: Any, end: Any, step_s: int) -> list[Any]:
        """The environment's figures (`ltmctl.metrics.figures.Row`) as one reading over the window, where the
        backend keeps history (else: now), for a fleet row."""
        raise NotImplementedError

    # --- the API -------------------------------------------------------------------------------------------------

    def api_url(self) -> str:
        raise NotImplementedError

    def auth_headers(self, email: str, ttl_s: int = 300) -> dict[str, str]:
        """Headers that let a program through to the API as `email` (where the backend lets it choose)."""
        raise NotImplementedError

    def probe(self, identity: str | None = None) -> AbstractContextManager[Any]:
        """verify's probe (`ltmctl.verify.probes`), with its clients, closed on exit."""
        raise NotImplementedError


def open_environment(resolved: Resolved) -> Environment:
    """The Environment of the selected environment's backend."""
    if resolved.env.backend == "local":
        from ltmctl.environments.local import LocalEnvironment

        return LocalEnvironment(resolved)
    from ltmctl.environments.gcp import GcpEnvironment

    return GcpEnvironment(resolved)
