"""The usual for a zone window, read from the `d|` history of final windows: bands, last week, weekly peak."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

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

PEAK_CACHE = 4096  # (zone, week) entries
# (zone, local date) → {slot: [visitors, sensors]}: the engine's history of one local day
HistoryLookup = Callable[[str, str], dict[str, list[int]]]


def baseline_type_of_date(d: date, country: str) -> str:
    if d in public_holidays(country, d.year):
        return HOLIDAY_BASELINE
    return WEEKDAYS[d.weekday()]


class UsualModel:
    """Bands per zone, day type and local time of day over the last `weeks` same-type days.

    Only windows that had enough sensors (P7) are observations; suppressed-below-k windows are, since their
    exact counts are the usual of a quiet hour. Reads history only, so it is pure given the lookup.
    """

    def __init__(self, registry: Registry, lookup: HistoryLookup, *, window_ms: int, weeks: int,
                 min_sensors: int) -> None:
        self.registry, self.lookup = registry, lookup
        self.window_ms, self.weeks, self.min_sensors = window_ms, weeks, min_sensors
        self._peaks: dict[tuple[str, str], float | None] = {}
        self._day_cache: dict[tuple[str, date, str], list[dict[str, list[int]]]] = {}

    def forget(self) -> None:
        """Drop cached day histories; call after the history may have changed (the worker: per message)."""
        self._day_cache.clear()

    def calendar(self, zone_id: str, start_ms: int) -> tuple[str, int]:
        """(history day key, slot) of a window: the engine's `Calendar`."""
        tz = self.registry.city_of_zone[zone_id].timezone
        return observation_key(start_ms, tz), slot_of_day(start_ms, tz, self.window_ms)

    def _value(self, zone_id: str, day: str, slot: int) -> int | None:
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

    def _values(self, days: list[dict[str, list[int]]], slot: int) -> list[int]:
        out: list[int] = []
        for hist in days:
            cell = hist.get(str(slot))
            if cell is not None and cell[1] >= self.min_sensors:
                out.append(cell[0])
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
        v = self._value(zone_id, day.isoformat(), slot_of_day(start_ms, city.timezone, self.window_ms))
        return float(v) if v is not None else None

    def peak(self, zone_id: str, start_ms: int) -> float | None:
        """The zone's usual weekly peak per window: the highest p50 over every day type and slot.

        Computed once per zone and local ISO week, from the eight weeks before that week's Monday: it changes
        slowly, and a replay of months of history would otherwise spend most of its time here.
        """
        city = self.registry.city_of_zone[zone_id]
        local_day = local_time(start_ms, city.timezone).date()
        today = local_day - timedelta(days=local_day.weekday())  # the week's Monday
        key = (zone_id, today.isoformat())
        if key not in self._peaks:
            slots = range(slots_per_day(self.window_ms))
            bands = [band(self._values(days, slot)) for kind in WEEKDAYS
                     for days in [self._days(zone_id, today + timedelta(days=1), kind)] for slot in slots]
            peak = weekly_peak(bands)
            if peak is None:
                return None  # no baseline yet: ask again next time, history may be arriving
            if len(self._peaks) > PEAK_CACHE:  # live and replayed weeks interleave: keep many, not just one
                self._peaks.pop(next(iter(self._peaks)))
            self._peaks[key] = peak
        return self._peaks[key]

    def day_windows(self, zone_id: str, at_ms: int) -> list[int]:
        """Starts of every window of the local day holding `at_ms` (23 or 25 hours on clock-change days)."""
        first, end = day_bounds(at_ms, self.registry.city_of_zone[zone_id].timezone)
        return list(range(first, end, self.window_ms))

    def day_profile(self, zone_id: str, at_ms: int) -> list[tuple[int, Band | None]]:
        """The usual band of every window of the local day holding `at_ms`. Not cached across messages:
        history keeps arriving (a replay fills it while live runs), and it costs one day scan per zone."""
        return [(s, self.band(zone_id, s)) for s in self.day_windows(zone_id, at_ms)]
