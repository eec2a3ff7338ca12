"""The contract's limits (issue 12, items 2, 7 and 8): stated once in event.schema.json, enforced by the one
validator that ingest and `ltmctl publish` share. Pure checks; the three-way agreement with the API and BigQuery
is in tests/api_service/test_contract_agreement.py."""

import json

import pytest

from ingest_fn import contract
from ingest_fn.contract import EventValidator, event_schema

VALID = {"event_id": "e-1", "action_id": "login", "user_email": "ana@example.com", "app_id": "crm",
         "app_department": "sales", "event_time": "2026-11-30T06:00:00Z", "payload": {"n": 1}}


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.fixture(scope="module")
def validator():
    return EventValidator()


def test_the_limits_are_stated_in_the_schema_file():
    stated = event_schema()["x-ltm-limits"]
    assert stated["max_event_bytes"] == 1024 * 1024
    assert contract.limits().max_payload_depth == stated["max_payload_depth"]
    assert contract.limits().max_event_bytes == stated["max_event_bytes"]


@pytest.mark.parametrize("field", ["event_id", "action_id", "user_email", "app_id", "app_department"])
def test_a_trailing_newline_is_refused_in_every_id_field(validator, field):
    assert validator.problems(VALID) == []
    problems = validator.problems({**VALID, field: VALID[field] + "\n"})
    assert problems and problems[0].startswith(f"{field}:")


@pytest.mark.parametrize("email", ["a/b@example.com", "ana@exa/mple.com", "ana @example.com", "añа@example.com",
                                   "ana@example.com\x00", "\x7f@example.com"])
def test_an_email_the_api_cannot_route_is_refused(validator, email):
    assert validator.problems({**VALID, "user_email": email})


def test_payload_nesting_is_bounded(validator):
    depth = contract.limits().max_payload_depth
    assert validator.problems({**VALID, "payload": nested(depth)}) == []
    [problem] = validator.problems({**VALID, "payload": nested(depth + 1)})
    assert problem == f"payload: nested deeper than {depth} levels"
    assert validator.problems({**VALID, "payload": nested(300)}) == [problem]
    # arrays count as levels too
    assert validator.problems({**VALID, "payload": {"a": json.loads("[" * depth + "]" * depth)}}) == [problem]


@pytest.mark.parametrize(("value", "expected"), [
    ("\ud800", "payload.s: a string is not valid Unicode (lone surrogate)"),
    (float("inf"), "payload.s: numbers must be finite"),
    (float("nan"), "payload.s: numbers must be finite"),
    (2**63, "payload.s: integer outside the 64-bit range BigQuery stores exactly"),
])
def test_payload_values_bigquery_cannot_store_unchanged_are_refused(validator, value, expected):
    assert validator.problems({**VALID, "payload": {"s": value}}) == [expected]


def test_a_lone_surrogate_in_a_key_is_refused(validator):
    assert validator.problems({**VALID, "payload": {"\udfff": 1}})


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_outside_bigquerys_range_is_refused_not_raised(validator, when):
    [problem] = validator.problems({**VALID, "event_time": when})
    assert problem == ("event_time: outside the range BigQuery stores (0001-01-01T00:00:00Z to "
                       "9999-12-31T23:59:59.999999Z in UTC)")


def test_the_range_ends_are_accepted(validator):
    assert validator.problems({**VALID, "event_time": "0001-01-01T00:00:00Z"}) == []
    assert validator.problems({**VALID, "event_time": "9999-12-31T23:59:59.999999Z"}) == []


def test_id_fields_state_their_length(validator):
    for field in ("event_id", "action_id", "app_id", "app_department"):
        assert event_schema()["properties"][field]["maxLength"] == 128
        assert validator.problems({**VALID, field: "a" * 129})


def test_the_size_limit_admits_exactly_its_bytes(validator):
    limit = validator.limits.max_event_bytes
    assert validator.size_problem(limit) is None
    assert validator.size_problem(limit + 1) == f"(event): {limit + 1} bytes is over the {limit}-byte limit"


def test_a_long_path_is_named_in_at_most_120_characters(validator):
    key = "k" * 200
    [problem] = validator.problems({**VALID, "payload": {key: float("nan")}})
    where, _, reason = problem.partition(": ")
    assert where == f"payload.{key}"[:119] + "…" and len(where) == 120
    assert reason == "numbers must be finite"


@pytest.mark.parametrize(("text", "clipped"), [
    ("a" * 200, "a" * 200),  # at the limit: whole
    ("a" * 201, "a" * 199 + "…"),  # over it: the limit's length, the last character an ellipsis
    ("", ""),
])
def test_messages_are_clipped_to_their_limit_with_an_ellipsis(text, clipped):
    assert contract._clip(text) == clipped
    assert len(contract._clip(text)) <= 200


def _variants():
    """VALID with each field missing, mistyped, empty, too long, with a trailing newline or unusual; plus extras."""
    yield VALID
    yield {**VALID, "colour": "red"}
    for field in event_schema()["properties"]:
        yield {k: v for k, v in VALID.items() if k != field}
        for value in (None, 1, 1.5, True, "", "a" * 129, "x\n", "ana@example.com", "2026-11-30T06:00:00+01:00",
                      "2026-11-30 06:00:00Z", "2026-13-30T06:00:00Z", [], ["a"], {}, {"a": [1, {"b": None}]}):
            yield {**VALID, field: value}


def test_the_compiled_validator_agrees_with_the_contracts_own_draft(validator):
    """fastjsonschema compiles the 2020-12 contract with its newest draft (2019-09); on every variant it accepts
    exactly what a 2020-12 validator accepts with a real date-time (fastjsonschema asserts `format`, jsonschema only
    notes it, and problems() checks the time itself), so the fast path and the full check never disagree."""
    checked = 0
    for event in _variants():
        try:
            validator._fast(event)
            fast_accepts = True
        except validator._fast_error:
            fast_accepts = False
        full = validator._validator.is_valid(event) and not validator._time_problems(event)
        assert fast_accepts == full, event
        checked += 1
    assert checked > 100


def test_lower_case_t_and_z_are_read_as_rfc_3339_allows(validator):
    from datetime import UTC, datetime

    assert contract.parse_time("2026-11-30t06:00:00.5z") == datetime(2026, 11, 30, 6, 0, 0, 500000, tzinfo=UTC)
    assert validator.problems({**VALID, "event_time": "2026-11-30t06:00:00z"}) == []


def test_the_integer_range_ends_are_accepted(validator):
    low, high = validator.limits.min_integer, validator.limits.max_integer
    assert validator.problems({**VALID, "payload": {"low": low, "high": high}}) == []
    assert validator.problems({**VALID, "payload": {"s": low - 1}}) == [
        "payload.s: integer outside the 64-bit range BigQuery stores exactly"]


@pytest.mark.parametrize("payload", [None, True, 1, "text"])
def test_a_payload_that_is_no_object_is_named_by_the_schema_not_raised(validator, payload):
    [problem] = validator.problems({**VALID, "payload": payload})
    assert problem.startswith("payload: ") and "is not of type 'object'" in problem


def test_a_pattern_is_named_as_the_contract_states_it(validator):
    pattern = event_schema()["properties"]["action_id"]["pattern"]
    assert pattern.endswith("$")
    assert validator.problems({**VALID, "action_id": "not an id!"}) == [
        f"action_id: does not match the contract pattern {pattern}"]


def test_an_unknown_field_is_named_for_the_event(validator):
    assert validator.problems({**VALID, "colour": "red"}) == [
        "(event): Additional properties are not allowed ('colour' was unexpected)"]


def test_parsed_times_are_utc_whatever_the_machines_time_zone(monkeypatch):
    import time
    from datetime import UTC

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        parsed = contract.parse_time("2026-11-30T07:00:00+02:00")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert parsed.tzinfo is UTC and parsed.hour == 5
