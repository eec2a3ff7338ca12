"""The query module's job configuration, as the client sends it."""

from __future__ import annotations

from api_service.queries import _job_config


def test_without_a_byte_cap_no_cap_is_sent():
    # The client would send maximumBytesBilled "None", which BigQuery refuses (400 "Invalid value ... TYPE_INT64").
    assert "maximumBytesBilled" not in _job_config([], None).to_api_repr()["query"]
    assert _job_config([], 10**10).to_api_repr()["query"]["maximumBytesBilled"] == "10000000000"
