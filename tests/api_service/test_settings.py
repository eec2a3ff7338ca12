"""Settings come from the environment, and unsafe values stop the start-up with a message naming them."""

from __future__ import annotations

import pytest

from api_service.settings import GOOGLE_IAP_JWKS_URL, Settings, SettingsError

BASE = {"LTM_PROJECT": "my-project", "LTM_IAP_AUDIENCE": "/projects/1/global/backendServices/2"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.table_id == "my-project.ltm.events"
    assert (settings.cache_ttl_s, settings.lookback_days, settings.max_bytes_billed) == (30, 30, 10_000_000_000)
    assert settings.iap_jwks_file is None and settings.iap_jwks_url == GOOGLE_IAP_JWKS_URL
    assert settings.bigquery_endpoint is None


def test_every_variable_is_read() -> None:
    settings = Settings.from_env({
        "GOOGLE_CLOUD_PROJECT": "other-project", "LTM_IAP_AUDIENCE": "aud", "LTM_DATASET": "d", "LTM_TABLE": "t",
        "BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050", "LTM_IAP_JWKS_FILE": "/tmp/jwks.json",
        "LTM_CACHE_TTL_S": "0", "LTM_CACHE_NOT_FOUND_TTL_S": "1.5", "LTM_CACHE_MAX_ENTRIES": "100",
        "LTM_LOOKBACK_DAYS": "7", "LTM_MAX_BYTES_BILLED": "1_000_000_000", "LTM_QUERY_TIMEOUT_S": "5"})
    assert settings.table_id == "other-project.d.t"
    assert (settings.bigquery_endpoint, settings.iap_jwks_file) == ("http://127.0.0.1:9050", "/tmp/jwks.json")
    assert (settings.cache_ttl_s, settings.cache_not_found_ttl_s, settings.cache_max_entries) == (0, 1.5, 100)
    assert (settings.lookback_days, settings.max_bytes_billed, settings.query_timeout_s) == (7, 10**9, 5)


@pytest.mark.parametrize(("change", "named"), [
    ({"LTM_PROJECT": ""}, "LTM_PROJECT"),
    ({"LTM_IAP_AUDIENCE": ""}, "LTM_IAP_AUDIENCE"),
    ({"LTM_IAP_AUDIENCE": "two words"}, "LTM_IAP_AUDIENCE"),
    ({"LTM_PROJECT": "Bad_Project"}, "LTM_PROJECT"),
    ({"LTM_TABLE": "events`; DROP"}, "LTM_TABLE"),
    ({"LTM_CACHE_TTL_S": "-1"}, "LTM_CACHE_TTL_S"),
    ({"LTM_CACHE_TTL_S": "soon"}, "LTM_CACHE_TTL_S"),
    ({"LTM_CACHE_TTL_S": "nan"}, "LTM_CACHE_TTL_S"),
    ({"LTM_CACHE_MAX_ENTRIES": "0"}, "LTM_CACHE_MAX_ENTRIES"),
    ({"LTM_LOOKBACK_DAYS": "0"}, "LTM_LOOKBACK_DAYS"),
    ({"LTM_LOOKBACK_DAYS": "366"}, "LTM_LOOKBACK_DAYS"),
    ({"LTM_LOOKBACK_DAYS": "3.5"}, "LTM_LOOKBACK_DAYS"),
    ({"LTM_MAX_BYTES_BILLED": "0"}, "LTM_MAX_BYTES_BILLED"),
    ({"LTM_MAX_BYTES_BILLED": "1000"}, "LTM_MAX_BYTES_BILLED"),
    ({"LTM_MAX_BYTES_BILLED": str(10**15)}, "LTM_MAX_BYTES_BILLED"),
    ({"LTM_QUERY_TIMEOUT_S": "0"}, "LTM_QUERY_TIMEOUT_S"),
    ({"LTM_QUERY_TIMEOUT_S": "inf"}, "LTM_QUERY_TIMEOUT_S"),
    ({"BIGQUERY_EMULATOR_HOST": "127.0.0.1:9050"}, "BIGQUERY_EMULATOR_HOST"),
    ({"LTM_IAP_JWKS_URL": "http://keys.example.com/jwk"}, "LTM_IAP_JWKS_URL"),
    ({"LTM_IAP_JWKS_FILE": "/tmp/jwks.json", "K_SERVICE": "ltm-api"}, "LTM_IAP_JWKS_FILE"),
])
def test_unsafe_or_invalid_values_are_refused_by_name(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**BASE, **change})


def test_a_table_that_is_no_table_id_is_shown_as_given() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, "LTM_TABLE": "events`; DROP"})
    assert str(refused.value) == ("LTM_PROJECT/LTM_DATASET/LTM_TABLE: not a valid table id: "
                                  "'my-project.ltm.events`; DROP'")


def test_loopback_key_endpoint_may_be_plain_http() -> None:
    assert Settings.from_env({**BASE, "LTM_IAP_JWKS_URL": "http://127.0.0.1:8080/jwk"}).iap_jwks_url
