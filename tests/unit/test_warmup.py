"""`drukte up` holds its URLs back until every zone's live object is complete: the rules it uses."""

from __future__ import annotations

from typing import Any

import pytest

from drukte.registry_check import load_registry
from drukte.settings import DEFAULT_REGISTRY
from drukte.warmup import expected_windows, missing, published_windows, today_filled, urgent_days, zone_filled

FORECAST = [{"start": "2026-11-28T15:05:00+01:00", "index": 80, "level": {"key": "normal"}}]


def live(level: str = "normal", **over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"zone_id": "z", "level": {"key": level}, "index": 104, "usual": {"low": 80, "high": 120},
                           "vs_usual": "as_usual", "score": 61, "forecast": FORECAST,
                           "quality": {"stale": False, "age_s": 12}}
    return obj | over


@pytest.mark.parametrize(("obj", "filled"), [
    (live(), True),
    (live(index=None), False),
    (live(usual=None), False),
    (live(vs_usual=None), False),
    (live(score=None), False),
    (live(forecast=[]), False),  # no history for this time of day yet
    (live(quality={"stale": True, "age_s": 4000}), False),  # old data is never "filled"
    (live(quality={"age_s": None}), False),  # no freshness stated: not trusted
    (live("quiet", index=None, usual=None, vs_usual=None, score=None), True),  # below k: no numbers, by design
    (live("closed", index=None, usual=None, vs_usual=None, score=None), True),
    (live("closed", forecast=[]), False),  # the forecast is there even for a shut street
    (live("unknown", index=None), False),
])
def test_a_zone_is_filled_when_a_visitor_would_see_every_field(obj: dict[str, Any], filled: bool) -> None:
    assert zone_filled(obj) is filled


def test_missing_names_the_incomplete_zones_in_order() -> None:
    lives = [live(zone_id="a"), live(zone_id="b", score=None), live(zone_id="c", forecast=[])]
    assert missing(lives) == ["b", "c"]


@pytest.mark.parametrize(("days", "urgent"), [(0, 0), (6.9, 0), (7, 1), (14, 2), (56, 8), (60, 8)])
def test_the_urgent_days_are_this_weekday_each_week_back(days: float, urgent: int) -> None:
    assert urgent_days(days) == urgent


def test_expected_windows_are_urgent_days_times_windows_per_day_times_zones() -> None:
    registry = load_registry(DEFAULT_REGISTRY)
    assert expected_windows(registry, 56, 300) == 8 * 288 * len(registry.zones)
    assert expected_windows(registry, 56, 900) == 8 * 96 * len(registry.zones)


def test_published_windows_sums_the_counter_over_zones_and_ignores_other_lines() -> None:
    text = """# HELP drukte_windows_published_total Zone windows published
# TYPE drukte_windows_published_total counter
drukte_windows_published_total{zone="a"} 10.0
drukte_windows_published_total{zone="b"} 32.0
drukte_windows_published_created{zone="a"} 1.7e+09
drukte_windows_published_totals_other 99.0
"""
    assert published_windows(text) == 42
    assert published_windows("") == 0


def test_the_day_view_is_filled_once_it_has_peak_hours() -> None:
    assert today_filled({"zone_id": "z", "peak_hours": [{"start": "12:00", "max": "13:00", "end": "15:00"}]})
    assert not today_filled({"zone_id": "z", "peak_hours": []})  # no usual bands for today yet
    assert not today_filled({"zone_id": "z"})
