"""The widget, the merchant page and the city dashboard in headless Chromium against a real store and API process:
the level the store holds, a live update within 5 s, `unknown` when stale, no serious axe-core violation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from selenium.webdriver.common.by import By

from tests.browser.conftest import axe_violations, console_errors, screenshot, viewport, wait_until
from tests.browser.seed import live_object, now_ms, publish_live, seed_zone, spending_object

pytestmark = [pytest.mark.browser]

MECHELEN = [  # zone, name, sensors, level the test writes
    ("mechelen-bruul", "Bruul", 4, "busy"),
    ("mechelen-ijzerenleen", "IJzerenleen", 3, "normal"),
    ("mechelen-grote-markt", "Grote Markt", 4, "very_busy"),
    ("mechelen-onze-lieve-vrouwestraat", "Onze-Lieve-Vrouwestraat", 4, "quiet"),
    ("mechelen-befferstraat", "Befferstraat", 3, "normal"),
    ("mechelen-vismarkt", "Vismarkt", 3, "busy"),
]
UPDATE_WITHIN_S = 5.0
STALE_S = 2 * 300 + 120 + 30  # the API's default stale limit: 2 windows + grace + idle


def seed_city(r: redis.Redis, stale: frozenset[str] = frozenset()) -> None:
    for zone_id, name, sensors, key in MECHELEN:
        seed_zone(r, zone_id, "mechelen", name, key, sensors=sensors, age_s=7200 if zone_id in stale else 70,
                  reporting=sensors - 1 if key == "quiet" else sensors)


def text_of(driver: Any, selector: str) -> str:
    """The visible text of the first match, read in one script call (pages re-render nodes as data arrives)."""
    text = driver.execute_script(
        "const n = document.querySelector(arguments[0]); return n ? n.innerText : '';", selector)
    return str(text).strip()


def count(driver: Any, selector: str) -> int:
    return int(driver.execute_script("return document.querySelectorAll(arguments[0]).length;", selector))


def assert_accessible(driver: Any) -> None:
    violations = axe_violations(driver)
    assert violations == [], violations


def assert_no_script_errors(driver: Any) -> None:
    errors = [e for e in console_errors(driver) if "Failed to load resource" not in e]
    assert errors == []


def test_widget_shows_the_stored_level_and_follows_updates(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds)
    viewport(browser, 1280, 720)
    browser.get(f"{api}/widget/mechelen-bruul")
    wait_until("the level of the stored live object", lambda: text_of(browser, "#now-label") == "Druk")
    assert text_of(browser, "#now-vs") == "Drukker dan gewoonlijk"
    assert text_of(browser, "#privacy") == "Alleen tellingen, geen persoonsgegevens"
    status = text_of(browser, "#status")
    assert "Bijgewerkt om" in status
    assert "Volgende update over" in status
    # the chart: today's usual curve as bars, the live value on the current hour
    wait_until("the usual curve", lambda: count(browser, "#chart rect.bar") >= 11)
    assert count(browser, "#chart rect.live") == 1
    assert browser.find_element(By.ID, "now").get_attribute("data-level") == "busy"
    screenshot(browser, "widget-nl-light")
    assert_accessible(browser)

    live = live_object("mechelen-bruul", "mechelen", "Bruul", "very_busy", now_ms() - 1000)
    publish_live(rds, live)
    wait_until("the update pushed through /v1/stream", lambda: text_of(browser, "#now-label") == "Zeer druk",
               timeout_s=UPDATE_WITHIN_S)
    # an update of another zone of the city changes nothing here: record every level the panel shows from now
    # on, send the other zone's update, then one of this zone that the page shows only once it has read it;
    # the stream delivers in order, so by then the other zone's update was read too
    browser.execute_script(
        "const n = document.querySelector('#now'); window.shownLevels = [];"
        "new MutationObserver(() => window.shownLevels.push(n.dataset.level + ' ' +"
        " n.querySelector('#now-label').innerText)).observe(n, {subtree: true, childList: true,"
        " characterData: true, attributes: true});")
    publish_live(rds, live_object("mechelen-vismarkt", "mechelen", "Vismarkt", "quiet", now_ms()))
    later = live_object("mechelen-bruul", "mechelen", "Bruul", "very_busy", now_ms())
    publish_live(rds, {**later, "index": later["index"] + 1})  # the same level, a new index to wait for
    wait_until("this zone's later update", lambda: f"Index {later['index'] + 1}" in text_of(browser, "#now-detail"),
               timeout_s=UPDATE_WITHIN_S)
    assert text_of(browser, "#now-label") == "Zeer druk"
    assert set(browser.execute_script("return window.shownLevels;")) <= {"very_busy Zeer druk"}
    screenshot(browser, "widget-nl-update")
    viewport(browser, 1080, 1920)  # a portrait screen in the street
    wait_until("the chart redrawn for portrait", lambda: browser.execute_script(
        "const s = document.querySelector('#chart svg'); return s && s.getAttribute('width') < 1100 &&"
        " s.getAttribute('width') > 900;"))
    screenshot(browser, "widget-nl-portrait")
    assert_no_script_errors(browser)


def test_widget_in_french_and_dark(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds)
    viewport(browser, 1920, 1080)
    browser.get(f"{api}/widget/mechelen-grote-markt?lang=fr&theme=dark")
    wait_until("the French level label", lambda: text_of(browser, "#now-label") == "Très animé")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    assert text_of(browser, "#privacy") == "Uniquement des comptages, aucune donnée personnelle"
    assert "Prochaine mise à jour dans" in text_of(browser, "#status")
    screenshot(browser, "widget-fr-dark")
    assert_accessible(browser)


def test_widget_shows_unknown_for_stale_data_and_when_data_stops(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds, stale=frozenset({"mechelen-bruul"}))
    viewport(browser, 1280, 720)
    browser.get(f"{api}/widget/mechelen-bruul?lang=en")
    # "Unknown" is also shown before the first answer ("No data yet"): wait for the stale text itself
    wait_until("unknown for data two hours old",
               lambda: text_of(browser, "#now-vs") == "No recent data: busyness is unknown right now")
    assert text_of(browser, "#now-label") == "Unknown"
    assert "Last data from" in text_of(browser, "#status")
    assert count(browser, "#chart rect.live") == 0  # no live bar from stale data
    screenshot(browser, "widget-en-stale")
    assert_accessible(browser)

    # fresh now, stale in 3 s without any new event: the screen must turn unknown by itself
    publish_live(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "busy", now_ms() - (STALE_S - 3) * 1000))
    wait_until("the fresh level", lambda: text_of(browser, "#now-label") == "Busy", timeout_s=UPDATE_WITHIN_S)
    wait_until("unknown once the data is too old", lambda: text_of(browser, "#now-label") == "Unknown",
               timeout_s=8)

    # outside opening hours the worker publishes `closed`: shown as such, with its own icon, never as quiet
    closed = live_object("mechelen-bruul", "mechelen", "Bruul", "quiet", now_ms(), suppressed=True)
    closed["level"] = {"key": "closed", "nr": None, "label": {"nl": "Gesloten", "fr": "Fermé", "en": "Closed"}}
    publish_live(rds, closed)
    wait_until("closed", lambda: text_of(browser, "#now-label") == "Closed", timeout_s=UPDATE_WITHIN_S)
    assert text_of(browser, "#now-vs") == ""


def test_merchant_page_on_a_phone(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds)
    viewport(browser, 390, 1800, mobile=True)
    browser.get(f"{api}/zone/mechelen-bruul")
    wait_until("the level", lambda: text_of(browser, "#now-level") == "Druk")
    assert "Index 134" in text_of(browser, "#now-index")
    assert "Gewoonlijk 84–117" in text_of(browser, "#now-index")
    wait_until("the next two hours", lambda: count(browser, "#forecast li") == 4)
    wait_until("today's peak hours", lambda: "14:00–16:00" in text_of(browser, "#peak"))
    wait_until("last week", lambda: "Drukste moment" in text_of(browser, "#week"))
    spending = wait_until("the spending section", lambda: text_of(browser, "#spending"))
    assert spending.startswith(("Nog geen bestedingsgegevens", "Sector"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    screenshot(browser, "zone-nl-phone")
    assert_accessible(browser)

    publish_live(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "quiet", now_ms()))
    wait_until("the update", lambda: text_of(browser, "#now-level") == "Rustig", timeout_s=UPDATE_WITHIN_S)
    assert text_of(browser, "#now-vs") == "Rustiger dan gewoonlijk"

    # a zone whose newest data is two hours old: unknown, never its old level, and no forecast from it
    seed_zone(rds, "mechelen-vismarkt", "mechelen", "Vismarkt", "busy", age_s=7200)
    browser.get(f"{api}/zone/mechelen-vismarkt")
    # the page also says "unknown" before its first answer arrives ("Nog geen gegevens"): wait for the stale text
    wait_until("stale data said as such",
               lambda: text_of(browser, "#now-vs") == "Geen recente gegevens: de drukte is nu onbekend")
    assert text_of(browser, "#now-level") == "Onbekend"
    assert text_of(browser, "#forecast") == "Nog geen voorspelling"


def test_merchant_page_in_english_on_a_desktop(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds)
    viewport(browser, 1280, 1100)
    browser.get(f"{api}/zone/mechelen-grote-markt?lang=en")
    wait_until("the level", lambda: text_of(browser, "#now-level") == "Very busy")
    wait_until("the chart", lambda: count(browser, "#chart rect.live") == 1)
    screenshot(browser, "zone-en-desktop")
    assert_accessible(browser)


def test_dashboard_shows_every_zone_and_follows_updates(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds, stale=frozenset({"mechelen-befferstraat"}))
    viewport(browser, 1440, 1500)
    browser.get(f"{api}/dashboard/mechelen")

    def levels() -> dict[str, str]:
        pairs = browser.execute_script(
            "return [...document.querySelectorAll('#tiles .tile')].map((t) => [t.dataset.zone, t.dataset.level]);")
        return dict(pairs)

    expected = {z: ("unknown" if z == "mechelen-befferstraat" else key) for z, _, _, key in MECHELEN}
    wait_until("every zone's level", lambda: levels() == expected)
    assert "Zeer druk" in text_of(browser, '.tile[data-zone="mechelen-grote-markt"]')
    assert "Onbekend" in text_of(browser, '.tile[data-zone="mechelen-befferstraat"]')
    wait_until("trend lines", lambda: count(browser, ".tile .spark polyline") >= 5)
    health = text_of(browser, '#health tr[data-zone="mechelen-onze-lieve-vrouwestraat"]')
    assert "3 / 4" in health
    assert "gedeeltelijk" in health
    assert "geen gegevens" in text_of(browser, '#health tr[data-zone="mechelen-befferstraat"]')
    assert count(browser, "#map .street") == len(MECHELEN)
    assert text_of(browser, "#spending")
    screenshot(browser, "dashboard-nl")
    assert_accessible(browser)

    publish_live(rds, live_object("mechelen-ijzerenleen", "mechelen", "IJzerenleen", "very_busy", now_ms(), 3))
    wait_until("the update", lambda: levels()["mechelen-ijzerenleen"] == "very_busy", timeout_s=UPDATE_WITHIN_S)
    assert_no_script_errors(browser)


def test_dashboard_in_french(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds)
    viewport(browser, 1280, 1500)
    browser.get(f"{api}/dashboard/mechelen?lang=fr")
    wait_until("French labels", lambda: "Très animé" in text_of(browser, ".tile[data-zone='mechelen-grote-markt']"))
    assert text_of(browser, "h1") == "Affluence à Mechelen"
    screenshot(browser, "dashboard-fr")
    assert_accessible(browser)


def test_spending_appears_when_published(browser: Any, api: str, rds: redis.Redis) -> None:
    seed_city(rds)
    viewport(browser, 1280, 1100)
    browser.get(f"{api}/zone/mechelen-bruul")
    wait_until("the level", lambda: text_of(browser, "#now-level") == "Druk")
    wait_until("no spending yet", lambda: text_of(browser, "#spending") == "Nog geen bestedingsgegevens")

    rds.set("drukte:spending:mechelen-bruul", orjson.dumps(spending_object("mechelen-bruul", "mechelen", now_ms())))
    rds.publish("drukte:updates", orjson.dumps({"kind": "spending", "zone_id": "mechelen-bruul",
                                                "city_id": "mechelen"}))
    table = wait_until("the spending cells", lambda: "Mode" in text_of(browser, "#spending")
                       and text_of(browser, "#spending"), timeout_s=UPDATE_WITHIN_S)
    assert "Alle sectoren" in table
    assert "128" in table  # fashion's index
    assert "te weinig handelaars" in table  # a suppressed sector says why, with no number
    screenshot(browser, "zone-nl-spending")
    assert_accessible(browser)

    viewport(browser, 1280, 1500)
    browser.get(f"{api}/dashboard/mechelen")
    overview = wait_until("the spending overview", lambda: "Bruul" in text_of(browser, "#spending")
                          and text_of(browser, "#spending"))
    assert "121" in overview  # the zone's all-sectors index
    screenshot(browser, "dashboard-nl-spending")


EMBED_PAGE = """<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>Winkelstraat Mechelen</title>
<script src="{api}/static/drukte-widget.js" defer></script></head>
<body><main><h1>Welkom in de Bruul</h1>
<drukte-widget zone="mechelen-bruul" lang="en" title="Busyness in the Bruul"></drukte-widget>
<iframe id="plain" src="{api}/widget/mechelen-vismarkt?lang=nl&amp;theme=dark" title="Drukte op de Vismarkt"
        style="border:0;width:640px;height:360px"></iframe></main></body></html>
"""


def test_embedding_by_web_component_and_iframe_on_another_site(browser: Any, api: str, rds: redis.Redis,
                                                                 tmp_path: Any) -> None:
    import functools
    import http.server
    import threading

    seed_city(rds)
    (tmp_path / "index.html").write_text(EMBED_PAGE.format(api=api))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    site = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler)  # another origin than the API's
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        viewport(browser, 1280, 1200)
        browser.get(f"http://127.0.0.2:{site.server_address[1]}/index.html")
        frame = wait_until("the web component's frame", lambda: browser.execute_script(
            "const w = document.querySelector('drukte-widget'); return w && w.shadowRoot &&"
            " w.shadowRoot.querySelector('iframe');"))
        assert frame.get_attribute("title") == "Busyness in the Bruul"
        browser.switch_to.frame(frame)
        wait_until("the widget inside the component", lambda: text_of(browser, "#now-label") == "Busy")
        browser.switch_to.default_content()
        browser.switch_to.frame(browser.find_element(By.ID, "plain"))
        wait_until("the widget in a plain iframe", lambda: text_of(browser, "#now-label") == "Druk")
        browser.switch_to.default_content()
        screenshot(browser, "embedded-widgets")
    finally:
        browser.switch_to.default_content()
        site.shutdown()
        site.server_close()
