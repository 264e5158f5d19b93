"""The published live object: ranges, suppression (P6, P7, P8) and levels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.publication import PrivacyPolicy, Usual, forecast_entries, live_object, suppression, visitors_range
from streams.registry import parse_registry
from streams.windows import Cell

REG = parse_registry("""
defaults:
  levels: {normal: 300, busy: 1500, very_busy: 3500}
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: s-1, kind: street}, {id: s-2, kind: street}, {id: s-3, kind: street}]
""")
ZONE = REG.zones["mechelen-bruul"]
CITY = REG.cities[0]
POLICY = PrivacyPolicy(k_min=15, min_sensors=3)
T0 = 1_795_785_000_000  # 14:10 Brussels
W = 300_000


def cell(visitors: int, sensors: int = 3, i: int = 0) -> Cell:
    return Cell(ZONE.id, T0 + i * W, T0 + (i + 1) * W, visitors, sensors, sensors * W)


@given(st.integers(0, 10**9))
def test_range_holds_the_count_and_is_narrow(n: int) -> None:
    r = visitors_range(n)
    assert r["min"] <= n <= r["max"]
    assert r["max"] - r["min"] <= max(10, n * 0.05)
    assert r["max"] > r["min"]


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ([cell(15)], None),  # exactly k: published
        ([cell(14)], "below_k"),  # one below k: no numbers (P6)
        ([cell(0)], "below_k"),  # the lone walker at night is never +1
        ([cell(500, sensors=2)], "few_sensors"),  # P7 before P6: unreliable, so unknown, not quiet
        ([cell(500, i=0), cell(3, i=1), cell(500, i=2)], "below_k"),  # P8: a sum would reveal the 3
        ([cell(500, i=0), cell(500, sensors=1, i=1)], "few_sensors"),
        ([], "few_sensors"),
    ],
)
def test_suppression(cells: list[Cell], reason: str | None) -> None:
    assert suppression(cells, POLICY) == reason


@pytest.mark.parametrize(
    ("visitors", "level"),
    [
        (24, "quiet"),  # 288/h < 300
        (25, "normal"),  # 300/h
        (125, "busy"),  # 1500/h
        (292, "very_busy"),  # 3504/h
        (10, "quiet"),  # suppressed below k: quiet, no numbers
    ],
)
def test_level_from_rate(visitors: int, level: str) -> None:
    obj = live_object(ZONE, CITY, [cell(visitors)], POLICY, window_ms=W, grace_ms=120_000)
    assert obj["level"]["key"] == level


def test_live_object_matches_the_contract() -> None:
    obj = live_object(ZONE, CITY, [cell(200, i=0), cell(210, i=1), cell(205, i=2)], POLICY,
                      window_ms=W, grace_ms=120_000)
    assert obj == {
        "zone_id": "mechelen-bruul", "city_id": "mechelen", "name": "Bruul",
        "as_of": "2026-11-27T14:25:00+01:00", "as_of_ms": T0 + 3 * W,
        "window": {"start": "2026-11-27T14:10:00+01:00", "end": "2026-11-27T14:25:00+01:00", "seconds": 900},
        "level": {"key": "busy", "nr": 2, "label": {"nl": "Druk", "fr": "Animé", "en": "Busy"}},
        "index": None, "score": None, "vs_usual": None, "usual": None,
        "visitors": {"min": 600, "max": 625},
        "forecast": [],
        "quality": {"stale": False, "age_s": 0, "coverage": 1.0, "sensors_reporting": 3, "sensors_expected": 3},
        "privacy": {"suppressed": False, "reason": None, "k_min": 15, "noise": "none"},
        "next_update_in_s": 420,
    }


def test_suppressed_object_has_no_numbers() -> None:
    obj = live_object(ZONE, CITY, [cell(3)], POLICY, window_ms=W, grace_ms=120_000)
    assert obj["visitors"] is None
    assert obj["privacy"] == {"suppressed": True, "reason": "below_k", "k_min": 15, "noise": "none"}
    # nothing else carries the suppressed count either: any count below k gives the very same object
    assert all(live_object(ZONE, CITY, [cell(n)], POLICY, window_ms=W, grace_ms=120_000) == obj for n in (0, 1, 14))


@pytest.mark.parametrize(("visitors", "p50", "index", "level"), [
    (14, 10, None, "quiet"),  # below k: quiet without index, though 14/min is a `normal` rate (P6)
    (0.5, 1, None, "quiet"),  # the lone walker forecast: no index of 50
    (14.9, None, None, "quiet"),  # below k, no usual either
    (15, 10, 150, "normal"),  # k itself: published like a live window of k
    (30, 20, 150, "busy"),
])
def test_a_forecast_below_k_is_published_without_numbers(visitors: float, p50: float | None, index: int | None,
                                                          level: str) -> None:
    """P6 for forecasts (`streams.publication.forecast_entries`): a step under k people is `quiet` and has no
    index, in the published live object too. One-minute windows, so a level from the rate would not be quiet."""
    forecast = [(T0 + 60_000, visitors, p50)]
    [entry] = forecast_entries(ZONE, CITY, forecast, POLICY, 60_000)
    assert (entry["index"], entry["level"]) == (index, level)
    obj = live_object(ZONE, CITY, [cell(200)], POLICY, window_ms=60_000, grace_ms=0, usual=Usual([], None, forecast))
    assert obj["forecast"] == [entry]
