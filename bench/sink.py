"""sink: per-write latency of insertAll against the Storage Write API on the local stack's BigQuery emulator.

Why: the ingest function writes 1–2 rows per request (the Pub/Sub emulator pushes at most two messages at a time,
so group commit joins at most two deliveries): the time of one small durable write bounds its throughput.
What: sequential 1-row and 2-row writes, WRITES each (LTM_BENCH_SINK_WRITES, default 300) interleaved in ROUNDS
rounds after WARMUP unmeasured ones, p50/p90 ms and rows/s, of (1) the baseline, tabledata.insertAll
(`insert_rows_json`) through ingest_fn/sink.py's BigQuerySink itself, and (2) AppendRows on the table's `_default`
stream over one long-lived bidirectional gRPC call, proto2 rows built from config/contract/events_table.json
(TIMESTAMP as int64 µs, JSON as text), the transport's stub driven directly: the client's append_rows waits for a
first answer and AppendRowsStream's future .result() polls with 1 s sleeps; every request carries write_stream
(bqemulator needs it on each). Both answer once the rows are durable. Then every row written must be queryable
exactly once with the values written, or the run fails. Ratio: insertAll p50 ÷ AppendRows p50, 1-row writes
(> 1: the Storage Write API is faster); informational, it decides the ingest sink (README Performance)."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import REPO, local_stack, percentile, report

WRITES = int(os.environ.get("LTM_BENCH_SINK_WRITES", "300"))
WARMUP = 20
ROUNDS = 10
TIMEOUT_S = 900  # the AppendRows call is cancelled after this: a stuck write fails instead of hanging the run
SCHEMA: list[dict[str, Any]] = json.loads((REPO / "config" / "contract" / "events_table.json").read_text())
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _AppendRows:
    """One AppendRows call on the _default stream, driven synchronously; proto2 rows typed from SCHEMA."""

    def __init__(self, write_client: Any, stream: str) -> None:
        from google.cloud.bigquery_storage_v1 import types
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        proto = descriptor_pb2.FieldDescriptorProto
        kinds = {"STRING": proto.TYPE_STRING, "JSON": proto.TYPE_STRING, "TIMESTAMP": proto.TYPE_INT64}
        file = descriptor_pb2.FileDescriptorProto(name="bench_sink_row.proto", syntax="proto2")
        self.descriptor = file.message_type.add(name="Row")
        for number, field in enumerate(SCHEMA, start=1):
            if field["type"] not in kinds or field.get("mode") == "REPEATED":
                raise SystemExit(f"sink: column {field['name']} ({field['type']}) is not handled by the row encoder")
            self.descriptor.field.add(name=field["name"], number=number, type=kinds[field["type"]],
                                      label=proto.LABEL_OPTIONAL)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        self.row_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("Row"))
        self.types, self.stream, self.first = types, stream, True
        self.requests: queue.Queue = queue.Queue()
        self.responses = write_client.transport.append_rows(
            iter(self.requests.get, None), metadata=(("x-goog-request-params", f"write_stream={stream}"),))
        self.watchdog = threading.Timer(TIMEOUT_S, self.responses.cancel)
        self.watchdog.start()

    def _encode(self, row: dict[str, Any]) -> bytes:
        message = self.row_class()
        for field in SCHEMA:
            value = row.get(field["name"])
            if value is not None:  # absent: NULL
                if field["type"] == "TIMESTAMP":
                    value = (datetime.fromisoformat(value) - _EPOCH) // timedelta(microseconds=1)
                setattr(message, field["name"], value)
        return message.SerializeToString()

    def write(self, rows: list[dict[str, Any]]) -> None:
        t = self.types
        data = t.AppendRowsRequest.ProtoData(rows=t.ProtoRows(serialized_rows=[self._encode(r) for r in rows]))
        if self.first:  # the writer schema goes on the connection's first request only
            data.writer_schema, self.first = t.ProtoSchema(proto_descriptor=self.descriptor), False
        self.requests.put(t.AppendRowsRequest(write_stream=self.stream, proto_rows=data))
        response = next(self.responses)
        if response.error.code or response.row_errors:
            raise RuntimeError(f"AppendRows: {response.error.message} {list(response.row_errors)}")

    def close(self) -> None:
        self.watchdog.cancel()
        self.requests.put(None)
        self.responses.cancel()


def _text(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _row(tag: str, method: str, i: int) -> dict[str, Any]:
    """A row as ingest_fn/decode.py builds it: RFC 3339 text timestamps, JSON columns as text, NULLs."""
    at = datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(seconds=i, microseconds=123_457 + i)
    payload = {"i": i, "name": f"ü-{i}", "nested": {"a": [1, 2.5, None, True], "s": 'x"y'}}
    return {"event_id": f"{method}-{i}-{uuid.uuid4().hex[:8]}", "action_id": "view", "user_email": f"u{i % 7}@x.org",
            "app_id": "bench", "app_department": tag, "source": None if i % 3 == 0 else "web",
            "event_time": _text(at), "payload": json.dumps(payload, separators=(",", ":")),
            "message_id": str(10**7 + i), "publish_time": _text(at + timedelta(milliseconds=5)),
            "ingest_time": _text(datetime.now(UTC)),
            "attributes": json.dumps({"k": str(i)}) if i % 2 else None}


def _verify(bigquery: Any, table_id: str, tag: str, written: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """How many rows are stored exactly once with the values written, and what is wrong otherwise."""
    from google.cloud.bigquery import QueryJobConfig, ScalarQueryParameter

    config = QueryJobConfig(query_parameters=[ScalarQueryParameter("tag", "STRING", tag)])
    stored: dict[str, list[dict]] = {}
    for r in bigquery.query(f"SELECT * FROM `{table_id}` WHERE app_department = @tag", job_config=config).result():
        stored.setdefault(r["event_id"], []).append(dict(r))
    problems = [f"{k}: stored, never written" for k in stored.keys() - {w["event_id"] for w in written}]
    verified = 0
    for row in written:
        copies = stored.get(row["event_id"], [])
        if len(copies) != 1:
            problems.append(f"{row['event_id']}: stored {len(copies)} times")
            continue
        wrong = []
        for field in SCHEMA:
            want, got = row.get(field["name"]), copies[0][field["name"]]
            if want is not None and field["type"] == "TIMESTAMP":
                want = datetime.fromisoformat(want)
            elif want is not None and field["type"] == "JSON":
                want, got = json.loads(want), json.loads(got) if isinstance(got, str) else got
            if got != want:
                wrong.append(f"{row['event_id']}.{field['name']}: wrote {want!r}, read {got!r}")
        problems += wrong
        verified += not wrong
    return verified, problems


def run(writes: int = WRITES) -> dict:
    import grpc
    from google.cloud.bigquery_storage_v1 import BigQueryWriteClient
    from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport

    from ingest_fn.sink import BigQuerySink

    with local_stack() as (resolved, state, clients):
        p = resolved.pipeline
        table_id = f"{state.project}.{p.dataset}.{p.table}"
        if [f.name for f in clients.bigquery.get_table(table_id).schema] != [f["name"] for f in SCHEMA]:
            raise SystemExit(f"sink: the table {table_id} does not have the columns of events_table.json")
        sink = BigQuerySink(clients.bigquery, table_id)
        channel = grpc.insecure_channel(f"127.0.0.1:{state.ports['bigquery_grpc']}")
        append = _AppendRows(BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel)),
                             f"projects/{state.project}/datasets/{p.dataset}/tables/{p.table}/streams/_default")

        def insert_all(rows: list[dict[str, Any]]) -> None:
            result = sink.insert(rows)
            if result.refused or result.unstored:
                raise RuntimeError(f"insertAll: {result}")

        writers = {"insertAll": insert_all, "AppendRows": append.write}
        methods = [(kind, n) for n in (1, 2) for kind in writers]
        written: dict[tuple[str, int], list[dict]] = {m: [] for m in methods}
        took: dict[tuple[str, int], list[float]] = {m: [] for m in methods}
        tag = f"sink-{uuid.uuid4().hex[:8]}"

        def write(method: tuple[str, int], measured: bool) -> None:
            kind, n = method
            rows = [_row(tag, f"{kind}{n}", len(written[method]) + k) for k in range(n)]
            started = time.perf_counter()
            writers[kind](rows)
            took[method] += [time.perf_counter() - started] if measured else []
            written[method].extend(rows)

        try:
            for method in methods * WARMUP:
                write(method, False)
            rounds = max(1, min(ROUNDS, writes))
            for r in range(rounds):  # each round starts with the next method, so none always goes first
                for method in methods[r % len(methods):] + methods[:r % len(methods)]:
                    for _ in range(writes // rounds + (r < writes % rounds)):
                        write(method, True)
        finally:
            append.close()
            channel.close()
        all_rows = [row for rows in written.values() for row in rows]
        verified, problems = _verify(clients.bigquery, table_id, tag, all_rows)
    if problems:
        raise SystemExit(f"sink: {verified}/{len(all_rows)} rows verified; {len(problems)} problems, first: "
                         + "; ".join(problems[:5]))
    figures: list[tuple[str, Any]] = []
    for kind, n in methods:  # insertAll 1, AppendRows 1, insertAll 2, AppendRows 2
        values = took[(kind, n)]
        figures += [(f"{kind} {n}-row p50 ms", percentile(values, 0.5) * 1e3),
                    (f"{kind} {n}-row p90 ms", percentile(values, 0.9) * 1e3),
                    (f"{kind} {n}-row rows/s", n * len(values) / sum(values))]
    figures += [("measured writes per method", writes), ("rows written", len(all_rows)),
                ("rows verified (stored once, values equal)", verified)]
    ratio = percentile(took[("insertAll", 1)], 0.5) / percentile(took[("AppendRows", 1)], 0.5)
    return report("sink", figures, ratio_name="insertAll p50 ÷ AppendRows p50 (1 row)", ratio=ratio,
                  target="informational: decides the ingest sink (see README Performance)", met=ratio > 1.0,
                  extra={"config": {"writes": writes, "warmup": WARMUP, "rounds": ROUNDS}})


if __name__ == "__main__":
    run()
