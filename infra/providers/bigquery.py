"""BigQuery datasets and tables through google-cloud-bigquery (bqemulator or GCP alike)."""

from __future__ import annotations

from typing import Any

from google.api_core.exceptions import NotFound

from infra.model import Dataset, Table


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
