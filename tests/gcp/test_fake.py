"""The fake itself: Google's error format, etags, member checks, failure injection, request records; and that
`ltmctl --help` imports none of the client libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from google.api_core import exceptions

from ltmctl.gcp.clients import GcpClients
from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.server import ApiError
from tests.gcp.support import PROJECT


@pytest.fixture
def clients(fake: FakeGcp):
    fake.enable("pubsub.googleapis.com", "iam.googleapis.com")
    with GcpClients.for_endpoint(PROJECT, fake.endpoint) as c:
        yield c


def test_errors_are_googles_json(fake):
    fake.enable("pubsub.googleapis.com")
    owner = {"Authorization": f"Bearer {fake.token_for(fake.owner)}"}
    answer = requests.get(f"{fake.endpoint}/v1/projects/{PROJECT}/topics/nope", headers=owner, timeout=5)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == 404 and error["status"] == "NOT_FOUND" and "nope" in error["message"]
    unrouted = requests.get(f"{fake.endpoint}/v9/whatever", timeout=5)
    assert unrouted.status_code == 404 and "No method of Google's APIs" in unrouted.json()["error"]["message"]


def test_disabled_api_answers_service_disabled_with_error_info(fake, clients):
    fake.disable("pubsub.googleapis.com")
    with pytest.raises(exceptions.Forbidden) as info:
        clients.publisher.get_topic(request={"topic": f"projects/{PROJECT}/topics/t"})
    assert info.value.reason == "SERVICE_DISABLED"
    assert info.value.metadata["service"] == "pubsub.googleapis.com"


def test_pubsub_rest_clients_round_trip(clients):
    topic = f"projects/{PROJECT}/topics/t"
    sub = f"projects/{PROJECT}/subscriptions/s"
    clients.publisher.create_topic(request={"name": topic})
    clients.subscriber.create_subscription(request={"name": sub, "topic": topic, "ack_deadline_seconds": 30})
    got = clients.subscriber.get_subscription(request={"subscription": sub})
    assert got.topic == topic and got.ack_deadline_seconds == 30
    assert got.message_retention_duration.total_seconds() == 7 * 24 * 3600  # Pub/Sub's default, filled in
    with pytest.raises(exceptions.Conflict):  # over REST, ALREADY_EXISTS arrives as HTTP 409
        clients.publisher.create_topic(request={"name": topic})
    clients.subscriber.delete_subscription(request={"subscription": sub})
    with pytest.raises(exceptions.NotFound):
        clients.subscriber.get_subscription(request={"subscription": sub})


def test_policies_need_the_current_etag_and_existing_members(fake, clients):
    topic = f"projects/{PROJECT}/topics/t"
    clients.publisher.create_topic(request={"name": topic})
    policy = clients.publisher.get_iam_policy(request={"resource": topic})
    policy.bindings.add(role="roles/pubsub.publisher", members=["serviceAccount:ghost@x.iam.gserviceaccount.com"])
    with pytest.raises(exceptions.BadRequest, match="does not exist"):
        clients.publisher.set_iam_policy(request={"resource": topic, "policy": policy})
    del policy.bindings[:]
    policy.bindings.add(role="roles/pubsub.publisher", members=["user:a@example.com"])
    clients.publisher.set_iam_policy(request={"resource": topic, "policy": policy})
    with pytest.raises(exceptions.Conflict):  # the same etag again: someone changed it meanwhile
        clients.publisher.set_iam_policy(request={"resource": topic, "policy": policy})


def test_injected_failures_can_be_counted_and_requests_are_recorded(fake, clients):
    fake.fail(r"/serviceAccounts$", ApiError(503, "UNAVAILABLE", "try later"), method="GET", times=1)
    with pytest.raises(exceptions.ServiceUnavailable):
        clients.iam.list_service_accounts(request={"name": f"projects/{PROJECT}"})
    assert clients.iam.list_service_accounts(request={"name": f"projects/{PROJECT}"}) == []
    created = clients.iam.create_service_account(request={
        "name": f"projects/{PROJECT}", "account_id": "robot-one",
        "service_account": {"display_name": "Robot", "description": "d"}})
    assert created.email == f"robot-one@{PROJECT}.iam.gserviceaccount.com"
    record = fake.find("POST", r"/serviceAccounts$")[0].as_dict()
    assert record == {"method": "POST", "path": f"/v1/projects/{PROJECT}/serviceAccounts",
                      "body": {"accountId": "robot-one",
                               "serviceAccount": {"displayName": "Robot", "description": "d"}}}


def test_help_imports_no_client_library():
    # `google` and `google.cloud` themselves are empty namespace packages that a .pth file may pre-import.
    code = ("import sys, ltmctl.cli; print(sorted(m for m in sys.modules if m.startswith(('google.', 'grpc'))"
            " and m != 'google.cloud'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
