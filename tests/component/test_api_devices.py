"""`devices` in the live object: written by the worker's store, read by the API from a real Valkey."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from agents.store import RedisStore
from api.app import create_app
from api.models import DevicesLive
from drukte.embedded import Service
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.devices import devices_object
from streams.publication import PrivacyPolicy
from streams.registry import parse_registry
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
        sensors: [{id: v-1, kind: street}, {id: v-2, kind: street}, {id: v-3, kind: street},
                  {id: v-w1, kind: wifi}, {id: v-w2, kind: wifi}, {id: v-w3, kind: wifi}]
      - id: mechelen-ijzerenleen
        name: IJzerenleen
        sensors: [{id: i-1, kind: street}, {id: i-2, kind: street}, {id: i-3, kind: street}]
""")
START = 1_795_785_300_000  # 2026-11-27T14:15:00+01:00
W = 300_000
SETTINGS = Settings(window_s=300, grace_s=0, idle_s=30, live_s=900, stale_s=None, redis_url=None)  # stale: 630 s


@pytest.fixture
async def client(rds: Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS, REGISTRY, rds, CollectorRegistry(), Clock(START + W + 60_000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://drukte.test") as c:
        yield c


async def test_live_objects_carry_the_newest_device_window_of_zones_with_scanners(
        client: httpx.AsyncClient, store: Service) -> None:
    city = REGISTRY.city_of_zone["mechelen-bruul"]
    policy = PrivacyPolicy(k_min=15, min_sensors=3)
    bruul = devices_object(REGISTRY.zones["mechelen-bruul"], city, START, W,
                           {"n": {"a": 40, "b": 7}, "s": ["b-w1", "b-w2", "b-w3"], "ps": [0], "f": False}, policy)
    writer = RedisStore(store.url, WorkerMetrics(CollectorRegistry()))
    try:
        await writer.publish_devices([bruul])
    finally:
        await writer.close()
    body = (await client.get("/v1/zones/mechelen-bruul/live")).json()
    assert body["devices"] == {
        "visitors": {"min": 40, "max": 50}, "suppressed": False, "reason": None, "as_of": "2026-11-27T14:20:00+01:00",
        "window": {"start": "2026-11-27T14:15:00+01:00", "end": "2026-11-27T14:20:00+01:00", "seconds": 300},
        "stale": False}
    assert DevicesLive.model_validate(body["devices"]).model_dump(mode="json") == body["devices"]
    city_body = (await client.get("/v1/cities/mechelen/live")).json()
    bruul_live, vismarkt, ijzerenleen = city_body["zones"]
    assert bruul_live["devices"] == body["devices"]
    # scanners but nothing published yet: unknown and stale, never a zero
    assert vismarkt["devices"] == {"visitors": None, "suppressed": False, "reason": None, "as_of": None,
                                   "window": None, "stale": True}
    assert "devices" not in ijzerenleen  # no scanners: the contract's object as it was
