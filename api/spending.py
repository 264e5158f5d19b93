"""Spending routes of CONTRACT.md §4: the newest published spending cells of a zone, or of a city's zones.

Indices only (P13); `spend_per_visitor` is worked out here from the footfall windows the worker published for
the same zone and hour, so it is derived from published cells only (P5).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from api.problems import problem_doc
from api.routes import CityId, Context, ZoneId
from streams.registry import Zone
from streams.spending import empty_spending, sector_merchants, with_spend_per_visitor


async def zone_spending(ctx: Context, zones: list[Zone]) -> list[dict[str, Any]]:
    """The spending object of each zone, with spend-per-visitor where footfall of the same hour is published."""
    stored = await ctx.store.spending([z.id for z in zones])
    per_cell = max(1, ctx.settings.spend_window_s // ctx.settings.window_s)
    out = []
    for zone, (obj, windows) in zip(zones, stored, strict=True):
        city = ctx.registry.city_of_zone[zone.id]
        if obj is None:
            out.append(empty_spending(zone, city, sector_merchants(ctx.registry, zone.id), city.spending))
        else:
            out.append(with_spend_per_visitor(obj, [w.get("index") for w in windows], per_cell))
    return out


def build_spending_router(ctx: Context) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/zones/{zone_id}/spending", tags=["spending"], responses=problem_doc(404, 503),
                summary="The newest spending cells of a zone: index vs usual per sector, suppression flags")
    async def spending(zone_id: ZoneId) -> Response:
        zone = ctx.zone(zone_id)
        [obj] = await zone_spending(ctx, [zone])
        return Response(orjson.dumps(obj), media_type="application/json")

    @router.get("/v1/cities/{city_id}/spending", tags=["spending"], responses=problem_doc(404, 503),
                summary="The newest spending cells of every zone of a city")
    async def city_spending(city_id: CityId) -> Response:
        city = ctx.city(city_id)
        objs = await zone_spending(ctx, list(city.zones))
        return Response(orjson.dumps({"city_id": city.id, "name": city.name, "zones": objs}),
                        media_type="application/json")

    return router
