"""`drukte up` holds its URLs back until every zone's live object is complete: the rules it uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drukte.registry_check import load_registry
from drukte.settings import DEFAULT_REGISTRY
from drukte.warmup import expected_windows, missing, published_windows, today_filled, urgent_days, zone_filled

BRUSSELS = ZoneInfo("Europe/Brussels")
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


PEAKS = [{"start": "12:00", "max": "13:00", "end": "15:00"}]
NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)  # 06:00 in Brussels


def day(banded_until: str | None) -> list[dict[str, Any]]:
    """Today's 5-minute windows in Brussels, with a usual band up to (not including) `banded_until` local."""
    first = datetime(2026, 11, 29, 0, 0, tzinfo=BRUSSELS)
    out = []
    for i in range(288):
        start = first + timedelta(minutes=5 * i)
        band = banded_until is not None and start.strftime("%H:%M") < banded_until
        out.append({"start": start.isoformat(), "usual": {"score": 40, "low": 30, "high": 50} if band else None})
    return out


@pytest.mark.parametrize(("peaks", "banded_until", "filled"), [
    (PEAKS, "24:00", True),
    (PEAKS, "22:30", True),  # 18 of 216 windows ahead without a band: within the 10 %
    (PEAKS, "12:00", False),  # the third urgent day is still in the worker: bands stop at noon (peak hours shown)
    ([], None, False),  # no usual bands for today yet
    (None, None, False),
])
def test_the_day_view_is_filled_once_the_rest_of_the_day_has_bands(
        peaks: list[dict[str, str]] | None, banded_until: str | None, filled: bool) -> None:
    view: dict[str, Any] = {"zone_id": "z", "windows": day(banded_until)}
    if peaks is not None:
        view["peak_hours"] = peaks
    assert today_filled(view, NOW) is filled


def test_the_hours_gone_by_do_not_count() -> None:
    """Only the windows from now on: a day whose morning has no band is filled at noon, not at 06:00."""
    windows = [w | {"usual": None} if w["start"] < "2026-11-29T12:00" else w for w in day("24:00")]
    view = {"zone_id": "z", "peak_hours": PEAKS, "windows": windows}
    assert today_filled(view, datetime(2026, 11, 29, 11, 0, tzinfo=UTC))
    assert not today_filled(view, NOW)
