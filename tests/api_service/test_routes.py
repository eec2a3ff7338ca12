"""The data routes on the real bqemulator: answers, de-duplication, bounds, validation, hostile paths."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.api_service.support import HOSTILE, Api, event_row, unique


def test_get_data_valid_action_and_email_gives_200_with_the_right_data(api: Api, insert) -> None:
    """Seed test 1: a valid action_id and user_email give 200 with the right data."""
    action, email = unique("login"), "Ana.Perez@Example.com"
    rows = [event_row(action_id=action, user_email=email, age=timedelta(minutes=m), payload={"m": m})
            for m in (30, 10, 20)]
    insert(rows + [event_row(action_id=action, user_email="other@example.com")])

    response = api.get(f"/get_data/{action}:{email}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["action_id"], body["user_email"], body["count"]) == (action, email.lower(), 3)
    assert [e["payload"] for e in body["events"]] == [{"m": 10}, {"m": 20}, {"m": 30}]  # newest first
    first = body["events"][0]
    assert first["event_id"] == rows[1]["event_id"] and first["attributes"] == {"origin": "test"}
    assert first["event_time"].endswith("Z") and first["source"] == "app"


def test_app_info_without_authentication_gives_401(api: Api, insert) -> None:
    """Seed test 2: /app_info without authentication gives 401."""
    app_id = unique("app")
    insert([event_row(action_id="a", app_id=app_id)])

    response = api.get(f"/app_info/{app_id}:sales", auth=False)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthenticated", "detail": "missing x-goog-iap-jwt-assertion header"}
    assert response.headers["www-authenticate"]


def test_app_info_summarises_the_app(api: Api, insert) -> None:
    app_id = unique("app")
    rows = [event_row(action_id="view", user_email="a@x.co", app_id=app_id, age=timedelta(hours=3)),
            event_row(action_id="view", user_email="b@x.co", app_id=app_id, age=timedelta(hours=2)),
            event_row(action_id="buy", user_email="a@x.co", app_id=app_id, age=timedelta(hours=1)),
            event_row(action_id="buy", user_email="a@x.co", app_id=app_id, app_department="other")]
    insert(rows)

    body = api.get(f"/app_info/{app_id}:sales").json()

    assert {k: body[k] for k in ("app_id", "app_department", "events", "users", "actions")} == {
        "app_id": app_id, "app_department": "sales", "events": 3, "users": 2, "actions": 2}
    assert body["top_actions"] == [{"action_id": "view", "events": 2}, {"action_id": "buy", "events": 1}]
    assert body["first_seen"][:19] == rows[0]["event_time"][:19]
    assert body["last_seen"][:19] == rows[2]["event_time"][:19]


def test_an_event_stored_twice_is_counted_once_in_both_routes(api: Api, insert) -> None:
    action, app_id = unique("dup"), unique("app")
    row = event_row(action_id=action, app_id=app_id)
    insert([row, {**row, "message_id": unique("redelivery")}])  # bqemulator keeps both rows

    data = api.get(f"/get_data/{action}:someone@example.com").json()
    info = api.get(f"/app_info/{app_id}:sales").json()

    assert data["count"] == 1 and len(data["events"]) == 1
    assert info["events"] == 1 and info["top_actions"] == [{"action_id": action, "events": 1}]


def test_copies_from_both_ingest_modes_count_once_and_the_first_published_wins(api: Api, insert) -> None:
    # After a switch of ingest_mode one event can be stored by the ingest function and by a BigQuery
    # subscription, which leaves ingest_time NULL: publish_time decides, and a NULL ingest_time is served as null.
    action = unique("modes")
    rows = []
    for first, minutes in (("push", 5), ("bigquery", 10)):
        pushed = event_row(action_id=action, age=timedelta(minutes=minutes), payload={"via": "push"})
        earlier, later = pushed["event_time"], pushed["publish_time"]
        written = {**pushed, "message_id": unique("bq"), "payload": json.dumps({"via": "bigquery"}),
                   "ingest_time": None, "subscription_name": "ltm-events-ingest",
                   "publish_time": earlier if first == "bigquery" else later}
        pushed["publish_time"] = later if first == "bigquery" else earlier
        rows += [pushed, written]
    insert(rows)

    body = api.get(f"/get_data/{action}:someone@example.com").json()

    assert body["count"] == 2
    newest, oldest = body["events"]
    assert newest["payload"] == {"via": "push"} and newest["ingest_time"] is not None
    assert oldest["payload"] == {"via": "bigquery"} and oldest["ingest_time"] is None


def test_limit_keeps_the_newest_and_count_keeps_the_total(api: Api, insert) -> None:
    action = unique("many")
    insert([event_row(action_id=action, age=timedelta(minutes=m), payload={"m": m}) for m in range(1, 6)])

    body = api.get(f"/get_data/{action}:someone@example.com", params={"limit": 2}).json()

    assert body["count"] == 5 and [e["payload"]["m"] for e in body["events"]] == [1, 2]


def test_days_is_the_look_back_window(api: Api, insert) -> None:
    action = unique("old")
    insert([event_row(action_id=action, age=timedelta(days=3))])

    assert api.get(f"/get_data/{action}:someone@example.com", params={"days": 2}).status_code == 404
    assert api.get(f"/get_data/{action}:someone@example.com", params={"days": 4}).json()["count"] == 1


def test_nothing_found_gives_a_404_json_error(api: Api) -> None:
    for path in (f"/get_data/{unique('none')}:nobody@example.com", f"/app_info/{unique('none')}:sales"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found" and "no events" in response.json()["detail"]


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"),
    ({"days": 0}, "days"), ({"days": 366}, "days"), ({"days": -1}, "days"),
])
def test_query_bounds_give_422_naming_the_field(api: Api, params: dict, field: str) -> None:
    response = api.get("/get_data/a:b@c.co", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request" and [p["field"] for p in body["detail"]] == [field]


def test_app_info_days_bound(api: Api) -> None:
    response = api.get("/app_info/a:b", params={"days": 366})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "days"


@pytest.mark.parametrize(("path", "field"), [
    ("/get_data/:a@b.co", "action_id"),
    ("/get_data/login:", "user_email"),
    ("/get_data/login:not-an-email", "user_email"),
    ("/get_data/-starts-with-dash:a@b.co", "action_id"),
    ("/get_data/" + "a" * 129 + ":a@b.co", "action_id"),
    ("/get_data/a:" + "b" * 250 + "@c.co", "user_email"),
    ("/app_info/:sales", "app_id"),
    ("/app_info/app:sa les", "app_department"),
    ("/app_info/app:x:y", "app_department"),
])
def test_path_values_breaking_the_contract_give_422_naming_the_field(api: Api, path: str, field: str) -> None:
    response = api.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert [p["field"] for p in response.json()["detail"]] == [field]




@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_path_values_give_4xx_never_5xx(api: Api, value: str) -> None:
    for route in ("get_data", "app_info"):
        response = api.get(f"/{route}/{value}")
        assert 400 <= response.status_code < 500, (route, value, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert "error" in response.json()


# E-mails the contract accepts that would match every other row were they spliced into the SQL text:
# `user_email = 'x'or'a'<'b@b.co'` is true for any row. As parameters they match nothing.
INJECTIONS = ["x'or'a'<'b@b.co", "x'or'1'<'2'or'x@b.co", "x'or''<'z@b.co"]


@pytest.mark.parametrize("email", INJECTIONS)
def test_hostile_values_that_pass_the_contract_are_only_parameters(make_api, bigquery_wire, insert,
                                                                   email: str) -> None:
    """An e-mail may hold quotes; it must match nothing rather than change the query, and the API's own client
    must send it (and the byte cap) to BigQuery as a parameter of the job, never in the SQL text."""
    action = unique("quoted")
    insert([event_row(action_id=action, user_email="victim@example.com")])
    api = make_api(own_client=True, bigquery_endpoint=bigquery_wire.url, max_bytes_billed=123_456_789)

    assert api.get(f"/get_data/{action}:victim@example.com").json()["count"] == 1  # the row is there to find
    response = api.get(f"/get_data/{action}:{email}")

    assert response.status_code == 404, response.text
    sent = bigquery_wire.queries()
    assert len(sent) == 2  # one jobs.query per cold answer, through the client the app built
    for body, value in zip(sent, ("victim@example.com", email), strict=True):
        assert body["maximumBytesBilled"] == "123456789"
        assert "@user_email" in body["query"] and value not in body["query"]
        params = {p["name"]: p["parameterValue"]["value"] for p in body["queryParameters"]}
        assert params["user_email"] == value and params["action_id"] == action
        assert body["parameterMode"] == "NAMED"


def test_routes_outside_the_api_are_json_404_and_405(api: Api) -> None:
    assert api.get("/nope").json()["error"] == "not_found"
    response = api.client.post("/get_data/a:b@c.co")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


def test_health_and_readiness(api: Api, make_api) -> None:
    assert api.get("/healthz", auth=False).json() == {"status": "ok", "detail": None}
    assert api.get("/readyz", auth=False).json()["status"] == "ready"
    missing = make_api(table="no_such_table")
    response = missing.get("/readyz", auth=False)
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


def test_response_models_are_in_the_openapi_document(api: Api) -> None:
    document = api.get("/openapi.json", auth=False).json()
    schemas = document["components"]["schemas"]
    assert {"GetDataResponse", "AppInfoResponse", "Event", "ErrorResponse", "ValidationErrorResponse"} <= set(schemas)
    get_data = document["paths"]["/get_data/{action_id}:{user_email}"]["get"]
    assert get_data["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("GetDataResponse")
    assert get_data["security"] == [{"IAP": []}]
    assert "/app_info/{app_id}:{app_department}" in document["paths"]
    # Each parameter is described, with its bounds, for whoever reads the document to call the API.
    described = {(p["name"], p["in"]): (p.get("description"), p["schema"]) for p in get_data["parameters"]}
    app_info = document["paths"]["/app_info/{app_id}:{app_department}"]["get"]
    described |= {(p["name"], p["in"]): (p.get("description"), p["schema"]) for p in app_info["parameters"]}
    assert described[("user_email", "path")][0] == "The event's user_email."
    assert described[("app_department", "path")][0] == "The event's app_department."
    assert described[("limit", "query")][0] == "Newest events to return."
    assert (described[("limit", "query")][1]["minimum"], described[("limit", "query")][1]["maximum"]) == (1, 1000)
    assert described[("days", "query")][0] == "Look-back window in days (partition filter)."
    assert (described[("days", "query")][1]["minimum"], described[("days", "query")][1]["maximum"]) == (1, 365)
