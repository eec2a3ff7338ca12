"""The demo's steps on the session's real stack: what they claim is checked where the rows are, not taken from the
function's own count."""

import uuid

import pytest

from ltmctl import demo, publishing, synthetic
from ltmctl.environments import open_environment
from ltmctl.errors import BackendError


@pytest.fixture
def run(stack):
    env = open_environment(stack.resolved)
    ctx = demo.Context(env, uuid.uuid4().hex[:12], on_progress=lambda done, total: None, count=3)
    ctx.clients = env.clients()
    yield ctx
    ctx.clients.close()


def test_the_wait_ends_only_when_bigquery_holds_every_row_whatever_the_function_counted(run):
    from ingest_fn.contract import EventValidator

    events = list(synthetic.events(3, seed=7))
    run.ingest_before = demo._ingest_figures(run)
    summary = publishing.publish_to_env(run.env, publishing.from_synthetic(events, EventValidator()))
    assert not summary.failed
    # The function will count three stored events; the demo expects one of them under an id that never was.
    run.events = [*events[:2], {**events[2], "event_id": f"never-published-{uuid.uuid4()}"}]

    with pytest.raises(BackendError, match="only 2 of 3 events stored after 8s"):
        demo._wait_rows(run, timeout_s=8.0)

    run.events = events  # and with the ids that were published, it ends
    assert demo._wait_rows(run, timeout_s=60.0).startswith("3 rows, none missing")


def test_the_dead_letter_search_gives_up_once_the_rows_are_in_and_its_patience_is_spent(run):
    import time

    run.rows_done_at = time.monotonic()
    search = demo._in_background(lambda: demo._find_dead_letters(run, patience_s=2.0))  # this run published none
    assert search.result(timeout=60) == []

    run.letters = search
    with pytest.raises(BackendError, match=r"expected 5 dead letters, found \{\}"):
        demo._dead_letters(run)
