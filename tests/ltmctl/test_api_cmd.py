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


def test_token_refuses_a_gcp_environment(project_dir):
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "--env", "dev",
                                 "api", "token"])
    assert result.exit_code == 2
    assert "local stack only" in result.output
