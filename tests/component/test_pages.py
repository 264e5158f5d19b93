"""The pages' server side against a real Valkey: HTML with escaped values and a strict CSP, 404 problems for
unknown ids, the fixed asset list, the message catalogue, and GET /v1/zones/{zone_id}/windows."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from api.app import create_app
from api.catalogue import LANGS, MESSAGES
from api.pages import ASSETS, STATIC
from drukte.settings import Settings
from streams.daytype import local_time
from streams.registry import parse_registry
from tests.browser.seed import TZ, now_ms, window_object

pytestmark = [pytest.mark.component, pytest.mark.anyio]

# a zone name with markup in it: the registry allows any name, the pages must never let it become markup
REGISTRY_YAML = """
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: "Bruul <script>alert(1)</script> & \\"Co\\""
        sensors: [{id: b1, kind: street}, {id: b2, kind: street}, {id: b3, kind: street}]
"""
EVIL = 'Bruul <script>alert(1)</script> & "Co"'


@pytest.fixture
async def client(rds: Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(redis_url=None, rate_limit_per_min=0), parse_registry(REGISTRY_YAML), rds,
                     CollectorRegistry())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://drukte.test") as c:
        yield c


def page_config(body: str) -> dict[str, object]:
    m = re.search(r'<script id="drukte-config" type="application/json">(.*?)</script>', body, re.S)
    assert m is not None
    assert "<" not in m.group(1)  # nothing in the config can close the script element
    config: dict[str, object] = json.loads(m.group(1))
    return config


@pytest.mark.parametrize(
    ("path", "lang"),
    [
        ("/widget/mechelen-bruul", "nl"),  # Dutch first
        ("/widget/mechelen-bruul?lang=fr&theme=dark", "fr"),
        ("/widget/mechelen-bruul?lang=de", "nl"),  # an unknown language falls back to Dutch, not an error
        ("/zone/mechelen-bruul?lang=en", "en"),
        ("/dashboard/mechelen", "nl"),
    ],
)
async def test_pages_are_html_with_escaped_values(client: httpx.AsyncClient, path: str, lang: str) -> None:
    resp = await client.get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors *" in csp  # city screens embed the widget
    body = resp.text
    assert f'<html lang="{lang}"' in body
    assert "<script>alert(1)</script>" not in body
    if not path.startswith("/dashboard"):
        assert html.escape(EVIL) in body
    config = page_config(body)
    assert config["lang"] == lang
    assert config["timezone"] == "Europe/Brussels"
    assert config["messages"] == {k: v[lang] for k, v in MESSAGES.items()}
    assert [z["name"] for z in config["zones"]] == [EVIL]  # type: ignore[attr-defined]
    assert "http://" not in body.replace("http://www.w3.org", "")  # nothing from another server
    assert "https://" not in body


@pytest.mark.parametrize("path", ["/widget/mechelen-nowhere", "/zone/Mechelen-Bruul", "/dashboard/gent",
                                  "/widget/%3Cb%3E"])
async def test_unknown_ids_are_404_problems(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert "<b>" not in resp.json()["detail"]  # the id is not echoed unless it is a valid id


async def test_assets_are_the_fixed_list_only(client: httpx.AsyncClient) -> None:
    for name, media_type in ASSETS.items():
        resp = await client.get(f"/static/{name}")
        assert resp.status_code == 200, name
        assert resp.headers["content-type"] == media_type
        assert resp.content == (STATIC / name).read_bytes()
    for bad in ("/static/nope.js", "/static/..%2Fapp.py", "/static/%2E%2E"):
        assert (await client.get(bad)).status_code == 404


def test_every_message_the_pages_use_is_in_the_catalogue_in_every_language() -> None:
    used: set[str] = set()
    for script in Path(STATIC).glob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z_]+)"\s*[,)]', script.read_text()))
    # keys the scripts build from data: levels, vs_usual, sensor health
    used |= {f"level_{k}" for k in ("quiet", "normal", "busy", "very_busy", "unknown", "closed")}
    used |= {f"vs_{k}" for k in ("busier", "quieter", "usual", "none")}
    used |= {f"health_{k}" for k in ("ok", "partial", "down")}
    assert used - set(MESSAGES) == set()
    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGS), key
        assert all(t.strip() for t in texts.values()), key
    assert MESSAGES["privacy"]["nl"] == "Alleen tellingen, geen persoonsgegevens"


async def test_windows_of_a_past_day_and_of_the_last_hours(client: httpx.AsyncClient, rds: Redis) -> None:
    now = now_ms()
    week_ago = now - 7 * 24 * 3_600_000
    week_ago -= week_ago % 300_000
    for start in (week_ago, now - now % 300_000 - 600_000, now - 5 * 3_600_000):
        w = window_object("mechelen-bruul", "mechelen", "Bruul", start, 1.2)
        await rds.zadd("drukte:windows:mechelen-bruul", {orjson.dumps(w): start})
    date = local_time(week_ago, TZ).date()
    body = (await client.get(f"/v1/zones/mechelen-bruul/windows?date={date}")).json()
    assert body["zone_id"] == "mechelen-bruul"
    starts = [w["start"] for w in body["windows"]]
    assert any(local_time(week_ago, TZ).strftime("%H:%M") in s for s in starts)
    assert set(body["windows"][0]) == {"start", "end", "level", "index", "score", "vs_usual", "suppressed"}
    assert "visitors" not in orjson.dumps(body).decode()  # levels and indices only
    recent = (await client.get("/v1/zones/mechelen-bruul/windows?hours=3")).json()["windows"]
    assert len(recent) == 1  # the one 10 minutes ago, not the one 5 hours ago
    older = (await client.get(f"/v1/zones/mechelen-bruul/windows?date={date - timedelta(days=1)}")).json()
    assert all(w["start"] not in starts for w in older["windows"])
    for bad in ("", "?hours=3&date=2026-11-20", "?hours=0", "?hours=25", "?date=yesterday"):
        resp = await client.get("/v1/zones/mechelen-bruul/windows" + bad)
        assert resp.status_code == 422, bad
        assert resp.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/zones/nowhere/windows?hours=1")).status_code == 404
