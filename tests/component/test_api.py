"""The HTTP API against a real Valkey, in the key layout the stream worker writes."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from api.app import create_app
from api.models import CityLive, Ready, ZoneLive
from api.server import redis_client, serve
from drukte.embedded import start_store
from drukte.errors import SettingsError
from drukte.settings import Settings
from streams.registry import Registry, parse_registry
from tests.component.conftest import Clock

pytestmark = [pytest.mark.component, pytest.mark.anyio]

REGISTRY_YAML = """
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        area_m2: 5200
        sensors:
          - {id: mech-bruul-01, kind: street}
          - {id: mech-bruul-02, kind: street}
          - {id: mech-bruul-03, kind: entrance}
      - id: mechelen-ijzerenleen
        name: IJzerenleen
        sensors:
          - {id: mech-ijz-01, kind: street}
          - {id: mech-ijz-02, kind: street}
          - {id: mech-ijz-03, kind: street}
      - id: mechelen-grote-markt
        name: Grote Markt
        sensors:
          - {id: mech-gm-01, kind: street}
          - {id: mech-gm-02, kind: street}
          - {id: mech-gm-03, kind: street}
          - {id: mech-gm-04, kind: entrance}
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: leuven-diestsestraat
        name: Diestsestraat
        sensors:
          - {id: leu-di-01, kind: street}
          - {id: leu-di-02, kind: street}
          - {id: leu-di-03, kind: street}
"""

AS_OF_MS = 1_795_785_600_000  # 2026-11-27T14:20:00+01:00
# The live object of CONTRACT.md §4, exactly as a client must see it 74 s after its as_of.
CONTRACT_LIVE: dict[str, Any] = {
    "zone_id": "mechelen-bruul", "city_id": "mechelen", "name": "Bruul",
    "as_of": "2026-11-27T14:20:00+01:00",
    "window": {"start": "2026-11-27T14:05:00+01:00", "end": "2026-11-27T14:20:00+01:00", "seconds": 900},
    "level": {"key": "busy", "nr": 2, "label": {"nl": "Druk", "fr": "Animé", "en": "Busy"}},
    "index": 134, "score": 78, "vs_usual": "busier", "usual": {"low": 85, "high": 118},
    "visitors": {"min": 1190, "max": 1240},
    "forecast": [{"start": "2026-11-27T14:30:00+01:00", "index": 128, "level": "busy"}],
    "quality": {"stale": False, "age_s": 74, "coverage": 1.0, "sensors_reporting": 3, "sensors_expected": 3},
    "privacy": {"suppressed": False, "reason": None, "k_min": 15, "noise": "none"},
    "next_update_in_s": 226,
}
UNKNOWN_LEVEL = {"key": "unknown", "nr": None, "label": {"nl": "Onbekend", "fr": "Inconnu", "en": "Unknown"}}
# window 300 s, no grace: next update due 300 s after as_of; stale after 2·300 + 0 + 30 = 630 s.
# no live-object cache: these tests write the store and read it back at once, and take it down
SETTINGS = Settings(window_s=300, grace_s=0, idle_s=30, live_s=900, stale_s=None, redis_url=None, api_cache_ms=0)
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def stored(obj: dict[str, Any], as_of_ms: int) -> bytes:
    """The object as the worker writes it: quality as at write time, plus the internal as_of_ms."""
    out = copy.deepcopy(obj)
    out["as_of_ms"] = as_of_ms
    out["quality"] = out["quality"] | {"age_s": 0, "stale": False}
    out["next_update_in_s"] = 300
    return orjson.dumps(out)


GROTE_MARKT = CONTRACT_LIVE | {
    "zone_id": "mechelen-grote-markt", "name": "Grote Markt", "as_of": "2026-11-27T14:25:00+01:00",
    "window": {"start": "2026-11-27T14:10:00+01:00", "end": "2026-11-27T14:25:00+01:00", "seconds": 900},
    "level": {"key": "quiet", "nr": 0, "label": {"nl": "Rustig", "fr": "Calme", "en": "Quiet"}},
    "index": None, "score": None, "vs_usual": None, "usual": None, "visitors": None, "forecast": [],
    "quality": {"stale": False, "age_s": 0, "coverage": 0.75, "sensors_reporting": 4, "sensors_expected": 4},
    "privacy": {"suppressed": True, "reason": "below_k", "k_min": 15, "noise": "none"},
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return parse_registry(REGISTRY_YAML)


@pytest.fixture
def clock() -> Clock:
    return Clock(AS_OF_MS + 74_000)


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def app(registry: Registry, rds: Redis, metrics_registry: CollectorRegistry, clock: Clock) -> FastAPI:
    return create_app(SETTINGS, registry, rds, metrics_registry, clock)


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
def client_factory() -> ClientFactory:
    def make(app: FastAPI, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        return httpx.AsyncClient(transport=transport, base_url="http://drukte.test")
    return make


@pytest.fixture
async def client(app: FastAPI, client_factory: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_factory(app) as c:
        yield c


def assert_problem(resp: httpx.Response, status: int, title: str, path: str) -> dict[str, Any]:
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert set(body) >= PROBLEM_KEYS
    assert (body["type"], body["title"], body["status"], body["instance"]) == ("about:blank", title, status, path)
    assert isinstance(body["detail"], str)
    return body


async def test_cities_lists_the_registry(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/cities")
    assert resp.status_code == 200
    body = resp.json()
    assert [c["id"] for c in body["cities"]] == ["mechelen", "leuven"]
    assert body["cities"][0] | {"zones": None} == {
        "id": "mechelen", "name": "Mechelen", "timezone": "Europe/Brussels", "country": "BE", "zones": None}
    assert body["cities"][0]["zones"][0] == {
        "id": "mechelen-bruul", "name": "Bruul", "area_m2": 5200, "sensors_expected": 3,
        "sensors": [{"id": "mech-bruul-01", "kind": "street"}, {"id": "mech-bruul-02", "kind": "street"},
                    {"id": "mech-bruul-03", "kind": "entrance"}]}
    assert [(z["id"], z["area_m2"], z["sensors_expected"]) for z in body["cities"][0]["zones"][1:]] == [
        ("mechelen-ijzerenleen", None, 3), ("mechelen-grote-markt", None, 4)]


async def test_zone_live_is_the_contract_object(client: httpx.AsyncClient, rds: Redis) -> None:
    await rds.set("drukte:live:mechelen-bruul", stored(CONTRACT_LIVE, AS_OF_MS))
    resp = await client.get("/v1/zones/mechelen-bruul/live", headers={"Origin": "https://scherm.mechelen.be"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["access-control-allow-origin"] == "*"
    assert resp.json() == CONTRACT_LIVE  # as_of_ms stripped, age and next update at read time
    assert b"as_of_ms" not in resp.content
    assert ZoneLive.model_validate(resp.json()).model_dump(mode="json") == CONTRACT_LIVE  # docs match reality


@pytest.mark.parametrize(
    ("age_ms", "stale", "level", "next_update_in_s"),
    [
        (629_999, False, CONTRACT_LIVE["level"], 0),  # just under the 630 s limit, next window overdue
        (630_000, False, CONTRACT_LIVE["level"], 0),  # exactly at the limit: still fresh
        (631_000, True, UNKNOWN_LEVEL, 0),  # past the limit: unknown, never the old level
        (3_600_000, True, UNKNOWN_LEVEL, 0),  # an hour old
    ],
)
async def test_zone_live_staleness_follows_the_clock(
    client: httpx.AsyncClient, rds: Redis, clock: Clock, age_ms: int, stale: bool, level: dict[str, Any],
    next_update_in_s: int,
) -> None:
    await rds.set("drukte:live:mechelen-bruul", stored(CONTRACT_LIVE, AS_OF_MS))
    clock.now_ms = AS_OF_MS + age_ms
    body = (await client.get("/v1/zones/mechelen-bruul/live")).json()
    assert body["quality"] == CONTRACT_LIVE["quality"] | {"stale": stale, "age_s": age_ms // 1000}
    assert body["level"] == level
    assert body["next_update_in_s"] == next_update_in_s
    assert body["visitors"] == {"min": 1190, "max": 1240}  # last known numbers stay, with their age


async def test_zone_without_data_is_unknown(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/zones/mechelen-ijzerenleen/live")
    assert resp.status_code == 200
    body = resp.json()
    assert body == {
        "zone_id": "mechelen-ijzerenleen", "city_id": "mechelen", "name": "IJzerenleen",
        "as_of": None, "window": None, "level": UNKNOWN_LEVEL,
        "index": None, "score": None, "vs_usual": None, "usual": None, "visitors": None, "forecast": [],
        "quality": {"stale": True, "age_s": None, "coverage": 0.0, "sensors_reporting": 0, "sensors_expected": 3},
        "privacy": {"suppressed": False, "reason": None, "k_min": None, "noise": "none"},
        "next_update_in_s": None,
    }
    assert ZoneLive.model_validate(body).model_dump(mode="json") == body


async def test_corrupt_stored_object_is_served_as_unknown(client: httpx.AsyncClient, rds: Redis) -> None:
    await rds.set("drukte:live:mechelen-bruul", b"{not json")
    resp = await client.get("/v1/zones/mechelen-bruul/live")
    assert resp.status_code == 200
    assert resp.json()["level"] == UNKNOWN_LEVEL
    assert resp.json()["quality"]["stale"] is True


async def test_city_live_reads_every_zone_in_registry_order_with_one_mget(
    client: httpx.AsyncClient, rds: Redis
) -> None:
    await rds.set("drukte:live:mechelen-bruul", stored(CONTRACT_LIVE, AS_OF_MS))
    await rds.set("drukte:live:mechelen-grote-markt", stored(GROTE_MARKT, AS_OF_MS + 300_000))
    await rds.config_resetstat()
    resp = await client.get("/v1/cities/mechelen/live")
    stats = await rds.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert "cmdstat_get" not in stats
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-cache"
    body = resp.json()
    assert (body["city_id"], body["name"]) == ("mechelen", "Mechelen")
    assert body["as_of"] == "2026-11-27T14:25:00+01:00"  # the newest zone's
    assert [z["zone_id"] for z in body["zones"]] == ["mechelen-bruul", "mechelen-ijzerenleen", "mechelen-grote-markt"]
    bruul, ijzerenleen, grote_markt = body["zones"]
    assert bruul == CONTRACT_LIVE
    assert ijzerenleen["level"] == UNKNOWN_LEVEL
    assert ijzerenleen["quality"]["sensors_expected"] == 3
    # suppressed below k: quiet, no numbers. Its as_of is 226 s after our clock (a writer ahead of us):
    # age 0, not negative, and the next update 300 s after its as_of
    assert grote_markt == GROTE_MARKT | {"next_update_in_s": 300 + 226}
    assert b"as_of_ms" not in resp.content
    assert CityLive.model_validate(body).model_dump(mode="json") == body


async def test_city_live_without_any_data(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/cities/leuven/live")).json()
    assert body["as_of"] is None
    assert [(z["zone_id"], z["level"]["key"], z["quality"]["stale"]) for z in body["zones"]] == [
        ("leuven-diestsestraat", "unknown", True)]


@pytest.mark.parametrize(
    ("path", "echoed"),
    [
        ("/v1/zones/mechelen-nowhere/live", "'mechelen-nowhere'"),  # well-formed but not in the registry
        ("/v1/cities/gent/live", "'gent'"),  # a city this deployment does not serve
        ("/v1/zones/mechelen-bruul-/live", "'mechelen-bruul-'"),
        ("/v1/zones/Mechelen-Bruul/live", None),  # upper case is no id: not echoed back
        ("/v1/zones/mechelen_bruul/live", None),
        ("/v1/zones/" + "a" * 65 + "/live", None),  # too long
        ("/v1/cities/%2E%2E/live", None),  # '..' as one segment
        ("/v1/zones/<script>/live", None),
    ],
)
async def test_unknown_or_bad_ids_are_404_problems(
    client: httpx.AsyncClient, path: str, echoed: str | None
) -> None:
    resp = await client.get(path)
    body = assert_problem(resp, 404, "Not Found", httpx.URL(path).path)
    assert "/v1/cities" in body["detail"]
    if echoed:
        assert echoed in body["detail"]
    else:
        assert "not a" in body["detail"]
        assert "<script>" not in body["detail"]
        assert "aaaa" not in body["detail"]


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1/zones/..%2Fetc/live",  # an encoded slash never reaches the id: no route matches
        "/v1/zones/..%2F..%2Fetc%2Fpasswd/live",
        "/v1/zones/../etc/live",  # dot segments are resolved by the client: /v1/etc/live
        "/v1/nothing-here",
    ],
)
async def test_paths_without_a_route_are_404_problems(client: httpx.AsyncClient, raw_path: str) -> None:
    resp = await client.get(raw_path)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert (body["type"], body["title"], body["status"]) == ("about:blank", "Not Found", 404)
    assert "/v1/cities" in body["detail"]


async def test_writes_are_405_problems(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/cities", json={})
    body = assert_problem(resp, 405, "Method Not Allowed", "/v1/cities")
    assert resp.headers["allow"] == "GET"
    assert "POST" in body["detail"]


async def test_validation_errors_are_422_problems(app: FastAPI, client: httpx.AsyncClient) -> None:
    @app.get("/test/typed")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    resp = await client.get("/test/typed", params={"n": "many"})
    body = assert_problem(resp, 422, HTTPStatus(422).phrase, "/test/typed")
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [(["query", "n"], "int_parsing")]


async def test_unexpected_errors_are_500_problems(
    app: FastAPI, client_factory: ClientFactory, metrics_registry: CollectorRegistry
) -> None:
    @app.get("/test/boom/{thing}")
    async def boom(thing: str) -> None:
        raise RuntimeError("secret internals " + thing)

    async with client_factory(app, raise_app_exceptions=False) as c:
        resp = await c.get("/test/boom/x")
    body = assert_problem(resp, 500, "Internal Server Error", "/test/boom/x")
    assert "secret" not in body["detail"]
    assert metrics_registry.get_sample_value(
        "drukte_http_request_seconds_count", {"route": "/test/boom/{thing}", "method": "GET", "status": "500"}) == 1


async def test_store_outage_is_503_not_500(
    registry: Registry, client_factory: ClientFactory, clock: Clock
) -> None:
    doomed = start_store()
    rds = redis_client(doomed.url)  # the production client: few, short retries
    try:
        await rds.set("drukte:live:mechelen-bruul", stored(CONTRACT_LIVE, AS_OF_MS))
        await rds.set("drukte:worker:heartbeat", str(clock.now_ms))
        metrics_registry = CollectorRegistry()
        app = create_app(SETTINGS, registry, rds, metrics_registry, clock)
        async with client_factory(app) as c:
            assert (await c.get("/v1/zones/mechelen-bruul/live")).json() == CONTRACT_LIVE
            assert (await c.get("/readyz")).status_code == 200
            doomed.stop()
            for path in ("/v1/zones/mechelen-bruul/live", "/v1/cities/mechelen/live"):
                resp = await c.get(path)
                body = assert_problem(resp, 503, "Service Unavailable", path)
                assert "store" in body["detail"]
                assert resp.headers["retry-after"] == "5"
                assert resp.headers["cache-control"] == "no-cache"
            ready = await c.get("/readyz")
            body = assert_problem(ready, 503, "Service Unavailable", "/readyz")
            assert body["checks"]["store"] == "unreachable"
            assert (await c.get("/healthz")).json() == {"status": "ok"}  # alive, just not ready
            scrape = await c.get("/metrics")  # metrics still served during the outage
            assert scrape.status_code == 200
        assert metrics_registry.get_sample_value("drukte_api_redis_errors_total") == 4  # 2 routes, readyz, metrics
    finally:
        doomed.stop()
        await rds.aclose()


@pytest.mark.parametrize(
    ("heartbeat_age_ms", "ready", "worker_check"),
    [
        (0, True, "ok"),  # the worker just ticked
        (29_999, True, "ok"),  # just younger than 30 s
        (30_000, False, "last heartbeat 30 s ago (limit 30 s)"),  # 30 s is too old
        (600_000, False, "last heartbeat 600 s ago (limit 30 s)"),
        (None, False, "no heartbeat in the store; is `drukte worker` running?"),
    ],
)
async def test_readyz_follows_the_worker_heartbeat(
    client: httpx.AsyncClient, rds: Redis, clock: Clock, heartbeat_age_ms: int | None, ready: bool,
    worker_check: str,
) -> None:
    await rds.set("drukte:live:mechelen-bruul", stored(CONTRACT_LIVE, AS_OF_MS))  # Mechelen fresh, Leuven not
    if heartbeat_age_ms is not None:
        await rds.set("drukte:worker:heartbeat", str(clock.now_ms - heartbeat_age_ms))
    resp = await client.get("/readyz")
    data = "ok, but stale in 1 of 2 cities: leuven (no live object) (limit 630 s)"
    cities = {"mechelen": {"age_s": 74, "stale": False}, "leuven": {"age_s": None, "stale": True}}
    if ready:
        assert resp.status_code == 200
        assert resp.json() == {"status": "ready", "checks": {"store": "ok", "worker": "ok", "data": data},
                               "stale_after_s": 630, "cities": cities}
        assert Ready.model_validate(resp.json()).model_dump(mode="json") == resp.json()
    else:
        body = assert_problem(resp, 503, "Service Unavailable", "/readyz")
        assert body["checks"] == {"store": "ok", "worker": worker_check, "data": data}
        assert (body["stale_after_s"], body["cities"]) == (630, cities)
        assert body["detail"] == f"not ready; worker: {worker_check}"


async def test_healthz(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


async def test_metrics_record_route_templates_and_data_age(
    client: httpx.AsyncClient, rds: Redis, metrics_registry: CollectorRegistry
) -> None:
    await rds.set("drukte:live:mechelen-bruul", stored(CONTRACT_LIVE, AS_OF_MS))
    for _ in range(2):
        await client.get("/v1/zones/mechelen-bruul/live")
    await client.get("/v1/zones/mechelen-nowhere/live")
    await client.get("/no/such/path/4711")
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert "drukte_http_request_seconds_bucket" in text
    assert "mechelen-bruul" not in text  # raw paths never become labels
    assert "4711" not in text

    def count(route: str, status: str) -> float | None:
        return metrics_registry.get_sample_value(
            "drukte_http_request_seconds_count", {"route": route, "method": "GET", "status": status})

    assert count("/v1/zones/{zone_id}/live", "200") == 2
    assert count("/v1/zones/{zone_id}/live", "404") == 1
    assert count("unmatched", "404") == 1
    assert metrics_registry.get_sample_value("drukte_live_age_seconds", {"city": "mechelen"}) == 74.0
    assert metrics_registry.get_sample_value("drukte_live_age_seconds", {"city": "leuven"}) == float("inf")


async def test_openapi_documents_routes_models_and_problems(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert set(spec["paths"]) == {
        "/v1/cities", "/v1/cities/{city_id}/live", "/v1/zones/{zone_id}/live", "/v1/zones/{zone_id}/today",
        "/v1/zones/{zone_id}/windows", "/v1/zones/{zone_id}/spending", "/v1/cities/{city_id}/spending",
        "/v1/zones/{zone_id}/sensors", "/v1/stream", "/metrics", "/healthz", "/readyz"}
    zone_live = spec["paths"]["/v1/zones/{zone_id}/live"]["get"]["responses"]
    assert zone_live["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ZoneLive"}
    assert set(zone_live["404"]["content"]) == {"application/problem+json"}
    assert set(zone_live["422"]["content"]) == {"application/problem+json"}
    assert set(spec["components"]["schemas"]["ZoneLive"]["properties"]) == set(CONTRACT_LIVE)
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


async def test_serve_without_redis_url_says_what_to_do(registry: Registry) -> None:
    with pytest.raises(SettingsError, match=r"DRUKTE_REDIS_URL.*drukte up"):
        serve(SETTINGS, registry)


async def test_today_joins_profile_and_published_windows(client: httpx.AsyncClient, rds: Redis, clock: Clock) -> None:
    from streams.baseline import Band
    from streams.daytype import day_bounds
    from streams.today import profile_record

    first, end = day_bounds(clock.now_ms, "Europe/Brussels")
    window_ms = SETTINGS.window_s * 1000
    starts = list(range(first, end, window_ms))
    profile = profile_record("mechelen-bruul", "Europe/Brussels",
                             [(s, Band(40, 50, 60, 8) if i % 2 else None) for i, s in enumerate(starts)], peak=100.0)
    await rds.set("drukte:profile:mechelen-bruul", orjson.dumps(profile))
    window = dict(CONTRACT_LIVE)
    window["window"] = {"start": profile["windows"][1]["start"], "end": "x", "seconds": window_ms // 1000}
    await rds.zadd("drukte:windows:mechelen-bruul", {orjson.dumps(window): starts[1]})
    yesterday = orjson.dumps(dict(window, index=7))
    await rds.zadd("drukte:windows:mechelen-bruul", {yesterday: first - window_ms})
    resp = await client.get("/v1/zones/mechelen-bruul/today")
    assert resp.status_code == 200
    body = resp.json()
    assert body["date"] == profile["date"]
    assert len(body["windows"]) == len(starts)
    assert body["windows"][1]["usual"] == {"score": 50, "low": 40, "high": 60}
    assert body["windows"][1]["live"]["index"] == CONTRACT_LIVE["index"]
    assert body["windows"][0]["usual"] is None
    assert all(w["live"] is None for i, w in enumerate(body["windows"]) if i != 1)  # yesterday's is not today's
    resp = await client.get("/v1/zones/nowhere/today")
    assert resp.status_code == 404
