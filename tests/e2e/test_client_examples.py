"""The clients a user points at the local stack with `eval "$(ltmctl local env)"` and nothing else: the real `bq`
CLI (through the gcloud that wraps it), gcloud, curl and the official Python clients. README's client examples are
read from README.md by their markers and run as they are written there, in a shell that ran that `eval`."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import running_stack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\n```(bash|python)\n(.*?)```", re.S)
EXAMPLES = {"gcloud-publish", "curl-publish", "python-publish", "bq-read", "curl-read", "python-read"}
PUBLISHED_BY = {"gcloud-publish": "ana@example.com", "curl-publish": "bea@example.com",
                "python-publish": "cruz@example.com"}
NEEDS = {"gcloud-publish": "gcloud", "bq-read": "bq", "curl-publish": "curl", "curl-read": "curl"}
RUN_S = 300  # a bound for one command on a loaded CI machine, not a speed claim
STORED_S = 120

no_bq = pytest.mark.skipif(shutil.which("bq") is None, reason="the bq CLI (Google Cloud CLI) is not installed")


def readme_examples() -> dict[str, tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The local stack"):text.index("## Commands")]
    return {name: (language, code) for name, language, code in EXAMPLE.findall(section)}


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """A stack of this file's own: its table holds only what these tests publish."""
    with running_stack(tmp_path_factory.mktemp("clients")) as s:
        yield s


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A new user's home: no gcloud login or configuration, no ~/.bigqueryrc; gcloud writes its logs here, not
    in this machine's ~/.config."""
    return tmp_path_factory.mktemp("home")


def in_local_env_shell(local, home: Path, script: str) -> subprocess.CompletedProcess:
    """`script` in bash after `eval "$(ltmctl local env)"` in the project directory, with nothing else set but
    PATH (this machine's, then ltmctl's), HOME and PYTHONPATH (this checkout)."""
    env = {"PATH": f"{os.environ['PATH']}:{Path(sys.executable).parent}", "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONPATH": str(REPO)}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", 'eval "$(ltmctl local env)"\n' + script],
                          cwd=local.resolved.root, env=env, capture_output=True, text=True, timeout=RUN_S)


def run_example(local, home: Path, tmp_path: Path, language: str, code: str) -> subprocess.CompletedProcess:
    if language == "python":
        script = tmp_path / "example.py"
        script.write_text(code)
        code = f"exec {shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    result = in_local_env_shell(local, home, code)
    assert result.returncode == 0, f"{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def stored(local, emails: list[str]) -> dict[str, dict]:
    """The stored rows of these users (one each), waited for: the pipeline stores asynchronously."""
    table = local.table_id
    deadline = time.monotonic() + STORED_S
    while True:
        rows = {r["user_email"]: dict(r) for r in local.clients.bigquery.query_and_wait(
            f"SELECT * FROM `{table}` WHERE user_email IN UNNEST(@emails)",
            job_config=_emails_parameter(emails))}
        if set(rows) == set(emails) or time.monotonic() > deadline:
            assert set(rows) == set(emails), f"stored after {STORED_S}s: {sorted(rows)}"
            return rows
        time.sleep(0.5)


def _emails_parameter(emails: list[str]):
    from google.cloud import bigquery

    return bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("emails", "STRING", emails)])


def bq_shows(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")  # bq shows whole seconds, UTC


def table_rows(text: str) -> list[list[str]]:
    """The cells of bq's pretty table output."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]


def test_readme_shows_each_client_example():
    assert set(readme_examples()) == EXAMPLES


def test_readme_client_examples_publish_and_read_as_written(local, home, tmp_path):
    examples = readme_examples()
    missing = {name: tool for name, tool in NEEDS.items() if shutil.which(tool) is None}
    if missing.get("bq-read"):
        pytest.skip("the bq CLI (Google Cloud CLI) is not installed")
    out = {}
    for name in ("gcloud-publish", "curl-publish", "python-publish"):
        if name not in missing:
            out[name] = run_example(local, home, tmp_path, *examples[name]).stdout
    assert "messageIds:" in out.get("gcloud-publish", "messageIds:")
    assert '"messageIds"' in out.get("curl-publish", '"messageIds"')
    assert re.fullmatch(r"\d+\n", out["python-publish"])
    rows = stored(local, [PUBLISHED_BY[name] for name in out])
    for row in rows.values():  # each example sent the time it ran: a real instant, within this test's minutes
        assert abs((datetime.now(UTC) - row["event_time"]).total_seconds()) < 3600

    for name in ("bq-read", "curl-read", "python-read"):
        if name not in missing:
            out[name] = run_example(local, home, tmp_path, *examples[name]).stdout

    # bq: `ls` names the table; `head` and `query` show every stored user with the instants Python reads
    assert local.resolved.pipeline.table in out["bq-read"].split()
    assert "out of range" not in out["bq-read"]
    shown = table_rows(out["bq-read"])
    for email, row in rows.items():
        assert [email, bq_shows(row["event_time"]), bq_shows(row["ingest_time"])] in shown  # bq query
        head = next(cells for cells in shown if email in cells and len(cells) > 3)  # bq head: every column
        assert bq_shows(row["event_time"]) in head and bq_shows(row["publish_time"]) in head

    # Python: the same users and the same instants, to the microsecond
    printed = set(out["python-read"].splitlines())
    assert {f"{email} {row['event_time'].isoformat()}" for email, row in rows.items()} <= printed

    if "curl-read" in out:  # the API's answer for ana (published with gcloud), then the ingest function's count
        answer, metrics = out["curl-read"].split("\n", 1)
        assert [e["user_email"] for e in json.loads(answer)["events"]] == ["ana@example.com"]
        assert int(float(re.search(r'ltm_ingest_messages_total\{outcome="stored"\} (\S+)', metrics)[1])) >= len(rows)


@no_bq
def test_bq_ls_head_and_query_show_the_stored_instants(local, home):
    """Plain `bq` after `eval "$(ltmctl local env)"`: no login, no flags; TIMESTAMPs shown as the instants
    google-cloud-bigquery reads from the same rows (one with microseconds, one before 1970)."""
    sent = {"tz-now@example.com": "2026-11-30T06:00:00.654321Z", "tz-moon@example.com": "1969-07-20T20:17:40Z"}
    for email, when in sent.items():
        event = {"action_id": "login", "user_email": email, "app_id": "crm", "app_department": "sales",
                 "event_time": when}
        local.clients.publisher.publish(local.topic_path, json.dumps(event).encode()).result(timeout=60)
    rows = stored(local, list(sent))
    assert rows["tz-now@example.com"]["event_time"] == datetime(2026, 11, 30, 6, 0, 0, 654321, tzinfo=UTC)
    assert rows["tz-moon@example.com"]["event_time"] == datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC)

    p = local.resolved.pipeline
    result = in_local_env_shell(local, home, f"""
bq ls
echo ---
bq ls {p.dataset}
echo ---
bq head -n 1000 {p.dataset}.{p.table}
echo ---
bq --format=json query "SELECT user_email, event_time, publish_time, ingest_time FROM {p.dataset}.{p.table}
                        WHERE user_email LIKE 'tz-%' ORDER BY user_email"
""")
    assert result.returncode == 0, result.stderr
    datasets, tables, head, query = result.stdout.split("---\n")
    assert p.dataset in datasets.split() and p.table in tables.split()
    assert "out of range" not in result.stdout
    shown = json.loads(query)
    assert shown == [{"user_email": email, **{column: bq_shows(rows[email][column])
                                              for column in ("event_time", "publish_time", "ingest_time")}}
                     for email in sorted(sent)]
    assert {"2026-11-30 06:00:00", "1969-07-20 20:17:40"} <= {cell for cells in table_rows(head) for cell in cells}
