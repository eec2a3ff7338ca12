"""The two statements of the data contract agree field by field."""

import json

from ingest_fn.contract import contract_dir

# Columns about the delivery, not part of what producers publish: the ingest function fills the first four,
# a BigQuery subscription (write_metadata) all but ingest_time.
ENVELOPE = {"message_id": "STRING", "publish_time": "TIMESTAMP", "ingest_time": "TIMESTAMP", "attributes": "JSON",
            "subscription_name": "STRING"}
# event_id is optional for producers but always stored: it defaults to the Pub/Sub message id.
DEFAULTED = {"event_id"}


def _load():
    schema = json.loads((contract_dir() / "event.schema.json").read_text())
    table = json.loads((contract_dir() / "events_table.json").read_text())
    return schema, {col["name"]: col for col in table}


def _bq_type(prop: dict) -> str:
    if prop["type"] == "object":
        return "JSON"
    if prop.get("format") == "date-time":
        return "TIMESTAMP"
    return {"string": "STRING", "integer": "INT64", "number": "FLOAT64", "boolean": "BOOL"}[prop["type"]]


def test_every_event_field_is_a_column_of_the_right_type_and_mode():
    schema, columns = _load()
    for name, prop in schema["properties"].items():
        assert name in columns, f"{name} has no column"
        assert columns[name]["type"] == _bq_type(prop), name
        required = name in schema["required"] or name in DEFAULTED
        assert columns[name]["mode"] == ("REQUIRED" if required else "NULLABLE"), name


def test_every_column_is_an_event_field_or_an_envelope_field():
    schema, columns = _load()
    assert set(columns) == set(schema["properties"]) | set(ENVELOPE)
    for name, bq_type in ENVELOPE.items():
        assert columns[name]["type"] == bq_type


def test_partitioning_and_clustering_columns_exist_and_are_required():
    _, columns = _load()
    for name in ("event_time", "action_id", "user_email", "app_id"):
        assert columns[name]["mode"] == "REQUIRED"
    assert columns["event_time"]["type"] == "TIMESTAMP"


def test_schema_refuses_unknown_fields():
    schema, _ = _load()
    assert schema["additionalProperties"] is False


def test_a_bigquery_subscription_can_fill_every_required_column():
    """ingest_mode bigquery: Pub/Sub writes the message's JSON fields and its metadata, nothing else."""
    from ltmctl.pipeline import BIGQUERY_MODE_REQUIRED, BIGQUERY_SUBSCRIPTION_METADATA

    schema, columns = _load()
    for name, types in BIGQUERY_SUBSCRIPTION_METADATA.items():
        assert name in columns and columns[name]["type"] in types, name
    always_written = (set(schema["required"]) | set(BIGQUERY_MODE_REQUIRED)
                      | set(BIGQUERY_SUBSCRIPTION_METADATA) - {"attributes"})  # a message may have no attributes
    required = {name for name, col in columns.items() if col["mode"] == "REQUIRED"}
    assert required <= always_written, required - always_written
    assert columns["ingest_time"]["mode"] == "NULLABLE"  # only the ingest function sets it
