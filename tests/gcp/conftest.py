"""The fake Google Cloud control plane per test, and `ltmctl` run through CliRunner against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ltmctl.gcp.fake import FakeGcp
from tests.conftest import make_project
from tests.gcp.support import NUMBER, PROJECT  # the dev environment of tests.conftest.TEST_CONFIG


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcp]:
    """The fake project; ltmctl and every client built by GcpClients.for_endpoint act as its owner unless a test
    says otherwise (`LTM_GCP_TOKEN`, `fake.token_for(member)`)."""
    with FakeGcp(PROJECT, NUMBER) as f:
        monkeypatch.setenv("LTM_GCP_TOKEN", f.token_for(f.owner))
        yield f


@pytest.fixture
def config_path(fake: FakeGcp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTM_GCP_ENDPOINT", fake.endpoint)
    monkeypatch.delenv("LTM_ENV", raising=False)
    monkeypatch.delenv("LTM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path)


class Ltmctl:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.runner = CliRunner()

    def __call__(self, *args: str, env: str | None = "dev") -> Result:
        from ltmctl.cli import app

        head = ["--config", str(self.config_path)] + (["--env", env] if env else [])
        return self.runner.invoke(app, [*head, *args])


@pytest.fixture
def ltmctl(config_path: Path) -> Ltmctl:
    return Ltmctl(config_path)


@pytest.fixture
def provisioned(fake, ltmctl):
    """The fake after `ltmctl provision --yes` (its requests forgotten): what the runtime identities act in."""
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 0, result.output
    fake.clear_requests()
    return fake
