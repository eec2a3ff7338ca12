"""The fake refuses what Google refuses: every request is checked against the API's discovery document (method and
path, path-parameter patterns, query parameters, body present or not, body fields, types and enums), a method the
fake does not implement answers 501 naming it, and the fake's own answers must fit the response schema."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions

from ltmctl.gcp.clients import GcpClients
from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.run import CloudRunApi
from tests.gcp.support import PROJECT

RUN = f"/v2/projects/{PROJECT}/locations/us-central1/services"


@pytest.fixture
def run_fake(fake: FakeGcp) -> FakeGcp:
    fake.enable("run.googleapis.com", "pubsub.googleapis.com", "iam.googleapis.com")
    return fake


def _owner(fake: FakeGcp) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.token_for(fake.owner)}"}


def _post(fake: FakeGcp, path: str, body: object = None, **query: str) -> requests.Response:
    return requests.post(f"{fake.endpoint}{path}", json=body, params=query, headers=_owner(fake), timeout=5)


def _error(answer: requests.Response) -> dict:
    return answer.json()["error"]


def test_an_unknown_body_field_is_refused_as_google_words_it(run_fake):
    answer = _post(run_fake, RUN, {"template": {"containers": [{"image": "x"}], "bogusField": 1}},
                   serviceId="api")
    assert answer.status_code == 400
    error = _error(answer)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == ('Invalid JSON payload received. Unknown name "bogusField" at \'service.template\': '
                                "Cannot find field.")
    assert run_fake.api(CloudRunApi).services == {}


def test_an_unknown_field_deep_in_the_body_is_refused_with_its_path(run_fake):
    body = {"template": {"containers": [{"image": "x", "resources": {"limits": {"memory": "2Gi"}, "cpuIdel": True}}]}}
    answer = _post(run_fake, RUN, body, serviceId="api")
    assert answer.status_code == 400
    assert "Unknown name \"cpuIdel\" at 'service.template.containers[0].resources'" in _error(answer)["message"]


def test_a_wrong_json_type_is_refused(run_fake):
    answer = _post(run_fake, RUN, {"template": {"maxInstanceRequestConcurrency": "eighty"}}, serviceId="api")
    assert answer.status_code == 400
    assert "template.max_instance_request_concurrency" in _error(answer)["message"]


def test_a_bad_enum_is_refused_by_name_and_by_number(run_fake):
    for bad in ("GENERALLY_AVAILABLE", 99):
        answer = _post(run_fake, RUN, {"launchStage": bad}, serviceId="api")
        assert answer.status_code == 400, bad
        assert "launch_stage" in _error(answer)["message"]
    # A valid one by number (as the generated REST clients send them) is accepted, and stored by name: the proto's
    # number, not the name's place in the discovery document's list (BETA is 3 on the wire and sixth in the list).
    for number, name in ((4, "GA"), (3, "BETA"), (6, "UNIMPLEMENTED")):
        service = f"api-{number}"
        assert _post(run_fake, RUN, {"launchStage": number, "template": {"containers": [{"image": "x"}]}},
                     serviceId=service).status_code == 200
        stored = run_fake.api(CloudRunApi).services[f"projects/{PROJECT}/locations/us-central1/services/{service}"]
        assert stored["launchStage"] == name


def test_a_body_on_a_method_that_takes_none_is_refused(run_fake):
    path = f"/v1/projects/{PROJECT}/serviceAccounts/a@{PROJECT}.iam.gserviceaccount.com:getIamPolicy"
    answer = _post(run_fake, path, {"options": {"requestedPolicyVersion": 3}})
    assert answer.status_code == 400 and 'Unknown name "options"' in _error(answer)["message"]
    answer = _post(run_fake, path, {})
    assert answer.status_code == 400 and "takes no request body" in _error(answer)["message"]


def test_unknown_or_ill_typed_query_parameters_are_refused(run_fake):
    answer = requests.get(f"{run_fake.endpoint}{RUN}", params={"pageSize": "ten"}, headers=_owner(run_fake), timeout=5)
    assert answer.status_code == 400 and "page_size" in _error(answer)["message"]
    answer = requests.get(f"{run_fake.endpoint}{RUN}", params={"colour": "blue"}, headers=_owner(run_fake), timeout=5)
    assert answer.status_code == 400
    assert _error(answer)["message"].startswith('Invalid JSON payload received. Unknown name "colour": Cannot bind')


def test_a_missing_or_malformed_path_parameter_is_refused(run_fake):
    # An empty project segment: the `parent` parameter no longer matches projects/[^/]+/locations/[^/]+.
    answer = requests.get(f"{run_fake.endpoint}/v2/projects//locations/us-central1/services",
                          headers=_owner(run_fake), timeout=5)
    assert answer.status_code == 400 and "parent" in _error(answer)["message"]


def test_a_method_the_fake_does_not_implement_answers_501_naming_it(run_fake):
    answer = requests.get(f"{run_fake.endpoint}/v2/projects/{PROJECT}/locations/us-central1/jobs",
                          headers=_owner(run_fake), timeout=5)
    assert answer.status_code == 501
    assert "run.projects.locations.jobs.list" in _error(answer)["message"]


def test_the_fakes_own_answers_must_fit_the_response_schema(run_fake):
    clients = GcpClients.for_endpoint(PROJECT, run_fake.endpoint)
    topic = f"projects/{PROJECT}/topics/t"
    clients.publisher.create_topic(request={"name": topic})
    # A fake that invents a field a real answer never has is caught, not passed on to the client.
    from ltmctl.gcp.fake.pubsub import PubSubApi

    run_fake.api(PubSubApi).topics[topic]["inventedField"] = True
    with pytest.raises(exceptions.InternalServerError, match="does not fit Google's Topic schema"):
        clients.publisher.get_topic(request={"topic": topic})
    clients.close()


def test_the_official_clients_requests_pass_and_record_their_method(run_fake):
    clients = GcpClients.for_endpoint(PROJECT, run_fake.endpoint)
    clients.publisher.create_topic(request={"name": f"projects/{PROJECT}/topics/t"})
    clients.close()
    (create,) = run_fake.find("PUT", "/topics/t$")
    assert create.method_id == "pubsub.projects.topics.create"


def test_a_request_without_a_token_the_fake_issued_is_unauthenticated(run_fake):
    for headers in ({}, {"Authorization": "Bearer ya29.made-up"}):
        answer = requests.get(f"{run_fake.endpoint}{RUN}", headers=headers, timeout=5)
        assert answer.status_code == 401
        assert _error(answer)["status"] == "UNAUTHENTICATED"


def test_a_principal_without_the_permission_is_denied_in_googles_words(run_fake):
    stranger = {"Authorization": f"Bearer {run_fake.token_for('user:mallory@example.com')}"}
    answer = requests.get(f"{run_fake.endpoint}{RUN}", headers=stranger, timeout=5)
    assert answer.status_code == 403
    error = _error(answer)
    assert error["status"] == "PERMISSION_DENIED"
    assert error["message"] == (f"Permission 'run.services.list' denied on resource "
                                f"'projects/{PROJECT}/locations/us-central1' (or it may not exist).")
    assert error["details"][0]["metadata"] == {"permission": "run.services.list"}
    # The same request as the owner passes: the refusal was about who asked.
    assert requests.get(f"{run_fake.endpoint}{RUN}", headers=_owner(run_fake), timeout=5).status_code == 200


def test_a_role_on_the_resource_or_its_project_is_what_grants(run_fake):
    from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi

    viewer = "user:vera@example.com"
    headers = {"Authorization": f"Bearer {run_fake.token_for(viewer)}"}
    assert requests.get(f"{run_fake.endpoint}{RUN}", headers=headers, timeout=5).status_code == 403
    rm = run_fake.api(ResourceManagerApi)
    policy = rm.policy(PROJECT)
    policy["bindings"].append({"role": "roles/run.viewer", "members": [viewer]})
    rm.policies.policies[PROJECT] = policy
    assert requests.get(f"{run_fake.endpoint}{RUN}", headers=headers, timeout=5).status_code == 200
    # A viewer cannot create.
    answer = requests.post(f"{run_fake.endpoint}{RUN}", params={"serviceId": "x"}, headers=headers, timeout=5,
                           json={"template": {"containers": [{"image": "x"}]}})
    assert answer.status_code == 403 and "run.services.create" in _error(answer)["message"]


def test_an_update_mask_naming_no_field_is_refused(run_fake):
    answer = requests.patch(f"{run_fake.endpoint}{RUN}/api", params={"updateMask": "template.containrs"},
                            json={"template": {}}, headers=_owner(run_fake), timeout=5)
    assert answer.status_code == 400 and 'Invalid field mask path "template.containrs"' in _error(answer)["message"]
