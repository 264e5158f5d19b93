"""The pages people see: the city-screen widget, the merchant page and the city dashboard, plus their assets.

Pages are HTML templates in `api/pages/` filled with escaped values; everything else happens in the browser
from the JSON API and `/v1/stream`. Assets are served from memory, from a fixed list: nothing from the
internet (no CDN, no web fonts), so a screen in a shopping street works on a closed network.
"""

from __future__ import annotations

import html
from http import HTTPStatus
from pathlib import Path
from string import Template
from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Query
from starlette.responses import Response

from api.catalogue import LANGS, LOCALES, messages, text
from api.history import build_history_router
from api.problems import ProblemError
from api.routes import CityId, Context, ZoneId
from streams.registry import City

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "pages"
ASSETS = {  # name -> media type; only these are served
    "drukte.css": "text/css; charset=utf-8",
    "drukte.js": "text/javascript; charset=utf-8",
    "widget.js": "text/javascript; charset=utf-8",
    "zone.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "drukte-widget.js": "text/javascript; charset=utf-8",
    "layouts.json": "application/json",
    "favicon.svg": "image/svg+xml",
}
THEMES = ("light", "dark")
# Scripts, styles and data only from this origin; the widget may be framed by any site (city screens).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors *")
HTML_HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"}

Lang = Annotated[str, Query(description="nl (default), fr or en")]
Theme = Annotated[str, Query(description="light (default) or dark")]


def _json_for_html(obj: Any) -> str:
    """JSON safe inside `<script type="application/json">`: no `<`, `>` or `&` that could end the element."""
    raw = orjson.dumps(obj).decode()
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _lang(lang: str | None) -> str:
    return lang if lang in LANGS else LANGS[0]


class Pages:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.templates = {name: Template((TEMPLATES / f"{name}.html").read_text(encoding="utf-8"))
                          for name in ("widget", "zone", "dashboard")}
        self.assets = {name: (STATIC / name).read_bytes() for name in ASSETS}

    def config(self, city: City, lang: str, **extra: Any) -> dict[str, Any]:
        s = self.ctx.settings
        return {
            "lang": lang, "locale": LOCALES[lang], "timezone": city.timezone, "city_id": city.id,
            "city_name": city.name, "stale_after_s": s.stale_after_s, "window_s": s.window_s,
            "zones": [{"id": z.id, "name": z.name, "sensors_expected": len(z.sensors)} for z in city.zones],
            "messages": messages(lang), **extra,
        }

    def render(self, name: str, lang: str, title: str, config: dict[str, Any], path: str, theme: str = "light",
               **values: str) -> Response:
        """The page `name` with `values` escaped; `path` is the page's own path, for the language switch."""
        page = self.templates[name].substitute(
            lang=lang, theme=theme, title=html.escape(title), config=_json_for_html(config),
            privacy=html.escape(text("privacy", lang)), langs=self.lang_links(path, lang, theme),
            **{k: html.escape(v) for k, v in values.items()})
        return Response(page, media_type="text/html; charset=utf-8", headers=HTML_HEADERS)

    @staticmethod
    def lang_links(path: str, lang: str, theme: str) -> str:
        """The language switch as HTML (built from registry ids and fixed codes, escaped all the same)."""
        links = []
        for other in LANGS:
            href = html.escape(f"{path}?lang={other}" + ("&theme=dark" if theme == "dark" else ""))
            current = ' aria-current="page"' if other == lang else ""
            links.append(f'<a href="{href}" hreflang="{other}" lang="{other}"{current}>{other.upper()}</a>')
        return "".join(links)


def build_pages_router(ctx: Context, client: aioredis.Redis) -> APIRouter:
    router = APIRouter()
    pages = Pages(ctx)
    router.include_router(build_history_router(ctx, client))

    @router.get("/widget/{zone_id}", include_in_schema=False)
    async def widget(zone_id: ZoneId, lang: Lang = "nl", theme: Theme = "light") -> Response:
        zone = ctx.zone(zone_id)
        city = ctx.registry.city_of_zone[zone.id]
        lang, theme = _lang(lang), theme if theme in THEMES else THEMES[0]
        config = pages.config(city, lang, zone_id=zone.id, zone_name=zone.name, theme=theme)
        return pages.render("widget", lang, f"{zone.name} · {city.name}", config, f"/widget/{zone.id}", theme,
                            zone_name=zone.name, city_name=city.name)

    @router.get("/zone/{zone_id}", include_in_schema=False)
    async def merchant(zone_id: ZoneId, lang: Lang = "nl") -> Response:
        zone = ctx.zone(zone_id)
        city = ctx.registry.city_of_zone[zone.id]
        lang = _lang(lang)
        config = pages.config(city, lang, zone_id=zone.id, zone_name=zone.name)
        return pages.render("zone", lang, f"{zone.name} · {text('merchant_title', lang)}", config,
                            f"/zone/{zone.id}", zone_name=zone.name, city_name=city.name,
                            heading=text("merchant_title", lang), dashboard=f"/dashboard/{city.id}?lang={lang}",
                            **_headings(lang, "now_vs_usual", "next_hours", "chart_title", "peak_hours",
                                        "quiet_hours", "last_week", "spending", "source"))

    @router.get("/dashboard/{city_id}", include_in_schema=False)
    async def dashboard(city_id: CityId, lang: Lang = "nl") -> Response:
        city = ctx.city(city_id)
        lang = _lang(lang)
        title = text("dashboard_title", lang, city=city.name)
        return pages.render("dashboard", lang, title, pages.config(city, lang), f"/dashboard/{city.id}",
                            heading=title, city_name=city.name,
                            **_headings(lang, "zones", "map", "health", "spending", "zone", "level", "sensors",
                                        "age", "status", "source"))

    @router.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise ProblemError(HTTPStatus.NOT_FOUND, "no such asset; the pages link to the ones there are")
        return Response(pages.assets[name], media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=300"})

    return router


def _headings(lang: str, *keys: str) -> dict[str, str]:
    return {f"t_{k}": text(k, lang) for k in keys}
