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
from datetime import date, timedelta
from typing import Any, TypeVar

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

SLOW_CACHE = 4096  # cached peaks and day profiles
REFRESH = 24  # uses of a cached peak or profile before it is computed again (about two hours of live windows)
REFRESH_UNKNOWN = 3  # … and of one that found no baseline yet
SUPPRESSED_FRACTION = 0.5  # a window below k_min counts as k_min × this, whatever its count (see above)
T = TypeVar("T")


def _known(value: Any) -> bool:
    if isinstance(value, list):
        return any(band is not None for _, band in value)
    return value is not None
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
    """

    def __init__(self, registry: Registry, lookup: HistoryLookup, *, window_ms: int, weeks: int,
                 min_sensors: int, k_min: int) -> None:
        self.registry, self.lookup = registry, lookup
        self.window_ms, self.weeks, self.min_sensors, self.k_min = window_ms, weeks, min_sensors, k_min
        self._slow: dict[tuple[str, str, str], tuple[int, Any]] = {}  # key → (uses, value)
        self._day_cache: dict[tuple[str, date, str], list[dict[str, list[int]]]] = {}

    def forget(self) -> None:
        """Drop cached day histories; call after the history may have changed (the worker: per message)."""
        self._day_cache.clear()

    def retry(self, zone_id: str) -> bool:
        """Drop the zone's cached peaks and day profiles, so the next use computes them again; True if there were
        any. For history that has just arrived (a replay, the demo's weeks): counted in uses, a profile made
        before it would stay for `REFRESH_UNKNOWN` more live windows if it found nothing (15 min at 5-minute
        windows), or `REFRESH` (2 hours) if it found a few days; the caller limits how often (a scan is costly)."""
        stale = [key for key in self._slow if key[1] == zone_id]
        for key in stale:
            del self._slow[key]
        return bool(stale)

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
        key = (zone_id, day, kind)
        if key not in self._day_cache:
            country = self.registry.city_of_zone[zone_id].country
            days = (day - timedelta(days=back) for back in range(1, 7 * self.weeks + 22))
            self._day_cache[key] = [self.lookup(zone_id, d.isoformat()) for d in days
                                    if baseline_type_of_date(d, country) == kind]
        return self._day_cache[key]

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
        city = self.registry.city_of_zone[zone_id]
        local = local_time(start_ms, city.timezone)
        kind = baseline_day_type(start_ms, city.timezone, city.country)
        days = self._days(zone_id, local.date(), kind)
        return band(self._values(days, slot_of_day(start_ms, city.timezone, self.window_ms)))

    def p50(self, zone_id: str, start_ms: int) -> float | None:
        b = self.band(zone_id, start_ms)
        return b.p50 if b else None

    def last_week(self, zone_id: str, start_ms: int) -> float | None:
        city = self.registry.city_of_zone[zone_id]
        day = local_time(start_ms, city.timezone).date() - timedelta(days=7)
        return self._value(zone_id, day.isoformat(), slot_of_day(start_ms, city.timezone, self.window_ms))

    def peak(self, zone_id: str, start_ms: int) -> float | None:
        """The zone's usual weekly peak per window: the highest p50 over every day type and slot.

        Per zone and local ISO week, from the weeks before that week's Monday; recomputed every `REFRESH`
        uses, since history may still be arriving (a replay alongside live) and a full scan is costly.
        """
        city = self.registry.city_of_zone[zone_id]
        local_day = local_time(start_ms, city.timezone).date()
        monday = local_day - timedelta(days=local_day.weekday())

        def compute() -> float | None:
            slots = range(slots_per_day(self.window_ms))
            return weekly_peak([band(self._values(days, slot)) for kind in WEEKDAYS
                                for days in [self._days(zone_id, monday + timedelta(days=1), kind)] for slot in slots])

        return self._cached(("peak", zone_id, monday.isoformat()), compute)

    def day_windows(self, zone_id: str, at_ms: int) -> list[int]:
        """Starts of every window of the local day holding `at_ms` (23 or 25 hours on clock-change days)."""
        first, end = day_bounds(at_ms, self.registry.city_of_zone[zone_id].timezone)
        return list(range(first, end, self.window_ms))

    def day_profile(self, zone_id: str, at_ms: int) -> list[tuple[int, Band | None]]:
        """The usual band of every window of the local day holding `at_ms` (refreshed like `peak`)."""
        tz = self.registry.city_of_zone[zone_id].timezone
        return self._cached(("profile", zone_id, local_time(at_ms, tz).date().isoformat()),
                            lambda: [(s, self.band(zone_id, s)) for s in self.day_windows(zone_id, at_ms)])

    def _cached(self, key: tuple[str, str, str], compute: Callable[[], T]) -> T:
        hit = self._slow.get(key)
        # "nothing known yet" is asked again soon: history may be arriving (a replay beside live)
        if hit is None or hit[0] >= (REFRESH if _known(hit[1]) else REFRESH_UNKNOWN):
            if hit is None and len(self._slow) > SLOW_CACHE:
                self._slow.pop(next(iter(self._slow)))
            hit = (0, compute())
        self._slow[key] = (hit[0] + 1, hit[1])
        result: T = hit[1]  # the key's kind decides the value's type
        return result
