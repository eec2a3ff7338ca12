"""The two statements of the data contract agree field by field."""

import importlib.util
import json
import shutil
import sys

import pytest

from ingest_fn import contract
from ingest_fn.contract import contract_dir, python_schema

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


def _load_copy(root, monkeypatch):
    """ingest_fn/contract.py copied to root/ingest_fn/ and imported from there: the module finds its contract
    relative to its own file, as in the image and the wheel."""
    (root / "ingest_fn").mkdir(parents=True, exist_ok=True)
    shutil.copy(contract.__file__, root / "ingest_fn" / "contract.py")
    # Under its own name (dataclasses look their module up in sys.modules, and so does mutation testing's
    # trampoline), in place of the imported module for the length of the test only.
    spec = importlib.util.spec_from_file_location("ingest_fn.contract", root / "ingest_fn" / "contract.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ingest_fn.contract", module)
    spec.loader.exec_module(module)
    return module


def _contract_at(directory):
    directory.mkdir(parents=True)
    for name in ("event.schema.json", "events_table.json"):
        shutil.copy(contract_dir() / name, directory / name)
    return directory


@pytest.mark.parametrize("layout", ["ingest_fn/contract", "config/contract", "ltmctl/_config/contract"])
def test_the_contract_is_found_in_the_image_the_checkout_and_the_wheel(tmp_path, monkeypatch, layout):
    monkeypatch.delenv("LTM_CONTRACT_DIR", raising=False)
    expected = _contract_at(tmp_path / layout)
    assert _load_copy(tmp_path, monkeypatch).contract_dir() == expected


def test_ltm_contract_dir_comes_first(tmp_path, monkeypatch):
    _contract_at(tmp_path / "config" / "contract")
    chosen = _contract_at(tmp_path / "elsewhere")
    monkeypatch.setenv("LTM_CONTRACT_DIR", str(chosen))
    assert _load_copy(tmp_path, monkeypatch).contract_dir() == chosen


def test_no_contract_anywhere_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.delenv("LTM_CONTRACT_DIR", raising=False)
    with pytest.raises(FileNotFoundError) as raised:
        _load_copy(tmp_path, monkeypatch)  # the module reads its limits when imported
    assert str(raised.value) == "event.schema.json not found; set LTM_CONTRACT_DIR to the contract directory"


def test_only_patterns_are_rewritten_for_python():
    schema = {"description": "ends in $", "pattern": "^a$", "properties": {"p": {"pattern": "^[a$]$", "title": "$"}},
              "anyOf": [{"pattern": "x\\$"}]}
    assert python_schema(schema) == {"description": "ends in $", "pattern": "^a\\Z",
                                     "properties": {"p": {"pattern": "^[a$]\\Z", "title": "$"}},
                                     "anyOf": [{"pattern": "x\\$"}]}  # an escaped $ is a literal dollar
