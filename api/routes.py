"""The routes of CONTRACT.md §4 that read live data, plus metrics, liveness and readiness."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import PlainTextResponse, Response

from api.models import Cities, CityLive, Health, Ready, ZoneLive
from api.problems import STORE_ERRORS, ProblemError, problem_doc
from api.readiness import HEARTBEAT_MAX_AGE_S, readiness
from api.store import LiveStore
from drukte.metrics import ApiMetrics
from drukte.settings import Settings
from streams.daytype import day_bounds
from streams.devices import live_devices
from streams.freshness import AS_OF_MS, refresh, unknown_live
from streams.levels import LABELS
from streams.opening import is_open
from streams.registry import City, Registry, Zone
from streams.today import empty_profile, today_view

PATH_ID = re.compile(r"[a-z0-9-]{1,64}")
_ID_RULE = "ids are 1 to 64 lower-case letters, digits and '-'"
_WHERE = "GET /v1/cities lists the valid ids"

CityId = Annotated[str, Path(description=f"a city id from GET /v1/cities; {_ID_RULE}", examples=["mechelen"])]
ZoneId = Annotated[str, Path(description=f"a zone id from GET /v1/cities; {_ID_RULE}",
                             examples=["mechelen-bruul"])]


class OpeningMemo:
    """Whether each zone is outside its opening hours, remembered for one whole minute of the request clock.

    Opening hours are whole local minutes and time zones are whole minutes off UTC, so the answer is the same
    for every millisecond of an epoch minute (`streams.opening.closed_throughout` relies on the same); working
    it out (local time, holiday calendar) was about 5 % of a /live request's CPU.
    """

    def __init__(self) -> None:
        self._minute: int | None = None
        self._closed: dict[str, bool] = {}

    def closed(self, zone: Zone, city: City, now_ms: int) -> bool:
        minute = now_ms // 60_000
        if minute != self._minute:
            self._minute, self._closed = minute, {}
        closed = self._closed.get(zone.id)
        if closed is None:
            closed = self._closed[zone.id] = not is_open(zone.opening, now_ms, city.timezone, city.country)
        return closed


@dataclass(frozen=True)
class Context:
    settings: Settings
    registry: Registry
    store: LiveStore
    metrics: ApiMetrics
    metrics_registry: CollectorRegistry
    clock: Callable[[], int]
    opening: OpeningMemo = field(default_factory=OpeningMemo)

    def zone(self, zone_id: str) -> Zone:
        zone = self.registry.zones.get(zone_id) if PATH_ID.fullmatch(zone_id) else None
        if zone is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, _unknown("zone", zone_id))
        return zone

    def city(self, city_id: str) -> City:
        city = self.registry.city(city_id) if PATH_ID.fullmatch(city_id) else None
        if city is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, _unknown("city", city_id))
        return city

    async def with_devices(self, zones: list[Zone], views: list[dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
        """`views` with a `devices` member for the zones that have WiFi/BLE scanners (read in one MGET); zones
        without scanners get none, so their live object stays the contract's §4 object."""
        scanned = [z.id for z in zones if z.device_sensors]
        if not scanned:
            return views
        stored = await self.store.devices(scanned, cached=True)
        stale_ms = self.settings.stale_after_s * 1000
        return [v | {"devices": live_devices(z, stored.get(z.id), now_ms, stale_ms)} if z.device_sensors else v
                for z, v in zip(zones, views, strict=True)]

    def view(self, zone: Zone, stored: dict[str, Any] | None, now_ms: int) -> dict[str, Any]:
        """The live object to serve for `zone` at `now_ms`, from what the store holds (or nothing)."""
        city = self.registry.city_of_zone[zone.id]
        closed_now = self.opening.closed(zone, city, now_ms)
        if stored is None:
            return unknown_live(zone, city, now_ms, closed_now=closed_now)
        s = self.settings
        return refresh(stored, now_ms, s.stale_after_s, s.window_s, s.grace_s, closed_now=closed_now)


def _unknown(kind: str, ident: str) -> str:
    if not PATH_ID.fullmatch(ident):
        return f"that is not a {kind} id ({_ID_RULE}); {_WHERE}"  # do not echo arbitrary input
    return f"there is no {kind} {ident!r}; {_WHERE}"


def _json(obj: Any) -> Response:
    return Response(orjson.dumps(obj), media_type="application/json")


def cities_payload(registry: Registry) -> dict[str, Any]:
    return {"cities": [
        {"id": c.id, "name": c.name, "timezone": c.timezone, "country": c.country, "zones": [
            {"id": z.id, "name": z.name, "area_m2": z.area_m2, "sensors_expected": len(z.sensors),
             "sensors": [{"id": s.id, "kind": s.kind} for s in z.sensors]}
            for z in c.zones]}
        for c in registry.cities]}


ZONE_LIVE_PATH = "/v1/zones/{zone_id}/live"
CITY_LIVE_PATH = "/v1/cities/{city_id}/live"


async def zone_live_response(ctx: Context, zone: Zone) -> Response:
    """The answer to `GET /v1/zones/{zone_id}/live` for a registered zone: the route and api/fastpath.py both
    serve this one, so the two cannot differ. Store errors propagate (the caller answers 503)."""
    [stored] = await ctx.store.live([zone.id], cached=True)
    now = ctx.clock()
    return _json((await ctx.with_devices([zone], [ctx.view(zone, stored, now)], now))[0])


async def city_live_response(ctx: Context, city: City) -> Response:
    """The answer to `GET /v1/cities/{city_id}/live` for a registered city (route and fast path alike)."""
    stored = await ctx.store.live([z.id for z in city.zones], cached=True)
    now = ctx.clock()
    newest = max((s for s in stored if s is not None and isinstance(s.get(AS_OF_MS), int)),
                 key=lambda s: int(s[AS_OF_MS]), default=None)
    return _json({
        "city_id": city.id,
        "name": city.name,
        "as_of": newest.get("as_of") if newest else None,
        "zones": await ctx.with_devices(list(city.zones), [ctx.view(z, s, now) for z, s in
                                                           zip(city.zones, stored, strict=True)], now),
    })


def build_router(ctx: Context) -> APIRouter:
    router = APIRouter()
    cities_body = orjson.dumps(cities_payload(ctx.registry))

    @router.get("/v1/cities", response_model=Cities, tags=["registry"], summary="Cities and their zones")
    async def cities() -> Response:
        return Response(cities_body, media_type="application/json")

    @router.get(CITY_LIVE_PATH, response_model=CityLive, tags=["live"],
                summary="The live object of every zone of a city", responses=problem_doc(404, 503))
    async def city_live(city_id: CityId) -> Response:
        return await city_live_response(ctx, ctx.city(city_id))

    @router.get(ZONE_LIVE_PATH, response_model=ZoneLive, tags=["live"],
                summary="The live object of a zone", responses=problem_doc(404, 503))
    async def zone_live(zone_id: ZoneId) -> Response:
        return await zone_live_response(ctx, ctx.zone(zone_id))

    @router.get("/v1/zones/{zone_id}/today", tags=["live"], responses=problem_doc(404, 503),
                summary="Today per window: usual band, live, the forecast made before it; peak and quiet hours")
    async def zone_today(zone_id: ZoneId) -> Response:
        zone = ctx.zone(zone_id)
        tz = ctx.registry.city_of_zone[zone.id].timezone
        first, end = day_bounds(ctx.clock(), tz)
        profile, published = await ctx.store.today(zone.id, first, end)
        blank = empty_profile(zone.id, tz, first, end, ctx.settings.window_s * 1000)
        if profile is None or profile.get("date") != blank["date"]:
            profile = blank
        return _json(today_view(profile, published, tz))

    @router.get("/metrics", response_class=PlainTextResponse, tags=["operations"],
                summary="Prometheus metrics")
    async def metrics() -> Response:
        await _update_ages(ctx)
        return Response(generate_latest(ctx.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz", response_model=Health, tags=["operations"], summary="The process is alive")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @router.get("/readyz", response_model=Ready, tags=["operations"], responses=problem_doc(503),
                summary=f"The store answers, the worker ticked within {HEARTBEAT_MAX_AGE_S} s, live data is fresh")
    async def readyz() -> Response:
        """503 (a problem with `checks`, `stale_after_s` and `cities`) when the store does not answer, the
        worker's last heartbeat is older than 30 s, or no city has a live object younger than the stale limit.
        Some cities stale is still ready: the `data` check names them."""
        ready = await readiness(ctx.store, ctx.registry, ctx.clock, ctx.settings.stale_after_s, ctx.metrics)
        body = ready.body(ctx.settings.stale_after_s)
        if ready.failing:
            failed = "; ".join(f"{name}: {ready.checks[name]}" for name in ready.failing)
            raise ProblemError(HTTPStatus.SERVICE_UNAVAILABLE, "not ready; " + failed, **body)
        return _json({"status": "ready", **body})

    return router


async def _update_ages(ctx: Context) -> None:
    """Set per city from the store: `drukte_live_age_seconds` (+Inf without data, never "fresh"), the zones per
    level as `/live` serves them now (`drukte_zones_by_level`) and the stale ones (`drukte_zones_stale`)."""
    zone_ids = list(ctx.registry.zones)
    try:
        stored = await ctx.store.live(zone_ids)
    except STORE_ERRORS:
        ctx.metrics.redis_errors.inc()
        return  # metrics must still be served while the store is down
    now = ctx.clock()
    newest: dict[str, int] = {}
    for zone_id, obj in zip(zone_ids, stored, strict=True):
        as_of = obj.get(AS_OF_MS) if obj else None
        if isinstance(as_of, int):
            city_id = ctx.registry.city_of_zone[zone_id].id
            newest[city_id] = max(newest.get(city_id, as_of), as_of)
    levels: dict[str, Counter[str]] = {c.id: Counter() for c in ctx.registry.cities}
    stale: Counter[str] = Counter()
    for zone_id, obj in zip(zone_ids, stored, strict=True):
        view = ctx.view(ctx.registry.zones[zone_id], obj, now)
        city_id = ctx.registry.city_of_zone[zone_id].id
        levels[city_id][view["level"]["key"]] += 1
        stale[city_id] += bool(view["quality"]["stale"]) and view["level"]["key"] != "closed"  # a shut street may sleep
    for city in ctx.registry.cities:
        for key in LABELS:
            ctx.metrics.zones_by_level.labels(city.id, key).set(levels[city.id][key])
        ctx.metrics.zones_stale.labels(city.id).set(stale[city.id])
        age = max(0, now - newest[city.id]) / 1000 if city.id in newest else float("inf")
        ctx.metrics.data_age.labels(city.id).set(age)
