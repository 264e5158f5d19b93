"""Day types and time-of-day slots in a city's own time zone: the keys of the usual band.

Everything here reads the city's wall clock, not UTC, so "Saturday 14:00" is the same slot every week, also in
the weeks of the March and October clock changes. Public holidays come from the `holidays` package.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOLIDAY = "holiday"
DAY_TYPES = (*WEEKDAYS, HOLIDAY)
# The day type whose baseline a public holiday borrows: shops are closed on Belgian holidays, as on Sundays.
HOLIDAY_BASELINE = "sun"
DAY_MS = 86_400_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def local_time(ts_ms: int, tz: str) -> datetime:
    """The wall-clock time in `tz` at epoch ms `ts_ms`; `fold` is 1 in the second pass of a repeated hour."""
    return (_EPOCH + timedelta(milliseconds=ts_ms)).astimezone(ZoneInfo(tz))


def local_date(ts_ms: int, tz: str) -> str:
    """The local date in `tz` as ISO text, e.g. "2026-10-25"."""
    return local_time(ts_ms, tz).date().isoformat()


@lru_cache(maxsize=256)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """Public holidays of `country` (ISO 3166 alpha-2) in `year`; empty for a country `holidays` does not know.

    Cached per (country, year): the calendar of a past or coming year does not change while we run. A registry
    check should call `has_holiday_calendar` so that an unknown country is reported, not silently holiday-free.
    """
    try:
        return frozenset(holidays.country_holidays(country, years=year).keys())
    except NotImplementedError:  # the package's way of saying "no such country"
        return frozenset()


def has_holiday_calendar(country: str) -> bool:
    """True when the `holidays` package has a calendar for `country`."""
    return country in holidays.list_supported_countries()


def day_type(ts_ms: int, tz: str, country: str) -> str:
    """"mon" … "sun" from the local date in `tz`, or "holiday" on a public holiday of `country`."""
    d = local_time(ts_ms, tz).date()
    if d in public_holidays(country, d.year):
        return HOLIDAY
    return WEEKDAYS[d.weekday()]


def baseline_day_type(ts_ms: int, tz: str, country: str) -> str:
    """The day type whose usual band applies: `day_type`, with a public holiday counted as a Sunday.

    Our choice for Belgium and its neighbours: shops are closed on public holidays and streets look like a
    Sunday, and with ten or so holidays a year a holiday band of its own would need years of data before it
    had enough observations. A holiday's counts are therefore recorded under "sun" too (they are one of the
    eight most recent "Sunday-like" days). Should the data show otherwise for a city (a tourist square that
    is busy on holidays), keep a separate "holiday" history from `day_type` and prefer it once its band has
    enough observations; the "sun" band remains the fallback.
    """
    kind = day_type(ts_ms, tz, country)
    return HOLIDAY_BASELINE if kind == HOLIDAY else kind


def slot_of_day(ts_ms: int, tz: str, window_ms: int) -> int:
    """Index of the window starting at `ts_ms` within its local day, by local wall-clock time.

    slot = (local milliseconds since local midnight) // window_ms, so 14:00 is slot 168 of 5-minute windows
    on every day, including the days of the clock changes (a UTC-based slot would shift by an hour there).
    Pass the window's start. At the clock changes:

    - October (02:00–03:00 happens twice): the two instants with the same wall-clock time map to the same
      slot, and both are observations of that slot. `observation_key` tells them apart for the history.
    - March (02:00–03:00 does not exist): those slots simply get no observation that day; their band comes
      from the other weeks. The local day has 23 hours, 276 five-minute windows; the October one has 300.

    `window_ms` should divide a day (60 000, 300 000, 900 000, 3 600 000 …); in zones with an offset that
    is not a whole number of windows the slot is still well defined, it is the window's local start floored.
    """
    local = local_time(ts_ms, tz)
    ms = ((local.hour * 60 + local.minute) * 60 + local.second) * 1000 + local.microsecond // 1000
    return ms // window_ms


def slots_per_day(window_ms: int) -> int:
    """Number of slots of a regular (24-hour) local day."""
    return -(-DAY_MS // window_ms)


def observation_key(ts_ms: int, tz: str) -> str:
    """The history key of an observation: its local ISO date, and "<date>.2" in the repeated autumn hour.

    The second pass of the repeated hour gets its own key so that it does not overwrite the first pass's
    observation of the same slot; it sorts after the date and before the next date ("2026-10-25" <
    "2026-10-25.2" < "2026-10-26"), so keeping the most recent keys and "before a date" filters still work.
    """
    local = local_time(ts_ms, tz)
    day = local.date().isoformat()
    return f"{day}.2" if local.fold else day


def day_bounds(ts_ms: int, tz: str) -> tuple[int, int]:
    """`[first, end)` in epoch ms of the local day holding `ts_ms` (23 or 25 hours on clock-change days)."""
    d = local_time(ts_ms, tz).date()
    zone = ZoneInfo(tz)
    start = datetime(d.year, d.month, d.day, tzinfo=zone)
    nxt = d + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return (start - _EPOCH) // timedelta(milliseconds=1), (end - _EPOCH) // timedelta(milliseconds=1)
