"""Spending, sensor health and `closed` through the API, against a real Valkey in the worker's key layout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from api.app import create_app
from drukte.settings import Settings
from streams.registry import parse_registry
from streams.spending import SpendRules, cell_view, spending_object
from streams.storekeys import sensors_key, spending_key, windows_key
from streams.timegrid import parse_ts
from tests.component.conftest import Clock
from tests.unit.test_spending import SPENDING, merchant_ids_in, off_shape, published_spending

pytestmark = [pytest.mark.component, pytest.mark.anyio]

REGISTRY = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    opening_hours: {mon: "10:00-18:00", tue: "10:00-18:00", wed: "10:00-18:00", thu: "10:00-18:00",
                    fri: "10:00-18:00", sat: "10:00-18:00", sun: closed}
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: b-1, kind: street}, {id: b-2, kind: street}, {id: b-3, kind: entrance}]
      - id: mechelen-vismarkt
        name: Vismarkt
        opening_hours: always
        sensors: [{id: v-1, kind: street}, {id: v-2, kind: street}, {id: v-3, kind: street}]
merchants:
""" + "".join(f"  - {{id: m-{i}, zone: mechelen-bruul, sector: fashion}}\n" for i in range(6))
                          + "  - {id: m-9, zone: mechelen-bruul, sector: groceries}\n")
SETTINGS = Settings(redis_url="redis://unused", window_s=300, live_s=900)
HOUR_14 = parse_ts("2026-11-27T14:00:00+01:00")  # a Friday
NIGHT = parse_ts("2026-11-27T23:30:00+01:00")


@pytest.fixture
def clock() -> Clock:
    return Clock(HOUR_14 + 3_600_000 + 400_000)


@pytest.fixture
async def client(rds: Redis, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS, REGISTRY, rds, CollectorRegistry(), clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://drukte.test") as c:
        yield c


async def get(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    resp = await client.get(path)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_before_any_payment_every_cell_says_no_data(client: httpx.AsyncClient) -> None:
    body = await get(client, "/v1/zones/mechelen-bruul/spending")
    assert body["window"] is None
    assert body["all"]["reason"] == "no_data"
    assert [(c["sector"], c["suppressed"], c["reason"]) for c in body["sectors"]] == [
        ("fashion", True, "no_data"), ("groceries", True, "no_data")]
    city = await get(client, "/v1/cities/mechelen/spending")
    assert [z["zone_id"] for z in city["zones"]] == ["mechelen-bruul", "mechelen-vismarkt"]
    assert city["zones"][1]["sectors"] == []


async def test_spend_per_visitor_comes_from_the_footfall_windows_of_the_same_hour(client: httpx.AsyncClient,
                                                                                 rds: Redis) -> None:
    zone, city = REGISTRY.zones["mechelen-bruul"], REGISTRY.cities[0]
    cells = [{**cell_view("all", 0, None, None, rebased=False), "index": 132},
             {**cell_view("fashion", 0, None, None, rebased=False), "index": 150},
             cell_view("groceries", 0, "few_merchants", None, rebased=False)]
    await rds.set(spending_key(zone.id), orjson.dumps(spending_object(zone, city, HOUR_14, 3_600_000, cells,
                                                                     SpendRules())))
    # twelve 5-minute footfall windows of 14:00–15:00, ten with an index of 110, two suppressed
    for i in range(12):
        start = HOUR_14 + i * 300_000
        window = {"zone_id": zone.id, "index": 110 if i < 10 else None, "as_of_ms": start + 300_000}
        await rds.zadd(windows_key(zone.id), {orjson.dumps(window): start})
    await rds.zadd(windows_key(zone.id), {orjson.dumps({"index": 500}): HOUR_14 + 3_600_000})  # next hour
    body = await get(client, "/v1/zones/mechelen-bruul/spending")
    assert body["window"]["start"] == "2026-11-27T14:00:00+01:00"
    assert (body["all"]["index"], body["all"]["spend_per_visitor"]) == (132, 120)  # 100 × 132 / 110
    fashion, groceries = body["sectors"]
    assert (fashion["index"], fashion["spend_per_visitor"]) == (150, 136)
    assert (groceries["suppressed"], groceries["spend_per_visitor"]) == (True, None)
    assert "amount" not in orjson.dumps(body).decode()


async def test_spending_responses_carry_only_the_allowed_fields_and_no_merchant(client: httpx.AsyncClient,
                                                                                rds: Redis) -> None:
    """P13 and P14 at the API: a field the worker or the route adds beside the allowed ones (an amount, merchant
    shares) fails, and no registered merchant id appears in a zone's or a city's spending response."""
    zone = REGISTRY.zones["mechelen-bruul"]
    before = await get(client, "/v1/zones/mechelen-bruul/spending")
    obj = published_spending(REGISTRY, zone.id, HOUR_14)
    assert [c["reason"] for c in obj["sectors"]] == ["complement", "few_merchants"]  # groceries: one merchant
    await rds.set(spending_key(zone.id), orjson.dumps(obj))
    for i in range(12):  # footfall of the hour, so spend_per_visitor is filled too
        await rds.zadd(windows_key(zone.id), {orjson.dumps({"index": 110, "i": i}): HOUR_14 + i * 300_000})
    body = await get(client, "/v1/zones/mechelen-bruul/spending")
    assert body["all"]["spend_per_visitor"] is not None
    assert body["all"]["usual"] is not None  # every level of the shape is filled
    city = await get(client, "/v1/cities/mechelen/spending")
    assert sorted(city) == ["city_id", "name", "zones"]
    for o in [before, body, *city["zones"]]:
        assert off_shape(o, SPENDING) == [], o
    assert merchant_ids_in([before, body, city], REGISTRY) == []


async def test_sensor_health_lists_every_registered_sensor(client: httpx.AsyncClient, rds: Redis) -> None:
    report = {"zone_id": "mechelen-bruul", "as_of": "2026-11-27T15:06:00+01:00", "sensors": [
        {"id": "b-1", "kind": "street", "state": "ok", "since": None},
        {"id": "b-2", "kind": "street", "state": "stuck", "since": "2026-11-27T14:40:00+01:00"}]}
    await rds.set(sensors_key("mechelen-bruul"), orjson.dumps(report))
    body = await get(client, "/v1/zones/mechelen-bruul/sensors")
    assert [(s["id"], s["state"]) for s in body["sensors"]] == [("b-1", "ok"), ("b-2", "stuck"), ("b-3", "unknown")]
    assert (await client.get("/v1/zones/nowhere/sensors")).status_code == 404


async def test_a_zone_without_data_is_closed_outside_its_opening_hours(client: httpx.AsyncClient,
                                                                       clock: Clock) -> None:
    body = await get(client, "/v1/zones/mechelen-bruul/live")
    assert body["level"]["key"] == "unknown"  # Friday 15:06: open, no data
    clock.now_ms = NIGHT
    body = await get(client, "/v1/cities/mechelen/live")
    assert [z["level"]["key"] for z in body["zones"]] == ["closed", "unknown"]  # the Vismarkt never closes
    assert body["zones"][0]["level"]["label"]["nl"] == "Gesloten"


async def test_metrics_count_zones_by_level_and_stale_ones_per_city(client: httpx.AsyncClient, clock: Clock) -> None:
    async def scrape() -> str:
        resp = await client.get("/metrics")
        assert resp.status_code == 200
        return resp.text

    text = await scrape()  # Friday 15:06: both zones open, neither has data
    assert 'drukte_zones_by_level{city="mechelen",level="unknown"} 2.0' in text
    assert 'drukte_zones_stale{city="mechelen"} 2.0' in text
    clock.now_ms = NIGHT  # the Bruul is shut: closed, not stale; the Vismarkt never closes
    text = await scrape()
    assert 'drukte_zones_by_level{city="mechelen",level="closed"} 1.0' in text
    assert 'drukte_zones_by_level{city="mechelen",level="unknown"} 1.0' in text
    assert 'drukte_zones_stale{city="mechelen"} 1.0' in text
