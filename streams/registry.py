"""The registry: cities, zones, sensors and merchants, parsed from YAML text with line numbers for errors."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from streams.errors import RegistryError
from streams.opening import DAY_KEYS, OpeningHours, parse_spans

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
SENSOR_KINDS = ("street", "entrance")
# WiFi/Bluetooth scanners: they count distinct devices (devices.detections.v1), not passers-by, so they are kept
# apart from the counters (`Zone.device_sensors`) and never count towards the footfall's sensors.
DEVICE_SENSOR_KINDS = ("wifi", "ble")
SECTORS = ("fashion", "food_and_drink", "groceries", "personal_care", "leisure", "other_retail")
LEVEL_KEYS = ("normal", "busy", "very_busy")
# Visitors per hour at which a zone becomes normal / busy / very busy, unless the registry says otherwise.
DEFAULT_LEVELS = {"normal": 300, "busy": 1500, "very_busy": 3500}
MIN_SENSORS_PER_ZONE = 3
# P10: ε per published window (sensitivity 1: one passage) and the ε a zone may spend in one local day; the
# default budget lets every 5-minute window of a day be published at the default ε. ε above MAX_EPSILON per
# window would add noise of well under one person: no protection worth the name, so it is refused as a typo.
DEFAULT_EPSILON = 0.5
DEFAULT_DAILY_BUDGET = 144.0
MAX_EPSILON = 10.0

_NULL_TAG = "tag:yaml.org,2002:null"
# The plain scalar types of YAML; anything else (`!!python/...`, custom `!tags`) is refused, never constructed.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))


@dataclass(frozen=True, slots=True)
class Levels:
    """Thresholds in visitors per hour; a rate, so it fits any window length."""

    normal: int
    busy: int
    very_busy: int


@dataclass(frozen=True, slots=True)
class Sensor:
    id: str
    kind: str  # street: passers-by = in + out; entrance: visitors = in
    zone_id: str


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    city_id: str
    sensors: tuple[Sensor, ...]
    levels: Levels
    area_m2: int | None = None
    opening: OpeningHours | None = None  # None: never `closed` (a square with bars, or no hours configured)
    device_sensors: tuple[Sensor, ...] = ()  # kinds of DEVICE_SENSOR_KINDS; none or at least 3 (P7)


@dataclass(frozen=True, slots=True)
class SpendRules:
    """P12 for a city's spending cells: fewest merchants and distinct cards, largest share of the top two."""

    min_merchants: int = 5
    min_cards: int = 15
    max_top2_pct: int = 85


@dataclass(frozen=True, slots=True)
class DpRules:
    """P10 for a city's footfall: discrete Laplace noise of ε per window, at most `daily_budget` ε per zone and
    local day (then the zone publishes no numbers until the next day)."""

    epsilon: float = DEFAULT_EPSILON
    daily_budget: float = DEFAULT_DAILY_BUDGET


@dataclass(frozen=True, slots=True)
class City:
    id: str
    name: str
    timezone: str
    country: str
    zones: tuple[Zone, ...]
    spending: SpendRules = SpendRules()
    dp: DpRules | None = None  # None: no noise (`privacy.noise = "none"`)


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    zone_id: str
    sector: str


@dataclass(frozen=True)
class Registry:
    cities: tuple[City, ...]
    merchants: tuple[Merchant, ...] = ()
    # Lookups derived from `cities`/`merchants`; left out of eq and hash so a Registry stays hashable.
    zones: dict[str, Zone] = field(init=False, repr=False, compare=False)
    sensors: dict[str, Sensor] = field(init=False, repr=False, compare=False)
    device_sensors: dict[str, Sensor] = field(init=False, repr=False, compare=False)
    city_of_zone: dict[str, City] = field(init=False, repr=False, compare=False)
    merchants_by_id: dict[str, Merchant] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zones = {z.id: z for c in self.cities for z in c.zones}
        object.__setattr__(self, "zones", zones)
        object.__setattr__(self, "sensors", {s.id: s for z in zones.values() for s in z.sensors})
        object.__setattr__(self, "device_sensors", {s.id: s for z in zones.values() for s in z.device_sensors})
        object.__setattr__(self, "city_of_zone", {z.id: c for c in self.cities for z in c.zones})
        object.__setattr__(self, "merchants_by_id", {m.id: m for m in self.merchants})

    def city(self, city_id: str) -> City | None:
        return next((c for c in self.cities if c.id == city_id), None)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


@dataclass
class _Map:
    """A YAML mapping by key, keeping the key nodes so problems point at the key's own line."""

    node: yaml.Node
    values: dict[str, yaml.Node]
    keys: dict[str, yaml.Node]

    def get(self, key: str) -> yaml.Node | None:
        return self.values.get(key)


class _Checker:
    """Walks the composed YAML node tree, collecting every problem with its line number.

    We walk nodes rather than loaded Python objects because only nodes remember their line.
    """

    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []
        self._first_line: dict[str, int] = {}
        # Only the loader's safe constructor is used: to turn a number node into an int.
        self._loader = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, msg: str) -> None:
        self.problems.append((_line(node), msg))

    def unique(self, kind: str, ident: str, node: yaml.Node) -> None:
        key = f"{kind}:{ident}"
        if key in self._first_line:
            self.fail(node, f"{kind} id {ident!r} already used on line {self._first_line[key]}")
        else:
            self._first_line[key] = _line(node)

    def seen(self, kind: str, ident: str) -> bool:
        return f"{kind}:{ident}" in self._first_line

    def mapping(self, node: yaml.Node, what: str) -> _Map | None:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping of key: value")
            return None
        m = _Map(node, {}, {})
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                self.fail(k, f"{what}: keys must be plain names")
                continue
            if k.value in m.values:
                self.fail(k, f"{what}: key {k.value!r} appears twice (first on line {_line(m.keys[k.value])})")
                continue
            m.values[k.value] = v
            m.keys[k.value] = k
        return m

    def seq(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        # An absent or empty (`zones:`) list is an empty list; the caller decides whether that is allowed.
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
            return []
        return list(node.value)

    def nonempty_seq(
        self, node: yaml.Node | None, what: str, at: yaml.Node, min_len: int, empty: str
    ) -> list[yaml.Node]:
        """A list that needs `min_len` entries; too short reports `empty` at `at`, unless it was no list at all."""
        before = len(self.problems)
        items = self.seq(node, what)
        if len(items) < min_len and len(self.problems) == before:
            self.fail(at, empty)
        return items

    def _scalar(self, m: _Map, key: str, what: str, required: bool) -> yaml.ScalarNode | None:
        node = m.get(key)
        if node is None:
            if required:
                self.fail(m.node, f"{what}: missing {key!r}")
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{what}: {key!r} must be a single value, not a list or mapping")
            return None
        if node.tag not in _PLAIN_TAGS:
            self.fail(node, f"{what}: {key!r} has YAML tag {node.tag!r}; only plain values are allowed")
            return None
        if node.tag == _NULL_TAG or not node.value.strip():
            self.fail(node, f"{what}: {key!r} is empty")
            return None
        return node

    def text(self, m: _Map, key: str, what: str, required: bool = True) -> str | None:
        # The source text, not YAML 1.1's reading of it: country NO stays "NO" rather than becoming False.
        node = self._scalar(m, key, what, required)
        return None if node is None else str(node.value).strip()

    def whole(self, m: _Map, key: str, what: str, minimum: int, unit: str) -> int | None:
        """An optional whole number ≥ `minimum`."""
        node = self._scalar(m, key, what, required=False)
        if node is None:
            return None
        try:
            value: Any = self._loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.fail(node, f"{what}: {key} must be a whole number of {unit} ≥ {minimum}, got {node.value!r}")
            return None
        return value

    def positive(self, m: _Map, key: str, what: str, maximum: float | None = None) -> float | None:
        """An optional number > 0 (and ≤ `maximum`), whole or decimal."""
        node = self._scalar(m, key, what, required=False)
        if node is None:
            return None
        try:
            value: Any = self._loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            value = None
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok or (maximum is not None and value > maximum):
            bound = f" and at most {maximum:g}" if maximum is not None else ""
            self.fail(node, f"{what}: {key} must be a number above 0{bound}, got {node.value!r}")
            return None
        return float(value)

    def ident(self, m: _Map, key: str, what: str) -> str | None:
        value = self.text(m, key, what)
        if value is not None and not ID_RE.match(value):
            self.fail(m.values[key], f"{what}: {key} {value!r} must be lower-case letters, digits and '-'")
            return None
        return value

    def unknown_keys(self, m: _Map, allowed: set[str], what: str) -> None:
        for k, knode in m.keys.items():
            if k not in allowed:
                self.fail(knode, f"{what}: unknown key {k!r} (allowed: {', '.join(sorted(allowed))})")


def _compose(text: str) -> yaml.Node | None:
    """YAML text to a node tree, or `RegistryError` with the line of the syntax error."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # PyYAML words it as "<context> ... but <problem>"; we lead with the problem, which is on the line we report.
        msg = f"not valid YAML: {(exc.problem or exc.context or 'syntax error').removeprefix('but ')}"
        if exc.problem and exc.context:
            where = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            msg += f" ({exc.context}{where})"
        if "'\\t'" in msg:
            msg += "; indent with spaces, not tabs"
        raise RegistryError([((mark.line + 1) if mark else 0, msg)]) from exc
    except yaml.reader.ReaderError as exc:
        # Raised for control characters; `position` counts characters from the start of the text.
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise RegistryError([(line, f"not valid YAML: {exc.reason} {exc.character!r}")]) from exc
    except yaml.YAMLError as exc:
        raise RegistryError([(0, f"not valid YAML: {exc}")]) from exc


def _levels(ck: _Checker, node: yaml.Node | None, base: Levels, what: str) -> Levels:
    """Thresholds from `node`, each one falling back to `base` (the city's, or the file's defaults)."""
    if node is None:
        return base
    m = ck.mapping(node, f"{what} levels")
    if m is None:
        return base
    ck.unknown_keys(m, set(LEVEL_KEYS), f"{what} levels")
    vals = {k: getattr(base, k) for k in LEVEL_KEYS}
    for k in LEVEL_KEYS:
        v = ck.whole(m, k, f"{what} levels", 0, "visitors per hour")
        if v is not None:
            vals[k] = v
    # Strict: equal thresholds would make a level unreachable, which is always a typo.
    if not vals["normal"] < vals["busy"] < vals["very_busy"]:
        got = ", ".join(f"{k} {vals[k]}" for k in LEVEL_KEYS)
        ck.fail(node, f"{what} levels: need normal < busy < very_busy, got {got}")
        return base
    return Levels(**vals)


def _sensor(ck: _Checker, node: yaml.Node, zone_id: str | None, what: str) -> Sensor | None:
    m = ck.mapping(node, f"{what} sensor")
    if m is None:
        return None
    ck.unknown_keys(m, {"id", "kind"}, "sensor")
    sid = ck.ident(m, "id", f"{what} sensor")
    kind = ck.text(m, "kind", f"sensor {sid or '?'}")
    if sid:
        ck.unique("sensor", sid, m.values["id"])
    if kind is not None and kind not in SENSOR_KINDS + DEVICE_SENSOR_KINDS:
        # names the counters only (tests/unit/test_registry.py pins the text); wifi and ble are accepted too
        ck.fail(m.values["kind"], f"sensor {sid or '?'}: kind {kind!r} must be one of {', '.join(SENSOR_KINDS)}")
        return None
    if sid and zone_id and kind:
        return Sensor(sid, kind, zone_id)
    return None


def _zone(ck: _Checker, node: yaml.Node, city_id: str | None, city_levels: Levels, what: str,
          city_opening: OpeningHours | None = None) -> Zone | None:
    m = ck.mapping(node, "zone")
    if m is None:
        return None
    ck.unknown_keys(m, {"id", "name", "area_m2", "sensors", "levels", "opening_hours"}, "zone")
    zid = ck.ident(m, "id", f"{what} zone")
    zwhat = f"zone {zid or '?'}"
    name = ck.text(m, "name", zwhat)
    area = ck.whole(m, "area_m2", zwhat, 1, "m²")
    if zid:
        ck.unique("zone", zid, m.values["id"])
    # Counted on the file's entries, not the valid ones: a broken sensor already has its own message.
    snode = m.get("sensors")
    n_sensors = len(snode.value) if isinstance(snode, yaml.SequenceNode) else 0
    snodes = ck.nonempty_seq(snode, f"{zwhat} sensors", m.node, MIN_SENSORS_PER_ZONE,
                             f"{zwhat}: needs at least {MIN_SENSORS_PER_ZONE} sensors, has {n_sensors} "
                             "(privacy rule P7: one counter must not reveal one shop)")
    found = [s for sn in snodes if (s := _sensor(ck, sn, zid, zwhat)) is not None]
    sensors = [s for s in found if s.kind in SENSOR_KINDS]
    devices = [s for s in found if s.kind in DEVICE_SENSOR_KINDS]
    if 0 < len(devices) < MIN_SENSORS_PER_ZONE:
        ck.fail(m.node, f"{zwhat}: has {len(devices)} wifi/ble sensors; needs none or at least "
                        f"{MIN_SENSORS_PER_ZONE} (privacy rule P7)")
    zlevels = _levels(ck, m.get("levels"), city_levels, zwhat)
    opening = _opening(ck, m.get("opening_hours"), city_opening, zwhat)
    if zid and city_id and name:
        return Zone(zid, name, city_id, tuple(sensors), zlevels, area, opening, tuple(devices))
    return None


def _opening(ck: _Checker, node: yaml.Node | None, base: OpeningHours | None, what: str) -> OpeningHours | None:
    """Opening hours: a mapping of every weekday (and optionally `holiday`) to spans or `closed`; a zone may
    also say `always` (never closed, e.g. a square with bars). Absent: the city's."""
    if node is None:
        return base
    if isinstance(node, yaml.ScalarNode) and node.value == "always":
        return None
    m = ck.mapping(node, f"{what} opening_hours")
    if m is None:
        return base
    ck.unknown_keys(m, set(DAY_KEYS), f"{what} opening_hours")
    days: dict[str, tuple[tuple[int, int], ...]] = {}
    for key in DAY_KEYS:
        text = ck.text(m, key, f"{what} opening_hours", required=key != "holiday")
        if text is None:
            continue
        try:
            days[key] = parse_spans(text)
        except ValueError as exc:
            ck.fail(m.values[key], f"{what} opening_hours {key}: {exc}")
    return OpeningHours(days)


def _city(ck: _Checker, node: yaml.Node, nr: int, base: Levels) -> City | None:
    m = ck.mapping(node, "city")
    if m is None:
        return None
    ck.unknown_keys(m, {"id", "name", "timezone", "country", "zones", "levels", "spending", "opening_hours",
                        "privacy"}, "city")
    cid = ck.ident(m, "id", f"city #{nr}")
    what = f"city {cid or f'#{nr}'}"
    name = ck.text(m, "name", what)
    tz = ck.text(m, "timezone", what)
    country = ck.text(m, "country", what)
    if cid:
        ck.unique("city", cid, m.values["id"])
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError too: a folder such as "Europe" raises IsADirectoryError, not ZoneInfoNotFoundError.
            ck.fail(m.values["timezone"], f"{what}: unknown time zone {tz!r} (use an IANA name like Europe/Brussels)")
            tz = None
    if country is not None and not COUNTRY_RE.match(country):
        ck.fail(m.values["country"], f"{what}: country {country!r} must be a two-letter ISO code like BE")
        country = None
    city_levels = _levels(ck, m.get("levels"), base, what)
    znodes = ck.nonempty_seq(m.get("zones"), f"{what} zones", m.node, 1, f"{what}: needs at least one zone")
    city_opening = _opening(ck, m.get("opening_hours"), None, what)
    zones = [z for zn in znodes if (z := _zone(ck, zn, cid, city_levels, what, city_opening)) is not None]
    rules = _spend_rules(ck, m.get("spending"), what)
    dp = _privacy(ck, m.get("privacy"), what)
    if cid and name and tz and country:
        return City(cid, name, tz, country, tuple(zones), rules, dp)
    return None


def _spend_rules(ck: _Checker, node: yaml.Node | None, what: str) -> SpendRules:
    """A city's P12 rules; each may only be made stricter than the defaults, never looser."""
    base = SpendRules()
    if node is None:
        return base
    m = ck.mapping(node, f"{what} spending")
    if m is None:
        return base
    ck.unknown_keys(m, {"min_merchants", "min_cards", "max_top2_pct"}, f"{what} spending")
    merchants = ck.whole(m, "min_merchants", f"{what} spending", base.min_merchants, "merchants")
    cards = ck.whole(m, "min_cards", f"{what} spending", base.min_cards, "cards")
    top2 = ck.whole(m, "max_top2_pct", f"{what} spending", 1, "percent")
    if top2 is not None and top2 > base.max_top2_pct:
        ck.fail(m.values["max_top2_pct"],
                f"{what} spending: max_top2_pct {top2} is looser than the privacy floor {base.max_top2_pct}")
        top2 = None
    return SpendRules(merchants or base.min_merchants, cards or base.min_cards, top2 or base.max_top2_pct)


def _privacy(ck: _Checker, node: yaml.Node | None, what: str) -> DpRules | None:
    """A city's `privacy:` block; `dp:` switches differential privacy on (P10): `epsilon` per window and
    `daily_budget` per zone and local day, each optional (defaults 0.5 and 144), the budget at least one ε."""
    if node is None:
        return None
    m = ck.mapping(node, f"{what} privacy")
    if m is None:
        return None
    ck.unknown_keys(m, {"dp"}, f"{what} privacy")
    dnode = m.get("dp")
    if dnode is None:
        return None
    dm = ck.mapping(dnode, f"{what} privacy dp")
    if dm is None:
        return None
    ck.unknown_keys(dm, {"epsilon", "daily_budget"}, f"{what} privacy dp")
    eps = ck.positive(dm, "epsilon", f"{what} privacy dp", MAX_EPSILON)
    budget = ck.positive(dm, "daily_budget", f"{what} privacy dp")
    rules = DpRules(eps or DEFAULT_EPSILON, budget or DEFAULT_DAILY_BUDGET)
    if budget is not None and budget < rules.epsilon:
        ck.fail(dm.values["daily_budget"], f"{what} privacy dp: daily_budget {budget:g} is less than one window's "
                                           f"epsilon {rules.epsilon:g}: the zone could never publish a number")
        return None
    return rules


def _merchant(ck: _Checker, node: yaml.Node) -> Merchant | None:
    m = ck.mapping(node, "merchant")
    if m is None:
        return None
    ck.unknown_keys(m, {"id", "zone", "sector"}, "merchant")
    mid = ck.ident(m, "id", "merchant")
    what = f"merchant {mid or '?'}"
    zone = ck.text(m, "zone", what)
    sector = ck.text(m, "sector", what)
    if mid:
        ck.unique("merchant", mid, m.values["id"])
    # Checked against every zone id written in the file, so a zone with its own error adds no second one here.
    if zone is not None and not ck.seen("zone", zone):
        ck.fail(m.values["zone"], f"{what}: zone {zone!r} is not in the registry")
        zone = None
    if sector is not None and sector not in SECTORS:
        ck.fail(m.values["sector"], f"{what}: sector {sector!r} must be one of {', '.join(SECTORS)}")
        sector = None
    if mid and zone and sector:
        return Merchant(mid, zone, sector)
    return None


def _merchants_csv(ck: _Checker, node: yaml.Node, read: Callable[[str], str] | None) -> list[Merchant]:
    """Merchants from a CSV file (`id,zone,sector`) that the registry names; problems point at the registry line
    that names the file and say the CSV line. `read` gives a file's text by its name, relative to the registry."""
    if not isinstance(node, yaml.ScalarNode) or not node.value.strip():
        ck.fail(node, "merchants_csv must be a file name, e.g. merchants.csv")
        return []
    name = node.value.strip()
    if read is None:
        ck.fail(node, f"merchants_csv {name!r}: this registry was not read from a file, so {name!r} cannot be found")
        return []
    try:
        text = read(name)
    except (OSError, RegistryError) as exc:
        ck.fail(node, f"merchants_csv: cannot read {name!r}: {getattr(exc, 'strerror', None) or exc}")
        return []
    rows = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(rows, [])]
    if header != ["id", "zone", "sector"]:
        ck.fail(node, f"{name} line 1: the header must be id,zone,sector, got {','.join(header)!r}")
        return []
    out: list[Merchant] = []
    first: dict[str, int] = {}
    for row in rows:
        where = f"{name} line {rows.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            ck.fail(node, f"{where}: needs 3 fields id,zone,sector, has {len(row)}")
            continue
        mid, zone, sector = (cell.strip() for cell in row)
        problems = []
        if not ID_RE.match(mid):
            problems.append(f"merchant id {mid!r} must be lower-case letters, digits and '-'")
        elif mid in first or ck.seen("merchant", mid):
            problems.append(f"merchant id {mid!r} already used" + (f" on line {first[mid]}" if mid in first else ""))
        if not ck.seen("zone", zone):
            problems.append(f"zone {zone!r} is not in the registry")
        if sector not in SECTORS:
            problems.append(f"sector {sector!r} must be one of {', '.join(SECTORS)}")
        for problem in problems:
            ck.fail(node, f"{where}: {problem}")
        if not problems:
            first[mid] = rows.line_num
            out.append(Merchant(mid, zone, sector))
    return out


def parse_registry(text: str, read: Callable[[str], str] | None = None) -> Registry:
    """Parse and validate registry YAML; raise `RegistryError` listing every problem with its line.

    `read` gives the text of a file the registry names (`merchants_csv`), relative to the registry's folder."""
    root = _compose(text)
    if root is None:
        raise RegistryError([(0, "the registry is empty; it needs a 'cities:' list")])
    ck = _Checker()
    top = ck.mapping(root, "registry")
    if top is None:
        raise RegistryError(ck.problems)
    ck.unknown_keys(top, {"cities", "merchants", "merchants_csv", "defaults"}, "registry")
    base = Levels(**DEFAULT_LEVELS)
    dnode = top.get("defaults")
    if dnode is not None and (dm := ck.mapping(dnode, "defaults")) is not None:
        ck.unknown_keys(dm, {"levels"}, "defaults")
        base = _levels(ck, dm.get("levels"), base, "defaults")
    cnodes = ck.nonempty_seq(top.get("cities"), "cities", top.keys.get("cities", root), 1,
                             "registry: needs a 'cities:' list with at least one city")
    cities = [c for nr, cn in enumerate(cnodes, 1) if (c := _city(ck, cn, nr, base)) is not None]
    merchants = [mc for mn in ck.seq(top.get("merchants"), "merchants") if (mc := _merchant(ck, mn)) is not None]
    if (csv_node := top.get("merchants_csv")) is not None:
        merchants += _merchants_csv(ck, csv_node, read)
    if ck.problems:
        raise RegistryError(sorted(ck.problems))
    return Registry(tuple(cities), tuple(merchants))
