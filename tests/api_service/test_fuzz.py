"""Property-based fuzzing from the OpenAPI document: whatever schemathesis sends, the answer is never 5xx."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_service.app import create_app
from api_service.iap import HEADER
from api_service.settings import Settings
from tests.api_service.support import Keys

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def schema(stack: Any, settings: Settings) -> Any:
    # No cache, so every generated request that passes validation really queries bqemulator.
    app = create_app(replace(settings, cache_ttl_s=0), bigquery_client=stack.clients.bigquery,
                     log_stream=io.StringIO())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Negative cases only where there are parameters to break: without any, hypothesis finds nothing to generate.
@pytest.mark.parametrize(("operation_id", "mode"), [
    *[(op, mode) for op in ("get_data", "app_info") for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)],
    ("healthz", GenerationMode.POSITIVE), ("readyz", GenerationMode.POSITIVE),
])
def test_no_generated_request_gets_a_5xx(schema: Any, keys: Keys, operation_id: str, mode: Any) -> None:
    operation = schema.find_operation_by_id(operation_id)
    auth = {HEADER: keys.token()}

    @settings(max_examples=50, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(headers=auth)
        case.validate_response(response, checks=CHECKS, headers=auth)

    check()
