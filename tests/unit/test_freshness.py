"""Freshness of live objects at read time: age, staleness, level and next update."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.freshness import refresh, unknown_live
from streams.levels import level
from streams.registry import parse_registry

AS_OF_MS = 1_795_785_600_000  # 2026-11-27T14:20:00+01:00
WINDOW_S, GRACE_S, STALE_AFTER_S = 300, 120, 750  # the defaults: stale after 2·window + grace + idle

REGISTRY = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors:
          - {id: mech-bruul-01, kind: street}
          - {id: mech-bruul-02, kind: street}
          - {id: mech-bruul-03, kind: entrance}
          - {id: mech-bruul-04, kind: entrance}
""")


def stored(**overrides: Any) -> dict[str, Any]:
    """A live object as the worker stores it: quality fresh at write time, plus the internal as_of_ms."""
    obj: dict[str, Any] = {
        "zone_id": "mechelen-bruul", "city_id": "mechelen", "name": "Bruul",
        "as_of": "2026-11-27T14:20:00+01:00", "as_of_ms": AS_OF_MS,
        "window": {"start": "2026-11-27T14:05:00+01:00", "end": "2026-11-27T14:20:00+01:00", "seconds": 900},
        "level": level("busy"),
        "index": 134, "score": 78, "vs_usual": "busier", "usual": {"low": 85, "high": 118},
        "visitors": {"min": 1190, "max": 1240},
        "forecast": [{"start": "2026-11-27T14:30:00+01:00", "index": 128, "level": "busy"}],
        "quality": {"stale": False, "age_s": 0, "coverage": 1.0, "sensors_reporting": 3, "sensors_expected": 3},
        "privacy": {"suppressed": False, "reason": None, "k_min": 15, "noise": "none"},
        "next_update_in_s": 420,
    }
    obj.update(overrides)
    return obj


@pytest.mark.parametrize(
    ("now_offset_ms", "stale_after_s", "age_s", "stale", "level_key", "next_update_in_s"),
    [
        # read the moment it was written: nothing has aged, the next window is window + grace away
        (0, STALE_AFTER_S, 0, False, "busy", 420),
        # 999 ms later: age rounds down to 0, time to the next update rounds up so it never says 0 too early
        (999, STALE_AFTER_S, 0, False, "busy", 420),
        # one second later
        (1_000, STALE_AFTER_S, 1, False, "busy", 419),
        # exactly when the next window is due
        (420_000, STALE_AFTER_S, 420, False, "busy", 0),
        # next window overdue but not yet stale: 0, never negative
        (500_000, STALE_AFTER_S, 500, False, "busy", 0),
        # exactly at the stale threshold: still fresh (stale means older than stale_after_s)
        (750_000, STALE_AFTER_S, 750, False, "busy", 0),
        # just under a second past the threshold: whole seconds, still 750, still fresh
        (750_999, STALE_AFTER_S, 750, False, "busy", 0),
        # one whole second past the threshold: stale, level unknown
        (751_000, STALE_AFTER_S, 751, True, "unknown", 0),
        # an hour old
        (3_600_000, STALE_AFTER_S, 3600, True, "unknown", 0),
        # a short stale_after makes it stale before the next window is due: next update is 0, not 359
        (61_000, 60, 61, True, "unknown", 0),
        # exactly at a short threshold: fresh, next update still counts down
        (60_000, 60, 60, False, "busy", 360),
        # reader's clock 5 s behind the writer's: age 0, not negative
        (-5_000, STALE_AFTER_S, 0, False, "busy", 425),
    ],
)
def test_refresh_table(
    now_offset_ms: int, stale_after_s: int, age_s: int, stale: bool, level_key: str, next_update_in_s: int
) -> None:
    out = refresh(stored(), AS_OF_MS + now_offset_ms, stale_after_s, WINDOW_S, GRACE_S)
    assert out["quality"]["age_s"] == age_s
    assert out["quality"]["stale"] is stale
    assert out["level"] == level(level_key)
    assert out["next_update_in_s"] == next_update_in_s


@pytest.mark.parametrize(
    ("window_s", "grace_s", "now_offset_ms", "next_update_in_s"),
    [
        # hourly windows, no grace
        (3600, 0, 0, 3600),
        # hourly windows, 10 min grace, 59 min in
        (3600, 600, 3_540_000, 660),
        # one-minute windows, no grace, 29.5 s in: 30.5 s left rounds up to 31
        (60, 0, 29_500, 31),
    ],
)
def test_next_update_follows_window_and_grace(
    window_s: int, grace_s: int, now_offset_ms: int, next_update_in_s: int
) -> None:
    out = refresh(stored(), AS_OF_MS + now_offset_ms, 10_000, window_s, grace_s)
    assert out["next_update_in_s"] == next_update_in_s


def test_refresh_strips_as_of_ms_and_keeps_everything_else() -> None:
    out = refresh(stored(), AS_OF_MS + 74_000, STALE_AFTER_S, WINDOW_S, GRACE_S)
    expected = stored()
    del expected["as_of_ms"]
    expected["quality"]["age_s"] = 74
    expected["next_update_in_s"] = 346
    assert out == expected


def test_refresh_does_not_change_its_input() -> None:
    obj = stored()
    before = copy.deepcopy(obj)
    refresh(obj, AS_OF_MS + 3_600_000, STALE_AFTER_S, WINDOW_S, GRACE_S)
    assert obj == before


def test_stale_keeps_last_known_numbers_with_their_age() -> None:
    out = refresh(stored(), AS_OF_MS + 1_000_000, STALE_AFTER_S, WINDOW_S, GRACE_S)
    assert out["level"] == {"key": "unknown", "nr": None, "label": {"nl": "Onbekend", "fr": "Inconnu", "en": "Unknown"}}
    assert out["visitors"] == {"min": 1190, "max": 1240}
    assert (out["index"], out["score"], out["vs_usual"]) == (134, 78, "busier")
    assert out["as_of"] == "2026-11-27T14:20:00+01:00"
    assert out["quality"] == {"stale": True, "age_s": 1000, "coverage": 1.0, "sensors_reporting": 3,
                              "sensors_expected": 3}


def test_stale_quiet_never_stays_quiet() -> None:
    out = refresh(stored(level=level("quiet")), AS_OF_MS + 751_000, STALE_AFTER_S, WINDOW_S, GRACE_S)
    assert out["level"]["key"] == "unknown"


@pytest.mark.parametrize(
    "as_of_ms",
    [
        None,  # field missing
        "1795782000000",  # a string, not a number
        True,  # a bool is an int in Python, but no time
    ],
)
def test_unusable_as_of_ms_is_stale_with_unknown_age(as_of_ms: object) -> None:
    obj = stored()
    if as_of_ms is None:
        del obj["as_of_ms"]
    else:
        obj["as_of_ms"] = as_of_ms
    out = refresh(obj, AS_OF_MS, STALE_AFTER_S, WINDOW_S, GRACE_S)
    assert "as_of_ms" not in out
    assert out["quality"]["stale"] is True
    assert out["quality"]["age_s"] is None
    assert out["level"]["key"] == "unknown"
    assert out["next_update_in_s"] == 0


@given(offset_ms=st.integers(-10**9, 10**10), stale_after_s=st.integers(1, 10**5))
def test_refresh_properties(offset_ms: int, stale_after_s: int) -> None:
    out = refresh(stored(), AS_OF_MS + offset_ms, stale_after_s, WINDOW_S, GRACE_S)
    age_s = out["quality"]["age_s"]
    assert age_s == max(0, offset_ms) // 1000
    assert out["quality"]["stale"] is (age_s > stale_after_s)
    assert (out["level"]["key"] == "unknown") is out["quality"]["stale"]
    assert 0 <= out["next_update_in_s"] <= WINDOW_S + GRACE_S + max(0, -offset_ms) // 1000 + 1
    assert "as_of_ms" not in out


def test_unknown_live_has_no_numbers_and_never_looks_quiet() -> None:
    zone = REGISTRY.zones["mechelen-bruul"]
    out = unknown_live(zone, REGISTRY.city_of_zone[zone.id], AS_OF_MS)
    assert out == {
        "zone_id": "mechelen-bruul", "city_id": "mechelen", "name": "Bruul",
        "as_of": None, "window": None,
        "level": {"key": "unknown", "nr": None, "label": {"nl": "Onbekend", "fr": "Inconnu", "en": "Unknown"}},
        "index": None, "score": None, "vs_usual": None, "usual": None, "visitors": None,
        "forecast": [],
        "quality": {"stale": True, "age_s": None, "coverage": 0.0, "sensors_reporting": 0, "sensors_expected": 4},
        "privacy": {"suppressed": False, "reason": None, "k_min": None, "noise": "none"},
        "next_update_in_s": None,
    }


def test_unknown_live_objects_are_independent() -> None:
    zone = REGISTRY.zones["mechelen-bruul"]
    city = REGISTRY.city_of_zone[zone.id]
    first = unknown_live(zone, city, 0)
    first["quality"]["sensors_reporting"] = 99
    first["level"]["label"]["en"] = "changed"
    assert unknown_live(zone, city, 0)["quality"]["sensors_reporting"] == 0
    assert unknown_live(zone, city, 0)["level"]["label"]["en"] == "Unknown"
