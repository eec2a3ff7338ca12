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


class _JsonServer:
    """A loopback HTTP server answering JSON from `answer(method, path, headers, body)`: the stand-ins below."""

    def __init__(self) -> None:
        answer = self.answer

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, value = answer(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _reply  # noqa: N815 - stdlib names

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _StandIn(_JsonServer):
    """The API's URL, standing in for IAP in front of it: records what each request carried."""

    def __init__(self) -> None:
        self.seen = []
        super().__init__()

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        self.seen.append((path, headers))
        return 200, {"action_id": "login", "count": 0, "events": []}


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


class _TokenEndpoint(_JsonServer):
    """Google's OAuth token endpoint as a person's ADC refresh meets it: it refuses a grant it did not issue
    (`invalid_grant`, 400, as Google does) and answers a refresh with an access token and, when the login asked
    for openid, an ID token whose `aud` is the OAuth client."""

    REFRESH = "1//refresh-token-of-ana"

    def __init__(self, client_id: str, with_id_token: bool = True, revoked: bool = False) -> None:
        self.client_id, self.with_id_token = client_id, with_id_token
        self.grants = set() if revoked else {self.REFRESH}
        self.seen = []
        super().__init__()
        self.url += "/token"

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self.seen.append(form)
        if method != "POST" or form.get("grant_type") != "refresh_token" \
                or form.get("refresh_token") not in self.grants or form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        answer = {"access_token": "ya29.person", "expires_in": 3599, "token_type": "Bearer",
                  "scope": "openid https://www.googleapis.com/auth/userinfo.email"}
        if self.with_id_token:
            answer["id_token"] = self._id_token()
        return 200, answer

    def _id_token(self) -> str:
        def part(value: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
        claims = {"iss": "https://accounts.google.com", "aud": self.client_id, "azp": self.client_id,
                  "email": "ana@example.com", "sub": "1100000000000000000001", "iat": 1, "exp": 4_000_000_000}
        return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def person(tmp_path, monkeypatch):
    """A person logged in with `gcloud auth application-default login --client-id-file` of DESKTOP_CLIENT: their ADC
    file (authorized_user) refreshes at a stand-in for Google's token endpoint (google-auth ignores a `token_uri`
    in that file, so its endpoint constant is what points there). No LTM_GCP_ENDPOINT: a person's path asks
    nothing of Google's APIs, only of the token endpoint."""
    import google.oauth2.credentials

    endpoints = []

    def login(client_id: str = DESKTOP_CLIENT, with_id_token: bool = True, revoked: bool = False) -> _TokenEndpoint:
        endpoint = _TokenEndpoint(client_id, with_id_token, revoked)
        endpoints.append(endpoint)
        adc = tmp_path / "application_default_credentials.json"
        adc.write_text(json.dumps({"type": "authorized_user", "client_id": client_id, "client_secret": "d-FL95Q",
                                   "refresh_token": _TokenEndpoint.REFRESH}))
        monkeypatch.setattr(google.oauth2.credentials, "_GOOGLE_OAUTH2_TOKEN_ENDPOINT", endpoint.url)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        return endpoint

    monkeypatch.delenv("LTM_GCP_ENDPOINT", raising=False)
    monkeypatch.delenv("LTM_ENV", raising=False)
    monkeypatch.delenv("LTM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    yield login
    for endpoint in endpoints:
        endpoint.close()


PERSON_CONFIG = TEST_CONFIG + (f"    iap: {{programmatic_clients: [{DESKTOP_CLIENT}], "
                               "members: [user:ana@example.com]}\n")


def test_api_get_data_sends_a_persons_id_token_of_a_listed_client(tmp_path, person, api_url):
    endpoint = person()
    result = Ltmctl(make_project(tmp_path, PERSON_CONFIG))("api", "get-data", "login", "ana@example.com")
    assert result.exit_code == 0, result.output

    (path, headers), = api_url.seen
    scheme, token = headers["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = _claims(token)
    assert claims["aud"] == DESKTOP_CLIENT and claims["email"] == "ana@example.com"  # the ID token, unchanged
    (refresh,) = endpoint.seen  # one refresh of the person's own grant
    assert refresh["grant_type"] == "refresh_token" and refresh["client_id"] == DESKTOP_CLIENT


def test_a_persons_client_iap_does_not_list_is_refused_before_any_request(tmp_path, person, api_url):
    other = "999-other.apps.googleusercontent.com"
    person(client_id=other)
    result = Ltmctl(make_project(tmp_path, PERSON_CONFIG))("api", "get-data", "login", "ana@example.com")
    assert result.exit_code == 3, result.output
    said = _said(result)
    assert "environments.dev.iap.programmatic_clients does not list" in said and other in said
    assert api_url.seen == []  # IAP would refuse it: nothing sent


def test_a_persons_adc_without_an_id_token_says_how_to_log_in(tmp_path, person, api_url):
    person(with_id_token=False)  # a login without the openid scope
    result = Ltmctl(make_project(tmp_path, PERSON_CONFIG))("api", "token")
    assert result.exit_code == 4, result.output
    assert "carry no ID token" in _said(result) and "application-default login" in _said(result)
    assert api_url.seen == []


def test_a_revoked_login_is_said_with_what_to_do_not_as_a_traceback(tmp_path, person, api_url):
    endpoint = person(revoked=True)
    result = Ltmctl(make_project(tmp_path, PERSON_CONFIG))("api", "get-data", "login", "ana@example.com")
    assert len(endpoint.seen) == 1
    assert result.exit_code == 4, result.output
    assert "refused when refreshed" in _said(result) and "invalid_grant" in _said(result)
    assert "application-default login" in _said(result)
    assert api_url.seen == []
