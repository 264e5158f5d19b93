"""The footfall model and the batches it produces: shape of a day, determinism, DST, contract shape."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import fastjsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from streams.errors import DrukteError
from streams.footfall import FootfallParser, IngestPolicy
from streams.levels import level_for_rate
from streams.registry import parse_registry
from streams.simulation import (
    HOSPITALITY,
    SATURDAY,
    SHOPPING,
    SUNDAY,
    WEEKDAY,
    batches,
    city_of,
    day_type,
    expected_per_hour,
    local_time,
    peak_per_hour,
    profile,
    zone_kind,
)
from streams.timegrid import parse_ts

BRUSSELS = ZoneInfo("Europe/Brussels")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SEED = 42

REGISTRY = parse_registry("""
cities:
  - id: antwerpen
    name: Antwerpen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: antwerpen-meir
        name: Meir
        levels: {normal: 2000, busy: 6000, very_busy: 10000}
        sensors:
          - {id: antw-meir-01, kind: street}
          - {id: antw-meir-02, kind: street}
          - {id: antw-meir-03, kind: street}
          - {id: antw-meir-04, kind: entrance}
  - id: roeselare
    name: Roeselare
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: roeselare-manestraat
        name: Manestraat
        levels: {normal: 40, busy: 250, very_busy: 700}
        sensors:
          - {id: roes-manestraat-01, kind: street}
          - {id: roes-manestraat-02, kind: street}
          - {id: roes-manestraat-03, kind: street}
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: leuven-diestsestraat
        name: Diestsestraat
        sensors:
          - {id: leuv-diest-01, kind: street}
          - {id: leuv-diest-02, kind: street}
          - {id: leuv-diest-03, kind: entrance}
      - id: leuven-oude-markt
        name: Oude Markt
        sensors:
          - {id: leuv-oudemarkt-01, kind: street}
          - {id: leuv-oudemarkt-02, kind: street}
          - {id: leuv-oudemarkt-03, kind: street}
""")
ANTWERPEN = city_of(REGISTRY, "antwerpen")
MEIR, MANESTRAAT = REGISTRY.zones["antwerpen-meir"], REGISTRY.zones["roeselare-manestraat"]
DIEST, OUDE_MARKT = REGISTRY.zones["leuven-diestsestraat"], REGISTRY.zones["leuven-oude-markt"]


def ms(text: str) -> int:
    return parse_ts(text)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BRUSSELS)


def visitors_by_zone(bs: list[dict[str, Any]]) -> dict[str, int]:
    """What the worker counts per zone: street in + out, entrance in (duplicates counted once)."""
    seen: set[tuple[str, str]] = set()
    out: dict[str, int] = {}
    for b in bs:
        for r in b["readings"]:
            if (r["sensor_id"], r["start"]) in seen:
                continue
            seen.add((r["sensor_id"], r["start"]))
            sensor = REGISTRY.sensors[r["sensor_id"]]
            n = r["in"] + r["out"] if sensor.kind == "street" else r["in"]
            out[sensor.zone_id] = out.get(sensor.zone_id, 0) + n
    return out


def hour_total(city_id: str, zone_id: str, start: str, seed: int = SEED) -> int:
    t = ms(start)
    return visitors_by_zone(batches(REGISTRY, city_id, t, t + HOUR_MS, seed, outage_rate=0.0,
                                    duplicate_rate=0.0))[zone_id]


# --- calendar ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("d", "country", "expected"), [
    (date(2026, 11, 24), "BE", WEEKDAY),   # an ordinary Tuesday
    (date(2026, 11, 28), "BE", SATURDAY),
    (date(2026, 11, 29), "BE", SUNDAY),
    (date(2026, 11, 11), "BE", SUNDAY),    # Armistice Day, a Wednesday: shops closed
    (date(2026, 11, 11), "NL", WEEKDAY),   # not a holiday outside Belgium
    (date(2026, 7, 21), "BE", SUNDAY),     # national day
])
def test_day_type(d: date, country: str, expected: str) -> None:
    assert day_type(d, country) == expected


@pytest.mark.parametrize(("zone", "expected"), [
    (MEIR, SHOPPING),
    (DIEST, SHOPPING),
    (OUDE_MARKT, HOSPITALITY),  # 'markt': cafés all round the square
])
def test_zone_kind(zone: Any, expected: str) -> None:
    assert zone_kind(zone) == expected


# --- shape of a day ----------------------------------------------------------------------------------------

def test_saturday_beats_tuesday_beats_sunday_and_night_in_counts() -> None:
    sat = hour_total("antwerpen", "antwerpen-meir", "2026-11-28T14:30:00+01:00")
    tue = hour_total("antwerpen", "antwerpen-meir", "2026-11-24T14:30:00+01:00")
    sun = hour_total("antwerpen", "antwerpen-meir", "2026-11-29T14:30:00+01:00")
    night = hour_total("antwerpen", "antwerpen-meir", "2026-11-24T02:30:00+01:00")
    assert sat > 1.4 * tue
    assert tue > 1.8 * sun
    assert sun > 3 * night
    assert night < MEIR.levels.normal  # quiet at night


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), week=st.integers(0, 60))
def test_ordering_holds_for_every_seed_and_week(seed: int, week: int) -> None:
    base = ms("2026-01-06T15:00:00+01:00") + week * 7 * DAY_MS  # a Tuesday, 15:00 (winter time)
    tue, sat, sun = base, base + 4 * DAY_MS, base + 5 * DAY_MS
    if any(day_type(local_time(t, "Europe/Brussels").date(), "BE") != kind
           for t, kind in ((tue, WEEKDAY), (sat, SATURDAY), (sun, SUNDAY))):
        return  # a public holiday in that week
    rate = [expected_per_hour(ANTWERPEN, MEIR, t, seed) for t in (sat, tue, sun, base - 12 * HOUR_MS)]
    assert rate[0] > rate[1] > rate[2] > rate[3] > 0


@pytest.mark.parametrize(("when", "lo", "hi"), [
    ("2026-11-28T15:00", 0.95, 1.0),   # Saturday peak
    ("2026-11-24T12:45", 0.55, 0.60),  # Tuesday lunchtime bump
    ("2026-11-24T14:30", 0.45, 0.50),  # Tuesday early-afternoon dip
    ("2026-11-24T17:15", 0.60, 0.65),  # Tuesday after-work bump
    ("2026-11-24T19:30", 0.10, 0.15),  # shops closed
    ("2026-11-29T15:00", 0.15, 0.25),  # quiet Sunday
    ("2026-11-24T03:00", 0.00, 0.02),  # night
])
def test_shopping_profile_table(when: str, lo: float, hi: float) -> None:
    assert lo <= profile(SHOPPING, local(when)) <= hi


def test_lunch_and_after_work_bumps_are_local_maxima() -> None:
    def p(hhmm: str) -> float:
        return profile(SHOPPING, local(f"2026-11-24T{hhmm}"))

    assert p("12:45") > max(p("11:30"), p("14:30"))
    assert p("17:15") > max(p("14:30"), p("18:30"))


def test_hospitality_has_a_late_evening_tail_past_midnight() -> None:
    thu_23 = local("2026-11-26T23:00")
    fri_01 = local("2026-11-27T01:00")  # Thursday's night, after midnight
    assert profile(HOSPITALITY, thu_23) > 0.5
    assert profile(HOSPITALITY, thu_23) > 10 * profile(SHOPPING, thu_23)
    assert profile(HOSPITALITY, fri_01) > 5 * profile(SHOPPING, fri_01)
    # Thursday night out beats a Monday night
    assert profile(HOSPITALITY, thu_23) > 2 * profile(HOSPITALITY, local("2026-11-23T23:00"))
    oude_markt = hour_total("leuven", "leuven-oude-markt", "2026-11-26T22:30:00+01:00")
    diest = hour_total("leuven", "leuven-diestsestraat", "2026-11-26T22:30:00+01:00")
    assert oude_markt > 5 * diest


def test_scale_comes_from_level_thresholds() -> None:
    assert peak_per_hour(MEIR) == pytest.approx(11500)
    assert peak_per_hour(MANESTRAAT) == pytest.approx(805)
    meir = hour_total("antwerpen", "antwerpen-meir", "2026-11-28T14:30:00+01:00")
    mane = hour_total("roeselare", "roeselare-manestraat", "2026-11-28T14:30:00+01:00")
    assert meir > 8 * mane


@pytest.mark.parametrize("zone", [MEIR, MANESTRAAT])
def test_levels_span_quiet_to_very_busy_over_a_saturday(zone: Any) -> None:
    start = ms("2026-11-28T00:00:00+01:00")
    levels = {
        level_for_rate(peak_per_hour(zone) * profile(SHOPPING, local_time(start + m * 60_000, "Europe/Brussels")),
                       zone.levels)
        for m in range(0, 24 * 60, 15)
    }
    assert levels == {"quiet", "normal", "busy", "very_busy"}


# --- DST ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "week_before", "hours"), [
    ("2026-03-29", "2026-03-22", 23),  # spring forward: 02:00 → 03:00
    ("2026-10-25", "2026-10-18", 25),  # fall back: 03:00 → 02:00
])
def test_dst_day_peaks_at_the_same_local_time_as_a_normal_sunday(day: str, week_before: str, hours: int) -> None:
    def day_rates(d: str) -> list[tuple[float, datetime]]:
        start = int(datetime.fromisoformat(d).replace(tzinfo=BRUSSELS).timestamp() * 1000)
        out = []
        for t in range(start, start + 26 * HOUR_MS, 15 * 60_000):
            lt = local_time(t, "Europe/Brussels")
            if lt.date().isoformat() == d:
                out.append((expected_per_hour(ANTWERPEN, MEIR, t, SEED), lt))
        return out

    rates = day_rates(day)
    assert len(rates) == hours * 4  # every quarter of the local day, however long the day is
    peak_at = max(rates, key=lambda r: r[0])[1]
    usual_peak_at = max(day_rates(week_before), key=lambda r: r[0])[1]
    assert (peak_at.hour, peak_at.minute) == (usual_peak_at.hour, usual_peak_at.minute) == (15, 0)


@pytest.mark.parametrize(("utc_start", "expected_starts"), [
    # spring forward: 00:59 UTC = 01:59+01:00, 01:00 UTC = 03:00+02:00 (02:00–03:00 never happens)
    ("2026-03-29T00:58:00Z", ["2026-03-29T01:58:00+01:00", "2026-03-29T01:59:00+01:00",
                              "2026-03-29T03:00:00+02:00", "2026-03-29T03:01:00+02:00"]),
    # fall back: 00:59 UTC = 02:59+02:00, 01:00 UTC = 02:00+01:00 (the hour 02:00–03:00 happens twice)
    ("2026-10-25T00:58:00Z", ["2026-10-25T02:58:00+02:00", "2026-10-25T02:59:00+02:00",
                              "2026-10-25T02:00:00+01:00", "2026-10-25T02:01:00+01:00"]),
])
def test_dst_start_offsets(utc_start: str, expected_starts: list[str]) -> None:
    t = ms(utc_start)
    bs = batches(REGISTRY, "leuven", t, t + 4 * 60_000, SEED, outage_rate=0.0, duplicate_rate=0.0)
    assert [b["readings"][0]["start"] for b in bs] == expected_starts
    assert [parse_ts(s) for s in expected_starts] == [t + i * 60_000 for i in range(4)]


# --- batches -----------------------------------------------------------------------------------------------

def test_batch_fields_follow_the_contract_example() -> None:
    t = ms("2026-11-27T14:14:00+01:00")
    (b,) = batches(REGISTRY, "antwerpen", t, t + 60_000, SEED, outage_rate=0.0, duplicate_rate=0.0)
    assert b["source"] == "gw-antwerpen-01"
    assert b["batch_id"] == "gw-antwerpen-01/2026-11-27T13:15:00Z"
    assert b["sent_at"] == "2026-11-27T13:15:03Z"
    assert [r["sensor_id"] for r in b["readings"]] == ["antw-meir-01", "antw-meir-02", "antw-meir-03",
                                                      "antw-meir-04"]
    assert {r["start"] for r in b["readings"]} == {"2026-11-27T14:14:00+01:00"}
    assert {r["seconds"] for r in b["readings"]} == {60}


def test_only_whole_minutes_inside_the_range() -> None:
    t = ms("2026-11-27T14:14:00+01:00")
    bs = batches(REGISTRY, "antwerpen", t + 1, t + 3 * 60_000 + 59_999, SEED, outage_rate=0.0,
                 duplicate_rate=0.0)
    assert [b["readings"][0]["start"] for b in bs] == ["2026-11-27T14:15:00+01:00", "2026-11-27T14:16:00+01:00"]
    assert batches(REGISTRY, "antwerpen", t, t + 59_999, SEED) == []


def test_every_batch_validates_as_the_contract_shape() -> None:
    validate = fastjsonschema.compile(schemas.load("footfall.counts.v1"))
    parser = FootfallParser(schemas.load("footfall.counts.v1"), REGISTRY, IngestPolicy(300_000, 50))
    t = ms("2026-11-28T00:00:00+01:00")
    bs = batches(REGISTRY, "leuven", t, t + DAY_MS, SEED, outage_rate=0.05, duplicate_rate=0.02)
    assert len(bs) > 1440
    for b in bs:
        validate(b)
        assert set(b) == {"source", "batch_id", "sent_at", "readings"}
        for r in b["readings"]:
            assert set(r) == {"sensor_id", "start", "seconds", "in", "out"}
            assert r["sensor_id"] in REGISTRY.sensors
            assert REGISTRY.city_of_zone[REGISTRY.sensors[r["sensor_id"]].zone_id].id == "leuven"
            assert type(r["in"]) is int
            assert type(r["out"]) is int
            assert min(r["in"], r["out"]) >= 0
        parsed = parser.parse(orjson.dumps(b), t + 2 * DAY_MS)
        assert parsed.rejections == []
        assert len(parsed.readings) == len(b["readings"])


def test_entrance_sees_fewer_and_mostly_in() -> None:
    t = ms("2026-11-28T13:00:00+01:00")
    bs = batches(REGISTRY, "antwerpen", t, t + 2 * HOUR_MS, SEED, outage_rate=0.0, duplicate_rate=0.0)
    tot: dict[str, list[int]] = {}
    for b in bs:
        for r in b["readings"]:
            acc = tot.setdefault(r["sensor_id"], [0, 0])
            acc[0] += r["in"]
            acc[1] += r["out"]
    door_in, door_out = tot["antw-meir-04"]
    street = min(sum(tot[f"antw-meir-0{i}"]) for i in (1, 2, 3))
    assert door_in > door_out > 0
    assert door_in < street / 2
    street_in, street_out = tot["antw-meir-01"]
    assert 0.6 < street_in / street_out < 1.6  # both directions on a street


def test_deterministic_for_a_seed_and_independent_of_range_splits() -> None:
    t = ms("2026-11-28T10:00:00+01:00")
    whole = batches(REGISTRY, "leuven", t, t + 3 * HOUR_MS, 7, outage_rate=0.3, duplicate_rate=0.1)
    assert whole == batches(REGISTRY, "leuven", t, t + 3 * HOUR_MS, 7, outage_rate=0.3, duplicate_rate=0.1)
    pieces = [b for m in range(180) for b in batches(REGISTRY, "leuven", t + m * 60_000, t + (m + 1) * 60_000, 7,
                                                     outage_rate=0.3, duplicate_rate=0.1)]
    assert pieces == whole
    other = batches(REGISTRY, "leuven", t, t + 3 * HOUR_MS, 8, outage_rate=0.3, duplicate_rate=0.1)
    assert other != whole


def test_duplicates_are_exact_copies_right_after_the_original() -> None:
    t = ms("2026-11-28T10:00:00+01:00")
    bs = batches(REGISTRY, "leuven", t, t + 2 * HOUR_MS, SEED, outage_rate=0.0, duplicate_rate=0.2)
    ids = [b["batch_id"] for b in bs]
    dup_idx = [i for i in range(1, len(bs)) if ids[i] == ids[i - 1]]
    assert len(set(ids)) == 120
    assert 10 <= len(dup_idx) <= 40  # about 20 % of 120
    for i in dup_idx:
        assert bs[i] == bs[i - 1]
        assert bs[i] is not bs[i - 1]
    assert batches(REGISTRY, "leuven", t, t + 2 * HOUR_MS, SEED, outage_rate=0.0, duplicate_rate=0.0) == [
        b for i, b in enumerate(bs) if i not in set(dup_idx)]


def test_outages_silence_a_sensor_for_a_stretch_without_changing_the_others() -> None:
    t = ms("2026-11-28T00:00:00+01:00")
    full = batches(REGISTRY, "leuven", t, t + DAY_MS, SEED, outage_rate=0.0, duplicate_rate=0.0)
    gappy = batches(REGISTRY, "leuven", t, t + DAY_MS, SEED, outage_rate=0.2, duplicate_rate=0.0)
    assert len(full) == len(gappy) == 1440
    sensors = sorted(s for s in REGISTRY.sensors if s.startswith("leuv-"))
    missing: dict[str, list[int]] = {s: [] for s in sensors}
    for i, (f, g) in enumerate(zip(full, gappy, strict=True)):
        present = {r["sensor_id"] for r in g["readings"]}
        assert [r for r in f["readings"] if r["sensor_id"] in present] == g["readings"]
        for s in sensors:
            if s not in present:
                missing[s].append(i)
    silent = [m for m in missing.values() if m]
    assert len(silent) >= 3
    for minutes in silent:
        assert len(minutes) >= 5  # an outage lasts at least 5 minutes
        runs = sum(1 for a, b in itertools.pairwise(minutes) if b != a + 1) + 1
        assert runs < len(minutes) / 4  # stretches, not scattered minutes
    total_missing = sum(len(m) for m in missing.values())
    assert total_missing < 0.5 * 1440 * len(sensors)


def test_unknown_city_lists_the_valid_ids() -> None:
    with pytest.raises(DrukteError, match=r"unknown city 'gent'.*antwerpen, roeselare, leuven"):
        batches(REGISTRY, "gent", 0, 60_000, SEED)


@pytest.mark.parametrize("kwargs", [{"outage_rate": -0.1}, {"duplicate_rate": 1.5}])
def test_rates_must_be_probabilities(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        batches(REGISTRY, "leuven", 0, 60_000, SEED, **kwargs)
