"""`ltmctl query` on the real local stack: free SQL with parameters, every output format, the API's shortcuts,
and its error paths; plus the pure parts (parameters, cost) on their own."""

import csv
import datetime as dt
import io
import json
import time
import uuid
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from api_service import queries
from ltmctl import querying
from ltmctl.cli import app
from ltmctl.errors import UsageError

runner = CliRunner()
DEADLINE_S = 60


def ltm(config_path, *args, stdin=None):
    return runner.invoke(app, ["--config", str(config_path), "query", *args], input=stdin)


def stamp(ago: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) - ago).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def data(stack):
    """Events of an app of their own: action `a` by one user (one event delivered twice, one 40 days old),
    action `b` by another."""
    tag = uuid.uuid4().hex[:8]
    app_id, a, b, user = f"qapp-{tag}", f"qa-{tag}", f"qb-{tag}", "Query.User@Example.com"

    def event(action, email, ago, n):
        return {"event_id": str(uuid.uuid4()), "action_id": action, "user_email": email, "app_id": app_id,
                "app_department": "ops", "source": "app", "event_time": stamp(ago), "payload": {"n": n}}

    e1, e2 = event(a, user, dt.timedelta(hours=3), 1), event(a, user, dt.timedelta(hours=2), 2)
    old, other = event(a, user, dt.timedelta(days=40), 3), event(b, "other@example.com", dt.timedelta(hours=1), 4)
    messages = [e1, e2, e2, old, other]
    futures = [stack.clients.publisher.publish(stack.topic_path, json.dumps(e).encode(), origin="q")
               for e in messages]
    [f.result(timeout=30) for f in futures]
    sql, deadline = f"SELECT COUNT(*) AS n FROM `{stack.table_id}` WHERE app_id = '{app_id}'", time.monotonic() + 60
    while next(iter(stack.clients.bigquery.query(sql).result())).n < len(messages):
        assert time.monotonic() < deadline, "the events never became rows"
        time.sleep(0.3)
    return {"app": app_id, "a": a, "b": b, "user": user, "e1": e1, "e2": e2, "old": old, "other": other}


SQL = ("SELECT event_id, event_time, payload, attributes, @n * 2 AS twice FROM events "
       "WHERE app_id = @app ORDER BY event_time LIMIT @n")


def test_free_sql_with_string_and_int64_params(stack, data):
    result = ltm(stack.resolved.path, SQL, "--param", f"app={data['app']}", "--param", "n=2:INT64", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["event_id"] for r in rows] == [data["old"]["event_id"], data["e1"]["event_id"]]
    assert all(r["twice"] == 4 for r in rows)  # an INT64, not the string "2"
    assert rows[1]["payload"] == {"n": 1}  # JSON columns stay JSON
    assert rows[1]["attributes"] == {"origin": "q"}
    assert rows[1]["event_time"].endswith("Z")
    assert dt.datetime.fromisoformat(rows[1]["event_time"]) == dt.datetime.fromisoformat(data["e1"]["event_time"])
    assert "2 rows" in result.stderr


def test_every_output_format_parses_back_to_the_same_rows(stack, data):
    args = (SQL, "-p", f"app={data['app']}", "-p", "n=5:INT64", "-o")
    as_json = json.loads(ltm(stack.resolved.path, *args, "json").stdout)
    assert len(as_json) == 5

    jsonl = ltm(stack.resolved.path, *args, "jsonl")
    assert jsonl.exit_code == 0, jsonl.output
    assert [json.loads(line) for line in jsonl.stdout.splitlines()] == as_json

    as_csv = ltm(stack.resolved.path, *args, "csv")
    assert as_csv.exit_code == 0, as_csv.output
    records = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["event_id"] for r in records] == [r["event_id"] for r in as_json]
    assert [json.loads(r["payload"]) for r in records] == [r["payload"] for r in as_json]
    assert [int(r["twice"]) for r in records] == [10] * 5

    table = ltm(stack.resolved.path, "SELECT action_id FROM events WHERE app_id = @app ORDER BY 1", "-p",
                f"app={data['app']}")
    assert table.exit_code == 0, table.output
    assert "action_id" in table.stdout and data["b"] in table.stdout and "5 rows" in table.stderr


def test_limit_caps_the_rows_fetched_and_says_so(stack, data):
    result = ltm(stack.resolved.path, "SELECT event_id FROM events WHERE app_id = @app", "-p", f"app={data['app']}",
                 "--limit", "2", "-o", "json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2
    assert "2 rows of 5" in result.stderr and "--limit" in result.stderr


def test_sql_from_stdin(stack, data):
    result = ltm(stack.resolved.path, "-", "-p", f"app={data['app']}", "-o", "csv",
                 stdin="SELECT COUNT(*) AS n FROM events WHERE app_id = @app")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", "5"]


def test_get_data_shortcut_answers_what_the_api_answers(stack, data):
    # mixed-case e-mail, as a user would type it; stored (and matched) lower-cased
    result = ltm(stack.resolved.path, "--action-id", data["a"], "--user-email", data["user"], "-o", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    count, expected = queries.get_data(stack.clients.bigquery, stack.table_id, action_id=data["a"],
                                       user_email=data["user"])
    # de-duplicated (e2 was delivered twice), newest first, the 40-day-old event outside the default window
    assert [r["event_id"] for r in rows] == [r["event_id"] for r in expected] == [
        data["e2"]["event_id"], data["e1"]["event_id"]]
    assert {r["total"] for r in rows} == {count} == {2}

    wider = ltm(stack.resolved.path, "--action-id", data["a"], "--user-email", data["user"], "--days", "60",
                "-o", "json")
    assert [r["event_id"] for r in json.loads(wider.stdout)][-1] == data["old"]["event_id"]


def test_app_info_shortcut_answers_what_the_api_answers(stack, data):
    result = ltm(stack.resolved.path, "--app-id", data["app"], "--department", "ops", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    expected = queries.app_info(stack.clients.bigquery, stack.table_id, app_id=data["app"], app_department="ops")
    assert (rows[0]["events"], rows[0]["users"], rows[0]["actions"]) == (
        expected["events"], expected["users"], expected["actions"]) == (3, 2, 2)
    assert [{"action_id": r["action_id"], "events": r["action_events"]} for r in rows] == expected["top_actions"]
    assert dt.datetime.fromisoformat(rows[0]["last_seen"]) == expected["last_seen"]


@pytest.mark.parametrize(("args", "named"), [
    (["SELECT @n", "--param", "n=abc:INT64"], "--param n"),
    (["SELECT @n", "--param", "n=1:INTEGR"], "INTEGR"),
    (["SELECT @n", "--param", "no-equals-sign"], "no-equals-sign"),
    (["SELECT @d", "--param", "d=2026-13-01:DATE"], "--param d"),
    (["SELECT @n", "-p", "n=1", "-p", "n=2"], "--param n"),
    (["SELECT 1", "--action-id", "a", "--user-email", "u@example.com"], "exactly one"),
    (["--action-id", "a"], "--action-id/--user-email"),
    ([], "exactly one"),
])
def test_bad_arguments_are_usage_errors(stack, args, named):
    result = ltm(stack.resolved.path, *args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr


def test_a_sql_error_shows_bigquerys_message_and_exits_4(stack):
    result = ltm(stack.resolved.path, "SELECT no_such_column FROM events")
    assert result.exit_code == 4, result.output
    assert "BigQuery rejected the query" in result.stderr and "no_such_column" in result.stderr
    assert "Traceback" not in result.output


def test_dry_run_on_the_emulator_validates_and_runs_nothing(stack):
    result = ltm(stack.resolved.path, "SELECT event_id FROM events", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "SQL is valid" in result.stderr and "0 B" in result.stderr and "emulator" in result.stderr
    bad = ltm(stack.resolved.path, "SELEC event_id FROM events", "--dry-run")
    assert bad.exit_code == 4 and "SELEC" in bad.stderr


def test_no_local_stack_says_how_to_start_one(project_dir):
    result = ltm(project_dir / "config" / "ltm.yaml", "SELECT 1")
    assert result.exit_code == 4, result.output
    assert "ltmctl local up" in result.stderr


# ---- pure parts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "name", "type_", "value"), [
    ("s=plain", "s", "STRING", "plain"),
    ("s=", "s", "STRING", ""),
    ("t=10:30", "t", "STRING", "10:30"),  # a colon followed by no type name is part of the value
    ("u=http://x/y", "u", "STRING", "http://x/y"),
    ("s=a:b", "s", "STRING", "a:b"),
    ("s=x:INT64:STRING", "s", "STRING", "x:INT64"),
    ("n=42:INT64", "n", "INT64", 42),
    ("n=-7:integer", "n", "INT64", -7),
    ("f=1.5:FLOAT64", "f", "FLOAT64", 1.5),
    ("d=12.34:NUMERIC", "d", "NUMERIC", Decimal("12.34")),
    ("b=TRUE:BOOL", "b", "BOOL", True),
    ("b=no:BOOLEAN", "b", "BOOL", False),
    ("ts=2026-01-31T10:00:00Z:TIMESTAMP", "ts", "TIMESTAMP", dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC)),
    ("ts=2026-01-31 10:00:00:TIMESTAMP", "ts", "TIMESTAMP", dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC)),
    ("day=2026-01-31:DATE", "day", "DATE", dt.date(2026, 1, 31)),
    ("at=10:00:00:TIME", "at", "TIME", dt.time(10)),
])
def test_param_syntax(text, name, type_, value):
    assert querying.parse_param(text) == querying.Param(name, type_, value)


@pytest.mark.parametrize("text", ["=x", "1a=x", "a b=x", "n=1.5:INT64", "b=maybe:BOOL", "d=NaN:NUMERIC",
                                  "x=1:STRUCT", "ts=yesterday:TIMESTAMP"])
def test_bad_param_syntax(text):
    with pytest.raises(UsageError) as caught:
        querying.parse_param(text)
    assert caught.value.exit_code == 2


def test_cost_estimate_is_bytes_over_a_tebibyte_times_the_price():
    assert querying.estimate(2**40, 6.25, 10**13).usd == pytest.approx(6.25)
    assert querying.estimate(10 * 2**30, 6.25, 10**13).usd == pytest.approx(6.25 * 10 / 1024)
    assert querying.estimate(0, 6.25, 1).usd == 0
    assert querying.estimate(2**40, 5.0, 10**13).usd == pytest.approx(5.0)


def test_above_max_bytes_is_refused_unless_yes():
    within = querying.estimate(1000, 6.25, max_bytes=1000)
    assert not within.over_budget and querying.bytes_cap(within, yes=False) == 1000

    above = querying.estimate(5 * 2**40, 6.25, max_bytes=10**10)
    assert above.over_budget
    with pytest.raises(UsageError) as refused:
        querying.bytes_cap(above, yes=False)
    assert refused.value.exit_code == 2
    assert "5.0 TiB" in refused.value.message and "$31.25" in refused.value.message
    assert "--yes" in refused.value.hint and "--max-bytes" in refused.value.hint
    # with --yes the query may bill what the dry run estimated (plus rounding headroom), not unlimited
    cap = querying.bytes_cap(above, yes=True)
    assert 5 * 2**40 < cap < 6 * 2**40


def test_values_become_json_ready():
    assert querying.plain(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2026-01-02T03:04:05Z"
    assert querying.plain(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05"  # DATETIME has no zone
    assert querying.plain(Decimal("1.10")) == "1.10"
    assert querying.plain(b"\x00\xff") == "AP8="
    assert querying.plain({"a": [dt.date(2026, 1, 2)]}) == {"a": ["2026-01-02"]}
    assert querying.cell({"a": 1}) == '{"a":1}' and querying.cell(None) == "" and querying.cell(True) == "true"


# Issue 12 item 6: statements that change data or schema ran with exit 0 ("0 rows"), and a script showed only its
# last result. The statement type comes from BigQuery's dry run (bqemulator reports it too).
def _scratch_table(stack) -> str:
    from google.cloud import bigquery

    name = f"scratch_{uuid.uuid4().hex[:8]}"
    table_id = f"{stack.project}.{stack.resolved.pipeline.dataset}.{name}"
    stack.clients.bigquery.create_table(bigquery.Table(table_id, schema=[bigquery.SchemaField("n", "INT64")]))
    stack.clients.bigquery.query(f"INSERT INTO `{table_id}` (n) VALUES (1), (2)").result()
    return name


def _count(stack, name) -> int:
    sql = f"SELECT COUNT(*) AS n FROM `{stack.project}.{stack.resolved.pipeline.dataset}.{name}`"
    return next(iter(stack.clients.bigquery.query(sql).result())).n


@pytest.mark.parametrize("sql", ["DELETE FROM {t} WHERE TRUE", "DROP TABLE {t}", "INSERT INTO {t} (n) VALUES (3)",
                                 "CREATE TABLE {t}_copy AS SELECT * FROM {t}", "UPDATE {t} SET n = 0 WHERE TRUE"])
def test_statements_that_change_data_or_schema_are_refused_without_allow_writes(stack, sql):
    name = _scratch_table(stack)
    result = ltm(stack.resolved.path, sql.format(t=name))
    assert result.exit_code == 2, result.output
    assert "--allow-writes" in result.stderr and "Traceback" not in result.output
    assert _count(stack, name) == 2  # nothing changed


def test_allow_writes_needs_a_confirmation_and_then_runs_one_statement(stack):
    name = _scratch_table(stack)
    unconfirmed = ltm(stack.resolved.path, f"DELETE FROM {name} WHERE n = 1", "--allow-writes")
    assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.stderr  # no terminal to ask on
    assert _count(stack, name) == 2
    confirmed = ltm(stack.resolved.path, f"DELETE FROM {name} WHERE n = 1", "--allow-writes", "--yes")
    assert confirmed.exit_code == 0, confirmed.output
    assert "DELETE" in confirmed.stderr
    assert _count(stack, name) == 1


def test_a_script_is_refused_naming_why(stack):
    name = _scratch_table(stack)
    for script in (f"SELECT 1; DELETE FROM {name} WHERE TRUE", "SELECT 1; SELECT 2"):
        for extra in ((), ("--allow-writes", "--yes")):
            result = ltm(stack.resolved.path, script, *extra)
            assert result.exit_code == 2, result.output
            assert "one statement" in result.stderr
    assert _count(stack, name) == 2
