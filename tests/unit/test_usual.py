"""The usual model over the engine's day history: bands by day type and local time, DST, holidays, peak."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from streams.registry import parse_registry
from streams.usual import UsualModel

REG = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: z
        name: Z
        sensors: [{id: s-1, kind: street}, {id: s-2, kind: street}, {id: s-3, kind: street}]
""")
TZ = ZoneInfo("Europe/Brussels")
W = 300_000


def ms(d: date, hour: int, minute: int = 0) -> int:
    return int(datetime(d.year, d.month, d.day, hour, minute, tzinfo=TZ).timestamp() * 1000)


def model_with(values: dict[tuple[date, int, int], int], sensors: int = 3) -> UsualModel:
    """History as the engine keeps it: d|zone|date → {slot: [visitors, sensors]}."""
    days: dict[str, dict[str, list[int]]] = {}
    model = UsualModel(REG, lambda zone, day: days.get(day, {}), window_ms=W, weeks=8, min_sensors=3,
                       k_min=15)
    for (d, hour, minute), v in values.items():
        day, slot = model.calendar("z", ms(d, hour, minute))
        days.setdefault(day, {})[str(slot)] = [v, sensors]
    return model


SATURDAYS = [date(2026, 3, 28) - timedelta(weeks=k) for k in range(1, 9)]  # before the March clock change


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (date(2026, 3, 28), "the Saturday before the clock change"),
        (date(2026, 4, 4), "the Saturday after: 14:00 local is still the same slot"),
    ],
)
def test_band_follows_local_time_across_dst(target: date, why: str) -> None:
    history = {(d, 14, 0): 100 + 10 * i for i, d in enumerate(SATURDAYS)}
    history[(date(2026, 3, 28), 14, 0)] = 999  # that Saturday itself (an observation for the next week)
    model = model_with(history)
    band = model.band("z", ms(target, 14))
    assert band is not None, why
    expected_values = sorted([100 + 10 * i for i in range(8)] if target == date(2026, 3, 28)
                             else [999] + [100 + 10 * i for i in range(7)])
    assert band.n == 8
    assert band.p50 == (expected_values[3] + expected_values[4]) / 2


def test_holiday_counts_as_sunday() -> None:
    # Easter Monday 2026-04-06 is a Belgian holiday: its band comes from Sundays, and it serves Sundays after
    sundays = [date(2026, 4, 5) - timedelta(weeks=k) for k in range(0, 4)]
    model = model_with({(d, 15, 0): 50 for d in sundays} | {(date(2026, 3, 30), 15, 0): 900})  # a Monday
    band = model.band("z", ms(date(2026, 4, 6), 15))
    assert band is not None
    assert band.p50 == 50
    model2 = model_with({(date(2026, 4, 6), 15, 0): 60, (date(2026, 4, 5), 15, 0): 60, (date(2026, 3, 29), 15, 0): 60})
    band2 = model2.band("z", ms(date(2026, 4, 12), 15))  # the next Sunday sees the holiday among its days
    assert band2 is not None
    assert band2.n == 3


def test_too_few_observations_or_sensors_give_no_band() -> None:
    two = model_with({(SATURDAYS[0], 14, 0): 10, (SATURDAYS[1], 14, 0): 10})
    assert two.band("z", ms(date(2026, 3, 28), 14)) is None
    few_sensors = model_with({(d, 14, 0): 10 for d in SATURDAYS}, sensors=2)
    assert few_sensors.band("z", ms(date(2026, 3, 28), 14)) is None


def test_last_week_and_peak() -> None:
    history = {(d, h, 0): 10 * h for d in SATURDAYS for h in range(8, 20)}
    model = model_with(history)
    assert model.last_week("z", ms(date(2026, 3, 28), 15)) == 150
    assert model.peak("z", ms(date(2026, 3, 28), 12)) == 190  # the busiest usual window of the week


@pytest.mark.parametrize(
    ("day", "windows"),
    [
        (date(2026, 3, 29), 23 * 12),  # spring forward: 23 hours
        (date(2026, 10, 25), 25 * 12),  # fall back: 25 hours
        (date(2026, 11, 27), 24 * 12),
    ],
)
def test_day_windows_cover_the_local_day(day: date, windows: int) -> None:
    model = model_with({})
    starts = model.day_windows("z", ms(day, 12))
    assert len(starts) == windows
    assert starts[0] == ms(day, 0)
