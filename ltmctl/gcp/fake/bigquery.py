"""BigQuery API v2: datasets (with their `access` list, BigQuery's dataset-level IAM) and tables (with their IAM
policy, for grants narrower than a dataset); streaming inserts (`tabledata.insertAll`: rows kept per table, rows that
do not fit the table's schema refused row by row as BigQuery does); queries, as jobs (`jobs.insert`, then `jobs.get`
and `jobs.getQueryResults`, `jobs.cancel`) or in one `jobs.query` request, where `jobCreationMode:
JOB_CREATION_OPTIONAL` (BigQuery's short-query mode) answers without creating a job when it can.

The fake does not evaluate SQL, except one shape: `SELECT * FROM `table` WHERE col = @param [AND ...]` answers the
rows insertAll stored whose columns equal those parameters (other conditions, such as a look-back window on the
partition column, are not evaluated; verify's lookups by event id have that shape). Any other query completes
with no rows and the schema of the table it reads. What it does check, as BigQuery does: who may run it
(`bigquery.jobs.create` on the project and `bigquery.tables.getData` on every table the query names,
`ltmctl.gcp.fake.authz`), that every table it names exists, that every @parameter it uses is given, and that it
bills no more than `maximumBytesBilled` (it bills what BigQuery's on-demand minimums say, or every stored row's
JSON when that is more: the fake prunes nothing). A query runs for `query_s` wall seconds (0 by default); an
answer waits for it up to the request's `timeoutMs`, then says `jobComplete: false`, as BigQuery does."""

from __future__ import annotations

import base64
import re
import time
from datetime import datetime
from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, PolicyStore, Request, etag, invalid
from ltmctl.text import cut

# BigQuery accepts IAM role names in dataset access entries and answers with the legacy names.
LEGACY_ROLES = {"roles/bigquery.dataViewer": "READER", "roles/bigquery.dataEditor": "WRITER",
                "roles/bigquery.dataOwner": "OWNER"}


def _millis() -> str:
    return str(int(time.time() * 1000))


class BigQueryApi(Api):
    discovery = ("bigquery.v2",)
    service = "bigquery.googleapis.com"
    title = "BigQuery API"
    legacy_errors = True

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.datasets: dict[str, dict[str, Any]] = {}  # "project:dataset" -> Dataset JSON
        self.tables: dict[str, dict[str, Any]] = {}  # "project:dataset.table" -> Table JSON
        self.policies = PolicyStore(fake)  # "project:dataset.table" -> the table's IAM policy
        self.rows: dict[str, list[dict[str, Any]]] = {}  # "project:dataset.table" -> [{insertId, json}] streamed in
        # "project:jobId" -> Job JSON, plus what is never sent: "creator", "rows", "done_at" (time.monotonic())
        self.jobs: dict[str, dict[str, Any]] = {}
        self.queries: list[str] = []  # queryIds of the short queries answered without a job
        # How long each query runs, in wall seconds (0: done at once). jobs.query and getQueryResults hold their
        # answer up to the request's timeoutMs for it, as BigQuery does, and serve other requests meanwhile.
        self.query_s = 0.0
        # insertId -> a per-row reason other than `invalid` (`backendError`, `timeout`): BigQuery's answer for a row
        # it did not store for a passing reason while it stored the rest of the request. Nothing in the request
        # causes it, so tests set it to drive the retry branch of a streaming insert.
        self.row_faults: dict[str, str] = {}
        # Reasons, in order, for which the next jobs.query requests fail after BigQuery created their job
        # (`jobInternalError`, `jobRateLimitExceeded`, `jobBackendError`: 400, transient, the client retries the
        # query). Nothing in the request causes them, so tests set them to drive the client's job retry.
        self.job_faults: list[str] = []

    def routes(self):
        d = "/bigquery/v2/projects/{project}/datasets"
        t = d + "/{dataset}/tables"
        return [
            ("GET", d, self.list_datasets),
            ("POST", d, self.create_dataset),
            ("GET", d + "/{dataset}", self.get_dataset),
            ("PATCH", d + "/{dataset}", self.patch_dataset),
            ("PUT", d + "/{dataset}", self.patch_dataset),
            ("DELETE", d + "/{dataset}", self.delete_dataset),
            ("GET", t, self.list_tables),
            ("POST", t, self.create_table),
            ("GET", t + "/{table}", self.get_table),
            ("PATCH", t + "/{table}", self.patch_table),
            ("PUT", t + "/{table}", self.patch_table),
            ("DELETE", t + "/{table}", self.delete_table),
            ("POST", t + "/{table}:getIamPolicy", self.get_table_policy),
            ("POST", t + "/{table}:setIamPolicy", self.set_table_policy),
            ("POST", t + "/{table}/insertAll", self.insert_all),
            ("POST", "/bigquery/v2/projects/{project}/jobs", self.insert_job),
            ("GET", "/bigquery/v2/projects/{project}/jobs/{job}", self.get_job),
            ("POST", "/bigquery/v2/projects/{project}/jobs/{job}/cancel", self.cancel_job),
            ("POST", "/bigquery/v2/projects/{project}/queries", self.query),
            ("GET", "/bigquery/v2/projects/{project}/queries/{job}", self.get_query_results),
        ]

    # --- datasets ----------------------------------------------------------------------------------------------

    def _dataset(self, project: str, dataset: str) -> dict[str, Any]:
        key = f"{self.fake.project_id(project)}:{dataset}"
        if key not in self.datasets:
            raise ApiError(404, "NOT_FOUND", f"Not found: Dataset {key}", reason="notFound")
        return self.datasets[key]

    @staticmethod
    def _access(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**e, "role": LEGACY_ROLES.get(e.get("role", ""), e.get("role"))} if "role" in e else e
                for e in entries]

    def list_datasets(self, req: Request, project: str):
        pid = self.fake.project_id(project)
        return {"kind": "bigquery#datasetList",
                "datasets": [{"kind": "bigquery#dataset", "id": k, "datasetReference": d["datasetReference"],
                              "location": d["location"]} for k, d in self.datasets.items()
                             if k.startswith(pid + ":")]}

    def create_dataset(self, req: Request, project: str):
        pid = self.fake.project_id(project)
        body = dict(req.data or {})
        ref = body.get("datasetReference") or {}
        dataset_id = ref.get("datasetId")
        if not dataset_id:
            raise invalid("Required parameter is missing: datasetReference.datasetId")
        key = f"{pid}:{dataset_id}"
        if key in self.datasets:
            raise ApiError(409, "ALREADY_EXISTS", f"Already Exists: Dataset {key}", reason="duplicate")
        owner = self.fake.owner.split(":", 1)[1]
        # Without an explicit `access`, BigQuery grants the project's basic roles and the creator.
        access = body.get("access") or [
            {"role": "WRITER", "specialGroup": "projectWriters"}, {"role": "OWNER", "specialGroup": "projectOwners"},
            {"role": "OWNER", "userByEmail": owner}, {"role": "READER", "specialGroup": "projectReaders"}]
        now = _millis()
        self.datasets[key] = {
            **body, "kind": "bigquery#dataset", "id": key,
            "datasetReference": {"projectId": pid, "datasetId": dataset_id},
            "location": body.get("location") or "US", "access": self._access(access),
            "etag": etag(self.fake.next_id()), "creationTime": now, "lastModifiedTime": now,
            "selfLink": f"{self.fake.endpoint}/bigquery/v2/projects/{pid}/datasets/{dataset_id}", "type": "DEFAULT",
        }
        return self.datasets[key]

    def get_dataset(self, req: Request, project: str, dataset: str):
        return self._dataset(project, dataset)

    def patch_dataset(self, req: Request, project: str, dataset: str):
        current = self._dataset(project, dataset)
        wanted = req.headers.get("If-Match")
        if wanted and wanted != current["etag"]:
            raise ApiError(412, "FAILED_PRECONDITION", "Precondition check failed.", reason="conditionNotMet")
        for key, value in (req.data or {}).items():
            if key in ("datasetReference", "id", "kind", "etag", "location"):
                if key == "location" and value not in (None, current["location"]):
                    raise invalid("Cannot change dataset location.")
                continue
            if key == "access":
                # Like IAM, BigQuery refuses new entries for service accounts that do not exist.
                for entry in self._access(value or []):
                    email = entry.get("userByEmail", "")
                    if (entry not in current.get("access", []) and email.endswith(".gserviceaccount.com")
                            and not self.fake.member_exists(f"serviceAccount:{email}")):
                        raise invalid(f"IAM setPolicy failed for Dataset {current['id']}: Service account {email} "
                                      "does not exist.")
            if value is None:
                current.pop(key, None)
            else:
                current[key] = self._access(value) if key == "access" else value
        current["etag"] = etag(self.fake.next_id())
        current["lastModifiedTime"] = _millis()
        return current

    def delete_dataset(self, req: Request, project: str, dataset: str):
        current = self._dataset(project, dataset)
        prefix = current["id"] + "."
        tables = [k for k in self.tables if k.startswith(prefix)]
        if tables and req.query.get("deleteContents") != "true":
            raise ApiError(400, "FAILED_PRECONDITION", f"Dataset {current['id']} is still in use",
                           reason="resourceInUse")
        for key in tables:
            del self.tables[key]
            self.rows.pop(key, None)
        del self.datasets[current["id"]]
        return 204, {}

    # --- tables ------------------------------------------------------------------------------------------------

    def _table(self, project: str, dataset: str, table: str) -> dict[str, Any]:
        ds = self._dataset(project, dataset)
        key = f"{ds['id']}.{table}"
        if key not in self.tables:
            raise ApiError(404, "NOT_FOUND", f"Not found: Table {key}", reason="notFound")
        return self.tables[key]

    def list_tables(self, req: Request, project: str, dataset: str):
        ds = self._dataset(project, dataset)
        return {"kind": "bigquery#tableList",
                "tables": [{"kind": "bigquery#table", "id": k, "tableReference": t["tableReference"],
                            "type": t["type"]} for k, t in self.tables.items() if k.startswith(ds["id"] + ".")]}

    def create_table(self, req: Request, project: str, dataset: str):
        ds = self._dataset(project, dataset)
        body = dict(req.data or {})
        table_id = (body.get("tableReference") or {}).get("tableId")
        if not table_id:
            raise invalid("Required parameter is missing: tableReference.tableId")
        key = f"{ds['id']}.{table_id}"
        if key in self.tables:
            raise ApiError(409, "ALREADY_EXISTS", f"Already Exists: Table {key}", reason="duplicate")
        now = _millis()
        ref = {**ds["datasetReference"], "tableId": table_id}
        self.tables[key] = {**body, "kind": "bigquery#table", "id": key, "tableReference": ref, "type": "TABLE",
                            "location": ds["location"], "etag": etag(self.fake.next_id()), "numRows": "0",
                            "numBytes": "0", "creationTime": now, "lastModifiedTime": now}
        return self.tables[key]

    def get_table(self, req: Request, project: str, dataset: str, table: str):
        return self._table(project, dataset, table)

    def patch_table(self, req: Request, project: str, dataset: str, table: str):
        current = self._table(project, dataset, table)
        wanted = req.headers.get("If-Match")
        if wanted and wanted != current["etag"]:
            raise ApiError(412, "FAILED_PRECONDITION", "Precondition check failed.", reason="conditionNotMet")
        for key, value in (req.data or {}).items():
            if key == "timePartitioning" and value != current.get("timePartitioning"):
                raise invalid("Cannot change partitioning spec for a partitioned table.")
            if key in ("tableReference", "id", "kind", "etag", "timePartitioning"):
                continue
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        current["etag"] = etag(self.fake.next_id())
        current["lastModifiedTime"] = _millis()
        return current

    def delete_table(self, req: Request, project: str, dataset: str, table: str):
        current = self._table(project, dataset, table)
        del self.tables[current["id"]]
        self.rows.pop(current["id"], None)
        self.policies.drop(current["id"])
        return 204, {}

    def get_table_policy(self, req: Request, project: str, dataset: str, table: str):
        return self.policies.get(self._table(project, dataset, table)["id"])

    def set_table_policy(self, req: Request, project: str, dataset: str, table: str):
        # Only version 1 exists for tables: no conditions.
        return self.policies.set(self._table(project, dataset, table)["id"], (req.data or {}).get("policy", {}))

    # --- streaming inserts ------------------------------------------------------------------------------------

    def insert_all(self, req: Request, project: str, dataset: str, table: str):
        """BigQuery's answer: every row that does not fit gets `invalid` errors, and unless `skipInvalidRows` the
        request stores nothing and the valid rows get `stopped`; a row in `row_faults` is not stored, with its
        reason, while the rest are."""
        current = self._table(project, dataset, table)
        body = req.data or {}
        fields = (current.get("schema") or {}).get("fields", [])
        rows = body.get("rows") or []
        ignore = body.get("ignoreUnknownValues", False)
        invalid = {i: e for i, row in enumerate(rows) if (e := _row_errors(fields, row.get("json") or {}, ignore))}
        nothing_stored = bool(invalid) and not body.get("skipInvalidRows", False)

        def reason(name: str) -> list[dict[str, Any]]:
            return [{"reason": name, "location": "", "debugInfo": "", "message": ""}]

        answer: dict[int, list[dict[str, Any]]] = {}
        for i, row in enumerate(rows):
            if i in invalid:
                answer[i] = invalid[i]
            elif nothing_stored:
                answer[i] = reason("stopped")
            elif row.get("insertId") in self.row_faults:
                answer[i] = reason(self.row_faults[row.get("insertId")])
        if not nothing_stored:
            self.rows.setdefault(current["id"], []).extend(
                {"insertId": row.get("insertId"), "json": row.get("json") or {}}
                for i, row in enumerate(rows) if i not in answer)
        out: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
        if answer:
            out["insertErrors"] = [{"index": i, "errors": errors} for i, errors in answer.items()]
        return out

    # --- queries: jobs.insert, jobs.query (short-query mode), results, cancel ------------------------------------

    def _prepare(self, req: Request, pid: str, sql: str, parameters: list[dict[str, Any]],
                 max_bytes: str | None) -> dict[str, Any]:
        """What running `sql` yields: its schema, rows and bytes billed; or Google's refusal of it (a table that
        does not exist, a named parameter not given, a byte cap below what the query bills)."""
        from ltmctl.gcp.fake.authz import referenced_tables

        tables = []
        for name in referenced_tables(sql, pid):
            _, ref_project, _, ref_dataset, _, ref_table = name.split("/")
            tables.append(self._table(ref_project, ref_dataset, ref_table))  # 404 for a table that does not exist
        for parameter in parameters:
            kind = str((parameter.get("parameterType") or {}).get("type", ""))
            if kind.upper() not in PARAMETER_TYPES:
                raise ApiError(400, "INVALID_ARGUMENT", f"Invalid query parameter type: {kind!r}", reason="invalid")
        given = {p.get("name") for p in parameters}
        for missing in dict.fromkeys(n for n in _named_parameters(sql) if n not in given):
            raise ApiError(400, "INVALID_ARGUMENT", f"Query parameter '{missing}' not found", reason="invalidQuery")
        # What BigQuery counts for a query that reads whole tables: the logical bytes of every row stored in them.
        per_table = [sum(_logical_bytes(t.get("schema") or {}, row["json"]) for row in self.rows.get(t["id"], []))
                     for t in tables]
        billed = _billed(per_table)
        if max_bytes is not None and billed > int(max_bytes):
            raise ApiError(400, "INVALID_ARGUMENT", f"Query exceeded limit for bytes billed: {int(max_bytes)}. "
                                                    f"{billed} or higher required.", reason="bytesBilledLimitExceeded")
        schema = (tables[0].get("schema") if len(tables) == 1 else None) or {"fields": []}
        rows = _lookup(sql, parameters, self.rows.get(tables[0]["id"], []) if len(tables) == 1 else [], schema)
        return {"schema": schema, "rows": rows, "billed": billed, "processed": sum(per_table),
                "location": tables[0]["location"] if tables else "US"}

    def _new_job(self, req: Request, pid: str, job_id: str, location: str, config: dict[str, Any],
                 ran: dict[str, Any]) -> str:
        key = f"{pid}:{job_id}"
        if key in self.jobs:
            raise ApiError(409, "ALREADY_EXISTS", f"Already Exists: Job {key}", reason="duplicate")
        now = _millis()
        billed, processed = str(ran["billed"]), str(ran["processed"])
        self.jobs[key] = {
            "kind": "bigquery#job", "id": f"{pid}:{location}.{job_id}",
            "jobReference": {"projectId": pid, "jobId": job_id, "location": location},
            "configuration": config, "status": {"state": "RUNNING"}, "user_email": req.principal.split(":", 1)[-1],
            "statistics": {"creationTime": now, "startTime": now, "totalBytesProcessed": processed,
                           "query": {"totalBytesProcessed": processed, "totalBytesBilled": billed, "cacheHit": False,
                                     "statementType": "SELECT", "schema": ran["schema"]}},
            "creator": req.principal, "rows": ran["rows"], "done_at": time.monotonic() + self.query_s,
        }
        return key

    def _done(self, key: str, wait_s: float = 0.0) -> bool:
        """Whether the job is done, after waiting up to wait_s (wall time: BigQuery holds an answer up to the
        request's timeoutMs) for it to finish."""
        job = self.jobs[key]
        left = job["done_at"] - time.monotonic()
        if "errorResult" not in job["status"] and left > 0 and wait_s > 0:
            self._sleep_unlocked(min(left, wait_s))
        done = "errorResult" in job["status"] or job["done_at"] <= time.monotonic()
        if done and job["status"]["state"] != "DONE":
            job["status"] = {"state": "DONE"}
        if done:
            job["statistics"].setdefault("endTime", _millis())
        return done

    def insert_job(self, req: Request, project: str):
        pid = self.fake.project_id(project)
        body = dict(req.data or {})
        config = body.get("configuration") or {}
        query_config = config.get("query") or {}
        if not query_config.get("query"):
            raise ApiError(501, "UNIMPLEMENTED", "fake: only query jobs are implemented.")
        ref = dict(body.get("jobReference") or {})
        if config.get("dryRun"):
            # A dry run only validates and estimates (a refusal is the answer, not a failed job), bills nothing and
            # creates no job, so its answer names none.
            ran = self._prepare(req, pid, query_config["query"], query_config.get("queryParameters") or [], None)
            now = _millis()
            processed = str(ran["processed"])
            return {"kind": "bigquery#job",
                    "jobReference": {"projectId": pid, "location": ref.get("location") or ran["location"]},
                    "configuration": config, "status": {"state": "DONE"}, "user_email": req.principal.split(":", 1)[-1],
                    "statistics": {"creationTime": now, "startTime": now, "endTime": now,
                                   "totalBytesProcessed": processed,
                                   "query": {"totalBytesProcessed": processed, "totalBytesBilled": "0",
                                             "cacheHit": False, "statementType": "SELECT", "schema": ran["schema"]}}}
        job_id = ref.get("jobId") or f"job_{self.fake.next_id()}"
        try:
            ran = self._prepare(req, pid, query_config["query"], query_config.get("queryParameters") or [],
                                query_config.get("maximumBytesBilled"))
        except ApiError as exc:
            if exc.code == 404:
                raise
            # A job that BigQuery accepts and then fails: the insert succeeds, the job is DONE with its error.
            ran = {"schema": {"fields": []}, "rows": [], "billed": 0, "processed": 0,
                   "location": ref.get("location") or "US"}
            key = self._new_job(req, pid, job_id, ref.get("location") or ran["location"], config, ran)
            error = {"reason": exc.reason or "invalid", "message": exc.message}
            self.jobs[key]["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
            return self._job_json(key)
        key = self._new_job(req, pid, job_id, ref.get("location") or ran["location"], config, ran)
        self._done(key)
        return self._job_json(key)

    def query(self, req: Request, project: str):
        """jobs.query: the answer inline when the query finishes within timeoutMs (default 10 s). With
        jobCreationMode JOB_CREATION_OPTIONAL and every row in the answer, no job is created (a queryId names the
        query); otherwise a job is, and the answer carries its reference (and, in optional mode, why)."""
        pid = self.fake.project_id(project)
        body = dict(req.data or {})
        if body.get("dryRun"):
            raise ApiError(501, "UNIMPLEMENTED", "fake: dry-run queries are not implemented.")
        if body.get("useLegacySql", True):  # legacy SQL is jobs.query's default
            raise ApiError(501, "UNIMPLEMENTED", "fake: only standard SQL (useLegacySql: false) is implemented.")
        sql = body.get("query") or ""
        if not sql.strip():
            raise ApiError(400, "INVALID_ARGUMENT", "Syntax error: Unexpected end of script at [1:1]",
                           reason="invalidQuery")
        ran = self._prepare(req, pid, sql, body.get("queryParameters") or [], body.get("maximumBytesBilled"))
        if self.job_faults:
            reason = self.job_faults.pop(0)
            raise ApiError(400, "INVALID_ARGUMENT", _JOB_FAULTS[reason], reason=reason)
        location = body.get("location") or ran["location"]
        optional = body.get("jobCreationMode") == "JOB_CREATION_OPTIONAL"
        timeout_s = int(body.get("timeoutMs", 10_000)) / 1000
        max_results = body.get("maxResults")
        query_id = f"fake-query-{self.fake.next_id()}"
        long_running = self.query_s > timeout_s
        large = max_results is not None and len(ran["rows"]) > int(max_results)
        answer: dict[str, Any] = {"kind": "bigquery#queryResponse", "location": location}
        if optional and not long_running and not large:
            if self.query_s > 0:
                self._sleep_unlocked(self.query_s)
            self.queries.append(query_id)
            answer.update(self._results(ran["rows"], ran["schema"], None, None), queryId=query_id,
                          totalBytesBilled=str(ran["billed"]), totalBytesProcessed=str(ran["processed"]))
            return answer
        config = {"query": {k: v for k, v in body.items() if k in _QUERY_CONFIG}, "jobType": "QUERY"}
        key = self._new_job(req, pid, f"job_{self.fake.next_id()}", location, config, ran)
        job = self.jobs[key]
        answer["jobReference"] = job["jobReference"]
        if optional:
            answer["jobCreationReason"] = {"code": "LONG_RUNNING" if long_running else "LARGE_RESULTS"}
        if not self._done(key, timeout_s):
            answer["jobComplete"] = False
            return answer
        answer.update(self._results(job["rows"], ran["schema"], max_results, None),
                      totalBytesProcessed=str(ran["processed"]))
        return answer

    def _sleep_unlocked(self, seconds: float) -> None:
        lock = self.fake.lock  # held once, by FakeGcp.handle
        lock.release()
        try:
            time.sleep(seconds)
        finally:
            lock.acquire()

    @staticmethod
    def _results(rows: list[dict[str, Any]], schema: dict[str, Any], max_results: Any,
                 page_token: str | None) -> dict[str, Any]:
        start = int(page_token or 0)
        end = len(rows) if max_results is None else start + int(max_results)
        out: dict[str, Any] = {"jobComplete": True, "schema": schema, "totalRows": str(len(rows)),
                               "rows": rows[start:end], "cacheHit": False}
        if end < len(rows):
            out["pageToken"] = str(end)
        return out

    def _job(self, project: str, job: str) -> str:
        key = f"{self.fake.project_id(project)}:{job}"
        if key not in self.jobs:
            raise ApiError(404, "NOT_FOUND", f"Not found: Job {key}", reason="notFound")
        return key

    def _job_json(self, key: str) -> dict[str, Any]:
        return {k: v for k, v in self.jobs[key].items() if k not in ("creator", "rows", "done_at")}

    def get_job(self, req: Request, project: str, job: str):
        key = self._job(project, job)
        self._done(key)
        return self._job_json(key)

    def get_query_results(self, req: Request, project: str, job: str):
        key = self._job(project, job)
        current = self.jobs[key]
        out: dict[str, Any] = {"kind": "bigquery#getQueryResultsResponse", "jobReference": current["jobReference"]}
        if not self._done(key, int(req.query.get("timeoutMs", 10_000)) / 1000):
            out["jobComplete"] = False
            return out
        error = current["status"].get("errorResult")
        if error:  # the failed job's error, as the HTTP error of its results
            raise ApiError(400, "INVALID_ARGUMENT", error["message"], reason=error["reason"])
        start = req.query.get("pageToken") or req.query.get("startIndex")
        out.update(self._results(current["rows"], current["statistics"]["query"]["schema"],
                                 req.query.get("maxResults"), start), totalBytesProcessed="0")
        return out

    def cancel_job(self, req: Request, project: str, job: str):
        key = self._job(project, job)
        if not self._done(key):
            error = {"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"}
            self.jobs[key]["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
            self.jobs[key]["statistics"]["endTime"] = _millis()
        return {"kind": "bigquery#jobCancelResponse", "job": self._job_json(key)}

    # --- for other fake APIs -----------------------------------------------------------------------------------

    def table(self, table_id: str) -> dict[str, Any] | None:
        """A table by "project.dataset.table" (or "project:dataset.table"), as Pub/Sub names it."""
        project, _, rest = table_id.replace(":", ".", 1).partition(".")
        try:
            key = f"{self.fake.project_id(project)}:{rest}"
        except ApiError:
            return None
        return self.tables.get(key)

    def can_write(self, table: dict[str, Any], member: str) -> bool:
        """Whether `member` holds a role with bigquery.tables.updateData on the table: on the table itself, on
        its dataset (access list) or on the project."""
        writers = {"roles/bigquery.dataEditor", "roles/bigquery.dataOwner", "roles/bigquery.admin"}
        if any(b["role"] in writers and member in b["members"]
               for b in self.policies.get(table["id"])["bindings"]):
            return True
        dataset = self.datasets.get(table["id"].rsplit(".", 1)[0], {})
        email = member.split(":", 1)[1]
        if any(e.get("role") in ("WRITER", "OWNER") and email in (e.get("userByEmail"), e.get("groupByEmail"))
               for e in dataset.get("access", [])):
            return True
        rm = self.fake.apis.get("ResourceManagerApi")
        project = table["tableReference"]["projectId"]
        policy = rm.policies.policies.get(project, {}) if rm else {}
        return any(b["role"] in writers | {"roles/editor", "roles/owner"} and member in b.get("members", [])
                   for b in policy.get("bindings", []))


# The QueryRequest fields a job created by jobs.query keeps in its configuration.query.
_QUERY_CONFIG = frozenset({"query", "useLegacySql", "parameterMode", "queryParameters", "maximumBytesBilled",
                           "defaultDataset", "useQueryCache", "connectionProperties", "createSession"})
MIB = 1024 * 1024
# On-demand pricing: "a minimum of 10 MB data processed per table referenced by the query, and a minimum of 10 MB
# data processed per query", rounded up to the next MB (https://cloud.google.com/bigquery/pricing#on_demand_pricing).
MIN_BILLED = 10 * MIB
# What never names a parameter: string and bytes literals, quoted identifiers, comments.
_NOT_CODE = re.compile(r"\'\'\'.*?\'\'\'|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|`[^`]*`"
                       r"|--[^\n]*|#[^\n]*|/\*.*?\*/", re.S)


# GoogleSQL's type names a query parameter may have (StandardSqlDataType's type kinds, as BigQuery takes them).
PARAMETER_TYPES = frozenset({"INT64", "BOOL", "FLOAT64", "STRING", "BYTES", "TIMESTAMP", "DATE", "TIME", "DATETIME",
                             "INTERVAL", "GEOGRAPHY", "NUMERIC", "BIGNUMERIC", "JSON", "ARRAY", "STRUCT", "RANGE"})


# What BigQuery says when a job it created fails for a passing reason (the error table of its troubleshooting page).
_JOB_FAULTS = {
    "jobInternalError": "The job encountered an internal error during execution and was unable to complete.",
    "jobBackendError": "The job was created, but failed with an internal error. Retry the job.",
    "jobRateLimitExceeded": "Exceeded rate limits: too many concurrent queries. Retry the job.",
}


def _named_parameters(sql: str) -> list[str]:
    """The @names a standard SQL query uses (not @@system variables)."""
    return re.findall(r"(?<![@\w])@(\w+)", _NOT_CODE.sub(" ", sql))


def _billed(per_table: list[int]) -> int:
    """Bytes a query reading these logical bytes per table bills: the fake prunes no partition or column, so it
    reads whole tables; Google rounds each table up to a MiB, with a 10 MiB minimum per table and per query."""
    return max(MIN_BILLED, sum(max(MIN_BILLED, -(-n // MIB) * MIB) for n in per_table))


_LOOKUP = re.compile(r"^\s*SELECT \* FROM `[^`]+`\s+WHERE\s+(?P<where>.+?)\s*$", re.S | re.I)
_EQUALS = re.compile(r"^\s*(\w+)\s*=\s*@(\w+)\s*$")


def _lookup(query: str, parameters: list[dict[str, Any]], stored: list[dict[str, Any]],
            schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored rows a `SELECT * ... WHERE col = @p AND ...` query selects, in the REST shape getQueryResults
    answers with (`{"f": [{"v": ...}]}`, timestamps as int64 microseconds, JSON as text); [] for anything else."""
    import json

    match = _LOOKUP.match(query)
    if match is None:
        return []
    values = {p.get("name"): (p.get("parameterValue") or {}).get("value") for p in parameters}
    wanted = {}
    for condition in re.split(r"\s+AND\s+", match["where"], flags=re.I):
        equal = _EQUALS.match(condition)
        if equal:
            wanted[equal[1]] = values.get(equal[2])
    if not wanted:
        return []
    fields = schema.get("fields", [])

    def cell(field: dict[str, Any], value: Any) -> Any:
        if value is None:
            return None
        if field.get("type") == "TIMESTAMP":
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return str(int(when.timestamp() * 1_000_000))
        if field.get("type") == "JSON":
            return json.dumps(value)
        return str(value)

    return [{"f": [{"v": cell(f, row["json"].get(f["name"]))} for f in fields]} for row in stored
            if all(str(row["json"].get(col)) == str(value) for col, value in wanted.items())]


# BigQuery's data size per value of each type (cloud.google.com/bigquery/pricing#data_size_calculation).
_FIXED_BYTES = {"BOOL": 1, "BOOLEAN": 1, "NUMERIC": 16, "BIGNUMERIC": 32, "INTERVAL": 16}


def _logical_bytes(schema: dict[str, Any], row: dict[str, Any]) -> int:
    """The logical size of one stored row: what on-demand queries are charged by."""

    def size(field: dict[str, Any], value: Any) -> int:
        if value is None:
            return 0
        if field.get("mode") == "REPEATED" and isinstance(value, list):
            return sum(size({**field, "mode": "NULLABLE"}, v) for v in value)
        kind = field.get("type", "STRING")
        if kind in ("RECORD", "STRUCT"):
            return sum(size(f, (value or {}).get(f["name"])) for f in field.get("fields", []))
        if kind in ("STRING", "BYTES"):
            return 2 + len(str(value).encode("utf-8"))
        if kind == "JSON":
            import json

            return len(json.dumps(value).encode("utf-8"))
        return _FIXED_BYTES.get(kind, 8)

    return sum(size(f, row.get(f["name"])) for f in schema.get("fields", []))


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}| UTC)?$")


def _row_errors(fields: list[dict[str, Any]], row: Any, ignore_unknown: bool, prefix: str = "") -> list[dict[str, Any]]:
    """BigQuery's `invalid` errors for one row of a streaming insert (the checks the fake knows: unknown fields,
    missing required ones, values of the wrong type)."""
    def invalid_at(location: str, message: str) -> dict[str, Any]:
        return {"reason": "invalid", "location": location, "debugInfo": "", "message": message}

    if not isinstance(row, dict):
        return [invalid_at(prefix, "This field: is not a record.")]
    by_name = {f["name"].lower(): f for f in fields}
    errors = []
    if not ignore_unknown:
        errors += [invalid_at(prefix + key, f"no such field: {key}.") for key in row if key.lower() not in by_name]
    for field in fields:
        name = field["name"]
        value = next((v for k, v in row.items() if k.lower() == name.lower()), None)
        where = prefix + name
        if value is None:
            if field.get("mode") == "REQUIRED":
                errors.append(invalid_at(where, f"Missing required field: {where}."))
            continue
        values = value if field.get("mode") == "REPEATED" else [value]
        if field.get("mode") == "REPEATED" and not isinstance(value, list):
            errors.append(invalid_at(where, f"Array specified for non-repeated field: {where}."))
            continue
        for item in values:
            if field.get("type") in ("RECORD", "STRUCT"):
                errors += _row_errors(field.get("fields", []), item, ignore_unknown, where + ".")
            elif not _fits(field.get("type", "STRING"), item):
                errors.append(invalid_at(where, f"Cannot convert value to {field.get('type', 'STRING').lower()}: "
                                                f"{cut(str(item), 80)}; field: {where}."))
    return errors


def _fits(kind: str, value: Any) -> bool:
    if kind == "JSON":
        return True
    if isinstance(value, (dict, list)):
        return False
    if kind == "STRING":
        return isinstance(value, str)
    if kind == "BYTES":
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            return False
        return True
    if kind in ("INTEGER", "INT64"):
        return (isinstance(value, int) and not isinstance(value, bool)) or bool(re.fullmatch(r"[+-]?\d+", str(value)))
    if kind in ("FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"):
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return not isinstance(value, bool)
    if kind in ("BOOLEAN", "BOOL"):
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    if kind == "TIMESTAMP":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        text = str(value)
        if not _TIMESTAMP.match(text):
            return False
        try:
            datetime.fromisoformat(text.replace(" UTC", "+00:00").replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return True
