"""WiFi/BLE detections: decode and validate, count distinct devices per zone and window, close and publish.

A device address exists only inside the ingest process (P1). There it becomes an HMAC-SHA256 pseudonym under a
key made for one zone and one window (`streams.pseudonyms`, P2), used only to count distinct devices; the sets
and keys go when the window is over (P3). What leaves ingest is a *zone record*: a window, the size its set has
reached in this process, and which scanners reported, never an address or a pseudonym. The zone side keeps
those integers per zone window (`Cell`), closes a window once end + grace has passed, and publishes a distinct
count with the footfall's rules: fewer than `min_sensors` scanners is `few_sensors` (P7), fewer than `k_min`
devices is `below_k` (P6), and the number only ever as a rounded range.

Distinct counting is exact when one process reads every scanner of a zone (one worker, or a zone's scanners on
its partitions). Sets cannot be merged across processes without sharing keys or pseudonyms, which P1–P3 forbid,
so each process (`contributor`) reports its own count and the zone side adds them: a phone seen by scanners that
two workers read, or seen before and after a worker restart in one window, counts once per process (an upper
bound, never a linkable value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
import orjson

from streams.footfall import (
    BAD_TIMESTAMP,
    FUTURE_TIMESTAMP,
    MALFORMED_JSON,
    MAX_MESSAGE_BYTES,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    UNKNOWN_SENSOR,
    Rejection,
)
from streams.masking import MASK, mask_raw, mask_text, mask_value
from streams.pseudonyms import DistinctCounter
from streams.publication import PrivacyPolicy, suppression, visitors_range
from streams.registry import City, Registry, Zone
from streams.timegrid import format_ts, parse_ts, window_start
from streams.windows import Cell

TOO_OLD = "too_old"
REASONS = (TOO_LARGE, MALFORMED_JSON, SCHEMA_VIOLATION, UNKNOWN_SENSOR, BAD_TIMESTAMP, FUTURE_TIMESTAMP, TOO_OLD)
ALL: tuple[str] = ("all",)  # the one set per zone window


@dataclass(frozen=True, slots=True)
class Detection:
    sensor_id: str
    zone_id: str
    ts_ms: int
    address: str = field(repr=False)  # never in a repr, so never in a log line by accident


@dataclass(slots=True)
class ParsedDetections:
    sensor_id: str | None = None
    detections: list[Detection] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _hide(text: str, addresses: list[str]) -> str:
    """`text` masked, and without any of the batch's addresses (an opaque one need not look like a MAC)."""
    for a in sorted(addresses, key=len, reverse=True):
        if len(a) >= 3:
            text = text.replace(a, MASK)
    return mask_text(text)


def _addresses(doc: Any) -> list[str]:
    items = doc.get("detections") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return []
    return [str(d["device_address"]) for d in items if isinstance(d, dict) and "device_address" in d]


class DetectionParser:
    """Decodes and validates `devices.detections.v1` messages; bad parts become rejections, never exceptions.

    `max_age_ms`: detections older than this are refused (`too_old`); the input topic keeps an hour (P4), so an
    older detection is a sensor's wrong clock or a replay, and its window is long published (P9)."""

    def __init__(self, schema: dict[str, Any], registry: Registry, *, max_future_ms: int, max_age_ms: int) -> None:
        self._validate: Callable[[Any], Any] = fastjsonschema.compile(schema)
        self._sensors = registry.device_sensors
        self._max_future_ms = max_future_ms
        self._max_age_ms = max_age_ms

    def parse(self, raw: bytes, now_ms: int) -> ParsedDetections:
        if len(raw) > MAX_MESSAGE_BYTES:
            return ParsedDetections(rejections=[Rejection(TOO_LARGE, f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}",
                                                          None)])
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return ParsedDetections(rejections=[Rejection(MALFORMED_JSON, mask_text(str(exc)[:200]),
                                                          mask_raw(raw))])
        try:
            self._validate(doc)
        except fastjsonschema.JsonSchemaException as exc:
            return ParsedDetections(rejections=[Rejection(
                SCHEMA_VIOLATION, _hide(str(exc)[:300], _addresses(doc)), mask_value(doc))])
        sensor = self._sensors.get(doc["sensor_id"])
        if sensor is None:
            return ParsedDetections(rejections=[Rejection(
                UNKNOWN_SENSOR, mask_text(f"sensor {doc['sensor_id']!r} is not a wifi/ble sensor in the registry"),
                {"sensor_id": mask_text(doc["sensor_id"]), "batch_id": mask_text(doc["batch_id"]),
                 "detections": len(doc["detections"])})])
        out = ParsedDetections(sensor_id=sensor.id)
        refused: dict[str, list[tuple[int, str]]] = {}
        for i, d in enumerate(doc["detections"]):
            reason, detail = self._check(d, now_ms)
            if reason is None:
                out.detections.append(Detection(sensor.id, sensor.zone_id, parse_ts(d["ts"]), d["device_address"]))
            else:
                refused.setdefault(reason, []).append((i, detail))
        # one rejection per reason, quoting the first bad detection (masked): a scanner with a wrong clock
        # sends thousands, and each would otherwise be a record of its own
        for reason, bad in refused.items():
            i, detail = bad[0]
            d = doc["detections"][i]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            out.rejections.append(Rejection(reason, _hide(f"detections[{i}]: {detail}{more}", [d["device_address"]]),
                                            mask_value(d)))
        return out

    def _check(self, d: dict[str, Any], now_ms: int) -> tuple[str | None, str]:
        try:
            ts = parse_ts(d["ts"])
        except (ValueError, OverflowError) as exc:
            return BAD_TIMESTAMP, str(exc)
        if ts > now_ms + self._max_future_ms:
            return FUTURE_TIMESTAMP, f"ts is after now + {self._max_future_ms // 1000} s"
        if ts < now_ms - self._max_age_ms:
            return TOO_OLD, f"ts is more than {self._max_age_ms // 1000} s before now"
        return None, ""


def zone_records(parsed: ParsedDetections, counter: DistinctCounter, window_ms: int,
                 now_ms: int) -> dict[tuple[str, int], dict[str, Any]]:
    """Count a batch's detections and reduce it to `{(zone, window start): {"w", "n", "s"}}`: the distinct devices
    this process has seen in that zone window so far (`n`, kept as a maximum, so a redelivered batch changes
    nothing) and the scanner that saw them (`s`). Addresses go into the counter and nowhere else."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for d in parsed.detections:
        start = window_start(d.ts_ms, window_ms)
        counter.count(d.zone_id, start, d.address, (ALL,), now_ms)
        out.setdefault((d.zone_id, start), {"w": start, "s": d.sensor_id})
    for (zone_id, start), rec in out.items():
        rec["n"] = counter.distinct(zone_id, start, ALL)
    return out


# -- the zone side: integer counts per zone window, in a table ------------------------------------------------
def empty_cell() -> dict[str, Any]:
    """`n`: distinct devices per contributing process; `s`: scanners that reported; `ps`: input partitions the
    counts came from (a tick must vouch for each before the window closes); `f`: final (published)."""
    return {"n": {}, "s": [], "ps": [], "f": False}


def apply_record(cell: dict[str, Any], contributor: str, rec: dict[str, Any], partition: int | None) -> None:
    cell["n"][contributor] = max(cell["n"].get(contributor, 0), int(rec["n"]))
    if rec["s"] not in cell["s"]:
        cell["s"] = sorted([*cell["s"], rec["s"]])
    if partition is not None and partition not in cell["ps"]:
        cell["ps"] = sorted([*cell["ps"], partition])


def is_due(cell: dict[str, Any], start_ms: int, window_ms: int, grace_ms: int, tick_ms: int,
           vouched: dict[int, int]) -> bool:
    """Over once the tick's time is past end + grace and every input partition the counts came from has been
    read to the end past that time (so neither a backlog nor another worker's clock closes it early)."""
    end = start_ms + window_ms + grace_ms
    return end <= tick_ms and all(vouched.get(p, 0) >= end for p in cell["ps"])


def devices_object(zone: Zone, city: City, start_ms: int, window_ms: int, cell: dict[str, Any],
                   policy: PrivacyPolicy) -> dict[str, Any]:
    """A closed zone window as published: a rounded range of distinct devices, or no number and why (P6, P7).
    `as_of_ms` is internal (the API's freshness); the topic gets the object without it."""
    end = start_ms + window_ms
    n, reporting = sum(cell["n"].values()), len(cell["s"])
    reason = suppression([Cell(zone.id, start_ms, end, n, reporting, 0)], policy)
    return {
        "zone_id": zone.id, "city_id": city.id, "as_of": format_ts(end, city.timezone), "as_of_ms": end,
        "window": {"start": format_ts(start_ms, city.timezone), "end": format_ts(end, city.timezone),
                   "seconds": window_ms // 1000},
        "visitors": None if reason else visitors_range(n),
        "quality": {"sensors_reporting": reporting, "sensors_expected": len(zone.device_sensors)},
        "privacy": {"suppressed": reason is not None, "reason": reason, "k_min": policy.k_min, "noise": "none"},
    }


def live_devices(zone: Zone, stored: dict[str, Any] | None, now_ms: int, stale_after_ms: int) -> dict[str, Any] | None:
    """The `devices` member of a zone's live object: None for a zone without scanners; otherwise the newest
    published window's range (or why there is none) and whether it is stale."""
    if not zone.device_sensors:
        return None
    if stored is None or not isinstance(stored.get("as_of_ms"), int) or not isinstance(stored.get("privacy"), dict):
        return {"visitors": None, "suppressed": False, "reason": None, "as_of": None, "window": None,
                "stale": True}
    return {"visitors": stored.get("visitors"), "suppressed": bool(stored["privacy"].get("suppressed")),
            "reason": stored["privacy"].get("reason"), "as_of": stored.get("as_of"), "window": stored.get("window"),
            "stale": now_ms - stored["as_of_ms"] > stale_after_ms}
