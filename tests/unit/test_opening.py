"""Opening hours and the `closed` level: parsing, local wall-clock time (DST, holidays), publication, freshness."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.errors import RegistryError
from streams.freshness import refresh, unknown_live
from streams.opening import OpeningHours, closed_throughout, is_open, parse_spans
from streams.publication import PrivacyPolicy, live_object
from streams.registry import parse_registry
from streams.windows import Cell

TZ = "Europe/Brussels"
REG = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    opening_hours: {mon: "10:00-18:00", tue: "10:00-18:00", wed: "10:00-18:00", thu: "10:00-18:00",
                    fri: "10:00-18:00", sat: "09:30-12:30, 13:30-18:00", sun: closed}
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: s-1, kind: street}, {id: s-2, kind: street}, {id: s-3, kind: street}]
      - id: mechelen-vismarkt
        name: Vismarkt
        opening_hours: always
        sensors: [{id: s-4, kind: street}, {id: s-5, kind: street}, {id: s-6, kind: street}]
""")
CITY = REG.cities[0]
BRUUL, VISMARKT = CITY.zones
POLICY = PrivacyPolicy(k_min=15, min_sensors=3)
MIN = 60_000


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("text", "spans"), [
    ("10:00-18:00", ((600, 1080),)),
    ("13:30-18:00, 09:30-12:30", ((570, 750), (810, 1080))),
    ("closed", ()),
    ("00:00-24:00", ((0, 1440),)),
])
def test_spans(text: str, spans: tuple[tuple[int, int], ...]) -> None:
    assert parse_spans(text) == spans


@pytest.mark.parametrize(("text", "error"), [
    ("10-18", "not a span"), ("18:00-10:00", "after the start"), ("10:00-12:00, 11:00-13:00", "overlap"),
    ("22:00-02:00", "after the start"), ("25:00-26:00", "not a span"),
])
def test_bad_spans(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_spans(text)


@pytest.mark.parametrize(("when", "open_"), [
    ("2026-11-27T09:00:00", True),  # Friday 10:00 CET
    ("2026-11-27T08:59:00", False),  # Friday 09:59
    ("2026-11-27T16:59:00", True),  # 17:59
    ("2026-11-27T17:00:00", False),  # 18:00: spans are half-open
    ("2026-11-28T12:00:00", False),  # Saturday 13:00: lunch break
    ("2026-11-29T12:00:00", False),  # Sunday
    ("2026-12-25T12:00:00", False),  # Christmas, a Friday: a holiday follows Sunday's hours
    ("2026-07-03T08:30:00", True),  # Friday 10:30 CEST: summer time is local time too
    ("2026-03-28T08:45:00", True),  # Saturday before the March change, 09:45 CET
    ("2026-03-30T08:15:00", True),  # Monday after it, 10:15 CEST (08:15Z)
    ("2026-03-30T07:45:00", False),  # 09:45 CEST
])
def test_is_open_by_local_wall_clock(when: str, open_: bool) -> None:
    assert is_open(BRUUL.opening, utc(when), TZ, "BE") is open_
    assert is_open(VISMARKT.opening, utc(when), TZ, "BE")  # `always`: never closed


def test_holiday_entry_overrides_sunday() -> None:
    hours = OpeningHours({**dict(BRUUL.opening.days), "holiday": parse_spans("12:00-17:00")})  # type: ignore[union-attr]
    assert is_open(hours, utc("2026-12-25T12:00:00"), TZ, "BE")
    assert not is_open(hours, utc("2026-11-29T12:00:00"), TZ, "BE")


def test_closed_throughout_needs_every_minute_closed() -> None:
    assert closed_throughout(BRUUL.opening, utc("2026-11-27T17:00:00"), utc("2026-11-27T17:05:00"), TZ, "BE")
    assert not closed_throughout(BRUUL.opening, utc("2026-11-27T16:55:00"), utc("2026-11-27T17:05:00"), TZ, "BE")
    assert not closed_throughout(None, 0, 5 * MIN, TZ, "BE")


def cells(zone: str, start: int, visitors: int, sensors: int = 3) -> list[Cell]:
    return [Cell(zone, start, start + 5 * MIN, visitors, sensors, sensors * 5 * MIN)]


@pytest.mark.parametrize(("visitors", "sensors", "level"), [
    (3, 3, "closed"),  # below k at night in a shut street: closed, not quiet
    (0, 1, "closed"),  # counters off at night
    (40, 3, "normal"),  # people there after all: show it (40 in 5 min = 480/h)
])
def test_a_quiet_window_outside_opening_hours_is_closed(visitors: int, sensors: int, level: str) -> None:
    night = utc("2026-11-27T02:00:00")
    obj = live_object(BRUUL, CITY, cells(BRUUL.id, night, visitors, sensors), POLICY, window_ms=5 * MIN,
                      grace_ms=MIN)
    assert obj["level"]["key"] == level
    assert obj["level"]["label"]["nl"] == {"closed": "Gesloten", "normal": "Normaal"}[level]
    assert obj["privacy"]["suppressed"] is (visitors < 15 or sensors < 3)


def test_inside_opening_hours_below_k_stays_quiet_and_few_sensors_unknown() -> None:
    noon = utc("2026-11-27T11:00:00")
    assert live_object(BRUUL, CITY, cells(BRUUL.id, noon, 3), POLICY, window_ms=5 * MIN,
                       grace_ms=MIN)["level"]["key"] == "quiet"
    assert live_object(BRUUL, CITY, cells(BRUUL.id, noon, 30, 1), POLICY, window_ms=5 * MIN,
                       grace_ms=MIN)["level"]["key"] == "unknown"
    night = utc("2026-11-27T02:00:00")
    assert live_object(VISMARKT, CITY, cells(VISMARKT.id, night, 3), POLICY, window_ms=5 * MIN,
                       grace_ms=MIN)["level"]["key"] == "quiet"


def test_stale_data_shows_closed_only_when_the_zone_is_closed_now() -> None:
    obj = live_object(BRUUL, CITY, cells(BRUUL.id, utc("2026-11-27T16:00:00"), 300), POLICY, window_ms=5 * MIN,
                      grace_ms=MIN)
    later = utc("2026-11-27T20:00:00")
    assert refresh(obj, later, 900, 300, 60, closed_now=True)["level"]["key"] == "closed"
    assert refresh(obj, later, 900, 300, 60)["level"]["key"] == "unknown"
    assert unknown_live(BRUUL, CITY, later, closed_now=True)["level"]["key"] == "closed"


def test_registry_names_the_line_of_bad_opening_hours() -> None:
    text = """
cities:
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    opening_hours: {mon: "10:00-18:00", tue: "10:00-18:00", wed: "10:00-18:00", thu: "10:00-18:00",
                    fri: "10:00-18:00", sat: "10:00-1800"}
    zones:
      - id: leuven-x
        name: X
        sensors: [{id: s-1, kind: street}, {id: s-2, kind: street}, {id: s-3, kind: street}]
"""
    with pytest.raises(RegistryError) as err:
        parse_registry(text)
    msg = str(err.value)
    assert "line 8" in msg
    assert "'10:00-1800' is not a span" in msg
    assert "missing 'sun'" in msg
