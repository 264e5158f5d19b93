"""Historical counter files (wide, long, inout) as rows of text → readings; pure: no file I/O, no clock.

Formats (`detect_format` tells them apart from the header and the first rows):

- *wide*: one row per timestamp; the first column is the timestamp (or a date column followed by a time
  column), then one numeric column per sensor, headed by the sensor's name.
- *long*: one row per sensor and timestamp, with columns found by name: the sensor (`sensor`, `name`,
  `location`, …), the time (`timestamp`, or `date` + `time`/`hour`, …) and the count (`count`, `value`,
  `total`, …) and/or `in` and `out`.
- *inout*: like wide, but per sensor an IN and an OUT column and optionally a total: `Meir 1`, `Meir 1 IN`,
  `Meir 1 OUT`, or `meir-1_in`, `meir-1_out` (also `(in)`, `uit`, `totaal`).

Rules:

- Timestamps label the *start* of their interval. ISO 8601 with an offset (`2026-11-27T14:00:00+01:00`, `Z`)
  is an exact instant. Anything without an offset is the wall clock of the sensor's city time zone: ISO dates
  (`2026-11-27 14:00`) or dates with the year last (`27/11/2026 14:00`, `27-11-2026 14:00:00`,
  `27.11.2026 14:00`). Day-first or month-first is decided from the data: a first field above 12 means
  day-first, a second field above 12 means month-first, both in one file is an error; a file where neither
  ever happens (only the 1st–12th of months) is read day-first, the European convention.
- DST: a wall-clock time in the hour skipped in spring does not exist and is skipped (`nonexistent_local_time`).
  The hour repeated in autumn is read in file order, per sensor: its first occurrence is the summer-time
  instant (fold=0), the second the winter-time one (fold=1), so both hours are kept one hour apart.
- Interval: the most common positive spacing between consecutive timestamps of a sensor (of rows, in wide and
  inout files), measured on at least the first 500 rows; every reading gets that many `seconds`. It must be
  an hour or a fraction of an hour that divides it (60 min, 30, 15, 5, 1 …).
- Counts: a blank cell is missing data (no reading, counted in `Summary.missing`), never zero. Whole numbers
  only; with `decimal_comma` (files separated by `;`) `1.234` is a thousand and `12,0` twelve, otherwise
  `1,234` is a thousand. Non-numeric, negative and fractional counts are skipped with their reason.
- A single count (wide, long with only a count) becomes `in`, with `out` 0: a street sensor's visitors are
  in + out, so the total lands unchanged in the zone. In inout files `in`/`out` come from the IN/OUT columns;
  when both are blank (or only one is, with its partner's column present) the total is used as in=total,
  out=0; without a total that half reading is skipped (`incomplete_inout`).
- Sensor names become registry ids through `sensor_map` (the exact name, then the name's slug against the
  slugs of the map's names) or else by `slugify`. Ids not in `timezones` are skipped (`unknown_sensor`) and
  their names listed once in `Summary.unknown`; ids in `other_city` are skipped as `other_city`. A second
  reading for the same sensor and start is skipped as `duplicate`.

Skip counts in `Summary.skipped` count values (would-be readings), not rows.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo

from streams.errors import DrukteError

FORMATS = ("wide", "long", "inout")

# Skip reasons: stable codes, shown in the replay summary.
BAD_TIMESTAMP = "bad_timestamp"
NONEXISTENT_LOCAL_TIME = "nonexistent_local_time"
BAD_COUNT = "bad_count"
NEGATIVE_COUNT = "negative_count"
FRACTIONAL_COUNT = "fractional_count"
INCOMPLETE_INOUT = "incomplete_inout"
MISSING_SENSOR = "missing_sensor"
UNKNOWN_SENSOR = "unknown_sensor"
OTHER_CITY = "other_city"
DUPLICATE = "duplicate"

DAY_FIRST, MONTH_FIRST, YEAR_FIRST = "day-first", "month-first", "year-first"
SAMPLE_ROWS = 50  # rows that `parse` hands to `detect_format`
INTERVAL_ROWS = 500  # rows at least that the interval is measured on
MAX_INTERVAL_S = 3600
_NUMERIC_SHARE = 0.5  # a sample column holds numbers (timestamps) when more than this share of its cells do

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# Header names, compared as slugs. Longer, more specific names come first where several may be present.
_STAMP_NAMES = ("timestamp", "datetime", "date-time", "datum-tijd", "datumtijd", "tijdstip", "time-stamp", "ts",
                "start", "start-time", "starttijd", "interval-start", "period-start", "periode", "period",
                "interval", "from", "van", "moment", "date-hour", "datum-uur")
_DATE_NAMES = ("date", "datum", "dag", "day")
_TIME_NAMES = ("time", "tijd", "hour", "uur", "hour-of-day")
_SENSOR_NAMES = ("sensor-id", "sensorid", "sensor", "sensor-name", "sensornaam", "counter-id", "counter", "teller",
                 "telpunt", "device", "camera", "location", "locatie", "location-name", "site", "name", "naam",
                 "street", "straat", "id")
_COUNT_NAMES = ("count", "counts", "value", "waarde", "total", "totaal", "aantal", "visitors", "bezoekers",
                "passanten", "passages", "footfall", "people", "personen", "telling", "count-total")
_IN_NAMES = ("in", "ins", "count-in", "in-count", "binnen", "inkomend", "ingaand", "entries", "enter", "entered")
_OUT_NAMES = ("out", "outs", "count-out", "out-count", "uit", "buiten", "uitgaand", "exits", "exit", "exited")
_IGNORED = frozenset(("end", "einde", "tot", "to", "end-time", "eindtijd", "interval-end", "period-end"))
_DIRECTIONS = {"in": "in", "binnen": "in", "out": "out", "uit": "out", "buiten": "out",
               "total": "total", "totaal": "total"}
_DIRECTION_RE = re.compile(
    r"^(?P<base>.*?\S)(?:[\s_.\-]+|\s*[(\[]\s*)(?P<dir>in|out|uit|binnen|buiten|total|totaal)\s*[)\]]?$",
    re.IGNORECASE)

_TIME = r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?)?"
_DMY_RE = re.compile(r"\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{4})" + _TIME + r"\s*$")
_YMD_RE = re.compile(r"\s*(\d{4})([/.-])(\d{1,2})\2(\d{1,2})" + _TIME + r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?\s*$")
_TIME_CELL_RE = re.compile(r"\s*(\d{1,2})(?:\s*[:hu.]\s*(\d{2})?)?(?::(\d{2}))?")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_NUMBER_RE = re.compile(r"\s*[-+]?[\d.,\s\u00a0\u202f]*\d[\d.,\s\u00a0\u202f]*$")
_GROUPED_DOT = re.compile(r"^\d{1,3}(?:\.\d{3})+(?:,\d*)?$")
_GROUPED_COMMA = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d*)?$")


class ReplayFormatError(DrukteError, ValueError):
    """A file whose layout, dates or interval cannot be understood; the message says what to pass or fix."""


class ReplayReading(NamedTuple):
    """One interval of one sensor: `[start_ms, start_ms + seconds·1000)`, people in and out."""

    sensor_id: str
    start_ms: int
    seconds: int
    n_in: int
    n_out: int


@dataclass
class Summary:
    """What `parse` read; complete once its readings iterator is exhausted."""

    format: str = ""
    interval_s: int = 0
    date_order: str = ""  # day-first, month-first (dates with the year last), year-first (ISO) or "" (no rows)
    rows: int = 0  # data rows, header and empty lines not counted
    readings: int = 0
    missing: int = 0  # blank values: missing data, no reading
    skipped: Counter[str] = field(default_factory=Counter)
    unknown: dict[str, str] = field(default_factory=dict)  # source name → the id it became, not in the registry


def slugify(name: str) -> str:
    """Lower case; runs of characters other than a–z and 0–9 become one `-`; trimmed. `Meir 1 (N)` → `meir-1-n`.

    Exactly CONTRACT.md §1's rule: accented letters are not transliterated (`Café` → `caf`); map such names.
    """
    return _NON_ALNUM.sub("-", name.lower()).strip("-")


class SensorNames:
    """Source names → sensor ids: the map's exact name, then the name's slug against the map's slugs, then the slug."""

    def __init__(self, sensor_map: Mapping[str, str] | None = None) -> None:
        self._exact = {k.strip(): v for k, v in (sensor_map or {}).items()}
        self._slugs = {slugify(k): v for k, v in self._exact.items()}

    def id_of(self, name: str) -> str:
        name = name.strip()
        if name in self._exact:
            return self._exact[name]
        slug = slugify(name)
        return self._slugs.get(slug, slug)


def parse_sensor_map(rows: Iterable[Sequence[str]]) -> dict[str, str]:
    """Rows of a `name,sensor_id` CSV (an optional header row is recognised) → {name: sensor_id}.

    Raises `ReplayFormatError` naming the line of a row without two cells, an id that is no registry id, or a
    name mapped twice to different ids.
    """
    out: dict[str, str] = {}
    first = True
    for line, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if first:
            first = False
            if len(cells) >= 2 and slugify(cells[1]) in ("sensor-id", "sensor", "id", "sensorid"):
                continue  # the header
        if len(cells) < 2 or not cells[0] or not cells[1]:
            msg = f"sensor map line {line}: expected `name,sensor_id`, got {row!r}"
            raise ReplayFormatError(msg)
        name, sid = cells[0].lstrip("\ufeff"), cells[1]
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", sid):
            msg = f"sensor map line {line}: {sid!r} is not a registry sensor id (lower-case letters, digits, '-')"
            raise ReplayFormatError(msg)
        if out.get(name, sid) != sid:
            msg = f"sensor map line {line}: {name!r} is mapped to both {out[name]!r} and {sid!r}"
            raise ReplayFormatError(msg)
        out[name] = sid
    return out


def sniff_delimiter(header_line: str) -> str:
    """`;`, `,` or tab: whichever occurs most in the header line outside quotes (`,` when none does)."""
    outside = re.sub(r'"[^"]*"', "", header_line)
    counts = {d: outside.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def parse_count(text: str, decimal_comma: bool = False) -> int | str:
    """A non-blank cell → a whole count ≥ 0, or the skip reason (`bad_count`, `negative_count`, `fractional_count`)."""
    t = text.strip()
    if t.isascii() and t.isdigit():
        return int(t)
    t = t.replace(" ", "").replace("\u00a0", "").replace("\u202f", "")
    if decimal_comma:
        if _GROUPED_DOT.match(t.lstrip("+-")):
            t = t.replace(".", "")
        t = t.replace(",", ".")
    elif _GROUPED_COMMA.match(t.lstrip("+-")):
        t = t.replace(",", "")
    try:
        x = float(t)
    except ValueError:
        return BAD_COUNT
    if not math.isfinite(x) or not _NUMBER_RE.match(t):
        return BAD_COUNT  # float() also takes "nan", "inf" and "1e3"
    if x < 0:
        return NEGATIVE_COUNT
    if x != math.floor(x):
        return FRACTIONAL_COUNT
    return int(x)


# ---------------------------------------------------------------------------------------------- timestamps


def parse_stamp(text: str, order: str = DAY_FIRST) -> tuple[datetime, timedelta | None]:
    """Text → (wall-clock time, UTC offset or None). Raises ValueError for text that is no date and time.

    The wall-clock time is held as a UTC-labelled datetime for arithmetic only; with an offset the instant is
    `wall - offset`, without one it is the wall clock of the sensor's time zone. `order` applies to dates with
    the year last. `24:00` is midnight of the next day.
    """
    m = _YMD_RE.match(text)
    if m:
        year, month, day = int(m[1]), int(m[3]), int(m[4])
        offset = _offset(m[8]) if m[8] else None
    else:
        m = _DMY_RE.match(text)
        if not m:
            msg = f"{text!r} is not a date and time (use e.g. 2026-11-27 14:00 or 27/11/2026 14:00)"
            raise ValueError(msg)
        a, b, year = int(m[1]), int(m[3]), int(m[4])
        day, month = (b, a) if order == MONTH_FIRST else (a, b)
        offset = None
    hour, minute, second = int(m[5] or 0), int(m[6] or 0), int(m[7] or 0)
    extra = timedelta(0)
    if hour == 24 and minute == second == 0:
        hour, extra = 0, timedelta(days=1)
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC) + extra, offset


def _offset(text: str) -> timedelta:
    if text in ("Z", "z"):
        return timedelta(0)
    digits = text[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return -delta if text[0] == "-" else delta


class DateOrder:
    """Decides day-first vs month-first from dates with the year last, as they are fed (rule in the module doc)."""

    def __init__(self) -> None:
        self.order: str | None = None  # decided
        self.seen = False  # any date with the year last at all
        self._example: dict[str, str] = {}

    def feed(self, text: str) -> None:
        m = _DMY_RE.match(text)
        if m is None:
            return
        self.seen = True
        for order, value in ((DAY_FIRST, int(m[1])), (MONTH_FIRST, int(m[3]))):
            if value > 12 and order not in self._example:
                self._example[order] = text.strip()
        if len(self._example) == 2:
            msg = (f"the dates mix day-first ({self._example[DAY_FIRST]!r}) and month-first "
                   f"({self._example[MONTH_FIRST]!r}); convert the file to one date order")
            raise ReplayFormatError(msg)
        if self._example and self.order is None:
            self.order = next(iter(self._example))

    def result(self) -> str:
        if self.order is not None:
            return self.order
        return DAY_FIRST if self.seen else YEAR_FIRST


def _looks_like_stamp(text: str) -> bool:
    return bool(_YMD_RE.match(text) or _DMY_RE.match(text))


def _time_of(text: str) -> str:
    """A time cell (`14`, `14:00`, `14u`, `14h00`, `14:00 - 15:00`) → `14:00:00`; anything else unchanged."""
    m = _TIME_CELL_RE.match(text)
    if m is None:
        return text
    return f"{int(m[1]):02d}:{m[2] or '00'}:{m[3] or '00'}"


# -------------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class Series:
    """The columns holding one sensor's values (wide, inout) or every sensor's values (long)."""

    name: str
    total: int | None = None
    n_in: int | None = None
    n_out: int | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    format: str
    stamp: tuple[int, ...]  # the timestamp column, or the date and the time columns
    series: tuple[Series, ...] = ()  # wide and inout
    sensor: int | None = None  # long
    values: Series | None = None  # long


def _find(slugs: list[str], names: Sequence[str], skip: Collection[int] = ()) -> int | None:
    for name in names:
        for i, s in enumerate(slugs):
            if s == name and i not in skip:
                return i
    return None


def _grid_stamp(slugs: list[str]) -> tuple[int, ...]:
    if len(slugs) > 1 and slugs[0] in _DATE_NAMES and slugs[1] in _TIME_NAMES:
        return (0, 1)
    return (0,)


def layout_of(header: Sequence[str], fmt: str) -> Layout:
    """Where the timestamp and the values of each sensor are; `ReplayFormatError` saying why `fmt` does not fit."""
    slugs = [slugify(h) for h in header]
    if fmt == "long":
        return _long_layout(header, slugs)
    if fmt not in ("wide", "inout"):
        msg = f"unknown format {fmt!r}: use one of auto, {', '.join(FORMATS)}"
        raise ReplayFormatError(msg)
    stamp = _grid_stamp(slugs)
    data = [i for i in range(len(header)) if i not in stamp and slugs[i] not in _IGNORED and header[i].strip()]
    if not data:
        msg = "wide: no sensor columns after the timestamp column"
        raise ReplayFormatError(msg)
    if fmt == "wide":
        return Layout("wide", stamp, tuple(Series(header[i].strip(), total=i) for i in data))
    groups: dict[str, dict[str, int]] = {}
    names: dict[str, str] = {}
    for i in data:
        m = _DIRECTION_RE.match(header[i].strip())
        base, direction = (m["base"], _DIRECTIONS[m["dir"].lower()]) if m else (header[i].strip(), "total")
        key = slugify(base)
        names.setdefault(key, base.strip())
        groups.setdefault(key, {}).setdefault(direction, i)
    if not any("in" in g and "out" in g for g in groups.values()):
        msg = "inout: no pair of NAME IN and NAME OUT columns"
        raise ReplayFormatError(msg)
    series = tuple(Series(names[k], g.get("total"), g.get("in"), g.get("out")) for k, g in groups.items())
    return Layout("inout", stamp, series)


def _long_layout(header: Sequence[str], slugs: list[str]) -> Layout:
    full = _find(slugs, _STAMP_NAMES)
    date, time = _find(slugs, _DATE_NAMES), _find(slugs, _TIME_NAMES)
    if full is not None:
        stamp: tuple[int, ...] = (full,)
    elif date is not None and time is not None:
        stamp = (date, time)
    elif date is not None:
        stamp = (date,)
    elif time is not None:
        stamp = (time,)
    else:
        msg = "long: no timestamp column (named e.g. timestamp, datetime, date + time)"
        raise ReplayFormatError(msg)
    sensor = _find(slugs, _SENSOR_NAMES, stamp)
    if sensor is None:
        msg = "long: no sensor column (named e.g. sensor, name, location)"
        raise ReplayFormatError(msg)
    used = {*stamp, sensor}
    total = _find(slugs, _COUNT_NAMES, used)
    n_in, n_out = _find(slugs, _IN_NAMES, used), _find(slugs, _OUT_NAMES, used)
    if total is None and n_in is None and n_out is None:
        msg = "long: no count column (named e.g. count, value, total, or in and out)"
        raise ReplayFormatError(msg)
    return Layout("long", stamp, sensor=sensor, values=Series(header[sensor], total, n_in, n_out))


def _cell(row: Sequence[str], i: int) -> str:
    return row[i] if i < len(row) else ""


def stamp_text(row: Sequence[str], stamp: tuple[int, ...]) -> str:
    if len(stamp) == 1:
        return _cell(row, stamp[0])
    return f"{_cell(row, stamp[0]).strip()} {_time_of(_cell(row, stamp[1]))}"


def _numeric_column(sample: Sequence[Sequence[str]], i: int) -> bool:
    cells = [c for row in sample if (c := _cell(row, i).strip())]
    return not cells or sum(bool(_NUMBER_RE.match(c)) for c in cells) > _NUMERIC_SHARE * len(cells)


def _misfit(layout: Layout, header: Sequence[str], sample: Sequence[Sequence[str]]) -> str | None:
    """Why the sample rows do not fit `layout`, or None when they do."""
    stamps = [stamp_text(row, layout.stamp) for row in sample]
    bad = [s for s in stamps if not _looks_like_stamp(s)]
    if stamps and len(stamps) - len(bad) <= _NUMERIC_SHARE * len(stamps):
        return f"{layout.format}: {bad[0]!r} in the timestamp column is no date and time"
    if layout.format == "long":
        assert layout.values is not None
        for i in (layout.values.total, layout.values.n_in, layout.values.n_out):
            if i is not None and not _numeric_column(sample, i):
                return f"long: column {header[i]!r} is not numeric"
        return None
    # One timestamp per row; only the hour repeated in autumn may come twice, and back to back only when hourly.
    if max(Counter(stamps).values(), default=0) > 2 or sum(a == b for a, b in pairwise(stamps)) > 1:
        return f"{layout.format}: timestamps repeat from row to row, as in a long file"
    for s in layout.series:
        for i in (s.total, s.n_in, s.n_out):
            if i is not None and not _numeric_column(sample, i):
                return f"{layout.format}: column {header[i]!r} is not numeric"
    return None


def detect_format(header: list[str], sample_rows: Sequence[Sequence[str]]) -> str:
    """`wide`, `long` or `inout` for `--format auto`; `ReplayFormatError` naming the candidates when unsure.

    A format fits when its columns are found in the header and the sample's timestamps and counts parse; inout
    fits only with at least one NAME IN/NAME OUT pair and then wins over wide, which it refines.
    """
    fits: list[str] = []
    why: list[str] = []
    for fmt in FORMATS:
        try:
            problem = _misfit(layout_of(header, fmt), header, sample_rows)
        except ReplayFormatError as exc:
            problem = str(exc)
        if problem is None:
            fits.append(fmt)
        else:
            why.append(problem)
    if "inout" in fits and "wide" in fits:
        fits.remove("wide")
    if len(fits) == 1:
        return fits[0]
    if fits:
        msg = (f"the file could be {' or '.join(fits)}; pass "
               f"{' or '.join(f'--format {f}' for f in fits)}")
        raise ReplayFormatError(msg)
    msg = ("cannot tell the file's format: " + "; ".join(why) + ". Expected wide (a timestamp column, then one "
           "column per sensor), long (sensor, timestamp and count columns) or inout (NAME, NAME IN, NAME OUT "
           "columns); fix the header or pass --format wide|long|inout")
    raise ReplayFormatError(msg)


# --------------------------------------------------------------------------------------------------- parse


def _blank_row(row: Sequence[str]) -> bool:
    return not any(c.strip() for c in row)


def detect_interval(keys: Mapping[str, Sequence[int]]) -> int | None:
    """The most common positive step (s) between consecutive times of each stream (the smallest on a tie)."""
    steps: Counter[int] = Counter()
    for times in keys.values():
        steps.update(b - a for a, b in pairwise(times) if b > a)
    if not steps:
        return None
    top = max(steps.values())
    return min(s for s, n in steps.items() if n == top)


class _Reader:
    """The state of one parse: caches of timestamps and local times, DST occurrences, seen readings."""

    def __init__(self, layout: Layout, summary: Summary, order: str, interval_s: int,
                 timezones: Mapping[str, str], names: SensorNames, other_city: Collection[str],
                 decimal_comma: bool) -> None:
        self.layout, self.summary, self.order, self.interval_s = layout, summary, order, interval_s
        self.timezones, self.names, self.other_city = timezones, names, other_city
        self.decimal_comma = decimal_comma
        self._zones: dict[str, ZoneInfo] = {}
        self._stamps: dict[str, tuple[datetime, timedelta | None] | None] = {}
        self._local: dict[tuple[datetime, str, int], int | None] = {}
        self._ambiguous: dict[tuple[datetime, str], bool] = {}
        self._occurrences: dict[object, int] = {}
        self._seen: dict[str, set[int]] = {}
        self._sensors: dict[str, tuple[str, str | None]] = {}  # name → (id, tz or None when skipped)

    def sensor(self, name: str) -> tuple[str, str | None]:
        """(sensor id, its time zone), or (skip reason, None)."""
        hit = self._sensors.get(name)
        if hit is None:
            sid = self.names.id_of(name)
            if not sid:
                hit = (MISSING_SENSOR, None)
            elif sid in self.other_city:
                hit = (OTHER_CITY, None)
            elif sid not in self.timezones:
                self.summary.unknown.setdefault(name.strip(), sid)
                hit = (UNKNOWN_SENSOR, None)
            else:
                hit = (sid, self.timezones[sid])
            self._sensors[name] = hit
        return hit

    def stamp(self, text: str) -> tuple[datetime, timedelta | None] | None:
        if text not in self._stamps:
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            try:
                self._stamps[text] = parse_stamp(text, self.order)
            except ValueError:
                self._stamps[text] = None
        return self._stamps[text]

    def zone(self, tz: str) -> ZoneInfo:
        z = self._zones.get(tz)
        if z is None:
            z = self._zones[tz] = ZoneInfo(tz)
        return z

    def ambiguous(self, wall: datetime, tz: str) -> bool:
        key = (wall, tz)
        hit = self._ambiguous.get(key)
        if hit is None:
            z = self.zone(tz)
            a, b = wall.replace(tzinfo=z, fold=0), wall.replace(tzinfo=z, fold=1)
            hit = a.utcoffset() != b.utcoffset() and self.local_ms(wall, tz, 0) is not None
            self._ambiguous[key] = hit
        return hit

    def local_ms(self, wall: datetime, tz: str, fold: int) -> int | None:
        """Epoch ms of a wall-clock time in `tz`, None when it falls in the hour skipped in spring."""
        key = (wall, tz, fold)
        if key in self._local:
            return self._local[key]
        z = self.zone(tz)
        local = wall.replace(tzinfo=z, fold=fold)
        utc = local.astimezone(UTC)
        ms = (utc - _EPOCH) // _MS if utc.astimezone(z).replace(tzinfo=UTC) == wall else None
        self._local[key] = ms
        return ms

    def fold(self, key: object) -> int:
        """0 at the first occurrence of an ambiguous wall-clock time for `key`, 1 after."""
        n = self._occurrences.get(key, 0)
        self._occurrences[key] = n + 1
        return min(n, 1)

    def values(self, row: Sequence[str], s: Series) -> tuple[int, int] | str | None:
        """(in, out), a skip reason, or None when the data is missing."""
        total = _cell(row, s.total).strip() if s.total is not None else ""
        if s.n_in is None and s.n_out is None:
            if not total:
                return None
            n = parse_count(total, self.decimal_comma)
            return n if isinstance(n, str) else (n, 0)
        t_in = _cell(row, s.n_in).strip() if s.n_in is not None else ""
        t_out = _cell(row, s.n_out).strip() if s.n_out is not None else ""
        if t_in and t_out:
            a, b = parse_count(t_in, self.decimal_comma), parse_count(t_out, self.decimal_comma)
            if isinstance(a, str):
                return a
            return b if isinstance(b, str) else (a, b)
        if total:
            n = parse_count(total, self.decimal_comma)
            return n if isinstance(n, str) else (n, 0)
        if not t_in and not t_out:
            return None
        if (t_in and s.n_out is not None) or (t_out and s.n_in is not None):
            return INCOMPLETE_INOUT
        one = parse_count(t_in or t_out, self.decimal_comma)  # a sensor with one direction only
        if isinstance(one, str):
            return one
        return (one, 0) if t_in else (0, one)

    def emit(self, sid: str, start_ms: int, vals: tuple[int, int]) -> ReplayReading | None:
        seen = self._seen.get(sid)
        if seen is None:
            seen = self._seen[sid] = set()
        if start_ms in seen:
            self.summary.skipped[DUPLICATE] += 1
            return None
        seen.add(start_ms)
        self.summary.readings += 1
        return ReplayReading(sid, start_ms, self.interval_s, vals[0], vals[1])

    def start(self, parsed: tuple[datetime, timedelta | None], tz: str, fold: int) -> int | None:
        wall, offset = parsed
        if offset is not None:
            return (wall - offset - _EPOCH) // _MS
        return self.local_ms(wall, tz, fold)

    def grid(self, rows: Iterable[Sequence[str]]) -> Iterator[ReplayReading]:
        """Wide and inout: each row is one timestamp; the DST occurrence is counted per row (= per sensor)."""
        summary, skipped = self.summary, self.summary.skipped
        columns = [(s, *self.sensor(s.name)) for s in self.layout.series]
        zones = sorted({tz for _, _, tz in columns if tz is not None})
        for row in rows:
            if _blank_row(row):
                continue
            summary.rows += 1
            parsed = self.stamp(stamp_text(row, self.layout.stamp))
            fold = 0
            if parsed is not None and parsed[1] is None and any(self.ambiguous(parsed[0], tz) for tz in zones):
                fold = self.fold(parsed[0])
            for s, sid, tz in columns:
                vals = self.values(row, s)
                if vals is None:
                    summary.missing += 1
                elif tz is None:
                    skipped[sid] += 1
                elif parsed is None:
                    skipped[BAD_TIMESTAMP] += 1
                elif isinstance(vals, str):
                    skipped[vals] += 1
                elif (start := self.start(parsed, tz, fold)) is None:
                    skipped[NONEXISTENT_LOCAL_TIME] += 1
                elif (reading := self.emit(sid, start, vals)) is not None:
                    yield reading

    def long(self, rows: Iterable[Sequence[str]]) -> Iterator[ReplayReading]:
        """Long: one row per sensor and timestamp; the DST occurrence is counted per sensor name."""
        summary, skipped = self.summary, self.summary.skipped
        assert self.layout.sensor is not None
        assert self.layout.values is not None
        col, series, stamp = self.layout.sensor, self.layout.values, self.layout.stamp
        for row in rows:
            if _blank_row(row):
                continue
            summary.rows += 1
            name = _cell(row, col).strip()
            sid, tz = self.sensor(name)
            parsed = self.stamp(stamp_text(row, stamp))
            fold = 0
            if parsed is not None and tz is not None and parsed[1] is None and self.ambiguous(parsed[0], tz):
                fold = self.fold((name, parsed[0]))
            vals = self.values(row, series)
            if vals is None:
                summary.missing += 1
            elif tz is None:
                skipped[sid] += 1
            elif parsed is None:
                skipped[BAD_TIMESTAMP] += 1
            elif isinstance(vals, str):
                skipped[vals] += 1
            elif (start := self.start(parsed, tz, fold)) is None:
                skipped[NONEXISTENT_LOCAL_TIME] += 1
            elif (reading := self.emit(sid, start, vals)) is not None:
                yield reading


def _interval_of(layout: Layout, rows: Sequence[Sequence[str]], order: str) -> int | None:
    """The interval (s) measured on `rows`: wall-clock or exact times, per sensor (long) or per row (grid)."""
    keys: dict[str, list[int]] = {}
    for row in rows:
        try:
            wall, offset = parse_stamp(stamp_text(row, layout.stamp), order)
        except ValueError:
            continue
        t = (wall - (offset or timedelta(0)) - _EPOCH) // timedelta(seconds=1)
        stream = _cell(row, layout.sensor).strip() if layout.sensor is not None else ""
        keys.setdefault(stream, []).append(t)
    return detect_interval(keys)


def parse(
    rows: Iterable[Sequence[str]],
    *,
    timezones: Mapping[str, str],
    fmt: str = "auto",
    sensor_map: Mapping[str, str] | None = None,
    decimal_comma: bool = False,
    interval_s: int | None = None,
    other_city: Collection[str] = (),
) -> tuple[Iterator[ReplayReading], Summary]:
    """Rows of cells (the first non-empty row is the header) → readings in file order, and their `Summary`.

    `timezones`: sensor id → IANA time zone of its city, for every sensor that may be replayed. `fmt`: `auto`
    or one of `FORMATS`. `interval_s` overrides the detected interval. The format, the date order and the
    interval are decided here, before returning, from the first rows (kept in memory until the date order is
    known); problems with them raise `ReplayFormatError`. Problems of single values are skipped and counted.
    """
    it = iter(rows)
    header = next((list(r) for r in it if not _blank_row(r)), None)
    if header is None:
        msg = "the file is empty: it needs a header row and rows of counts"
        raise ReplayFormatError(msg)
    header = [h.strip() for h in header]
    header[0] = header[0].lstrip("\ufeff")
    buffered: list[Sequence[str]] = []
    for row in it:
        if not _blank_row(row):
            buffered.append(row)
            if len(buffered) >= SAMPLE_ROWS:
                break
    chosen = detect_format(header, buffered) if fmt == "auto" else fmt
    layout = layout_of(header, chosen)
    dates = DateOrder()
    for row in buffered:
        dates.feed(stamp_text(row, layout.stamp))
    # Keep reading until the date order is known (or the file ends) and there are enough rows for the interval.
    while (dates.seen and dates.order is None) or len(buffered) < INTERVAL_ROWS:
        more: Sequence[str] | None = next(it, None)
        if more is None:
            break
        if not _blank_row(more):
            buffered.append(more)
            dates.feed(stamp_text(more, layout.stamp))
    order = dates.result()
    summary = Summary(format=chosen, date_order=order if buffered else "")
    if interval_s is None and buffered:
        interval_s = _interval_of(layout, buffered, order)
        if interval_s is None:
            msg = ("cannot tell the interval between readings: the file needs at least two different timestamps "
                   "per sensor")
            raise ReplayFormatError(msg)
    interval_s = interval_s or MAX_INTERVAL_S
    if interval_s > MAX_INTERVAL_S or MAX_INTERVAL_S % interval_s:
        msg = (f"the readings are {interval_s} s apart; replay needs hourly or finer counts whose interval divides "
               "an hour (3600, 1800, 900, 300, 60 s …)")
        raise ReplayFormatError(msg)
    summary.interval_s = interval_s
    reader = _Reader(layout, summary, order, interval_s, timezones, SensorNames(sensor_map), other_city,
                     decimal_comma)
    all_rows = chain(buffered, it)
    readings = reader.long(all_rows) if layout.format == "long" else reader.grid(all_rows)
    return readings, summary
