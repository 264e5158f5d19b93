"""The usual model over the engine's day history: bands by day type and local time, DST, holidays, peak."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.baseline import Band
from streams.registry import parse_registry
from streams.usual import UsualModel, observation

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


def test_history_arriving_after_a_profile_was_made_is_seen_once_the_model_is_told() -> None:
    days: dict[str, dict[str, list[int]]] = {}
    model = UsualModel(REG, lambda zone, day: days.get(day, {}), window_ms=W, weeks=8, min_sensors=3, k_min=15)
    at = ms(date(2026, 3, 28), 12)

    def arrive(saturdays: list[date], more: int = 0, tell: bool = True) -> None:  # a replay's history
        for d in saturdays:
            for h in range(8, 20):
                day, slot = model.calendar("z", ms(d, h))
                days.setdefault(day, {})[str(slot)] = [10 * h + more, 3]
            if tell:
                model.changed("z", d.isoformat())

    assert model.peak("z", at) is None  # no history yet
    assert all(band is None for _, band in model.day_profile("z", at))
    assert model.outdated("z") is False
    arrive(SATURDAYS[:3], tell=False)
    assert model.peak("z", at) is None  # cached: the model was not told
    arrive(SATURDAYS[:3])  # three weeks: enough for a band
    assert model.outdated("z") is True  # the profile made before is gone
    assert model.peak("z", at) == 190
    low = dict(model.day_profile("z", at))[ms(date(2026, 3, 28), 8)]
    assert low is not None
    assert model.outdated("z") is False
    arrive(SATURDAYS[3:], more=100)  # the other five weeks, busier
    assert dict(model.day_profile("z", at))[ms(date(2026, 3, 28), 8)] != low
    model.changed("y", "2026-03-27")
    assert model.outdated("y") is False  # nothing cached for another zone


def test_a_day_closing_changes_nothing_cached_for_that_day_or_earlier() -> None:
    """Live windows closing today must not make the worker compute today's bands, profile or peak again."""
    reads: list[str] = []
    history = {(d, h, 0): 10 * h for d in SATURDAYS for h in range(8, 20)}
    base = model_with(history)

    def counting(zone: str, day: str) -> dict[str, list[int]]:
        reads.append(day)
        return base.lookup(zone, day)

    model = UsualModel(REG, counting, window_ms=W, weeks=8, min_sensors=3, k_min=15)
    at = ms(date(2026, 3, 28), 12)
    first = (model.peak("z", at), model.day_profile("z", at), model.band("z", at))
    assert reads
    reads.clear()
    model.changed("z", "2026-03-28")  # today's windows made final
    assert (model.peak("z", at), model.day_profile("z", at), model.band("z", at)) == first
    assert reads == []
    model.changed("z", "2026-03-23")  # this week's Monday
    assert model.peak("z", at) == first[0]
    assert reads == []  # the peak reads the weeks before this Monday only
    assert (model.day_profile("z", at), model.band("z", at)) == first[1:]
    assert reads  # … but the profile and band of 28 March may read 23 March: made again
    reads.clear()
    model.changed("z", "2026-03-21")
    assert model.peak("z", at) == first[0]
    assert "2026-03-21" in reads  # a day before the Monday: the peak is made again


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


# -- P6: a window suppressed below k_min enters the usual as k_min / 2, never with its exact count ---------------
K = 15
HOUR = 3_600_000  # hourly windows: 24 slots a day keep the weekly peak's scan cheap
TARGET = date(2026, 11, 21)  # a Saturday; its eight past Saturdays and the rest of the week lie before it
DAYS = 7 * 10  # history: the ten weeks before TARGET (a band reads up to eight same-type days back)
SLOTS = (1, 2, 13, 14, 15)  # a night and an afternoon
Cells = dict[tuple[int, int], tuple[int, int]]  # (days before TARGET, slot) → (visitors, sensors)


def hourly(cells: Cells) -> UsualModel:
    days: dict[str, dict[str, list[int]]] = {}
    for (back, slot), (visitors, sensors) in cells.items():
        days.setdefault((TARGET - timedelta(days=back)).isoformat(), {})[str(slot)] = [visitors, sensors]
    return UsualModel(REG, lambda zone, day: days.get(day, {}), window_ms=HOUR, weeks=8, min_sensors=3, k_min=K)


def published_values(model: UsualModel) -> dict[str, object]:
    """Everything the model hands to publication for TARGET: every window's band, p50 and last week, the day
    profile (the /today curve) and the weekly peak (the score)."""
    noon = ms(TARGET, 12)
    starts = model.day_windows("z", noon)
    return {"band": [model.band("z", s) for s in starts], "p50": [model.p50("z", s) for s in starts],
            "last_week": [model.last_week("z", s) for s in starts], "profile": model.day_profile("z", noon),
            "peak": model.peak("z", noon)}


def suppressed(cell: tuple[int, int]) -> bool:
    return cell[1] < 3 or cell[0] < K


# the past Saturdays (TARGET's own bands) and Sundays (in the peak, with the Saturdays), every slot of them
KEYS = [(back, slot) for week in range(1, DAYS // 7 + 1) for back in (7 * week, 7 * week - 6) for slot in SLOTS]
cells_st = st.lists(st.none() | st.tuples(st.integers(0, 40), st.integers(1, 4)), min_size=len(KEYS),
                    max_size=len(KEYS)).map(lambda cs: {k: c for k, c in zip(KEYS, cs, strict=True) if c})


@settings(max_examples=150, deadline=None)
@given(cells=cells_st, data=st.data())
def test_no_published_value_depends_on_a_suppressed_count(cells: Cells, data: st.DataObject) -> None:
    """Change the count of any suppressed windows of the history (below k: any count below k; too few sensors:
    any count, and any number of sensors still too few): no band, p50, last week, profile or peak moves."""
    changed = dict(cells)
    for key, (visitors, sensors) in cells.items():
        if not suppressed((visitors, sensors)) or not data.draw(st.booleans()):
            continue
        if sensors < 3:
            changed[key] = (data.draw(st.integers(0, 10_000)), data.draw(st.integers(0, 2)))
        else:
            changed[key] = (data.draw(st.integers(0, K - 1)), sensors)
    assert published_values(hourly(changed)) == published_values(hourly(cells))


def test_suppressed_windows_count_as_half_k_and_published_ones_exactly() -> None:
    saturdays = [7 * w for w in range(1, 9)]
    mixed = dict.fromkeys(((b, 14) for b in saturdays), (60, 3)) | {
        (7, 14): (40, 3), (14, 14): (13, 3), (21, 14): (5, 3), (28, 14): (90, 3)}
    night = {(b, 2): (b // 7, 3) for b in saturdays}  # 1 … 8 people: all below k
    few = {(b, 15): (100, 2) for b in saturdays}  # too few sensors: no observation at all
    model = hourly(mixed | night | few)
    # 7.5, 7.5, 40, 60, 60, 60, 60, 90: the median between 60 and 60 is exact, p20 interpolates 7.5 and 40
    assert model.band("z", ms(TARGET, 14)) == Band(pytest.approx(7.5 + 0.4 * 32.5), 60.0, 60.0, 8)  # type: ignore[arg-type]
    assert model.band("z", ms(TARGET, 2)) == Band(7.5, 7.5, 7.5, 8)
    assert model.band("z", ms(TARGET, 15)) is None
    assert model.last_week("z", ms(TARGET, 2)) == 7.5
    assert model.last_week("z", ms(TARGET, 14)) == 40.0
    assert model.peak("z", ms(TARGET, 12)) == 60.0
    assert observation([14, 3], k_min=K, min_sensors=3) == 7.5
    assert observation([15, 3], k_min=K, min_sensors=3) == 15.0
    assert observation([500, 2], k_min=K, min_sensors=3) is None
    assert observation(None, k_min=K, min_sensors=3) is None


def test_published_counts_still_move_the_band() -> None:
    """The other side of the rule: a published window's exact count is an observation (the property above
    would also hold for a model that ignores all history)."""
    base = {(7 * w, 14): (20 + w, 3) for w in range(1, 9)}  # 21 … 28
    moved = base | {(7 * 4, 14): (100, 3)}  # 24 → 100
    before, after = hourly(base).band("z", ms(TARGET, 14)), hourly(moved).band("z", ms(TARGET, 14))
    assert before is not None
    assert after is not None
    assert (before.p50, after.p50) == (24.5, 25.5)
    assert hourly(base).peak("z", ms(TARGET, 12)) == 24.5



@settings(max_examples=80, deadline=None)
@given(cells=cells_st, data=st.data())
def test_a_model_told_of_every_change_answers_like_a_new_one(cells: Cells, data: st.DataObject) -> None:
    """Cached values never go stale: after any history changes, each followed by `changed`, every value the
    model publishes is what a model made from scratch computes, for TARGET and the days around it."""
    days: dict[str, dict[str, list[int]]] = {}
    for (back, slot), (visitors, sensors) in cells.items():
        days.setdefault((TARGET - timedelta(days=back)).isoformat(), {})[str(slot)] = [visitors, sensors]

    def model() -> UsualModel:
        return UsualModel(REG, lambda zone, day: days.get(day, {}), window_ms=HOUR, weeks=8, min_sensors=3, k_min=K)

    cached = model()
    backs = st.sampled_from(sorted({back for back, _ in KEYS})) | st.integers(-3, 75)
    for _ in range(data.draw(st.integers(1, 6))):
        published_values(cached)  # fill the caches, then change what they read
        day = (TARGET - timedelta(days=data.draw(backs))).isoformat()
        days.setdefault(day, {})[str(data.draw(st.sampled_from(SLOTS)))] = [data.draw(st.integers(0, 60)), 3]
        cached.changed("z", day)
    assert published_values(cached) == published_values(model())
    for back in (-7, -1, 1, 6, 7):  # the days around TARGET
        at, fresh = ms(TARGET - timedelta(days=back), 12), model()
        assert (cached.band("z", at), cached.peak("z", at), cached.day_profile("z", at)) == (
            fresh.band("z", at), fresh.peak("z", at), fresh.day_profile("z", at))
