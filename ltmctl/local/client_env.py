"""What `ltmctl local env` prints, and the client files it writes, so that the official clients, gcloud and bq
work against the local stack with nothing else set.

- Python clients: google-cloud-pubsub reads PUBSUB_EMULATOR_HOST, google-cloud-bigquery BIGQUERY_EMULATOR_HOST.
- gcloud (and the `bq` it wraps) reads its properties from CLOUDSDK_* variables: the project, an endpoint for
  Pub/Sub, and an access token read from a file (auth/access_token_file), so no `gcloud auth login` is needed and
  nothing is written to the user's gcloud configuration. The emulators check no token; the file holds a fixed
  placeholder, private all the same, like everything under `.ltm/local/`.
- bq reads its flags from the file BIGQUERYRC names (instead of ~/.bigqueryrc): the local BigQuery as `--api`
  (which serves the discovery document bq asks it for), the project, and standard SQL for `bq query` and `bq mk`
  (bq's own default is legacy SQL).

The files live in `.ltm/local/clients/`; `local down` removes them, and a shell that still points at them then gets
gcloud's own error about the missing token file instead of reaching anything.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ltmctl.config import Resolved

if TYPE_CHECKING:
    from ltmctl.local.stack import StackState  # stack imports this module

ACCESS_TOKEN = "ltm-local-stack"  # the emulators check no token; gcloud wants one to send


def client_dir(resolved: Resolved) -> Path:
    return resolved.state_dir / "clients"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # O_CREAT's mode does not apply to a leftover file
        out.write(text)
    os.replace(tmp, path)


def bigqueryrc(bigquery_endpoint: str, project: str, root: Path) -> str:
    return (f"# Written by `ltmctl local env` for the local stack of {root}; `ltmctl local down` removes it.\n"
            f"--api={bigquery_endpoint}\n"
            f"--project_id={project}\n"
            "[query]\n--use_legacy_sql=false\n"
            "[mk]\n--use_legacy_sql=false\n")


def write_client_files(resolved: Resolved, state: StackState) -> dict[str, Path]:
    """The access token file and the bigqueryrc for this stack, (re)written from its state."""
    from ltmctl.local.stack import private_dir

    folder = private_dir(client_dir(resolved))
    files = {"token": folder / "access-token", "bigqueryrc": folder / "bigqueryrc"}
    _write_private(files["token"], ACCESS_TOKEN + "\n")
    _write_private(files["bigqueryrc"], bigqueryrc(state.bigquery_endpoint, state.project, resolved.root))
    return files


def remove_client_files(resolved: Resolved) -> None:
    folder = client_dir(resolved)
    for name in ("access-token", "bigqueryrc"):
        (folder / name).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def env_values(resolved: Resolved, state: StackState, files: dict[str, Path]) -> dict[str, str]:
    s, p = state, resolved.pipeline
    values = {
        "PUBSUB_EMULATOR_HOST": s.pubsub_host,
        "BIGQUERY_EMULATOR_HOST": s.bigquery_endpoint,
        "CLOUDSDK_CORE_PROJECT": s.project,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{s.pubsub_host}/",
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(files["token"]),
        "BIGQUERYRC": str(files["bigqueryrc"]),
        "LTM_ENV": resolved.name,
        "LTM_PROJECT": s.project,
        "LTM_TOPIC": p.topic,
        "LTM_DATASET": p.dataset,
        "LTM_TABLE": p.table,
        "LTM_DLQ_TOPIC": p.dead_letter_topic,
        "LTM_DLQ_SUBSCRIPTION": p.dead_letter_subscription,
        "LTM_INGEST_URL": s.ingest_url,
        "LTM_API_URL": s.api_url,
    }
    if s.ingest_metrics_url:
        values["LTM_INGEST_METRICS_URL"] = s.ingest_metrics_url
    return values


def env_lines(resolved: Resolved, state: StackState) -> list[str]:
    values = env_values(resolved, state, write_client_files(resolved, state))
    return [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
