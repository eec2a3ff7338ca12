"""The TTL cache: hits within the TTL do not touch BigQuery, misses after it do."""

from __future__ import annotations

import threading
from datetime import timedelta

from api_service.cache import TTLCache
from tests.api_service.support import Api, Clock, event_row, unique


def test_a_hit_within_the_ttl_does_not_query_and_a_miss_after_it_does(api: Api, insert) -> None:
    action = unique("hot")
    path = f"/get_data/{action}:someone@example.com"
    insert([event_row(action_id=action, age=timedelta(minutes=2))])

    first = api.get(path)
    insert([event_row(action_id=action, age=timedelta(minutes=1))])  # BigQuery now holds two
    api.clock.now += 29
    second = api.get(path)
    api.clock.now += 2  # 31 s after the first answer: past the default 30 s TTL
    third = api.get(path)

    assert (first.headers["x-cache"], first.json()["count"]) == ("miss", 1)
    assert (second.headers["x-cache"], second.content) == ("hit", first.content)  # BigQuery was not asked
    assert (third.headers["x-cache"], third.json()["count"]) == ("miss", 2)


def test_the_key_holds_every_parameter(api: Api, insert) -> None:
    action = unique("keyed")
    insert([event_row(action_id=action, user_email="mixed@example.com")])
    base = f"/get_data/{action}:"
    assert api.get(base + "mixed@example.com").headers["x-cache"] == "miss"
    assert api.get(base + "MIXED@example.com").headers["x-cache"] == "hit"  # e-mails are compared lower-cased
    assert api.get(base + "mixed@example.com", params={"limit": 5}).headers["x-cache"] == "miss"
    assert api.get(base + "mixed@example.com", params={"days": 7}).headers["x-cache"] == "miss"
    assert api.get(f"/app_info/app-1:{action}").headers["x-cache"] == "miss"


def test_not_found_is_cached_for_the_shorter_ttl(api: Api, insert) -> None:
    app_id = unique("soon")
    path = f"/app_info/{app_id}:sales"
    assert api.get(path).status_code == 404
    insert([event_row(action_id="first", app_id=app_id)])
    api.clock.now += 4
    cached = api.get(path)
    api.clock.now += 2  # past the 5 s not-found TTL
    fresh = api.get(path)
    assert (cached.status_code, cached.headers["x-cache"]) == (404, "hit")
    assert (fresh.status_code, fresh.headers["x-cache"], fresh.json()["events"]) == (200, "miss", 1)


def test_ttl_zero_disables_the_cache(make_api, insert) -> None:
    api = make_api(cache_ttl_s=0)
    action = unique("cold")
    insert([event_row(action_id=action)])
    path = f"/get_data/{action}:someone@example.com"
    assert [api.get(path).headers["x-cache"] for _ in range(3)] == ["miss"] * 3


def test_entries_expire_and_the_least_recently_used_go_first() -> None:
    clock = Clock()
    cache = TTLCache(max_entries=2, clock=clock)
    cache.put("a", 1, ttl=10)
    cache.put("b", 2, ttl=10)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3, ttl=10)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    clock.now += 10
    assert cache.get("a") is None and len(cache) == 1
    cache.put("d", 4, ttl=0)
    assert cache.get("d") is None


def test_the_cache_stays_consistent_under_threads() -> None:
    cache = TTLCache(max_entries=50)

    def work(n: int) -> None:
        for i in range(2000):
            cache.put((n, i % 100), i, ttl=60)
            cache.get((n, (i * 7) % 100))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
