"""Programmatic access through IAP on Cloud Run (its Google-managed OAuth client refuses ID tokens made for it):
`ltmctl api` sends a service account's signed JWT, deploy writes the API service's IAP settings, and provision
checks that IAP can work in the project at all (an organization, or a custom OAuth client)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError

import pytest

from ltmctl.gcp.fake.iam import IamApi
from ltmctl.gcp.fake.iap import IapApi
from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
from tests.conftest import TEST_CONFIG, make_project
from tests.gcp.conftest import Ltmctl
from tests.gcp.deploy_support import API_IAP_RESOURCE, DEPLOY_CONFIG, deploy, project_dir, provisioned
from tests.gcp.support import NUMBER, PROJECT

CALLER = f"ltm-api-caller@{PROJECT}.iam.gserviceaccount.com"
DESKTOP_CLIENT = "1234567890-abcdefghijklmnop.apps.googleusercontent.com"
WEB_CLIENT = "1234567890-webclient.apps.googleusercontent.com"


def _said(result) -> str:
    """The output with the error panel's borders and line breaks taken out."""
    return " ".join(result.output.replace("│", " ").split())


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class _StandIn:
    """The API's URL, standing in for IAP in front of it: records what each request carried."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                seen.append((self.path, dict(self.headers.items())))
                body = json.dumps({"action_id": "login", "count": 0, "events": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api_url(monkeypatch):
    stand_in = _StandIn()
    monkeypatch.setenv("LTM_API_URL", stand_in.url)
    yield stand_in
    stand_in.close()


@pytest.fixture
def caller_config(fake, tmp_path, monkeypatch):
    """The dev environment calling as a service account that exists and may sign (the IAM Credentials API on)."""
    monkeypatch.setenv("LTM_GCP_ENDPOINT", fake.endpoint)
    monkeypatch.delenv("LTM_ENV", raising=False)
    monkeypatch.delenv("LTM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    fake.enable("iamcredentials.googleapis.com")
    fake.api(IamApi).accounts[CALLER] = {"name": f"projects/{PROJECT}/serviceAccounts/{CALLER}", "email": CALLER,
                                         "projectId": PROJECT, "uniqueId": "100000000000000000777"}
    # Who may sign as it (README: `gcloud iam service-accounts add-iam-policy-binding ... serviceAccountTokenCreator`):
    # roles/owner does not hold iam.serviceAccounts.signJwt.
    fake.api(IamApi).policies.policies[CALLER] = {
        "bindings": [{"role": "roles/iam.serviceAccountTokenCreator", "members": [fake.owner]}], "etag": "BwY="}
    return make_project(tmp_path, TEST_CONFIG + f"    iap: {{members: [serviceAccount:{CALLER}], "
                                                f"service_account: {CALLER}}}\n")


def test_api_get_data_sends_a_service_account_jwt_for_the_service_url(fake, caller_config, api_url):
    result = Ltmctl(caller_config)("api", "get-data", "login", "ana@example.com")
    assert result.exit_code == 0, result.output

    (path, headers), = api_url.seen
    assert path.startswith("/get_data/login:ana@example.com")
    # IAP strips x-goog-iap-jwt-assertion from what clients send: the credential goes in Authorization.
    assert not any(k.lower() == "x-goog-iap-jwt-assertion" for k in headers)
    scheme, token = headers["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = _claims(token)
    assert claims["aud"] == f"{api_url.url}/*"  # the resource URL, any path
    assert claims["iss"] == claims["sub"] == CALLER
    assert 0 < claims["exp"] - claims["iat"] <= 3600

    # Signed by IAM Credentials as that account (no key file), with exactly those claims.
    (sign,) = fake.find("POST", r":signJwt$")
    assert sign.path == f"/v1/projects/-/serviceAccounts/{CALLER}:signJwt"
    assert json.loads(sign.body["payload"]) == claims


def test_api_token_prints_the_jwt_curl_sends_as_bearer(fake, caller_config, api_url):
    result = Ltmctl(caller_config)("api", "token", "--ttl", "86400")
    assert result.exit_code == 0, result.output
    claims = _claims(result.stdout.strip())
    assert claims["aud"] == f"{api_url.url}/*" and claims["sub"] == CALLER
    assert claims["exp"] - claims["iat"] == 3600  # capped: a JWT for IAP lives at most an hour


def test_the_service_account_must_be_one_iap_lets_through(fake, tmp_path, monkeypatch, api_url):
    config = make_project(tmp_path, TEST_CONFIG + f"    iap: {{service_account: {CALLER}}}\n")
    result = Ltmctl(config)("api", "token")
    assert result.exit_code == 3
    assert "environments.dev.iap: service_account" in _said(result)
    assert f"serviceAccount:{CALLER}" in _said(result)


def test_the_old_client_id_setting_is_refused_with_what_replaces_it(fake, tmp_path):
    config = make_project(tmp_path, TEST_CONFIG + f"    iap: {{client_id: {WEB_CLIENT}}}\n")
    result = Ltmctl(config)("config", "validate")
    assert result.exit_code == 3
    assert "ltm.yaml:19: environments.dev.iap: client_id is no longer used" in _said(result)
    assert "programmatic_clients" in _said(result)


# --- deploy: the API service's IAP settings -------------------------------------------------------------------

SETTINGS_CONFIG = DEPLOY_CONFIG.replace(
    "    iap: {members: [", f"    iap: {{programmatic_clients: [{DESKTOP_CLIENT}], members: [")


def test_deploy_allows_the_programmatic_clients_once(fake, tmp_path, monkeypatch):
    from ltmctl import config

    resolved = config.load(project_dir(tmp_path, fake.endpoint, monkeypatch, SETTINGS_CONFIG), "dev")
    with provisioned(fake, resolved) as clients:
        first = deploy(resolved, clients)
        (patch,) = fake.find("PATCH", r":iapSettings$")
        assert patch.path == f"/v1/{API_IAP_RESOURCE}:iapSettings"
        assert patch.query["updateMask"] == "accessSettings.oauthSettings.programmaticClients"  # FieldMask JSON
        assert patch.body["accessSettings"]["oauthSettings"] == {"programmaticClients": [DESKTOP_CLIENT]}
        assert fake.api(IapApi).settings.get(API_IAP_RESOURCE) == {
            "name": API_IAP_RESOURCE, "accessSettings": {"oauthSettings": {"programmaticClients": [DESKTOP_CLIENT]}}}
        assert f"IAP programmatic clients: {DESKTOP_CLIENT}" in first.access

        fake.clear_requests()
        second = deploy(resolved, clients)
        assert fake.find("GET", r":iapSettings$")  # read, found equal ...
        assert not fake.find("PATCH", r":iapSettings$")  # ... and not written
        assert second.access == []


def test_deploy_sets_the_custom_oauth_client_with_its_secret_once(fake, tmp_path, monkeypatch):
    from ltmctl import config

    text = SETTINGS_CONFIG.replace("    iap: {", f"    iap: {{oauth_client_id: {WEB_CLIENT}, ")
    resolved = config.load(project_dir(tmp_path, fake.endpoint, monkeypatch, text), "dev")
    monkeypatch.setenv("LTM_IAP_OAUTH_CLIENT_SECRET", "s3cret")
    with provisioned(fake, resolved) as clients:
        deploy(resolved, clients)
        (patch,) = fake.find("PATCH", r":iapSettings$")
        assert patch.query["updateMask"].split(",") == [
            "accessSettings.oauthSettings.programmaticClients", "accessSettings.oauthSettings.clientId",
            "accessSettings.oauthSettings.clientSecret"]
        oauth = fake.api(IapApi).settings.get(API_IAP_RESOURCE)["accessSettings"]["oauthSettings"]
        assert oauth["clientId"] == WEB_CLIENT and "clientSecret" not in oauth and oauth["clientSecretSha256"]

        monkeypatch.delenv("LTM_IAP_OAUTH_CLIENT_SECRET")  # IAP has it: a later deploy needs no secret
        fake.clear_requests()
        deploy(resolved, clients)
        assert not fake.find("PATCH", r":iapSettings$")


def test_the_fake_refuses_unknown_iap_settings_fields_in_googles_words(fake):
    fake.enable("iap.googleapis.com")
    url = f"{fake.endpoint}/v1/projects/{NUMBER}/iap_web:iapSettings?updateMask=access_settings"
    body = json.dumps({"accessSettings": {"oauthSettings": {}, "x": 1}}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="PATCH")
    with pytest.raises(HTTPError) as caught:
        urllib.request.urlopen(request)
    error = json.loads(caught.value.read())["error"]
    assert (caught.value.code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"] == ('Invalid JSON payload received. Unknown name "x" at '
                                "'iap_settings.access_settings': Cannot find field.")
    assert fake.api(IapApi).settings.get(f"projects/{NUMBER}/iap_web") == {"name": f"projects/{NUMBER}/iap_web"}


# --- provision: can IAP work on Cloud Run in this project? ---------------------------------------------------------


def test_provision_refuses_a_project_without_organization_and_custom_oauth_client(fake, ltmctl):
    fake.api(ResourceManagerApi).parents[PROJECT] = None
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 3, result.output
    said = _said(result)
    assert "environments.dev.iap.oauth_client_id: project my-project-id belongs to no organization" in said
    assert "set iap.oauth_client_id" in said and "LTM_IAP_OAUTH_CLIENT_SECRET" in said
    assert not fake.mutating_requests()  # checked before anything is changed


def test_provision_accepts_a_project_without_organization_given_a_custom_oauth_client(fake, config_path):
    fake.api(ResourceManagerApi).parents[PROJECT] = None
    config_path.write_text(TEST_CONFIG + f"    iap: {{oauth_client_id: {WEB_CLIENT}}}\n")
    result = Ltmctl(config_path)("provision", "--yes")
    assert result.exit_code == 0, result.output
