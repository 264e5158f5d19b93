"""Store contents for the page tests, in the worker's key layout: live objects, today's usual curve, windows.

Figures follow a plausible shopping-street day (a usual peak mid-afternoon), relative to the real clock, so the
pages (which run on the browser's clock) see fresh data, stale data or an update exactly as a screen would.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import redis

from streams.baseline import Band
from streams.daytype import day_bounds, local_time
from streams.levels import level
from streams.storekeys import UPDATES_CHANNEL, live_key, profile_key, windows_key
from streams.timegrid import format_ts
from streams.today import profile_record

TZ = "Europe/Brussels"
WINDOW_S = 300
LIVE_S = 900
HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def usual_score(ts_ms: int) -> float:
    """A usual day on the score scale: closed at night, rising from 9:00, peak around 15:00."""
    t = local_time(ts_ms, TZ)
    h = t.hour + t.minute / 60
    if h < 8 or h >= 21:
        return 2.0
    return 8 + 82 * math.exp(-(((h - 15.0) / 3.2) ** 2))


VS = {"quiet": "quieter", "normal": "usual", "busy": "busier", "very_busy": "busier"}
INDEX = {"quiet": 62, "normal": 97, "busy": 134, "very_busy": 171}


def live_object(zone_id: str, city_id: str, name: str, key: str, as_of_ms: int, sensors: int = 4,
                reporting: int | None = None, suppressed: bool = False) -> dict[str, Any]:
    """A live object as the worker stores it (with the internal `as_of_ms`)."""
    reporting = sensors if reporting is None else reporting
    index = None if suppressed else INDEX[key]
    usual = usual_score(as_of_ms)
    score = None if suppressed else round(min(100, usual * INDEX[key] / 100))
    step = 900_000
    forecast = [{"start": format_ts(as_of_ms + step * i, TZ),
                 "index": None if suppressed else INDEX[key] - 6 * i,
                 "level": key if i < 4 else "normal"} for i in range(8)]
    return {
        "zone_id": zone_id, "city_id": city_id, "name": name,
        "as_of": format_ts(as_of_ms, TZ),
        "window": {"start": format_ts(as_of_ms - LIVE_S * 1000, TZ), "end": format_ts(as_of_ms, TZ),
                   "seconds": LIVE_S},
        "level": level(key), "index": index, "score": score, "vs_usual": None if suppressed else VS[key],
        "usual": None if suppressed else {"low": 84, "high": 117},
        "visitors": None if suppressed else {"min": 1190, "max": 1240},
        "forecast": forecast,
        "quality": {"stale": False, "age_s": 0, "coverage": round(reporting / sensors, 2),
                    "sensors_reporting": reporting, "sensors_expected": sensors},
        "privacy": {"suppressed": suppressed, "reason": "below_k" if suppressed else None, "k_min": 15,
                    "noise": "none"},
        "next_update_in_s": WINDOW_S, "as_of_ms": as_of_ms,
    }


def window_object(zone_id: str, city_id: str, name: str, start_ms: int, factor: float) -> dict[str, Any]:
    """One published window (for /today, trends and last week), level from its score."""
    score = round(usual_score(start_ms) * factor)
    key = "quiet" if score < 25 else "normal" if score < 55 else "busy" if score < 80 else "very_busy"
    obj = live_object(zone_id, city_id, name, key, start_ms + WINDOW_S * 1000)
    obj.update(window={"start": format_ts(start_ms, TZ), "end": format_ts(start_ms + WINDOW_S * 1000, TZ),
                       "seconds": WINDOW_S}, score=score, index=round(100 * factor), forecast=[])
    return obj


def seed_zone(r: redis.Redis, zone_id: str, city_id: str, name: str, key: str, *, age_s: int = 60,
              factor: float = 1.0, sensors: int = 4, reporting: int | None = None, suppressed: bool = False,
              announce: bool = True) -> dict[str, Any]:
    """Today's curve, the last 3 hours and the same day last week as windows, and the live object `age_s` old."""
    now = now_ms()
    first, end = day_bounds(now, TZ)
    starts = list(range(first, end, WINDOW_S * 1000))
    profile = profile_record(zone_id, TZ, [(s, Band(usual_score(s) * 0.8, usual_score(s), usual_score(s) * 1.2, 8))
                                           for s in starts], peak=100.0)
    pipe = r.pipeline(transaction=False)
    pipe.set(profile_key(zone_id), orjson.dumps(profile))
    current = now - now % (WINDOW_S * 1000)
    recent = [current - i * WINDOW_S * 1000 for i in range(1, 37)]
    week_ago = [s - 7 * 24 * HOUR_MS for s in starts]
    for start in recent + week_ago:
        w = window_object(zone_id, city_id, name, start, factor * (1.1 if start in week_ago else 1.0))
        pipe.zadd(windows_key(zone_id), {orjson.dumps(w): start})
    live = live_object(zone_id, city_id, name, key, now - age_s * 1000, sensors, reporting, suppressed)
    pipe.set(live_key(zone_id), orjson.dumps(live))
    if announce:
        pipe.publish(UPDATES_CHANNEL, orjson.dumps({"kind": "live", "zone_id": zone_id, "city_id": city_id}))
    pipe.execute()
    return live


def publish_live(r: redis.Redis, live: dict[str, Any]) -> None:
    """Write a live object and announce it, as the worker does."""
    pipe = r.pipeline(transaction=False)
    pipe.set(live_key(live["zone_id"]), orjson.dumps(live))
    pipe.publish(UPDATES_CHANNEL, orjson.dumps({"kind": "live", "zone_id": live["zone_id"],
                                                "city_id": live["city_id"]}))
    pipe.execute()


def spending_object(zone_id: str, city_id: str, as_of_ms: int) -> dict[str, Any]:
    """A spending object in the shape the spending route serves (for pages when that route exists)."""
    labels = {"fashion": {"nl": "Mode", "fr": "Mode", "en": "Fashion"},
              "food_and_drink": {"nl": "Horeca", "fr": "Horeca", "en": "Food and drink"},
              "personal_care": {"nl": "Verzorging", "fr": "Soins", "en": "Personal care"}}

    def cell(sector: str, index: int | None, suppressed: bool = False) -> dict[str, Any]:
        return {"sector": sector, "label": labels.get(sector, {"nl": "Alle", "fr": "Tous", "en": "All"}),
                "index": None if suppressed else index, "usual": None if suppressed else {"low": 85, "high": 115},
                "vs_usual": None if suppressed else ("busier" if (index or 0) > 115 else "usual"),
                "spend_per_visitor": None if suppressed else 23, "structural_break": False,
                "suppressed": suppressed, "reason": "few_merchants" if suppressed else None}

    return {"zone_id": zone_id, "city_id": city_id, "as_of": format_ts(as_of_ms, TZ),
            "window": {"start": format_ts(as_of_ms - HOUR_MS, TZ), "end": format_ts(as_of_ms, TZ), "seconds": 3600},
            "all": cell("all", 121), "sectors": [cell("fashion", 128), cell("food_and_drink", 104),
                                                 cell("personal_care", None, suppressed=True)]}
