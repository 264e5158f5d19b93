"""The usual for a zone window, read from the `d|` history of final windows: bands, last week, weekly peak.

The history keeps every final window's exact total (`{slot: [visitors, sensors]}`), also of windows that were
published without numbers. What a window contributes to the usual (`observation`):

- fewer than `min_sensors` sensors (P7): nothing, it is not an observation (its count says nothing reliable);
- fewer than `k_min` visitors (P6): the constant `k_min / 2`, whatever its count (`SUPPRESSED_FRACTION`);
- otherwise its exact total.

Why: bands, the weekly peak, last week's values and the day profile are published as relative figures
(index, usual, vs_usual, score, the forecast's index, the usual curve of /today). Fed with exact counts, they
made a suppressed window's count visible by differencing: one passage more in a night window below k moved the
index of the same slot a week later, and the score of every window if the slot held the weekly peak (the
auditor's twin zones, `tests/e2e/test_audit_bands.py`, showed 93 vs 94). With this rule every published value
depends only on whether a window was suppressed, which is itself published, and on the exact totals of windows
published with numbers, never on the count of a suppressed window.

Why `k_min / 2` rather than leaving the window out or taking 0 or `k_min`: a suppressed count lies somewhere
in [0, k_min), so the middle is the least wrong single value. Any constant below `k_min` keeps the order of
the values: every suppressed window stays below every published one, so a percentile that falls on published
windows (on both, where it interpolates between two) is exact, and only quiet slots (where most past windows
were below k) get an approximate band. Leaving suppressed windows out would raise quiet slots' medians to at
least `k_min` and leave slots with fewer than three published windows without any band; 0 gives them a
median of 0, hence no index at all.
Measured on `bench.forecast`'s data (seed 1, shipped scenario, 5-minute windows, k_min = 15; a quarter of the
test windows are below k): the forecast's WAPE over the whole day at 60 minutes is 13.0 % from exact counts,
13.4 % with `k_min / 2`, 14.7 % with 0 and 14.9 % with `k_min` (4 zones); within opening hours all are
within 0.1 point of each other. Against bands from exact counts, the index of a published window is off by
2.7 points on average with `k_min / 2` (1.3 with `k_min`, 1.0 with 0, where 3 % of the windows also lose
their index; 8 zones), nearly all of it in quiet slots at the edges of the day.

Limit: the rule reads the history's final totals. Late readings (P9) that lift a window published as
suppressed to `k_min` visitors or `min_sensors` sensors make it count with its exact total, since the history
does not record how the window was published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypeVar

from streams.baseline import Band, band, weekly_peak
from streams.daytype import (
    HOLIDAY_BASELINE,
    WEEKDAYS,
    baseline_day_type,
    day_bounds,
    local_time,
    observation_key,
    public_holidays,
    slot_of_day,
    slots_per_day,
)
from streams.registry import Registry

DATES_CACHED = 16  # local dates per zone whose bands, day histories, profiles and peaks stay cached
STARTS_CACHED = 8192  # window starts per zone whose local date is remembered
SUPPRESSED_FRACTION = 0.5  # a window below k_min counts as k_min × this, whatever its count (see above)
V = TypeVar("V")
# (zone, local date) → {slot: [visitors, sensors]}: the engine's history of one local day
HistoryLookup = Callable[[str, str], dict[str, list[int]]]


def observation(cell: list[int] | None, *, k_min: int, min_sensors: int) -> float | None:
    """What a history cell `[visitors, sensors]` contributes to the usual: None (no cell, or too few sensors),
    `k_min × SUPPRESSED_FRACTION` for a window below `k_min`, else its exact visitors (module docstring)."""
    if cell is None or cell[1] < min_sensors:
        return None
    return float(cell[0]) if cell[0] >= k_min else k_min * SUPPRESSED_FRACTION


def baseline_type_of_date(d: date, country: str) -> str:
    if d in public_holidays(country, d.year):
        return HOLIDAY_BASELINE
    return WEEKDAYS[d.weekday()]


class UsualModel:
    """Bands per zone, day type and local time of day over the last `weeks` same-type days.

    Only windows that had enough sensors (P7) are observations; a window below `k_min` counts as `k_min / 2`,
    never with its exact count (P6, `observation`). Reads history only, so it is pure given the lookup.

    Everything it computes stays cached until the caller says the history it read has changed (`changed`): a
    value for local date D reads only days before D (the peak: days up to its week's Monday, exclusive), so a
    zone's live windows closing today change nothing cached for today, and bands, the day profile and the peak
    are computed once per zone and day, not per window (they were most of the worker's time).
    """

    def __init__(self, registry: Registry, lookup: HistoryLookup, *, window_ms: int, weeks: int,
                 min_sensors: int, k_min: int) -> None:
        self.registry, self.lookup = registry, lookup
        self.window_ms, self.weeks, self.min_sensors, self.k_min = window_ms, weeks, min_sensors, k_min
        self._zones: dict[str, _ZoneCache] = {}

    def _cache(self, zone_id: str) -> _ZoneCache:
        zc = self._zones.get(zone_id)
        if zc is None:
            zc = self._zones[zone_id] = _ZoneCache()
        return zc

    def changed(self, zone_id: str, local_date: str) -> None:
        """The zone's history of `local_date` (YYYY-MM-DD) changed (windows made final, late readings, noise drawn,
        history restored): forget every value that read it, those of later dates and the peaks of weeks whose
        Monday is later."""
        zc = self._zones.get(zone_id)
        if zc is not None:
            zc.drop_after(local_date)

    def forget(self) -> None:
        """Forget everything (the history may have changed anywhere: a rebalance brought other partitions)."""
        for zc in self._zones.values():
            zc.drop_after("")

    def outdated(self, zone_id: str) -> bool:
        """Did history change under a day profile made for the zone (and so under its peak), since the last one
        was made?"""
        zc = self._zones.get(zone_id)
        return zc is not None and zc.outdated

    def calendar(self, zone_id: str, start_ms: int) -> tuple[str, int]:
        """(history day key, slot) of a window: the engine's `Calendar`."""
        tz = self.registry.city_of_zone[zone_id].timezone
        return observation_key(start_ms, tz), slot_of_day(start_ms, tz, self.window_ms)

    def _value(self, zone_id: str, day: str, slot: int) -> float | None:
        values = self._values([self.lookup(zone_id, day)], slot)
        return values[0] if values else None

    def _days(self, zone_id: str, day: date, kind: str) -> list[dict[str, list[int]]]:
        """Histories of the past days of day type `kind` before `day`, newest first, with a few weeks' slack
        for holidays and days without data."""
        days_of = _bounded(self._cache(zone_id).days, day.isoformat(), DATES_CACHED, dict)
        if kind not in days_of:
            country = self.registry.city_of_zone[zone_id].country
            days = (day - timedelta(days=back) for back in range(1, 7 * self.weeks + 22))
            days_of[kind] = [self.lookup(zone_id, d.isoformat()) for d in days
                             if baseline_type_of_date(d, country) == kind]
        return days_of[kind]

    def _values(self, days: list[dict[str, list[int]]], slot: int) -> list[float]:
        out: list[float] = []
        for hist in days:
            value = observation(hist.get(str(slot)), k_min=self.k_min, min_sensors=self.min_sensors)
            if value is not None:
                out.append(value)
                if len(out) == self.weeks:
                    break
        return out

    def band(self, zone_id: str, start_ms: int) -> Band | None:
        """The usual band of the window starting at `start_ms`, from past days only (never the day itself)."""
        zc = self._cache(zone_id)
        day = zc.dates.get(start_ms)
        if day is not None and start_ms in zc.bands.get(day, {}):
            return zc.bands[day][start_ms]
        city = self.registry.city_of_zone[zone_id]
        local = local_time(start_ms, city.timezone)
        kind = baseline_day_type(start_ms, city.timezone, city.country)
        days = self._days(zone_id, local.date(), kind)
        result = band(self._values(days, slot_of_day(start_ms, city.timezone, self.window_ms)))
        day = local.date().isoformat()
        if len(zc.dates) >= STARTS_CACHED:
            zc.dates.clear()
        zc.dates[start_ms] = day
        _bounded(zc.bands, day, DATES_CACHED, dict)[start_ms] = result
        return result

    def p50(self, zone_id: str, start_ms: int) -> float | None:
        b = self.band(zone_id, start_ms)
        return b.p50 if b else None

    def last_week(self, zone_id: str, start_ms: int) -> float | None:
        city = self.registry.city_of_zone[zone_id]
        day = local_time(start_ms, city.timezone).date() - timedelta(days=7)
        return self._value(zone_id, day.isoformat(), slot_of_day(start_ms, city.timezone, self.window_ms))

    def peak(self, zone_id: str, start_ms: int) -> float | None:
        """The zone's usual weekly peak per window: the highest p50 over every day type and slot, per zone and
        local ISO week, from the weeks before that week's Monday (so the week's own windows never move it)."""
        city = self.registry.city_of_zone[zone_id]
        local_day = local_time(start_ms, city.timezone).date()
        monday = local_day - timedelta(days=local_day.weekday())
        slots = range(slots_per_day(self.window_ms))
        return _bounded(self._cache(zone_id).peaks, monday.isoformat(), DATES_CACHED, lambda: weekly_peak(
            [band(self._values(days, slot)) for kind in WEEKDAYS
             for days in [self._days(zone_id, monday, kind)] for slot in slots]))

    def day_windows(self, zone_id: str, at_ms: int) -> list[int]:
        """Starts of every window of the local day holding `at_ms` (23 or 25 hours on clock-change days)."""
        first, end = day_bounds(at_ms, self.registry.city_of_zone[zone_id].timezone)
        return list(range(first, end, self.window_ms))

    def day_profile(self, zone_id: str, at_ms: int) -> list[tuple[int, Band | None]]:
        """The usual band of every window of the local day holding `at_ms`."""
        tz = self.registry.city_of_zone[zone_id].timezone
        zc = self._cache(zone_id)
        key = local_time(at_ms, tz).date().isoformat()
        if key not in zc.profiles:
            _bounded(zc.profiles, key, DATES_CACHED,
                     lambda: [(s, self.band(zone_id, s)) for s in self.day_windows(zone_id, at_ms)])
            zc.outdated = False
        return zc.profiles[key]


@dataclass
class _ZoneCache:
    """One zone's cached values, by the local date (YYYY-MM-DD) they are for; see `UsualModel.changed`."""

    days: dict[str, dict[str, list[dict[str, list[int]]]]] = field(default_factory=dict)  # before → kind → days
    bands: dict[str, dict[int, Band | None]] = field(default_factory=dict)  # date → window start → band
    dates: dict[int, str] = field(default_factory=dict)  # window start → its local date (never changes)
    profiles: dict[str, list[tuple[int, Band | None]]] = field(default_factory=dict)
    peaks: dict[str, float | None] = field(default_factory=dict)  # the week's Monday → peak
    outdated: bool = False  # a day profile was dropped since the last one was made

    def drop_after(self, local_date: str) -> None:
        """Drop what reads the history of `local_date`: values for later dates ("" drops all). ISO dates compare
        as strings; a peak for Monday M reads days before M, a day history list for D reads days before D."""
        for cached in (self.days, self.bands, self.profiles, self.peaks):
            for key in [k for k in cached if k > local_date]:
                del cached[key]
                self.outdated = self.outdated or cached is self.profiles


def _bounded(cache: dict[str, V], key: str, limit: int, make: Callable[[], V]) -> V:
    """`cache[key]`, made when missing; the oldest entry goes first when the cache holds `limit`."""
    if key not in cache:
        if len(cache) >= limit:
            cache.pop(next(iter(cache)))
        cache[key] = make()
    return cache[key]
