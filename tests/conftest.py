"""Shared fixtures: real emulators and services on free loopback ports, started once per session."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

# Retries that fit a test run: Pub/Sub's real minimum backoff is 10 s; the emulator honours these.
TEST_CONFIG = """\
pipeline:
  topic: ltm-events
  dead_letter_topic: ltm-events-dlq
  dead_letter_subscription: ltm-events-dlq-keep
  subscription: ltm-events-ingest
  ack_deadline_s: 20
  max_delivery_attempts: 5
  retry: {minimum_backoff_s: 1, maximum_backoff_s: 5}
  dataset: ltm
  table: events
environments:
  local:
    backend: local
    project: ltm-test
  dev:
    backend: gcp
    project: my-project-id
    region: us-central1
"""


def make_project(directory: Path, text: str = TEST_CONFIG) -> Path:
    """A project directory with config/ltm.yaml; returns the config path."""
    (directory / "config").mkdir(parents=True, exist_ok=True)
    path = directory / "config" / "ltm.yaml"
    path.write_text(text)
    return path


@dataclass
class Stack:
    """A running local stack and clients pointed at it."""

    resolved: Any  # ltmctl.config.Resolved
    state: Any  # ltmctl.local.stack.StackState
    clients: Any  # ltmctl.clients.Clients

    @property
    def project(self) -> str:
        return self.state.project

    @property
    def table_id(self) -> str:
        p = self.resolved.pipeline
        return f"{self.project}.{p.dataset}.{p.table}"

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.resolved.pipeline.topic}"

    def fresh_subscription(self, topic: str) -> str:
        """A new pull subscription: the emulator hides messages for a while after another subscriber closes."""
        path = f"projects/{self.project}/subscriptions/t-{uuid.uuid4().hex[:12]}"
        self.clients.subscriber.create_subscription(
            request={"name": path, "topic": f"projects/{self.project}/topics/{topic}", "ack_deadline_seconds": 60})
        return path


def start_stack(directory: Path, text: str = TEST_CONFIG) -> Stack:
    from ltmctl import clients, config
    from ltmctl.local import stack

    config_path = make_project(directory, text)
    resolved = config.load(config_path, "local")
    state, _ = stack.up(resolved, port_base=0)
    return Stack(resolved, state, clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint))


def stop_stack(s: Stack) -> None:
    from ltmctl.local import stack

    s.clients.close()
    stack.down(s.resolved, force=True)


@contextmanager
def running_stack(directory: Path, text: str = TEST_CONFIG) -> Iterator[Stack]:
    """A local stack in `directory` for the duration of the block, stopped and its state removed afterwards."""
    s = start_stack(directory, text)
    try:
        yield s
    finally:
        stop_stack(s)
        shutil.rmtree(directory / ".ltm", ignore_errors=True)


def attached_stack(directory: Path) -> Stack:
    """Clients on a stack that `running_stack(directory)` started in another process, left running."""
    from ltmctl import clients, config
    from ltmctl.local import stack

    resolved = config.load(directory / "config" / "ltm.yaml", "local")
    state = stack.running_state(resolved)
    s = Stack(resolved, state, clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint))
    # Each session starts from an empty table, as it does on a stack of its own: the tests count what they insert.
    s.clients.bigquery.query(f"DELETE FROM `{s.table_id}` WHERE TRUE").result()
    return s


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's local stack: Pub/Sub emulator, bqemulator, ingest function, infra applied.

    With LTM_TEST_STACK set to a directory where a stack runs, the session attaches to it instead: the mutation run
    (scripts/mutation.py) starts one stack and runs a pytest session per mutant on it."""
    shared = os.environ.get("LTM_TEST_STACK")
    if shared:
        s = attached_stack(Path(shared))
        yield s
        s.clients.close()
        return
    with running_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    make_project(tmp_path)
    return tmp_path
