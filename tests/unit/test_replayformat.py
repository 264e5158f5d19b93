"""Replay files as rows → readings: formats, detection, dates, DST, counts, sensor names, intervals."""

from __future__ import annotations

import csv
import io
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import replayformat as rf
from streams.replayformat import ReplayFormatError, Summary, detect_format, parse
from streams.timegrid import format_ts, parse_ts

TZ = "Europe/Brussels"
ZONES = {sid: TZ for sid in ("meir-1", "meir-2", "bruul-1")}
H = 3600

Row = tuple[str, str, int, int, int]


def rows_of(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def run(text: str, delimiter: str = ",", **kwargs: Any) -> tuple[list[Row], Summary]:
    """Parse `text` as the replay's edge would; readings as (sensor, local ISO start, seconds, in, out)."""
    kwargs.setdefault("timezones", ZONES)
    readings, summary = parse(rows_of(text, delimiter), **kwargs)
    out = [(r.sensor_id, format_ts(r.start_ms, TZ), r.seconds, r.n_in, r.n_out) for r in readings]
    return out, summary


# ------------------------------------------------------------------------------------------ formats, end to end


@pytest.mark.parametrize(
    ("text", "kwargs", "fmt", "expected"),
    [
        pytest.param(  # wide: ISO wall-clock times, a blank is missing data (no reading), not zero
            "timestamp,Meir 1,Meir 2\n2026-11-27 14:00,10,\n2026-11-27 15:00,11,4\n", {}, "wide",
            [("meir-1", "2026-11-27T14:00:00+01:00", H, 10, 0), ("meir-1", "2026-11-27T15:00:00+01:00", H, 11, 0),
             ("meir-2", "2026-11-27T15:00:00+01:00", H, 4, 0)],
            id="wide"),
        pytest.param(  # wide as Belgian Excel writes it: `;`, a date and an hour column, `1.234` and `12,0`
            "Datum;Uur;Meir 1\n27/11/2026;14;1.234\n27/11/2026;15;12,0\n", {"delimiter": ";", "decimal_comma": True},
            "wide",
            [("meir-1", "2026-11-27T14:00:00+01:00", H, 1234, 0), ("meir-1", "2026-11-27T15:00:00+01:00", H, 12, 0)],
            id="wide-date-hour-semicolon"),
        pytest.param(  # long: sensor, timestamp, count; a single count becomes `in`
            "sensor,timestamp,count\nMeir 1,2026-11-27 14:00,5\nMeir 2,2026-11-27 14:00,6\n"
            "Meir 1,2026-11-27 15:00,7\nMeir 2,2026-11-27 15:00,\n", {}, "long",
            [("meir-1", "2026-11-27T14:00:00+01:00", H, 5, 0), ("meir-2", "2026-11-27T14:00:00+01:00", H, 6, 0),
             ("meir-1", "2026-11-27T15:00:00+01:00", H, 7, 0)],
            id="long"),
        pytest.param(  # long with a date and a time column and in/out instead of a count; day-first with dashes
            "location,date,time,in,out\nmeir-1,27-11-2026,14:00,3,4\nmeir-1,27-11-2026,15:00,5,6\n", {}, "long",
            [("meir-1", "2026-11-27T14:00:00+01:00", H, 3, 4), ("meir-1", "2026-11-27T15:00:00+01:00", H, 5, 6)],
            id="long-date-time-inout"),
        pytest.param(  # inout: IN/OUT win over the total; both blank → the total as in; all blank → missing
            "timestamp,Meir 1,Meir 1 IN,Meir 1 OUT\n2026-11-27 14:00,7,3,4\n2026-11-27 15:00,9,,\n"
            "2026-11-27 16:00,,,\n", {}, "inout",
            [("meir-1", "2026-11-27T14:00:00+01:00", H, 3, 4), ("meir-1", "2026-11-27T15:00:00+01:00", H, 9, 0)],
            id="inout"),
        pytest.param(  # inout in slug style without totals; dots as date separators
            "datetime,meir-1_in,meir-1_out,Meir 2 (in),Meir 2 (uit)\n27.11.2026 14:00,1,2,3,4\n"
            "27.11.2026 15:00,5,6,7,8\n", {}, "inout",
            [("meir-1", "2026-11-27T14:00:00+01:00", H, 1, 2), ("meir-2", "2026-11-27T14:00:00+01:00", H, 3, 4),
             ("meir-1", "2026-11-27T15:00:00+01:00", H, 5, 6), ("meir-2", "2026-11-27T15:00:00+01:00", H, 7, 8)],
            id="inout-slug-style"),
        pytest.param(  # ISO 8601 with offsets: exact instants whatever the city; `Z` too
            "timestamp,Meir 1\n2026-11-27T14:00:00+01:00,1\n2026-11-27T14:00:00Z,2\n2026-11-27T16:00+01,3\n", {},
            "wide",
            [("meir-1", "2026-11-27T14:00:00+01:00", H, 1, 0), ("meir-1", "2026-11-27T15:00:00+01:00", H, 2, 0),
             ("meir-1", "2026-11-27T16:00:00+01:00", H, 3, 0)],
            id="iso-with-offset"),
    ],
)
def test_each_format_gives_exact_readings(text: str, kwargs: dict[str, Any], fmt: str, expected: list[Row]) -> None:
    got, summary = run(text, **kwargs)
    assert summary.format == fmt
    assert got == expected
    assert summary.readings == len(expected)


# ----------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tijdstip,Bruul 1,Bruul 2\n2026-11-27 14:00,1,2\n2026-11-27 15:00,3,\n", "wide"),  # any first-column name
        ("Datum,Uur,Bruul 1\n27/11/2026,14,1\n", "wide"),  # date + hour columns
        ("t,Bruul 1,Totaal\n2026-11-27 14:00,1,n/a\n2026-11-27 15:00,1,3\n2026-11-27 16:00,1,4\n", "wide"),  # mostly
        ("naam,datum,aantal\nBruul 1,27/11/2026 14:00,5\n", "long"),  # Dutch column names
        ("sensor_id,timestamp,value\n12,2026-11-27 14:00,5\n13,2026-11-27 14:00,6\n", "long"),  # numeric ids
        ("timestamp,Meir 1,Meir 1 IN,Meir 1 OUT\n2026-11-27 14:00,7,3,4\n", "inout"),  # inout beats wide
        ("ts,a_in,a_out\n2026-11-27 14:00,3,4\n", "inout"),  # slug suffixes
    ],
)
def test_detect_format(text: str, expected: str) -> None:
    header, *sample = rows_of(text)
    assert detect_format(header, sample) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # nothing fits: every format says why, and the way out is named
        ("foo,bar\nx,y\n", r"cannot tell the file's format: wide: 'x'.*long: no timestamp.*--format wide\|long\|inout"),
        # one sensor with a numeric id and distinct timestamps reads as long and as wide
        ("timestamp,sensor,count\n2026-11-27 14:00,12,5\n2026-11-27 15:00,12,6\n",
         r"could be wide or long; pass --format wide or --format long"),
        # a text column among the sensors is named
        ("timestamp,Bruul 1,Weekdag\n2026-11-27 14:00,1,vrijdag\n", r"column 'Weekdag' is not numeric"),
    ],
)
def test_detect_format_says_why_when_unsure(text: str, message: str) -> None:
    header, *sample = rows_of(text)
    with pytest.raises(ReplayFormatError, match=message):
        detect_format(header, sample)


def test_a_forced_format_that_does_not_fit_says_why() -> None:
    with pytest.raises(ReplayFormatError, match="long: no sensor column"):
        run("timestamp,Meir 1\n2026-11-27 14:00,1\n2026-11-27 15:00,1\n", fmt="long")


# -------------------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("27/11/2026 14:00", rf.DAY_FIRST, "2026-11-27T14:00:00+01:00"),  # slashes
        ("27-11-2026 14:00:00", rf.DAY_FIRST, "2026-11-27T14:00:00+01:00"),  # dashes, seconds
        ("27.11.2026 14:00", rf.DAY_FIRST, "2026-11-27T14:00:00+01:00"),  # dots
        ("11/27/2026 14:00", rf.MONTH_FIRST, "2026-11-27T14:00:00+01:00"),  # month-first
        ("1/2/2026 9:05", rf.DAY_FIRST, "2026-02-01T09:05:00+01:00"),  # single digits
        ("2026-11-27 14:00", rf.MONTH_FIRST, "2026-11-27T14:00:00+01:00"),  # ISO dates ignore the order
        ("2026-11-27T14:00:00.000", rf.DAY_FIRST, "2026-11-27T14:00:00+01:00"),  # fractions of seconds
        ("2026-07-01 14:00", rf.DAY_FIRST, "2026-07-01T14:00:00+02:00"),  # summer time
        ("2026-11-27 24:00", rf.DAY_FIRST, "2026-11-28T00:00:00+01:00"),  # 24:00 is the next midnight
        ("2026-11-27T14:00:00+01:00", rf.DAY_FIRST, "2026-11-27T14:00:00+01:00"),  # offset: exact
        ("2026-11-27 13:00Z", rf.DAY_FIRST, "2026-11-27T14:00:00+01:00"),  # Z
        ("2026-11-27T14:00:00-0500", rf.DAY_FIRST, "2026-11-27T20:00:00+01:00"),  # offset without colon
    ],
)
def test_parse_stamp(text: str, order: str, expected: str) -> None:
    wall, offset = rf.parse_stamp(text, order)
    instant = wall.replace(tzinfo=ZoneInfo(TZ)) if offset is None else wall - offset
    assert format_ts(int(instant.timestamp() * 1000), TZ) == expected


@pytest.mark.parametrize("text", ["", "27/11", "2026-13-01 14:00", "31/02/2026 10:00", "yesterday", "14:00"])
def test_parse_stamp_refuses_what_is_no_date_and_time(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is tested through `parse` below
        rf.parse_stamp(text)


DEC_1 = parse_ts("2026-12-01T00:00:00+01:00")


def _wall(ms: int, fmt: str) -> str:
    iso = format_ts(ms, TZ)  # 2026-12-01T00:00:00+01:00
    y, m, d, hh, mm = iso[0:4], iso[5:7], iso[8:10], iso[11:13], iso[14:16]
    return fmt.format(y=y, m=m, d=d, H=hh, M=mm)


@pytest.mark.parametrize(
    ("text", "order", "first"),
    [
        # a first field above 12 decides day-first
        ("t,Meir 1\n13/11/2026 14:00,1\n13/11/2026 15:00,1\n", rf.DAY_FIRST, "2026-11-13T14:00:00+01:00"),
        # a second field above 12 decides month-first
        ("t,Meir 1\n11/13/2026 14:00,1\n11/13/2026 15:00,1\n", rf.MONTH_FIRST, "2026-11-13T14:00:00+01:00"),
        # never above 12: day-first, the European convention
        ("t,Meir 1\n05/11/2026 14:00,1\n05/11/2026 15:00,1\n", rf.DAY_FIRST, "2026-11-05T14:00:00+01:00"),
        # ISO dates
        ("t,Meir 1\n2026-11-05 14:00,1\n2026-11-05 15:00,1\n", rf.YEAR_FIRST, "2026-11-05T14:00:00+01:00"),
        # the deciding date comes only after 1152 quarter-hours (13 December): the first rows wait for it,
        # so 01/12 is read as 1 December, not 12 January
        ("t,Meir 1\n" + "".join(f"{_wall(DEC_1 + q * 900_000, '{d}/{m}/{y} {H}:{M}')},1\n" for q in range(1300)),
         rf.DAY_FIRST, "2026-12-01T00:00:00+01:00"),
    ],
)
def test_date_order_comes_from_the_data(text: str, order: str, first: str) -> None:
    got, summary = run(text)
    assert summary.date_order == order
    assert got[0][1] == first
    assert summary.skipped == {}


def test_mixed_date_orders_are_an_error() -> None:
    with pytest.raises(ReplayFormatError, match=r"mix day-first \('13/11/2026 14:00'\) and month-first"):
        run("t,Meir 1\n13/11/2026 14:00,1\n11/14/2026 14:00,1\n")


# --------------------------------------------------------------------------------------------------- DST


def test_the_missing_spring_hour_is_skipped() -> None:
    # 29 March 2026: clocks jump from 02:00 to 03:00 in Brussels, so 02:00 local never happened
    got, summary = run("t,Meir 1,Meir 2\n29/03/2026 01:00,1,1\n29/03/2026 02:00,2,\n29/03/2026 03:00,3,3\n")
    assert got == [("meir-1", "2026-03-29T01:00:00+01:00", H, 1, 0), ("meir-2", "2026-03-29T01:00:00+01:00", H, 1, 0),
                   ("meir-1", "2026-03-29T03:00:00+02:00", H, 3, 0), ("meir-2", "2026-03-29T03:00:00+02:00", H, 3, 0)]
    assert summary.skipped == {rf.NONEXISTENT_LOCAL_TIME: 1}  # one value; the blank is missing, not skipped
    assert summary.missing == 1


@pytest.mark.parametrize(
    "text",
    [
        # wide: the second 02:00 row is the winter-time hour
        "t,Meir 1\n25/10/2026 01:00,1\n25/10/2026 02:00,2\n25/10/2026 02:00,3\n25/10/2026 03:00,4\n",
        # long, sensors interleaved: the occurrence counts per sensor, in row order
        "sensor,timestamp,count\nMeir 1,25/10/2026 01:00,1\nMeir 2,25/10/2026 01:00,1\n"
        "Meir 1,25/10/2026 02:00,2\nMeir 2,25/10/2026 02:00,2\nMeir 1,25/10/2026 02:00,3\n"
        "Meir 2,25/10/2026 02:00,3\nMeir 1,25/10/2026 03:00,4\nMeir 2,25/10/2026 03:00,4\n",
        # long, one sensor after the other; Meir 2's first 02:00 is blank but still its first occurrence
        "sensor,timestamp,count\nMeir 1,25/10/2026 01:00,1\nMeir 1,25/10/2026 02:00,2\nMeir 1,25/10/2026 02:00,3\n"
        "Meir 1,25/10/2026 03:00,4\nMeir 2,25/10/2026 01:00,1\nMeir 2,25/10/2026 02:00,\n"
        "Meir 2,25/10/2026 02:00,3\nMeir 2,25/10/2026 03:00,4\n",
    ],
)
def test_the_repeated_autumn_hour_gives_two_instants_an_hour_apart(text: str) -> None:
    readings, summary = parse(rows_of(text), timezones=ZONES)
    by_sensor: dict[str, list[tuple[int, int]]] = {}
    for r in readings:
        by_sensor.setdefault(r.sensor_id, []).append((r.start_ms, r.n_in))
    for sensor, got in by_sensor.items():
        counts = {n: ms for ms, n in got}
        if 2 in counts:
            assert format_ts(counts[2], TZ) == "2026-10-25T02:00:00+02:00", sensor  # summer time first
        assert format_ts(counts[3], TZ) == "2026-10-25T02:00:00+01:00", sensor  # then winter time
        assert counts[3] - counts[1] == 2 * H * 1000  # 01:00 CEST → 02:00 CET is two real hours
        assert counts[4] - counts[3] == H * 1000
    assert summary.interval_s == H
    assert rf.DUPLICATE not in summary.skipped


# ------------------------------------------------------------------------------------------------ counts


@pytest.mark.parametrize(
    ("text", "decimal_comma", "expected"),
    [
        ("12", False, 12),  # plain
        ("0", False, 0),  # zero is a reading
        (" 7 ", False, 7),  # padded
        ("12.0", False, 12),  # a whole float
        ("1,234", False, 1234),  # thousands with commas (a quoted cell in a comma file)
        ("1 234", False, 1234),  # thousands with a space
        ("1.234", True, 1234),  # Belgian thousands
        ("12,0", True, 12),  # Belgian decimal comma
        ("1.234,0", True, 1234),  # both
        ("abc", False, rf.BAD_COUNT),  # text
        ("-", False, rf.BAD_COUNT),  # a dash is not a number
        ("nan", False, rf.BAD_COUNT),  # float() would take it
        ("1e3", False, rf.BAD_COUNT),  # so would it this
        ("1_000", False, rf.BAD_COUNT),  # and this
        ("12,5", False, rf.BAD_COUNT),  # a decimal comma in a comma file
        ("-3", False, rf.NEGATIVE_COUNT),  # negative
        ("12.5", False, rf.FRACTIONAL_COUNT),  # people come whole
        ("12,5", True, rf.FRACTIONAL_COUNT),  # also with a decimal comma
    ],
)
def test_parse_count(text: str, decimal_comma: bool, expected: int | str) -> None:
    assert rf.parse_count(text, decimal_comma) == expected


def test_bad_values_are_skipped_with_reasons_and_blanks_are_missing() -> None:
    text = ("t,Meir 1,Meir 2\n2026-11-27 14:00,abc,-2\n2026-11-27 15:00,  ,12.5\nnot a date,1,2\n"
            "2026-11-27 17:00,4\n")  # the last row is short: its missing cell is a blank
    got, summary = run(text)
    assert got == [("meir-1", "2026-11-27T17:00:00+01:00", H, 4, 0)]
    assert summary.skipped == {rf.BAD_COUNT: 1, rf.NEGATIVE_COUNT: 1, rf.FRACTIONAL_COUNT: 1, rf.BAD_TIMESTAMP: 2}
    assert summary.missing == 2
    assert summary.rows == 4


@pytest.mark.parametrize(
    ("row", "expected", "reason"),
    [
        (["7", "3", "4"], (3, 4), None),  # IN and OUT
        (["7", "", ""], (7, 0), None),  # both blank: the total as in
        (["7", "3", ""], (7, 0), None),  # one blank: the total as in
        (["", "3", ""], None, rf.INCOMPLETE_INOUT),  # one blank and no total: half a reading
        (["", "", ""], None, None),  # all blank: missing
        (["", "x", "4"], None, rf.BAD_COUNT),  # a bad IN
    ],
)
def test_inout_values(row: list[str], expected: tuple[int, int] | None, reason: str | None) -> None:
    text = "t,Meir 1,Meir 1 IN,Meir 1 OUT\n2026-11-27 14:00," + ",".join(row) + "\n"
    got, summary = run(text, fmt="inout", interval_s=H)
    assert [(r[3], r[4]) for r in got] == ([expected] if expected else [])
    assert summary.skipped == ({reason: 1} if reason else {})
    assert summary.missing == (1 if not expected and not reason else 0)


# ---------------------------------------------------------------------------------------------- sensor names


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Meir 1", "meir-1"),  # space
        ("  Meir  1 (N) ", "meir-1-n"),  # runs and brackets become one dash, trimmed
        ("IJzerenleen", "ijzerenleen"),  # lower case
        ("meir-1_in", "meir-1-in"),  # underscore
        ("Grote Markt/Zuid", "grote-markt-zuid"),  # slash
        ("--x--", "x"),  # trimmed
        ("Café Bruul", "caf-bruul"),  # the contract's rule: no transliteration, so map such names
        ("", ""),  # nothing
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert rf.slugify(name) == slug


@given(st.text())
def test_slugify_gives_ids_or_nothing(name: str) -> None:
    slug = rf.slugify(name)
    assert slug == rf.slugify(slug)
    assert slug == "" or (slug[0] != "-" and slug[-1] != "-")
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Telpunt A", "bruul-1"),  # exact name in the map
        (" telpunt  a ", "bruul-1"),  # same slug as a mapped name
        ("Meir 2", "meir-2"),  # not in the map: its slug
    ],
)
def test_sensor_names_use_the_map_then_the_slug(name: str, expected: str) -> None:
    assert rf.SensorNames({"Telpunt A": "bruul-1"}).id_of(name) == expected


def test_a_sensor_map_renames_and_unknown_names_are_listed_once() -> None:
    text = ("sensor,timestamp,count\nTelpunt A,2026-11-27 14:00,1\nOnbekend,2026-11-27 14:00,2\n"
            "Telpunt A,2026-11-27 15:00,3\nOnbekend,2026-11-27 15:00,4\nMeir 2,2026-11-27 15:00,5\n")
    got, summary = run(text, sensor_map={"Telpunt A": "bruul-1"}, other_city={"meir-2"})
    assert got == [("bruul-1", "2026-11-27T14:00:00+01:00", H, 1, 0), ("bruul-1", "2026-11-27T15:00:00+01:00", H, 3, 0)]
    assert summary.unknown == {"Onbekend": "onbekend"}
    assert summary.skipped == {rf.UNKNOWN_SENSOR: 2, rf.OTHER_CITY: 1}


def test_unknown_wide_columns_are_listed_with_the_id_they_became() -> None:
    got, summary = run("t,Meir 1,Totaal,Zone B (N)\n2026-11-27 14:00,1,5,4\n2026-11-27 15:00,1,6,\n")
    assert len(got) == 2
    assert summary.unknown == {"Totaal": "totaal", "Zone B (N)": "zone-b-n"}
    assert summary.skipped == {rf.UNKNOWN_SENSOR: 3}


def test_a_second_reading_for_the_same_sensor_and_start_is_a_duplicate() -> None:
    got, summary = run("sensor,timestamp,count\nMeir 1,2026-11-27 14:00,1\nmeir-1,2026-11-27 14:00,2\n"
                       "Meir 1,2026-11-27 15:00,3\n")
    assert [r[3] for r in got] == [1, 3]
    assert summary.skipped == {rf.DUPLICATE: 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a header, an empty line, padding
        ("name,sensor_id\nTelpunt A,bruul-1\n\nMeir Noord , meir-1\n",
         {"Telpunt A": "bruul-1", "Meir Noord": "meir-1"}),
        ("Telpunt A,bruul-1\n", {"Telpunt A": "bruul-1"}),  # no header
        ("\ufeffnaam;sensor\nTelpunt A;bruul-1\n", {"Telpunt A": "bruul-1"}),  # BOM, `;`, Dutch header
    ],
)
def test_parse_sensor_map(text: str, expected: dict[str, str]) -> None:
    assert rf.parse_sensor_map(rows_of(text, rf.sniff_delimiter(text.splitlines()[0]))) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,sensor_id\nTelpunt A,Bruul 1\n", r"line 2: 'Bruul 1' is not a registry sensor id"),
        ("name,sensor_id\nTelpunt A\n", r"line 2: expected `name,sensor_id`"),
        ("A,bruul-1\nA,bruul-2\n", r"line 2: 'A' is mapped to both 'bruul-1' and 'bruul-2'"),
    ],
)
def test_parse_sensor_map_names_the_line(text: str, message: str) -> None:
    with pytest.raises(ReplayFormatError, match=message):
        rf.parse_sensor_map(rows_of(text))


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("timestamp;Meir 1;Meir 2", ";"),  # Belgian
        ("timestamp,Meir 1,Meir 2", ","),  # international
        ("timestamp\tMeir 1", "\t"),  # tab
        ('"Meir; Noord",timestamp,count', ","),  # a quoted `;` does not count
        ("timestamp", ","),  # nothing to go on
    ],
)
def test_sniff_delimiter(line: str, delimiter: str) -> None:
    assert rf.sniff_delimiter(line) == delimiter


# ------------------------------------------------------------------------------------------------ intervals


@pytest.mark.parametrize(
    ("times", "seconds"),
    [
        (["14:00", "15:00", "16:00"], 3600),  # hourly
        (["14:00", "14:15", "14:30", "14:45"], 900),  # quarter-hours
        (["14:00", "14:15", "15:00", "15:15", "15:30"], 900),  # quarter-hours with a gap
        (["14:00", "14:05", "14:10"], 300),  # five minutes
        (["14:00", "14:30", "16:00", "16:30", "17:00"], 1800),  # half-hours with a gap
    ],
)
def test_interval_comes_from_the_spacing(times: list[str], seconds: int) -> None:
    text = "t,Meir 1\n" + "".join(f"2026-11-27 {t},1\n" for t in times)
    got, summary = run(text)
    assert summary.interval_s == seconds
    assert {r[2] for r in got} == {seconds}


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("t,Meir 1\n2026-11-27 14:00,1\n", {}, "at least two different timestamps per sensor"),  # one row
        ("t,Meir 1\n2026-11-27,1\n2026-11-28,1\n", {}, "86400 s apart; replay needs hourly or finer"),  # daily
        ("t,Meir 1\n2026-11-27 14:00,1\n2026-11-27 14:45,1\n", {}, "2700 s apart"),  # does not divide an hour
        ("", {}, "the file is empty"),  # nothing at all
    ],
)
def test_files_that_cannot_be_replayed_say_why(text: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ReplayFormatError, match=message):
        run(text, **kwargs)


def test_interval_can_be_given_for_a_single_timestamp() -> None:
    got, _ = run("t,Meir 1\n2026-11-27 14:00,1\n", interval_s=900)
    assert got == [("meir-1", "2026-11-27T14:00:00+01:00", 900, 1, 0)]
