"""Issue 12: every cache and answer bounded in bytes, stored data that can never make the API answer 500,
identical concurrent misses sharing one query, and the client address taken from what the trusted proxy added."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from typing import Any

import httpx

from api_service.cache import TTLCache
from api_service.iap import HEADER, VerifiedAssertions
from tests.api_service.support import AUDIENCE, Api, Clock, Keys, event_row, unique

MIB = 1024 * 1024


def test_expired_entries_are_evicted_not_kept_until_pushed_out() -> None:
    clock = Clock()
    cache = TTLCache(max_entries=10_000, clock=clock)
    for i in range(100):
        cache.put(("k", i), b"x" * 1000, ttl=5)
    clock.now += 6
    cache.put(("k", "new"), b"y", ttl=5)
    assert len(cache) == 1  # the 100 expired answers went with the next store


def test_the_cache_is_bounded_by_bytes_whatever_the_entry_count() -> None:
    cache = TTLCache(max_entries=10_000, max_bytes=8 * MIB)
    for i in range(50):  # 50 MiB of answers offered, far fewer than 10,000 entries
        cache.put(("k", i), (200, b"x" * MIB), ttl=30, size=MIB)
    assert cache.bytes <= 8 * MIB and 0 < len(cache) <= 8
    assert cache.get(("k", 49)) is not None and cache.get(("k", 0)) is None  # least recently used went first
    cache.put(("k", "huge"), (200, b""), ttl=30, size=9 * MIB)  # larger than the whole cache: not stored
    assert cache.get(("k", "huge")) is None


def test_the_apps_cache_holds_no_more_bytes_than_configured(make_api, insert) -> None:
    # One key with large events, many limit/days variants: the trial took the API from 129 MB to 1 GB this way.
    api = make_api(cache_max_bytes=2 * MIB)
    action = unique("big")
    insert([event_row(action_id=action, payload={"blob": "x" * 300_000, "i": i}, age=timedelta(minutes=i + 1))
            for i in range(4)])
    sizes = 0
    for limit in range(1, 5):
        for days in (30, 31, 32):
            response = api.get(f"/get_data/{action}:someone@example.com", params={"limit": limit, "days": days})
            assert response.status_code == 200
            sizes += len(response.content)
    assert sizes > 8 * MIB  # far more than the bound was offered to the cache
    cache = api.client.app.state.services.cache
    assert 0 < cache.bytes <= 2 * MIB


def test_an_answer_larger_than_the_limit_is_truncated_honestly(make_api, insert) -> None:
    api = make_api(max_answer_bytes=1 * MIB)
    action = unique("huge")
    insert([event_row(action_id=action, payload={"blob": "y" * 300_000, "i": i}, age=timedelta(minutes=i + 1))
            for i in range(6)])
    response = api.get(f"/get_data/{action}:someone@example.com", params={"limit": 60})
    body = response.json()
    assert response.status_code == 200 and len(response.content) <= 1 * MIB
    assert body["count"] == 6 and body["truncated"] is True
    assert [e["payload"]["i"] for e in body["events"]] == list(range(len(body["events"])))  # the newest, in order
    assert 1 <= len(body["events"]) < 6
    small = api.get(f"/get_data/{action}:someone@example.com", params={"limit": 1}).json()
    assert small["truncated"] is False and len(small["events"]) == 1


def test_the_default_answer_limit_holds_at_the_largest_limit(api: Api, insert) -> None:
    action = unique("dflt")
    insert([event_row(action_id=action, payload={"blob": "z" * 900_000, "i": i}, age=timedelta(minutes=i + 1))
            for i in range(6)])
    response = api.get(f"/get_data/{action}:someone@example.com", params={"limit": 1000})
    assert response.status_code == 200 and len(response.content) <= 4 * MIB
    assert response.json()["truncated"] is True


def test_a_stored_payload_too_deep_to_serialize_never_makes_the_key_unreadable(api: Api, insert) -> None:
    # Stored before the contract bounded nesting: 300 levels made every answer for the key a 500.
    action = unique("deep")
    deep: dict[str, Any] = {}
    for _ in range(299):
        deep = {"a": deep}
    fine = event_row(action_id=action, payload={"ok": True}, age=timedelta(minutes=1))
    poisoned = event_row(action_id=action, payload=deep, age=timedelta(minutes=2))
    insert([fine, poisoned])
    response = api.get(f"/get_data/{action}:someone@example.com")
    assert response.status_code == 200, response.text
    events = {e["event_id"]: e for e in response.json()["events"]}
    assert events[fine["event_id"]]["payload"] == {"ok": True}
    assert events[poisoned["event_id"]]["payload"] is None
    assert "cannot be served" in events[poisoned["event_id"]]["payload_error"]


def test_the_verified_assertion_cache_drops_expired_entries(keys: Keys) -> None:
    now = [time.time()]
    cache = VerifiedAssertions(max_entries=4096, max_age_s=60, clock=lambda: now[0])
    source = _Source(keys)
    from api_service.iap import verify_assertion

    for i in range(20):
        verify_assertion(keys.token(email=f"v{i}@example.com"), source, AUDIENCE, cache)
    now[0] += 61
    verify_assertion(keys.token(email="late@example.com"), source, AUDIENCE, cache)
    assert len(cache) == 1


class _Source:
    def __init__(self, keys: Keys) -> None:
        from api_service.iap import keys_from_jwks

        self.kid, self.key = keys.kid, keys_from_jwks(json.loads(keys.jwks_path.read_text()))[keys.kid]

    def get(self, kid: str) -> Any:
        return self.key if kid == self.kid else None

    peek = get


class CountingBigQuery:
    """The session's real BigQuery client, counting the queries sent through it (by their parameters)."""

    def __init__(self, client: Any) -> None:
        self._client, self.sent, self._lock = client, [], threading.Lock()

    def query_and_wait(self, sql: str, job_config: Any = None, **kwargs: Any) -> Any:
        with self._lock:
            self.sent.append({p.name: p.value for p in job_config.query_parameters})
        return self._client.query_and_wait(sql, job_config=job_config, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_identical_concurrent_misses_share_one_query_and_answers_never_mix(stack, settings, keys, insert) -> None:
    from api_service.app import create_app

    a, b = unique("sf-a"), unique("sf-b")
    insert([event_row(action_id=a, payload={"who": "a"}), event_row(action_id=b, payload={"who": "b"})])
    counting = CountingBigQuery(stack.clients.bigquery)
    app = create_app(settings, bigquery_client=counting)
    headers = {HEADER: keys.token()}

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            await client.get("/get_data/warm:up@example.com", headers=headers)  # the assertion is now verified
            paths = [f"/get_data/{a if i % 2 else b}:someone@example.com" for i in range(32)]
            return await asyncio.gather(*(client.get(p, headers=headers) for p in paths))

    responses = asyncio.run(run())
    for i, response in enumerate(responses):
        body = response.json()
        assert response.status_code == 200
        assert body["action_id"] == (a if i % 2 else b)
        assert [e["payload"]["who"] for e in body["events"]] == ["a" if i % 2 else "b"]
    keyed = [q["action_id"] for q in counting.sent if q["action_id"] in (a, b)]
    assert sorted(keyed) == sorted([a, b])  # 32 requests, two keys: two queries


def test_remote_ip_is_what_the_trusted_proxy_appended_not_what_the_client_wrote(make_api) -> None:
    api = make_api()
    api.get("/healthz", auth=False, headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"})
    api.get("/healthz", auth=False)
    behind_lb = make_api(trusted_proxy_hops=2)
    behind_lb.get("/healthz", auth=False, headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 34.1.2.3"})
    behind_lb.get("/healthz", auth=False, headers={"X-Forwarded-For": "203.0.113.10"})  # fewer hops than trusted
    spoofed, direct = (line["httpRequest"]["remoteIp"] for line in api.log_lines())
    through_lb, short = (line["httpRequest"]["remoteIp"] for line in behind_lb.log_lines())
    assert spoofed == "203.0.113.9"
    assert direct == "testclient"  # no header: the peer address
    assert through_lb == "203.0.113.9"
    assert short == "203.0.113.10"
