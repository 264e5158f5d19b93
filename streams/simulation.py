"""Synthetic footfall: a seeded, clock-free model of passers-by per zone and the gateway batches it would send.

The model, per zone and minute (all times in the city's own time zone, so DST never shifts a peak):

    visitors/hour = peak_per_hour(zone) · profile(kind, local time, country) · weather(city, date) · season(month)

- `peak_per_hour`: the zone's usual Saturday peak, a little above its `very_busy` threshold, so that a normal
  day runs from quiet (night) to busy and a dry Saturday afternoon reaches very busy; the Meir (very busy from
  10000 an hour) is thus far busier than a Roeselare side street (700).
- `profile`: share of that peak by day type and time of day: Belgian shop hours (about 10:00–18:00 Monday to
  Saturday), a lunchtime and an after-work bump on weekdays, the Saturday peak mid-afternoon, quiet Sundays and
  public holidays, near-empty nights. Squares (`zone_kind` = hospitality: Grote Markt, Oude Markt, Vismarkt,
  Groenplaats…) have less shopping and a late-evening tail past midnight, busiest Thursday to Saturday.
- `weather`: a seeded factor per city and date (regional weather plus a little local difference): rainy days
  (three in ten) lose 8–25 % of the passers-by, fine days gain up to 10 %.
- Counts: the zone's flow is spread over its sensors by fixed seeded weights (an entrance sees a quarter of a
  street counter and mostly `in`), with a per-minute burst factor shared by the zone and Poisson noise.

Every random draw comes from a `random.Random` seeded by the seed and what it is about (city and minute, sensor
and hour, …), never from where a range starts, so `batches` for one long range equals the concatenation of
`batches` for its minutes: a live simulator and a backfill agree exactly.
"""

from __future__ import annotations

import copy
import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from streams.daytype import local_time, public_holidays
from streams.errors import DrukteError
from streams.registry import City, Registry, Zone
from streams.timegrid import format_ts

MINUTE_MS = 60_000
SEND_DELAY_MS = 3_000  # a gateway sends a minute's batch 3 s after the minute ends
OUTAGE_RATE = 0.01  # chance per sensor and hour that an outage of 5–90 minutes starts
DUPLICATE_RATE = 0.005  # chance that a gateway sends a batch twice
PEAK_OF_VERY_BUSY = 1.15  # usual Saturday peak / very_busy threshold
MIN_PEAK_PER_HOUR = 60.0  # a zone with zero thresholds still sees someone
BURST_K = 12.0  # shape of the per-minute gamma burst factor: coefficient of variation 1/sqrt(12) ≈ 0.29
ENTRANCE_WEIGHT = 0.25  # visitors through a door counter relative to a street counter's passers-by
ENTRANCE_OUT = 0.7  # a door counter's `out` relative to its `in`

SHOPPING, HOSPITALITY = "shopping", "hospitality"
WEEKDAY, SATURDAY, SUNDAY = "weekday", "saturday", "sunday"  # public holidays count as Sunday
HOSPITALITY_WORDS = ("markt", "plaats", "plein", "place", "square", "platz")

# (local hour, share of the usual Saturday peak); linear in between.
_SHOP: dict[str, tuple[tuple[float, float], ...]] = {
    WEEKDAY: ((0, .01), (5, .01), (7, .04), (8, .10), (9, .16), (10, .32), (11, .42), (12, .55), (12.75, .60),
              (13.5, .53), (14.5, .50), (15.5, .54), (16.5, .60), (17.25, .64), (18, .42), (18.5, .25),
              (19.5, .14), (21, .08), (23, .03), (24, .01)),
    SATURDAY: ((0, .03), (6, .01), (8, .05), (9, .12), (10, .35), (11, .58), (12, .72), (13, .80), (14, .92),
               (15, 1.0), (16, .97), (17, .85), (18, .52), (18.5, .32), (19.5, .18), (21, .10), (23, .05),
               (24, .03)),
    SUNDAY: ((0, .03), (6, .01), (9, .03), (10, .06), (11, .10), (12, .14), (13, .17), (14, .20), (15, .22),
             (16, .20), (17, .15), (18, .10), (20, .05), (22, .02), (24, .01)),
}
# Monday (many shops open late) … Friday (late shopping); Wednesday afternoon has no school.
_WEEKDAY_FACTOR = (0.8, 0.95, 1.05, 0.95, 1.1)
# Evening of cafés and restaurants, hours from the evening's own midnight: 25 is 01:00 the next day.
_NIGHT = ((16, 0.0), (18, .15), (19.5, .30), (21, .45), (22.5, .55), (23.5, .50), (25, .32), (26.5, .12),
          (28, .03), (29, 0.0))
# Monday … Sunday evenings; Thursday is the students' night out (Leuven), a holiday evening is a Sunday one.
_NIGHT_FACTOR = (0.45, 0.55, 0.75, 1.35, 1.2, 1.3, 0.5)
_HOSPITALITY_DAY_SHARE = 0.75  # a square has fewer shoppers than a shopping street of the same peak
_SEASON = {1: 1.0, 2: 0.85, 3: 0.9, 4: 0.95, 5: 0.95, 6: 0.95, 7: 1.0, 8: 0.9, 9: 0.95, 10: 0.95, 11: 1.0,
           12: 1.15}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _interp(knots: Sequence[tuple[float, float]], x: float) -> float:
    """Piecewise-linear through `knots` (sorted by x); 0 outside them."""
    if x < knots[0][0] or x > knots[-1][0]:
        return 0.0
    i = bisect_right(knots, x, key=lambda k: k[0]) - 1
    if i >= len(knots) - 1:
        return knots[-1][1]
    (x0, y0), (x1, y1) = knots[i], knots[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def day_type(d: date, country: str) -> str:
    """weekday | saturday | sunday; public holidays count as a Sunday (shops closed), as in the baselines."""
    if d.weekday() == 6 or d in public_holidays(country, d.year):
        return SUNDAY
    return SATURDAY if d.weekday() == 5 else WEEKDAY


def zone_kind(zone: Zone) -> str:
    """hospitality for squares and markets (cafés, a late-evening tail), otherwise shopping."""
    name = zone.name.lower()
    return HOSPITALITY if any(w in name for w in HOSPITALITY_WORDS) else SHOPPING


def _shop_share(d: date, hour: float, country: str) -> float:
    kind = day_type(d, country)
    share = _interp(_SHOP[kind], hour)
    return share * _WEEKDAY_FACTOR[d.weekday()] if kind == WEEKDAY else share


def _night_factor(d: date, country: str) -> float:
    return _NIGHT_FACTOR[6] if day_type(d, country) == SUNDAY else _NIGHT_FACTOR[d.weekday()]


def profile(kind: str, local: datetime, country: str = "BE") -> float:
    """Expected flow as a share of the zone's usual Saturday peak, by local wall-clock time; weather-free."""
    d = local.date()
    hour = local.hour + local.minute / 60 + local.second / 3600
    shop = _shop_share(d, hour, country)
    if kind == SHOPPING:
        return shop
    yesterday = d - timedelta(days=1)
    night = (_interp(_NIGHT, hour) * _night_factor(d, country)
             + _interp(_NIGHT, hour + 24) * _night_factor(yesterday, country))
    return _HOSPITALITY_DAY_SHARE * shop + night


def season(month: int) -> float:
    """Pre-Christmas shopping is busiest, February and August quietest."""
    return _SEASON[month]


def weather(seed: int, city_id: str, d: date) -> float:
    """Seeded day factor for a city: regional weather (30 % rainy days) times a small local difference."""
    region = random.Random(f"{seed}:weather:{d.isoformat()}")  # noqa: S311 - simulation, not security
    rainy = region.random() < 0.3
    regional = region.uniform(0.75, 0.92) if rainy else region.uniform(0.95, 1.10)
    local = random.Random(f"{seed}:weather:{city_id}:{d.isoformat()}")  # noqa: S311
    return regional * local.uniform(0.96, 1.04)


def peak_per_hour(zone: Zone) -> float:
    """The zone's usual Saturday peak in visitors per hour, from its level thresholds."""
    return max(PEAK_OF_VERY_BUSY * zone.levels.very_busy, MIN_PEAK_PER_HOUR)


def expected_per_hour(city: City, zone: Zone, ts_ms: int, seed: int) -> float:
    """Expected visitors per hour (summed over the zone's sensors, as the worker counts them) at `ts_ms`."""
    local = local_time(ts_ms, city.timezone)
    return (peak_per_hour(zone) * profile(zone_kind(zone), local, city.country)
            * weather(seed, city.id, local.date()) * season(local.month))


def city_of(registry: Registry, city_id: str) -> City:
    """The city with `city_id`, or a `DrukteError` listing the valid ids."""
    city = registry.city(city_id)
    if city is None:
        msg = f"unknown city {city_id!r}; the registry has: {', '.join(c.id for c in registry.cities)}"
        raise DrukteError(msg)
    return city


def gateway(city_id: str) -> str:
    """The simulated gateway (`source`) of a city: one per city."""
    return f"gw-{city_id}-01"


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:  # Knuth: multiply uniforms until below e^-λ
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def _sensor_shares(seed: int, zone: Zone) -> list[float]:
    """Each sensor's fixed share of the zone's visitors (street: in + out; entrance: in); they sum to 1."""
    weights = []
    for s in zone.sensors:
        w = random.Random(f"{seed}:sensor:{s.id}").uniform(0.7, 1.3)  # noqa: S311
        weights.append(w * (ENTRANCE_WEIGHT if s.kind == "entrance" else 1.0))
    total = sum(weights) or 1.0
    return [w / total for w in weights]


def _outages(seed: int, sensor_id: str, first_min: int, last_min: int, rate: float) -> list[tuple[int, int]]:
    """Silent stretches `[from, to)` in epoch minutes that touch `[first_min, last_min)`.

    An outage starts in a given UTC hour with probability `rate` and lasts 5–90 minutes, so an outage that
    began up to two hours before the range is still seen.
    """
    out = []
    for hour in range(first_min // 60 - 2, (last_min - 1) // 60 + 1):
        rng = random.Random(f"{seed}:outage:{sensor_id}:{hour}")  # noqa: S311
        if rng.random() < rate:
            begin = hour * 60 + rng.randrange(60)
            end = begin + rng.randint(5, 90)
            if begin < last_min and end > first_min:
                out.append((begin, end))
    return out


def _utc_iso(ts_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def batches(
    registry: Registry,
    city_id: str,
    start_ms: int,
    end_ms: int,
    seed: int,
    *,
    outage_rate: float = OUTAGE_RATE,
    duplicate_rate: float = DUPLICATE_RATE,
) -> list[dict[str, Any]]:
    """The footfall batches (CONTRACT.md §3) of the city's gateway for every whole minute in `[start_ms, end_ms)`.

    One batch per minute, in time order: `batch_id` is `gw-<city>-01/<minute end, UTC>` and `sent_at` the
    minute end + 3 s (as in the contract's example); each reading covers the minute (`start` in the city's
    local offset, `seconds` 60). A sensor in an outage is left out of the batch; a duplicated batch follows its
    original as an exact copy. `outage_rate`: chance per sensor and hour that an outage starts;
    `duplicate_rate`: chance per batch of being sent twice. Deterministic in `seed`, and independent of how the
    range is split into calls.
    """
    city = city_of(registry, city_id)
    for name, rate in (("outage_rate", outage_rate), ("duplicate_rate", duplicate_rate)):
        if not 0.0 <= rate <= 1.0:
            msg = f"{name} must be between 0 and 1, got {rate}"
            raise ValueError(msg)
    first, last = -(-start_ms // MINUTE_MS), end_ms // MINUTE_MS  # epoch minutes, half-open
    if first >= last:
        return []
    source = gateway(city.id)
    zones = [(z, zone_kind(z), peak_per_hour(z) / 60, _sensor_shares(seed, z)) for z in city.zones]
    silent = {s.id: _outages(seed, s.id, first, last, outage_rate) for z in city.zones for s in z.sensors}
    day_factor: dict[date, float] = {}
    out: list[dict[str, Any]] = []
    for minute in range(first, last):
        m_start = minute * MINUTE_MS
        m_end = m_start + MINUTE_MS
        rng = random.Random(f"{seed}:{city.id}:{minute}")  # noqa: S311
        duplicate = rng.random() < duplicate_rate
        local = local_time(m_start + MINUTE_MS // 2, city.timezone)
        d = local.date()
        if d not in day_factor:
            day_factor[d] = weather(seed, city.id, d) * season(local.month)
        p_in = 0.55 if local.hour < 13 else 0.45  # towards the centre in the morning, away later
        start_text = format_ts(m_start, city.timezone)
        readings = []
        for zone, kind, peak_per_min, shares in zones:
            rate = peak_per_min * profile(kind, local, city.country) * day_factor[d]
            burst = rng.gammavariate(BURST_K, 1 / BURST_K)
            for sensor, share in zip(zone.sensors, shares, strict=True):
                flow = rate * burst * share
                if sensor.kind == "entrance":
                    n_in, n_out = _poisson(rng, flow), _poisson(rng, flow * ENTRANCE_OUT)
                else:
                    n_in, n_out = _poisson(rng, flow * p_in), _poisson(rng, flow * (1 - p_in))
                if any(a <= minute < b for a, b in silent[sensor.id]):
                    continue  # drawn anyway, so an outage never changes the other sensors' counts
                readings.append({"sensor_id": sensor.id, "start": start_text, "seconds": 60,
                                 "in": n_in, "out": n_out})
        batch = {"source": source, "batch_id": f"{source}/{_utc_iso(m_end)}",
                 "sent_at": _utc_iso(m_end + SEND_DELAY_MS), "readings": readings}
        out.append(batch)
        if duplicate:
            out.append(copy.deepcopy(batch))
    return out


HISTORY_STEP_MS = 15 * MINUTE_MS  # history comes as quarter-hour counts, as open-data exports often do


def history_source(city_id: str) -> str:
    """The simulated history export of a city: a source of its own, so its watermark is its own."""
    return f"history-{city_id}"


def history_batches(registry: Registry, city_id: str, start_ms: int, end_ms: int, seed: int,
                    *, step_ms: int = HISTORY_STEP_MS, source: str | None = None) -> list[dict[str, Any]]:
    """Past weeks for a demo: one batch per hour with a reading per sensor and `step_ms`, in time order.

    The same model as `batches` (profile, weather, season, sensor shares) at the coarser step an export of
    history has; no outages and no duplicates. Deterministic in `seed`.
    """
    city = city_of(registry, city_id)
    source = source or history_source(city.id)
    first, last = -(-start_ms // step_ms), end_ms // step_ms
    zones = [(z, zone_kind(z), peak_per_hour(z) * step_ms / 3_600_000, _sensor_shares(seed, z)) for z in city.zones]
    out: list[dict[str, Any]] = []
    readings: list[dict[str, Any]] = []
    per_batch = max(1, 3_600_000 // step_ms)
    for step in range(first, last):
        s_start = step * step_ms
        rng = random.Random(f"{seed}:history:{city.id}:{step}")  # noqa: S311
        local = local_time(s_start + step_ms // 2, city.timezone)
        day = weather(seed, city.id, local.date()) * season(local.month)
        start_text = format_ts(s_start, city.timezone)
        for zone, kind, peak_per_step, shares in zones:
            flow_zone = peak_per_step * profile(kind, local, city.country) * day
            for sensor, share in zip(zone.sensors, shares, strict=True):
                flow = flow_zone * share
                n_in = _poisson(rng, flow * (0.5 if sensor.kind == "street" else 1.0))
                n_out = _poisson(rng, flow * (0.5 if sensor.kind == "street" else ENTRANCE_OUT))
                readings.append({"sensor_id": sensor.id, "start": start_text, "seconds": step_ms // 1000,
                                 "in": n_in, "out": n_out})
        if (step + 1) % per_batch == 0 or step == last - 1:
            end = (step + 1) * step_ms
            out.append({"source": source, "batch_id": f"{source}/{_utc_iso(end)}",
                        "sent_at": _utc_iso(end + SEND_DELAY_MS), "readings": readings})
            readings = []
    return out


DEVICE_SHARE = 0.4  # share of passers-by whose phone a WiFi/BLE scanner picks up (probing, Bluetooth on)
DEVICE_SEEN = 0.6  # chance that each of a zone's scanners sees a phone that passes (at least one does)
PHONES_PER_PEAK = 1.0  # a city's phones: this many times the summed hourly peaks of its scanned zones (people
# walk up and down a street and between streets: a phone comes back within the hour)


def _address(seed: int, phone: int) -> str:
    """A phone's MAC-like address: fixed per phone (as a worst case: real phones randomise theirs), locally
    administered like a randomised MAC, so no real vendor's prefix is used."""
    bits = random.Random(f"{seed}:phone:{phone}").getrandbits(48)  # noqa: S311
    octets = [(bits >> (8 * i)) & 0xFF for i in range(6)]
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


def device_batches(registry: Registry, city_id: str, start_ms: int, end_ms: int, seed: int) -> list[dict[str, Any]]:
    """WiFi/BLE detections (`devices.detections.v1`) of the city's scanners for every whole minute in
    `[start_ms, end_ms)`: one batch per scanner and minute in which it saw someone, in time order.

    Per zone and minute a Poisson number of phones (`DEVICE_SHARE` of the footfall model's flow) is drawn from
    one pool of phones per city, so the same phone is seen again in other zones and later windows, as the
    auditor's test phone is; each of the zone's scanners sees a passing phone with chance `DEVICE_SEEN` (at least
    one does) at a random second, with a signal strength. Deterministic in `seed`, and independent of how the
    range is split into calls.
    """
    city = city_of(registry, city_id)
    scanned = [(z, zone_kind(z), peak_per_hour(z) / 60) for z in city.zones if z.device_sensors]
    if not scanned:
        return []
    pool = max(100, round(PHONES_PER_PEAK * sum(peak * 60 for _z, _k, peak in scanned)))
    first, last = -(-start_ms // MINUTE_MS), end_ms // MINUTE_MS
    out: list[dict[str, Any]] = []
    for minute in range(first, last):
        m_start = minute * MINUTE_MS
        rng = random.Random(f"{seed}:devices:{city.id}:{minute}")  # noqa: S311
        local = local_time(m_start + MINUTE_MS // 2, city.timezone)
        day = weather(seed, city.id, local.date()) * season(local.month)
        seen: dict[str, list[dict[str, Any]]] = {}
        for zone, kind, peak_per_min in scanned:
            for phone in (rng.randrange(pool) for _ in range(_poisson(
                    rng, peak_per_min * profile(kind, local, city.country) * day * DEVICE_SHARE))):
                scanners = [s for s in zone.device_sensors if rng.random() < DEVICE_SEEN]
                for s in scanners or [rng.choice(zone.device_sensors)]:
                    seen.setdefault(s.id, []).append({
                        "device_address": _address(seed, phone), "rssi": rng.randint(-95, -40),
                        "ts": format_ts(m_start + rng.randrange(MINUTE_MS // 1000) * 1000, city.timezone)})
        end_text = _utc_iso(m_start + MINUTE_MS)
        for sensor_id, detections in sorted(seen.items()):
            out.append({"sensor_id": sensor_id, "batch_id": f"{sensor_id}/{end_text}",
                        "sent_at": _utc_iso(m_start + MINUTE_MS + SEND_DELAY_MS),
                        "detections": sorted(detections, key=lambda d: d["ts"])})
    return out
