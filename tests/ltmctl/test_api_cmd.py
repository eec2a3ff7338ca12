"""`ltmctl api token`: an assertion the local stack's API accepts, made with a key kept at mode 0600."""

import stat

import httpx
from typer.testing import CliRunner

from ltmctl.cli import app

runner = CliRunner()


def test_token_is_accepted_by_the_running_api(stack):
    config = str(stack.resolved.path)
    result = runner.invoke(app, ["--config", config, "api", "token", "--email", "Tester@Example.com", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    url = f"{stack.state.api_url}/app_info/nothing-here:none"
    assert httpx.get(url, headers={"x-goog-iap-jwt-assertion": token}).status_code == 404  # authenticated
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"x-goog-iap-jwt-assertion": token[:-4] + "AAAA"}).status_code == 401


def test_key_files_are_private(stack):
    folder = stack.resolved.state_dir / "iap"
    files = list(folder.iterdir())
    assert {f.name for f in files} == {"iap-private.pem", "iap-jwks.json"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_token_in_gcp_needs_the_api_url(project_dir, monkeypatch):
    # The URL is the `aud` of the JWT IAP accepts from a service account (`https://HOST/*`).
    monkeypatch.delenv("LTM_API_URL", raising=False)
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "--env", "dev",
                                 "api", "token"])
    assert result.exit_code == 3
    assert "api.url is not set" in result.output


def _store(stack, action, user, n):
    import json as _json
    import uuid as _uuid

    rows = [{"event_id": str(_uuid.uuid4()), "action_id": action, "user_email": user, "app_id": "cli-app",
             "app_department": action, "event_time": f"2026-11-2{i % 9}T10:00:00Z", "message_id": "m",
             "publish_time": "2026-11-29T10:00:00Z", "ingest_time": "2026-11-29T10:00:00Z",
             "payload": _json.dumps({"i": i})} for i in range(n)]
    assert stack.clients.bigquery.insert_rows_json(stack.table_id, rows) == []


def test_get_data_and_app_info_call_the_api(stack):
    import json as _json
    import uuid as _uuid

    action = f"cli-{_uuid.uuid4().hex[:8]}"
    _store(stack, action, "cli@example.com", 3)
    config = str(stack.resolved.path)
    result = runner.invoke(app, ["--config", config, "api", "get-data", action, "CLI@example.com", "--days", "365"])
    assert result.exit_code == 0, result.output
    body = _json.loads(result.stdout)
    assert body["count"] == 3 and len(body["events"]) == 3
    result = runner.invoke(app, ["--config", config, "api", "app-info", "cli-app", action, "--days", "365",
                                 "-o", "table"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    summary = dict(line.split(None, 1) for line in lines if line.strip() and line.strip()[0].isalpha())
    assert {k: v.strip() for k, v in summary.items()} == {
        "app_id": "cli-app", "app_department": action, "events": "3", "users": "1", "actions": "1",
        "first_seen": "2026-11-20T10:00:00Z", "last_seen": "2026-11-22T10:00:00Z"}
    top = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert top == [[action, "3"]]  # the top actions table: one action, all three events


def test_http_errors_show_status_and_body(stack):
    result = runner.invoke(app, ["--config", str(stack.resolved.path), "api", "app-info", "nobody", "none"])
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert '"error": "not_found"' in result.stdout


def test_api_commands_need_the_stack(project_dir):
    config = str(project_dir / "config" / "ltm.yaml")
    result = runner.invoke(app, ["--config", config, "api", "get-data", "a", "b@c.de"])
    assert result.exit_code == 4
    assert "ltmctl local up" in result.output


def test_gcp_needs_the_api_url(project_dir):
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "--env", "dev",
                                 "api", "app-info", "a", "b"])
    assert result.exit_code == 3
    assert "api.url is not set" in result.output
