"""ASGI layer: the happy path of `GET /v1/zones/{zone_id}/live` and `/v1/cities/{city_id}/live` without FastAPI.

FastAPI's routing, dependency solving and request/response plumbing cost more CPU than the answer itself (a
cached live object, refreshed and serialised). This layer sits innermost among our middlewares, so Observe,
CORS and Limits see every request as before. It answers only a GET of a registered zone or city, with the
same functions as the FastAPI routes (api/routes.py), after setting `scope["route"]` to that route, so Observe
labels it with the route template. A store error gets the app's own 503 answer (api/problems.py, one function
for both: handing the request on would read a hung store twice). Anything else, a HEAD, another path, an
unknown id, or any other error before the answer starts, goes to the app, whose routes stay the reference and
document the API.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import STORE_ERRORS, store_unreachable
from api.routes import CITY_LIVE_PATH, ZONE_LIVE_PATH, Context, city_live_response, zone_live_response

_LIVE = re.compile(r"/v1/(zones|cities)/([a-z0-9-]{1,64})/live")  # the ids api.routes.PATH_ID accepts


class FastLive:
    """Serves the /live routes' happy path; `routes` are those of api.routes.build_router (the two /live ones are
    looked up: they are what FastAPI's router puts in `scope["route"]`)."""

    def __init__(self, app: ASGIApp, *, ctx: Context, routes: list[APIRoute]) -> None:
        self.app = app
        self.ctx = ctx
        by_path = {r.path: r for r in routes if "GET" in (r.methods or ())}
        self.zone_route = by_path[ZONE_LIVE_PATH]
        self.city_route = by_path[CITY_LIVE_PATH]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._match(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        route, build = answer
        scope["route"] = route  # what the router would set: Observe labels the request with its template
        try:
            response = await build()
        except STORE_ERRORS as exc:
            response = store_unreachable(Request(scope), exc, self.ctx.metrics)
        except Exception:  # not swallowed: the app serves it again, and its handlers answer and log
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[APIRoute, Callable[[], Awaitable[Response]]] | None:
        path: str = scope["path"]
        if not path.endswith("/live"):
            return None
        m = _LIVE.fullmatch(path)
        if m is None:
            return None
        registry = self.ctx.registry
        if m[1] == "zones":
            zone = registry.zones.get(m[2])
            return None if zone is None else (self.zone_route, lambda: zone_live_response(self.ctx, zone))
        city = registry.city(m[2])
        return None if city is None else (self.city_route, lambda: city_live_response(self.ctx, city))
