"""`GET /v1/zones/{zone_id}/windows`: a zone's published windows of a past local day or the last hours, slim.

For the dashboard's trend lines and the merchant page's "same day last week". Scores, indices and levels only
(no visitor counts); as far back as the store keeps windows (a week and a day).
"""

from __future__ import annotations

from datetime import date as Date
from datetime import datetime, time, timedelta
from http import HTTPStatus
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Query
from starlette.responses import Response

from api.problems import ProblemError, problem_doc
from api.routes import Context, ZoneId
from streams.storekeys import windows_key

MAX_HOURS = 24


def slim(window: dict[str, Any]) -> dict[str, Any] | None:
    """The public summary of one published window; None for an object not shaped like one."""
    try:
        return {"start": window["window"]["start"], "end": window["window"]["end"],
                "level": window["level"]["key"], "index": window.get("index"), "score": window.get("score"),
                "vs_usual": window.get("vs_usual"),
                "suppressed": bool((window.get("privacy") or {}).get("suppressed"))}
    except (KeyError, TypeError):
        return None


def build_history_router(ctx: Context, client: aioredis.Redis) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/zones/{zone_id}/windows", tags=["live"], responses=problem_doc(404, 422, 503),
                summary="Published windows of a past local day, or of the last hours (levels and indices)")
    async def windows(
        zone_id: ZoneId,
        date: Annotated[Date | None, Query(description="a local date (YYYY-MM-DD) in the last 8 days")] = None,
        hours: Annotated[int | None, Query(ge=1, le=MAX_HOURS, description="the last N hours instead")] = None,
    ) -> Response:
        zone = ctx.zone(zone_id)
        tz = ZoneInfo(ctx.registry.city_of_zone[zone.id].timezone)
        now = ctx.clock()
        if (date is None) == (hours is None):
            raise ProblemError(HTTPStatus.UNPROCESSABLE_ENTITY, "give exactly one of `date` or `hours`")
        if date is not None:
            first_dt = datetime.combine(date, time(), tz)
            first = int(first_dt.timestamp() * 1000)
            end = int(datetime.combine(date + timedelta(days=1), time(), tz).timestamp() * 1000)
        else:
            first, end = now - (hours or 0) * 3_600_000, now + 1
        raws = await client.zrangebyscore(windows_key(zone.id), first, end - 1)
        rows = []
        for raw in raws:
            try:
                row = slim(orjson.loads(raw))  # type: ignore[arg-type]  # members are bytes (no decode)
            except orjson.JSONDecodeError:
                continue
            if row is not None:
                rows.append(row)
        return Response(orjson.dumps({"zone_id": zone.id, "windows": rows}), media_type="application/json")

    return router
