"""Fixtures for the API tests: apps on the session's real bqemulator, trusting a local IAP key pair."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api_service import iap_local
from api_service.app import create_app
from api_service.settings import Settings
from tests.api_service.support import AUDIENCE, Api, Clock, Keys, RecordingProxy


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    private_path, jwks_path = iap_local.generate_keypair(tmp_path_factory.mktemp("iap"))
    pem = private_path.read_bytes()
    return Keys(pem, private_path, jwks_path, iap_local.key_id(pem))


@pytest.fixture(scope="session")
def settings(stack: Any, keys: Keys) -> Settings:
    project, dataset, table = stack.table_id.split(".")
    return Settings(project=project, dataset=dataset, table=table, iap_audience=AUDIENCE,
                    iap_jwks_file=str(keys.jwks_path), bigquery_endpoint=stack.state.bigquery_endpoint)


@pytest.fixture
def make_api(stack: Any, settings: Settings, keys: Keys) -> Iterator[Callable[..., Api]]:
    """A fresh app (own cache, metrics, log) on the session's bqemulator; overrides change its settings."""
    clients: list[TestClient] = []

    def make(key_source: Any = None, clock: Clock | None = None, own_client: bool = False,
             wall_clock: Any = time.time, **overrides: Any) -> Api:
        """own_client: the app builds its BigQuery client from settings, as it does when deployed; wall_clock: what
        assertions' exp, iat and nbf are checked against."""
        clock, log = clock or Clock(), io.StringIO()
        app = create_app(replace(settings, **overrides), bigquery_client=None if own_client else stack.clients.bigquery,
                         key_source=key_source, clock=clock, log_stream=log,
                         wall_clock=wall_clock)
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return Api(client, clock, log, keys)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def bigquery_wire(stack: Any) -> Iterator[RecordingProxy]:
    """The requests an app's BigQuery client sends to bqemulator (point the app's bigquery_endpoint at .url)."""
    proxy = RecordingProxy(stack.state.bigquery_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def insert(stack: Any) -> Callable[[list[dict[str, Any]]], None]:
    def insert_rows(rows: list[dict[str, Any]]) -> None:
        errors = stack.clients.bigquery.insert_rows_json(stack.table_id, rows,
                                                         row_ids=[r["event_id"] for r in rows])
        assert errors == []

    return insert_rows
