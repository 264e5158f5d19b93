"""`GET /v1/zones/{zone_id}/sensors`: the health of a zone's sensors as the worker judged them (no counts)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from api.problems import problem_doc
from api.routes import Context, ZoneId
from streams.registry import Zone


def sensors_view(zone: Zone, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Every registered sensor of the zone with its state; `unknown` where no worker has reported it."""
    known = {s["id"]: s for s in (stored or {}).get("sensors", []) if isinstance(s, dict)}
    return {"zone_id": zone.id, "as_of": (stored or {}).get("as_of"), "sensors": [
        {"id": s.id, "kind": s.kind, "state": known.get(s.id, {}).get("state", "unknown"),
         "since": known.get(s.id, {}).get("since")} for s in zone.sensors]}


def build_sensors_router(ctx: Context) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/zones/{zone_id}/sensors", tags=["live"], responses=problem_doc(404, 503),
                summary="Health of the zone's sensors: ok, silent, stuck or jump (excluded from the sums)")
    async def sensors(zone_id: ZoneId) -> Response:
        zone = ctx.zone(zone_id)
        stored = await ctx.store.sensors(zone.id)
        return Response(orjson.dumps(sensors_view(zone, stored)), media_type="application/json")

    return router
