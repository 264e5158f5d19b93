"""Freshness of a stored live object at read time: its age, staleness and next update, with `now` as an argument."""

from __future__ import annotations

from typing import Any

from streams.levels import level
from streams.registry import City, Zone

AS_OF_MS = "as_of_ms"  # internal field the worker stores next to the live object; never served


def _ceil_s(ms: int) -> int:
    return -(-ms // 1000)


def refresh(obj: dict[str, Any], now_ms: int, stale_after_s: int, window_s: int, grace_s: int, *,
            closed_now: bool = False) -> dict[str, Any]:
    """The live object as seen at `now_ms`, without the internal `as_of_ms`; `obj` is not changed.

    - `quality.age_s`: whole seconds since `as_of_ms`, rounded down; 0 if the clock is behind the writer's.
    - `quality.stale`: `age_s > stale_after_s` (an object exactly `stale_after_s` old is still fresh).
    - stale objects get level `unknown` (stale must never look quiet), or `closed` when the zone is outside
      its opening hours now (`closed_now`), but keep their numbers, so a reader sees the last known value
      together with its age; their `next_update_in_s` is 0 (an update is overdue).
    - `next_update_in_s`: whole seconds, rounded up, until the next window is due, at
      `as_of + window_s + grace_s`; 0 once that moment has passed.
    An object without a usable `as_of_ms` is treated as stale with an unknown age.
    """
    out = {k: v for k, v in obj.items() if k != AS_OF_MS}
    quality = dict(out.get("quality") or {})
    as_of_ms = obj.get(AS_OF_MS)
    age_s: int | None = None
    stale, due_in_s = True, 0
    if isinstance(as_of_ms, int) and not isinstance(as_of_ms, bool):
        age_s = max(0, now_ms - as_of_ms) // 1000
        stale = age_s > stale_after_s
        due_in_s = max(0, _ceil_s(as_of_ms + (window_s + grace_s) * 1000 - now_ms))
    quality["age_s"] = age_s
    quality["stale"] = stale
    out["quality"] = quality
    if stale:
        out["level"] = level("closed" if closed_now else "unknown")
        due_in_s = 0
    out["next_update_in_s"] = due_in_s
    return out


def unknown_live(zone: Zone, city: City, now_ms: int, *, closed_now: bool = False) -> dict[str, Any]:
    """The live object of a zone the worker has not published yet: no numbers, level `unknown` (or `closed`
    outside opening hours), stale.

    `now_ms` is accepted for symmetry with `refresh`; nothing in an object without data depends on it, and
    without a published window there is no schedule to derive `next_update_in_s` from, so it is null.
    """
    return {
        "zone_id": zone.id,
        "city_id": city.id,
        "name": zone.name,
        "as_of": None,
        "window": None,
        "level": level("closed" if closed_now else "unknown"),
        "index": None,
        "score": None,
        "vs_usual": None,
        "usual": None,
        "visitors": None,
        "forecast": [],
        "quality": {"stale": True, "age_s": None, "coverage": 0.0, "sensors_reporting": 0,
                    "sensors_expected": len(zone.sensors)},
        "privacy": {"suppressed": False, "reason": None, "k_min": None, "noise": "none"},
        "next_update_in_s": None,
    }
