"""Day types, public holidays and local time-of-day slots, including both clock changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.daytype import (
    DAY_TYPES,
    baseline_day_type,
    day_type,
    has_holiday_calendar,
    local_date,
    observation_key,
    public_holidays,
    slot_of_day,
    slots_per_day,
)
from streams.timegrid import parse_ts

BXL = "Europe/Brussels"
MIN = 60_000
W5 = 5 * MIN
HOUR = 60 * MIN
SLOT_14H = 14 * 12  # 14:00 in 5-minute windows


@pytest.mark.parametrize(
    ("when", "country", "kind", "baseline"),
    [
        ("2026-11-23T10:00:00+01:00", "BE", "mon", "mon"),
        ("2026-11-24T10:00:00+01:00", "BE", "tue", "tue"),
        ("2026-11-25T10:00:00+01:00", "BE", "wed", "wed"),
        ("2026-11-26T10:00:00+01:00", "BE", "thu", "thu"),
        ("2026-11-27T14:20:00+01:00", "BE", "fri", "fri"),  # the contract's example
        ("2026-11-28T14:00:00+01:00", "BE", "sat", "sat"),
        ("2026-11-29T14:00:00+01:00", "BE", "sun", "sun"),
        ("2026-11-27T23:30:00Z", "BE", "sat", "sat"),  # Friday in UTC, already Saturday 00:30 in Brussels
        ("2026-04-06T14:00:00+02:00", "BE", "holiday", "sun"),  # Easter Monday 2026
        ("2026-04-07T14:00:00+02:00", "BE", "tue", "tue"),  # the day after is a normal Tuesday
        ("2026-04-05T14:00:00+02:00", "BE", "holiday", "sun"),  # Easter Sunday is listed too: a Sunday anyway
        ("2026-05-14T14:00:00+02:00", "BE", "holiday", "sun"),  # Ascension Day (a Thursday)
        ("2026-05-25T14:00:00+02:00", "BE", "holiday", "sun"),  # Whit Monday
        ("2026-07-21T14:00:00+02:00", "BE", "holiday", "sun"),  # national day, a Tuesday in 2026
        ("2026-07-20T23:59:00+02:00", "BE", "mon", "mon"),  # the minute before it
        ("2026-07-21T00:00:00+02:00", "BE", "holiday", "sun"),  # local midnight starts the holiday
        ("2026-07-20T22:30:00Z", "BE", "holiday", "sun"),  # 00:30 local on 21 July, still the 20th in UTC
        ("2026-11-11T14:00:00+01:00", "BE", "holiday", "sun"),  # Armistice Day
        ("2026-12-25T14:00:00+01:00", "BE", "holiday", "sun"),  # Christmas (a Friday)
        ("2026-12-26T14:00:00+01:00", "BE", "sat", "sat"),  # Boxing Day is no public holiday in Belgium
        ("2026-04-27T14:00:00+02:00", "NL", "holiday", "sun"),  # King's Day: the country decides …
        ("2026-04-27T14:00:00+02:00", "BE", "mon", "mon"),  # … not the time zone
        ("2026-07-04T14:00:00+02:00", "XX", "sat", "sat"),  # a country `holidays` does not know: no holidays
    ],
)
def test_day_type(when: str, country: str, kind: str, baseline: str) -> None:
    ts = parse_ts(when)
    assert day_type(ts, BXL, country) == kind
    assert baseline_day_type(ts, BXL, country) == baseline


def test_day_type_follows_the_city_time_zone() -> None:
    ts = parse_ts("2026-07-11T03:00:00Z")  # Saturday 05:00 in Brussels, Friday 23:00 in New York
    assert day_type(ts, BXL, "BE") == "sat"
    assert day_type(ts, "America/New_York", "US") == "fri"
    assert day_type(parse_ts("2026-07-04T14:00:00-04:00"), "America/New_York", "US") == "holiday"


def test_holiday_calendars() -> None:
    days = ("01-01", "04-05", "04-06", "05-01", "05-14", "05-24", "05-25", "07-21", "08-15", "11-01", "11-11",
            "12-25")  # the ten legal ones plus Easter Sunday and Whit Sunday
    assert public_holidays("BE", 2026) == {date.fromisoformat(f"2026-{d}") for d in days}
    assert public_holidays("XX", 2026) == frozenset()
    assert has_holiday_calendar("BE")
    assert not has_holiday_calendar("XX")


@pytest.mark.parametrize(
    ("when", "window", "slot"),
    [
        ("2026-11-28T14:00:00+01:00", W5, SLOT_14H),  # a normal (winter) Saturday
        ("2026-03-28T14:00:00+01:00", W5, SLOT_14H),  # the Saturday before the March change (CET)
        ("2026-03-29T14:00:00+02:00", W5, SLOT_14H),  # the change day itself (CEST), same slot
        ("2026-04-04T14:00:00+02:00", W5, SLOT_14H),  # the Saturday after it (CEST): same slot, UTC 1 h earlier
        ("2026-10-24T14:00:00+02:00", W5, SLOT_14H),  # the Saturday before the October change (CEST)
        ("2026-10-25T14:00:00+01:00", W5, SLOT_14H),  # the October change day, afternoon in CET
        ("2026-10-31T14:00:00+01:00", W5, SLOT_14H),  # the Saturday after it (CET)
        ("2026-10-24T14:04:59+02:00", W5, SLOT_14H),  # anywhere in the window
        ("2026-11-28T00:00:00+01:00", W5, 0),  # local midnight
        ("2026-11-28T23:55:00+01:00", W5, 287),  # last window of a day
        ("2026-03-29T01:55:00+01:00", W5, 23),  # last window before the missing hour
        ("2026-03-29T03:00:00+02:00", W5, 36),  # first window after it: slots 24–35 do not exist that day
        ("2026-10-25T02:30:00+02:00", W5, 30),  # repeated hour, first pass (CEST)
        ("2026-10-25T02:30:00+01:00", W5, 30),  # repeated hour, second pass (CET): the same slot
        ("2026-11-28T14:00:00+01:00", 15 * MIN, 56),  # quarter hours
        ("2026-11-28T14:59:00+01:00", HOUR, 14),  # hourly windows
    ],
)
def test_slot_of_day(when: str, window: int, slot: int) -> None:
    assert slot_of_day(parse_ts(when), BXL, window) == slot


def _day_slots(first_utc: str, tz: str = BXL) -> list[tuple[int, str]]:
    """(slot, observation key) of every 5-minute window of the local day starting at `first_utc`."""
    t0 = parse_ts(first_utc)
    day = local_date(t0, tz)
    out, t = [], t0
    while local_date(t, tz) == day:
        out.append((slot_of_day(t, tz, W5), observation_key(t, tz)))
        t += W5
    return out


def test_march_change_day_misses_an_hour() -> None:
    slots = _day_slots("2026-03-28T23:00:00Z")  # 00:00 CET on Sunday 29 March
    assert len(slots) == 276  # 23 hours
    assert {s for s, _ in slots} == set(range(288)) - set(range(24, 36))  # 02:00–02:55 never happen
    assert {k for _, k in slots} == {"2026-03-29"}


def test_october_change_day_repeats_an_hour() -> None:
    slots = _day_slots("2026-10-24T22:00:00Z")  # 00:00 CEST on Sunday 25 October
    assert len(slots) == 300  # 25 hours
    assert {s for s, _ in slots} == set(range(288))
    twice = [s for s in range(288) if sum(1 for x, _ in slots if x == s) == 2]
    assert twice == list(range(24, 36))  # 02:00–02:55 happen twice, as the same slots
    keys = {k for s, k in slots if s == 30}
    assert keys == {"2026-10-25", "2026-10-25.2"}  # both passes are observations, under separate keys
    assert "2026-10-25" < "2026-10-25.2" < "2026-10-26"  # and the keys keep the history in time order


@pytest.mark.parametrize(
    ("when", "key"),
    [
        ("2026-10-25T00:30:00Z", "2026-10-25"),  # 02:30 CEST, first pass
        ("2026-10-25T01:30:00Z", "2026-10-25.2"),  # 02:30 CET, second pass
        ("2026-10-25T02:30:00Z", "2026-10-25"),  # 03:30 CET, after the repeated hour
        ("2026-11-27T23:30:00Z", "2026-11-28"),  # the local date, not the UTC one
    ],
)
def test_observation_key(when: str, key: str) -> None:
    assert observation_key(parse_ts(when), BXL) == key


@given(ts=st.integers(0, 4_102_444_800_000), window=st.sampled_from([MIN, W5, 15 * MIN, HOUR]),
       tz=st.sampled_from([BXL, "UTC", "America/New_York", "Australia/Adelaide", "Asia/Kolkata"]))
def test_slot_and_day_type_are_in_range(ts: int, window: int, tz: str) -> None:
    assert 0 <= slot_of_day(ts, tz, window) < slots_per_day(window)
    assert day_type(ts, tz, "BE") in DAY_TYPES
    assert baseline_day_type(ts, tz, "BE") != "holiday"


@given(weeks=st.integers(-300, 300), minute=st.integers(0, 24 * 60 - 1))
def test_same_wall_clock_time_is_the_same_slot_every_week(weeks: int, minute: int) -> None:
    # Saturday 28 November 2026 at `minute` past local midnight, moved by whole weeks of wall-clock time
    local = datetime(2026, 11, 28, tzinfo=ZoneInfo(BXL)) + timedelta(weeks=weeks, minutes=minute)
    ts = int(local.timestamp() * 1000)  # a wall-clock time in the missing hour maps to the hour after it
    if local.replace(fold=0).utcoffset() == local.replace(fold=1).utcoffset():  # not a gap or fold minute
        assert slot_of_day(ts, BXL, W5) == minute // 5
        assert day_type(ts, BXL, "XX") == "sat"
