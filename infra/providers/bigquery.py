"""BigQuery datasets and tables through google-cloud-bigquery (bqemulator or GCP alike)."""

from __future__ import annotations

from typing import Any

from google.api_core.exceptions import NotFound

from infra.model import Dataset, Table
from infra.providers.iam import DictPolicyGrants


def _field(f: Any) -> dict[str, Any]:
    out = {"name": f.name, "type": f.field_type, "mode": f.mode or "NULLABLE"}
    if f.description:
        out["description"] = f.description
    return out


class DatasetProvider:
    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, resource: Dataset) -> Dataset | None:
        try:
            ds = self.client.get_dataset(resource.key)
        except NotFound:
            return None
        return Dataset(resource.project, ds.dataset_id, ds.location or resource.location)

    def create(self, resource: Dataset) -> None:
        from google.cloud import bigquery

        ds = bigquery.Dataset(resource.key)
        ds.location = resource.location
        self.client.create_dataset(ds)

    def update(self, resource: Dataset, fields: list[str]) -> None:
        return None  # location is the only managed field, and it is immutable

    def immutable_fields(self, resource: Dataset) -> frozenset[str]:
        return frozenset({"location"})

    def delete(self, resource: Dataset) -> None:
        self.client.delete_dataset(resource.key, delete_contents=True, not_found_ok=True)


class TableProvider:
    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, resource: Table) -> Table | None:
        try:
            t = self.client.get_table(resource.key)
        except NotFound:
            return None
        tp = t.time_partitioning
        return Table(
            resource.project, t.dataset_id, t.table_id,
            schema=tuple(_field(f) for f in t.schema),
            partition_field=tp.field if tp else None,
            partition_type=tp.type_ if tp else "DAY",
            clustering=tuple(t.clustering_fields or ()),
        )

    def _table(self, resource: Table) -> Any:
        from google.cloud import bigquery

        table = bigquery.Table(resource.key, schema=[bigquery.SchemaField.from_api_repr(f) for f in resource.schema])
        if resource.partition_field:
            table.time_partitioning = bigquery.TimePartitioning(type_=resource.partition_type,
                                                                field=resource.partition_field)
        table.clustering_fields = list(resource.clustering) or None
        return table

    def create(self, resource: Table) -> None:
        self.client.create_table(self._table(resource))

    def update(self, resource: Table, fields: list[str]) -> None:
        props = {"schema": "schema", "clustering": "clustering_fields"}
        self.client.update_table(self._table(resource), [props[f] for f in fields])

    def immutable_fields(self, resource: Table) -> frozenset[str]:
        # BigQuery only adds columns or relaxes modes in place; repartitioning needs a new table.
        return frozenset({"partition_field", "partition_type"})

    def delete(self, resource: Table) -> None:
        self.client.delete_table(resource.key, not_found_ok=True)


# BigQuery answers with the legacy names of these roles in dataset access entries.
LEGACY_ROLES = {"roles/bigquery.dataViewer": "READER", "roles/bigquery.dataEditor": "WRITER",
                "roles/bigquery.dataOwner": "OWNER"}


def _entity(member: str) -> tuple[str, str]:
    kind, _, value = member.partition(":")
    if kind in ("serviceAccount", "user"):
        return "userByEmail", value
    if kind == "group":
        return "groupByEmail", value
    if kind == "domain":
        return "domain", value
    return "iamMember", member


class DatasetAccessGrants:
    """IAM on a dataset is its `access` list: read-modify-write of the dataset with its etag (If-Match)."""

    def __init__(self, client: Any, attempts: int = 6, sleep: Any = None, on_wait: Any = None) -> None:
        import time

        self.client = client
        self.attempts = attempts
        self.sleep = sleep or time.sleep
        self.on_wait = on_wait  # told what a wait is for (IAM seeing a new account), before each one

    @staticmethod
    def _matches(entry: Any, role: str, member: str) -> bool:
        entity_type, entity_id = _entity(member)
        return (entry.role in (role, LEGACY_ROLES.get(role)) and entry.entity_type == entity_type
                and entry.entity_id == entity_id)

    def has(self, target: str, role: str, member: str) -> bool | None:
        try:
            ds = self.client.get_dataset(target)
        except NotFound:
            return None
        return any(self._matches(e, role, member) for e in ds.access_entries)

    def add(self, target: str, role: str, member: str) -> None:
        from google.cloud.bigquery import AccessEntry

        entity_type, entity_id = _entity(member)
        self._modify(target, lambda entries: None if any(self._matches(e, role, member) for e in entries)
                     else [*entries, AccessEntry(role=role, entity_type=entity_type, entity_id=entity_id)])

    def remove(self, target: str, role: str, member: str) -> None:
        def without(entries: list[Any]) -> list[Any] | None:
            kept = [e for e in entries if not self._matches(e, role, member)]
            return None if len(kept) == len(entries) else kept

        self._modify(target, without, missing_ok=True)

    def _modify(self, target: str, change: Any, missing_ok: bool = False) -> None:
        from google.api_core.exceptions import BadRequest, PreconditionFailed

        from infra.providers.iam import AccountWait

        wait, conflicts = AccountWait(self.sleep, self.on_wait), 0
        while True:
            try:
                ds = self.client.get_dataset(target)
            except NotFound:
                if missing_ok:
                    return
                raise
            entries = change(list(ds.access_entries))
            if entries is None:
                return
            ds.access_entries = entries
            try:
                self.client.update_dataset(ds, ["access_entries"])  # sends If-Match: the etag just read
                return
            except PreconditionFailed:  # a stale etag (someone else changed the dataset): read again
                conflicts += 1
                if conflicts >= self.attempts:
                    raise
                self.sleep(min(2.0 ** (conflicts - 1), 16.0))
            except BadRequest as exc:  # an account created moments ago that IAM does not see yet: wait for it
                wait(exc, f"dataset {target}")


class TableIamGrants(DictPolicyGrants):
    """Grants on one table's IAM policy (tables.getIamPolicy/setIamPolicy; BigQuery serves version 1 only), for a
    role narrower than any dataset-level one: the table alone."""

    label = "table {target}"

    def __init__(self, client: Any, attempts: int = 6) -> None:
        super().__init__(get=lambda target: client.get_iam_policy(target),
                         set=lambda target, policy: client.set_iam_policy(target, policy), attempts=attempts)
