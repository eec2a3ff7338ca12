"""The TTL cache: hits within the TTL do not touch BigQuery, misses after it do."""

from __future__ import annotations

import threading
from datetime import timedelta

from api_service.cache import TTLCache
from api_service.fastpath import HotPath
from api_service.iap import HEADER
from tests.api_service.support import Api, Clock, Keys, event_row, unique


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


def _hot_path(api: Api) -> HotPath:
    layer = api.client.app.middleware_stack
    while not isinstance(layer, HotPath):
        layer = layer.app
    return layer


def test_a_hot_hit_skips_the_router_with_the_same_answer(api: Api, keys: Keys, insert) -> None:
    action = unique("fast")
    insert([event_row(action_id=action, user_email="mixed@example.com")])
    token = {HEADER: keys.token()}
    path = f"/get_data/{action}:mixed@example.com"
    miss = api.get(path, auth=False, headers=token)
    hot = _hot_path(api)  # the middleware stack is built by the first request
    hit = api.get(path, auth=False, headers=token)
    assert (miss.headers["x-cache"], hit.headers["x-cache"], hot.served) == ("miss", "hit", 1)
    # The same cache entry reached through the router (an explicit default limit, an upper-case e-mail):
    routed = [api.get(path, auth=False, headers=token, params={"limit": 100}),
              api.get(f"/get_data/{action}:MIXED@example.com", auth=False, headers=token)]
    assert hot.served == 1
    for other in routed:
        assert (other.status_code, other.content, dict(other.headers)) == (200, hit.content, dict(hit.headers))
    assert hit.content == miss.content

    # Only a verified assertion gets the hot answer; everything else still meets the full check.
    for bad in ({}, {HEADER: "garbage"}, {HEADER: keys.token(audience="/projects/1/apps/other")}):
        assert api.get(path, auth=False, headers=bad).status_code == 401
    assert api.get(f"/get_data/{action}:mixed@example.com/", auth=False, headers=token).status_code == 404
    assert hot.served == 1

    lines = api.log_lines()
    assert (lines[1]["route"], lines[1]["cache"], lines[1]["email"]) == (
        "/get_data/{action_id}:{user_email}", "hit", "reader@example.com")
    assert {k: v for k, v in lines[1].items() if k not in ("time", "httpRequest")} == {
        k: v for k, v in lines[2].items() if k not in ("time", "httpRequest")}


def test_hot_hits_of_app_info_and_cached_not_found(api: Api, keys: Keys) -> None:
    token = {HEADER: keys.token()}
    path = f"/app_info/{unique('none')}:sales"
    first, second = (api.get(path, auth=False, headers=token) for _ in range(2))
    hot = _hot_path(api)
    assert (first.status_code, first.headers["x-cache"]) == (404, "miss")
    assert (second.status_code, second.headers["x-cache"], second.content, hot.served) == (404, "hit",
                                                                                            first.content, 1)
