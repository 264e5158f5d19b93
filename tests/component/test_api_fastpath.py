"""The /live fast path (api/fastpath.py) answers byte for byte as FastAPI's routes do, and only where it may."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

import api.fastpath
from api.app import create_app
from api.server import redis_client
from drukte.embedded import start_store
from drukte.settings import Settings
from streams.registry import parse_registry
from streams.storekeys import devices_key, live_key
from tests.component.conftest import Clock

pytestmark = [pytest.mark.component, pytest.mark.anyio]

REGISTRY = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: b-1, kind: street}, {id: b-2, kind: street}, {id: b-3, kind: street},
                  {id: b-w1, kind: wifi}, {id: b-w2, kind: wifi}, {id: b-w3, kind: ble}]
      - id: mechelen-vismarkt
        name: Vismarkt
        sensors: [{id: v-1, kind: street}, {id: v-2, kind: street}, {id: v-3, kind: street}]
      - id: mechelen-ijzerenleen
        name: IJzerenleen
        sensors: [{id: i-1, kind: street}, {id: i-2, kind: street}, {id: i-3, kind: street}]
""")
AS_OF = 1_795_785_600_000  # 2026-11-27T14:20:00+01:00
NOW = AS_OF + 74_000
SETTINGS = Settings(window_s=300, grace_s=0, idle_s=30, live_s=900, redis_url=None, api_cache_ms=0)  # stale: 630 s


def live(zone_id: str, as_of_ms: int) -> bytes:
    """A stored live object as the worker writes it (with the internal as_of_ms)."""
    return orjson.dumps({
        "zone_id": zone_id, "city_id": "mechelen", "name": zone_id, "as_of": "2026-11-27T14:20:00+01:00",
        "as_of_ms": as_of_ms,
        "window": {"start": "2026-11-27T14:05:00+01:00", "end": "2026-11-27T14:20:00+01:00", "seconds": 900},
        "level": {"key": "busy", "nr": 2, "label": {"nl": "Druk", "fr": "Animé", "en": "Busy"}},
        "index": 134, "score": 78, "vs_usual": "busier", "usual": {"low": 85, "high": 118},
        "visitors": {"min": 1190, "max": 1240}, "forecast": [],
        "quality": {"stale": False, "age_s": 0, "coverage": 1.0, "sensors_reporting": 3, "sensors_expected": 3},
        "privacy": {"suppressed": False, "reason": None, "k_min": 15, "noise": "none"}, "next_update_in_s": 300})


DEVICES = orjson.dumps({
    "zone_id": "mechelen-bruul", "as_of": "2026-11-27T14:20:00+01:00", "as_of_ms": AS_OF,
    "window": {"start": "2026-11-27T14:15:00+01:00", "end": "2026-11-27T14:20:00+01:00", "seconds": 300},
    "visitors": {"min": 40, "max": 50}, "privacy": {"suppressed": False, "reason": None}})


class Api:
    """An app and what reached FastAPI's router in it."""

    def __init__(self, app: FastAPI, metrics: CollectorRegistry) -> None:
        self.app = app
        self.metrics = metrics
        self.routed: list[str] = []

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=("192.0.2.7", 1234)),
                                 base_url="http://drukte.test")

    def count(self, route: str, status: str) -> float | None:
        return self.metrics.get_sample_value("drukte_http_request_seconds_count",
                                             {"route": route, "method": "GET", "status": status})


def make_api(rds: Redis, *, fast_live: bool, **settings: Any) -> Api:
    metrics = CollectorRegistry()
    app = create_app(SETTINGS.model_copy(update=settings), REGISTRY, rds, metrics, Clock(NOW), fast_live=fast_live)
    out = Api(app, metrics)
    router = app.router
    inner: Callable[[Scope, Receive, Send], Awaitable[None]] = router.middleware_stack

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        out.routed.append(scope["path"])
        await inner(scope, receive, send)

    router.middleware_stack = spy
    return out


@pytest.fixture
async def apis(rds: Redis) -> tuple[Api, Api]:
    await rds.set(live_key("mechelen-bruul"), live("mechelen-bruul", AS_OF))
    await rds.set(devices_key("mechelen-bruul"), DEVICES)
    await rds.set(live_key("mechelen-ijzerenleen"), live("mechelen-ijzerenleen", AS_OF - 3_600_000))  # stale
    return make_api(rds, fast_live=True), make_api(rds, fast_live=False)


async def both(apis: tuple[Api, Api], method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, httpx.Response]:
    fast, slow = apis
    async with fast.client() as f, slow.client() as s:
        return await f.request(method, path, **kwargs), await s.request(method, path, **kwargs)


def assert_same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code
    assert fast.headers.raw == slow.headers.raw  # every header, in order
    assert fast.content == slow.content


@pytest.mark.parametrize(("path", "what"), [
    ("/v1/zones/mechelen-bruul/live", "a zone with scanners: devices member"),
    ("/v1/zones/mechelen-ijzerenleen/live", "stale data: level unknown, numbers kept"),
    ("/v1/zones/mechelen-vismarkt/live", "no data yet"),
    ("/v1/cities/mechelen/live", "a city: every zone, in registry order"),
    ("/v1/zones/mechelen-bruul/live?lang=fr", "a query string changes nothing"),
])
async def test_the_fast_path_answers_as_the_route_does(apis: tuple[Api, Api], path: str, what: str) -> None:
    fast, slow = apis
    for headers in ({}, {"Origin": "https://city.example"}):  # with CORS headers too
        f, s = await both(apis, "GET", path, headers=headers)
        assert f.status_code == 200, what
        assert_same(f, s)
    assert fast.routed == []  # FastAPI's router never saw them
    assert slow.routed == [path.split("?")[0]] * 2
    route = path.split("?")[0].replace("mechelen-bruul", "{zone_id}").replace("mechelen-ijzerenleen", "{zone_id}")
    route = route.replace("mechelen-vismarkt", "{zone_id}").replace("/cities/mechelen/", "/cities/{city_id}/")
    assert fast.count(route, "200") == slow.count(route, "200") == 2  # labelled with the route template


async def test_bodies_are_what_the_contract_says(apis: tuple[Api, Api]) -> None:
    # the comparison above is only as good as the slow path: a spot check of what both serve
    fast, _ = apis
    async with fast.client() as c:
        bruul = (await c.get("/v1/zones/mechelen-bruul/live")).json()
        old = (await c.get("/v1/zones/mechelen-ijzerenleen/live")).json()
        city = (await c.get("/v1/cities/mechelen/live")).json()
    assert bruul["quality"]["age_s"] == 74
    assert bruul["devices"]["visitors"] == {"min": 40, "max": 50}
    assert "as_of_ms" not in bruul
    assert (old["quality"]["stale"], old["level"]["key"], old["visitors"]) == (True, "unknown", {"min": 1190,
                                                                                                 "max": 1240})
    assert "devices" not in old
    assert [z["zone_id"] for z in city["zones"]] == ["mechelen-bruul", "mechelen-vismarkt", "mechelen-ijzerenleen"]


@pytest.mark.parametrize(("method", "path"), [
    ("HEAD", "/v1/zones/mechelen-bruul/live"),  # HEAD: the router's (no body)
    ("GET", "/v1/zones/nowhere/live"),  # unknown zone: 404 problem
    ("GET", "/v1/cities/nowhere/live"),
    ("GET", "/v1/zones/Mechelen-Bruul/live"),  # not an id: 404 problem, input not echoed
    ("GET", "/v1/zones/mechelen-bruul/live/"),  # another path
    ("GET", "/v1/zones/mechelen-bruul/today"),
    ("POST", "/v1/zones/mechelen-bruul/live"),  # 405 problem
])
async def test_everything_else_goes_to_the_app(apis: tuple[Api, Api], method: str, path: str) -> None:
    fast, _ = apis
    f, s = await both(apis, method, path)
    assert_same(f, s)
    assert fast.routed == [path]


async def test_an_unexpected_error_is_served_again_by_the_app(apis: tuple[Api, Api],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def broken(*args: Any) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug in the fast path")

    monkeypatch.setattr(api.fastpath, "zone_live_response", broken)
    fast, _ = apis
    f, s = await both(apis, "GET", "/v1/zones/mechelen-bruul/live")
    assert calls == 1
    assert f.status_code == 200
    assert_same(f, s)
    assert fast.routed == ["/v1/zones/mechelen-bruul/live"]


async def test_store_down_is_the_same_503_problem() -> None:
    doomed = start_store()
    rds = redis_client(doomed.url)
    try:
        await rds.set(live_key("mechelen-bruul"), live("mechelen-bruul", AS_OF))
        fast, slow = make_api(rds, fast_live=True), make_api(rds, fast_live=False)
        doomed.stop()
        for path in ("/v1/zones/mechelen-bruul/live", "/v1/cities/mechelen/live"):
            f, s = await both((fast, slow), "GET", path)
            assert f.status_code == 503
            assert_same(f, s)
        assert fast.routed == []  # answered by the same function as the app's handler, the store asked once
        for api_ in (fast, slow):
            assert api_.metrics.get_sample_value("drukte_api_redis_errors_total") == 2
            assert api_.count("/v1/zones/{zone_id}/live", "503") == 1
    finally:
        doomed.stop()
        await rds.aclose()


async def test_the_rate_limit_still_applies(rds: Redis) -> None:
    fast = make_api(rds, fast_live=True, rate_limit_per_min=2)
    async with fast.client() as c:
        statuses = [(await c.get("/v1/zones/mechelen-bruul/live")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert fast.routed == []
