"""Settings from environment variables only, as Cloud Run sets them; unsafe values stop the start-up."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from api_service.queries import table_id

GOOGLE_IAP_JWKS_URL = "https://www.gstatic.com/iap/verify/public_key-jwk"
# BigQuery bills at least 10 MB per query, so a lower cap would refuse every query.
MIN_BYTES_BILLED = 10 * 1024 * 1024
MAX_BYTES_BILLED = 10**12


class SettingsError(ValueError):
    """A setting is missing or unsafe; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    project: str
    iap_audience: str
    dataset: str = "ltm"
    table: str = "events"
    bigquery_endpoint: str | None = None  # http://host:port of bqemulator; None means Google's endpoint
    iap_jwks_file: str | None = None  # a local JWK set (local stack); None means Google's published IAP keys
    iap_jwks_url: str = GOOGLE_IAP_JWKS_URL
    cache_ttl_s: float = 30.0
    cache_not_found_ttl_s: float = 5.0  # shorter: a key that is about to get its first event should show soon
    cache_max_entries: int = 10_000
    # Bytes, not entries, bound memory: 128 MiB of answers fits a 2 GiB instance with the answers in flight
    # (bench/memory.py measures both).
    cache_max_bytes: int = 128 * 1024 * 1024
    # The largest answer body; a get_data answer that would be larger holds the newest events that fit and says
    # "truncated": true. 4 MiB holds at least three events at the contract's 1 MiB each.
    max_answer_bytes: int = 4 * 1024 * 1024
    # X-Forwarded-For entries appended by proxies we trust, counted from the right: 1 for Cloud Run's front end
    # (the client address it saw), 2 behind an external Application Load Balancer (client, then the LB's address).
    trusted_proxy_hops: int = 1
    lookback_days: int = 30
    max_bytes_billed: int = 10_000_000_000
    query_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        try:
            table_id(self.project, self.dataset, self.table)
        except ValueError as exc:
            raise SettingsError(f"LTM_PROJECT/LTM_DATASET/LTM_TABLE: {exc}") from None
        if not self.iap_audience or any(c.isspace() for c in self.iap_audience):
            raise SettingsError("LTM_IAP_AUDIENCE must be set to the IAP audience (no spaces), "
                                "e.g. /projects/NUMBER/global/backendServices/ID")
        if self.bigquery_endpoint is not None:
            _check_url("BIGQUERY_EMULATOR_HOST", self.bigquery_endpoint, allow_http=True)
        _check_url("LTM_IAP_JWKS_URL", self.iap_jwks_url, allow_http=False)
        _check_range("LTM_CACHE_TTL_S", self.cache_ttl_s, 0, 3600)
        _check_range("LTM_CACHE_NOT_FOUND_TTL_S", self.cache_not_found_ttl_s, 0, 3600)
        _check_range("LTM_CACHE_MAX_ENTRIES", self.cache_max_entries, 1, 1_000_000)
        _check_range("LTM_CACHE_MAX_BYTES", self.cache_max_bytes, 1024 * 1024, 1024**3)
        _check_range("LTM_MAX_ANSWER_BYTES", self.max_answer_bytes, 64 * 1024, 32 * 1024 * 1024)
        _check_range("LTM_TRUSTED_PROXY_HOPS", self.trusted_proxy_hops, 0, 5)
        _check_range("LTM_LOOKBACK_DAYS", self.lookback_days, 1, 365)
        _check_range("LTM_MAX_BYTES_BILLED", self.max_bytes_billed, MIN_BYTES_BILLED, MAX_BYTES_BILLED)
        _check_range("LTM_QUERY_TIMEOUT_S", self.query_timeout_s, 0.1, 600)

    @property
    def table_id(self) -> str:
        return table_id(self.project, self.dataset, self.table)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        project = env.get("LTM_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise SettingsError("LTM_PROJECT (or GOOGLE_CLOUD_PROJECT) must be set")
        jwks_file = env.get("LTM_IAP_JWKS_FILE") or None
        if jwks_file and env.get("K_SERVICE"):
            # Whoever holds the local private key could mint assertions; in Cloud Run only Google's keys count.
            raise SettingsError("LTM_IAP_JWKS_FILE is for the local stack only; unset it on Cloud Run "
                                "so assertions are checked against Google's IAP keys")
        defaults = cls.__dataclass_fields__
        return cls(
            project=project,
            iap_audience=env.get("LTM_IAP_AUDIENCE", ""),
            dataset=env.get("LTM_DATASET") or defaults["dataset"].default,
            table=env.get("LTM_TABLE") or defaults["table"].default,
            bigquery_endpoint=env.get("BIGQUERY_EMULATOR_HOST") or None,
            iap_jwks_file=jwks_file,
            iap_jwks_url=env.get("LTM_IAP_JWKS_URL") or GOOGLE_IAP_JWKS_URL,
            cache_ttl_s=_number(env, "LTM_CACHE_TTL_S", float, defaults["cache_ttl_s"].default),
            cache_not_found_ttl_s=_number(env, "LTM_CACHE_NOT_FOUND_TTL_S", float,
                                          defaults["cache_not_found_ttl_s"].default),
            cache_max_entries=_number(env, "LTM_CACHE_MAX_ENTRIES", int, defaults["cache_max_entries"].default),
            cache_max_bytes=_number(env, "LTM_CACHE_MAX_BYTES", int, defaults["cache_max_bytes"].default),
            max_answer_bytes=_number(env, "LTM_MAX_ANSWER_BYTES", int, defaults["max_answer_bytes"].default),
            trusted_proxy_hops=_number(env, "LTM_TRUSTED_PROXY_HOPS", int, defaults["trusted_proxy_hops"].default),
            lookback_days=_number(env, "LTM_LOOKBACK_DAYS", int, defaults["lookback_days"].default),
            max_bytes_billed=_number(env, "LTM_MAX_BYTES_BILLED", int, defaults["max_bytes_billed"].default),
            query_timeout_s=_number(env, "LTM_QUERY_TIMEOUT_S", float, defaults["query_timeout_s"].default),
        )


def _number(env: Mapping[str, str], name: str, kind: Callable[[str], float], default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw.strip().replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if value != value:  # NaN passes every range comparison
        raise SettingsError(f"{name} must be a number, got {raw!r}")
    return value


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def _check_url(name: str, value: str, *, allow_http: bool) -> None:
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    schemes = ("http", "https") if allow_http or loopback else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise SettingsError(f"{name} must be a {' or '.join(schemes)} URL, got {value!r}")
