"""What `local env` prints and writes, for a project directory whose path needs quoting; the lines are evaluated
by bash as a user's shell evaluates them. (The lines against a running stack: test_local_cli; the clients using
them: tests/e2e/test_client_examples.py.)"""

import stat
import subprocess

from ltmctl import config
from ltmctl.local import client_env
from ltmctl.local.stack import PORT_NAMES, StackState
from tests.conftest import make_project


def test_the_lines_survive_a_shell_and_name_private_files(tmp_path):
    root = tmp_path / "it's a $HOME; `x`"
    config_path = make_project(root)
    resolved = config.load(config_path, "local")
    ports = {name: 20000 + i for i, name in enumerate(PORT_NAMES)}
    state = StackState("local", "ltm-test", ports, {}, "2026-12-01T00:00:00Z")

    lines = client_env.env_lines(resolved, state)
    names = ["PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "CLOUDSDK_CORE_PROJECT",
             "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB", "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "BIGQUERYRC", "LTM_ENV",
             "LTM_PROJECT", "LTM_TOPIC", "LTM_DATASET", "LTM_TABLE", "LTM_DLQ_TOPIC", "LTM_DLQ_SUBSCRIPTION",
             "LTM_INGEST_URL", "LTM_API_URL", "LTM_INGEST_METRICS_URL"]
    shell = subprocess.run(["bash", "-c", "\n".join(lines) + "\n" + "".join(f'printf "%s\\0" "${n}"\n' for n in names)],
                           capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    values = dict(zip(names, shell.stdout.split("\0")[:-1], strict=True))

    clients = root / ".ltm" / "local" / "clients"
    assert values["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] == str(clients / "access-token")
    assert values["BIGQUERYRC"] == str(clients / "bigqueryrc")
    assert values["BIGQUERY_EMULATOR_HOST"] == f"http://127.0.0.1:{ports['bigquery']}"
    assert values["CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB"] == f"http://127.0.0.1:{ports['pubsub']}/"
    assert values["LTM_INGEST_METRICS_URL"] == f"http://127.0.0.1:{ports['ingest_metrics']}/metrics"
    assert values["CLOUDSDK_CORE_PROJECT"] == values["LTM_PROJECT"] == "ltm-test"
    assert (clients / "access-token").read_text().strip() == client_env.ACCESS_TOKEN
    assert stat.S_IMODE(clients.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in clients.iterdir()} == {0o600}

    client_env.remove_client_files(resolved)
    assert not clients.exists()
