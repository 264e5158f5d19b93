"""WiFi/BLE detections: golden examples, every rejection reason with the address never echoed (P1), keyed
pseudonyms per zone and window that cannot leave the process (P2), sets forgotten (P3), and the published
window with the footfall's suppression and ranges (P6, P7)."""

from __future__ import annotations

import base64
import copy
import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

import schemas
from streams.devices import (
    DetectionParser,
    apply_record,
    devices_object,
    empty_cell,
    is_due,
    live_devices,
    zone_records,
)
from streams.errors import RegistryError
from streams.pseudonyms import DistinctCounter, WindowKey
from streams.publication import PrivacyPolicy
from streams.registry import parse_registry
from streams.simulation import device_batches
from streams.timegrid import parse_ts
from tests.e2e.audit import find_forms, identifier_forms, scan_text

TOPIC = "devices.detections.v1"
NOW = 1_795_785_300_000  # 2026-11-27T13:15:00Z
MIN = 60_000
W = 5 * MIN
REGISTRY_TEXT = """
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: mech-bruul-01, kind: street}, {id: mech-bruul-02, kind: street},
                  {id: mech-bruul-03, kind: entrance}, {id: mech-bruul-w1, kind: wifi},
                  {id: mech-bruul-w2, kind: wifi}, {id: mech-bruul-w3, kind: ble}]
      - id: mechelen-vismarkt
        name: Vismarkt
        sensors: [{id: mech-vis-01, kind: street}, {id: mech-vis-02, kind: street}, {id: mech-vis-03, kind: street},
                  {id: mech-vis-w1, kind: wifi}, {id: mech-vis-w2, kind: wifi}, {id: mech-vis-w3, kind: wifi}]
      - id: mechelen-ijzerenleen
        name: IJzerenleen
        sensors: [{id: mech-ijz-01, kind: street}, {id: mech-ijz-02, kind: street}, {id: mech-ijz-03, kind: street}]
"""
REGISTRY = parse_registry(REGISTRY_TEXT)
PHONE = "a4:5e:60:d2:1f:07"
POLICY = PrivacyPolicy(k_min=15, min_sensors=3)


@pytest.fixture(scope="module")
def parser() -> DetectionParser:
    return DetectionParser(schemas.load(TOPIC), REGISTRY, max_future_ms=300_000, max_age_ms=3_600_000)


def batch(sensor: str = "mech-bruul-w1", *detections: dict[str, Any]) -> bytes:
    return orjson.dumps({"sensor_id": sensor, "batch_id": f"{sensor}/1", "sent_at": "2026-11-27T13:15:02Z",
                         "detections": list(detections)})


def det(address: str = PHONE, ts: str = "2026-11-27T14:14:03+01:00", **extra: Any) -> dict[str, Any]:
    return {"device_address": address, "ts": ts, **extra}


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schemas.load(TOPIC))


@pytest.mark.parametrize("path", schemas.examples(TOPIC, "valid"), ids=lambda p: p.stem)
def test_golden_valid_examples(parser: DetectionParser, path: Path) -> None:
    assert jsonschema.Draft202012Validator(schemas.load(TOPIC)).is_valid(orjson.loads(path.read_bytes()))
    parsed = parser.parse(path.read_bytes(), NOW)
    assert parsed.rejections == []
    assert parsed.sensor_id == "mech-bruul-w1"


@pytest.mark.parametrize("path", schemas.examples(TOPIC, "invalid"), ids=lambda p: p.stem)
def test_golden_invalid_examples(parser: DetectionParser, path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    assert not jsonschema.Draft202012Validator(schemas.load(TOPIC)).is_valid(doc)
    parsed = parser.parse(path.read_bytes(), NOW)
    assert parsed.detections == []
    assert [r.reason for r in parsed.rejections] == ["schema_violation"]
    assert "a4:5e:60" not in orjson.dumps(parsed.rejections[0].payload).decode()


def test_contract_example_becomes_detections_of_the_zone(parser: DetectionParser) -> None:
    parsed = parser.parse(schemas.examples(TOPIC, "valid")[0].read_bytes(), NOW)
    assert [(d.sensor_id, d.zone_id, d.ts_ms) for d in parsed.detections] == [
        ("mech-bruul-w1", "mechelen-bruul", NOW - 57_000), ("mech-bruul-w1", "mechelen-bruul", NOW - 19_000),
        ("mech-bruul-w1", "mechelen-bruul", NOW - 1_750)]
    assert PHONE not in repr(parsed)  # the address is kept out of reprs, so out of log lines


@pytest.mark.parametrize(("raw", "reason"), [
    (b"x" * (4 * 1024 * 1024 + 1), "too_large"),
    (b'{"sensor_id": "mech-bruul-w1", "detections": [{"device_address": "a4:5e:60:d2:1f:07"', "malformed_json"),
    (batch("mech-bruul-01", det()), "unknown_sensor"),  # a people counter is not a scanner
    (batch("mech-nowhere-w9", det()), "unknown_sensor"),
    (batch("mech-bruul-w1", det(ts="2026-02-30T10:00:00+01:00")), "bad_timestamp"),
    (batch("mech-bruul-w1", det(ts="2026-11-27T14:30:00+01:00")), "future_timestamp"),
    (batch("mech-bruul-w1", det(ts="2026-11-27T13:14:00+01:00")), "too_old"),
    (batch("mech-bruul-w1", det(rssi=-300)), "schema_violation"),
])
def test_every_rejection_reason_and_no_address_in_it(parser: DetectionParser, raw: bytes, reason: str) -> None:
    parsed = parser.parse(raw, NOW)
    assert parsed.detections == []
    assert [r.reason for r in parsed.rejections] == [reason]
    out = orjson.dumps([(r.detail, r.payload) for r in parsed.rejections]).decode()
    assert "a4:5e:60" not in out
    assert "device_address" not in out


def test_an_opaque_address_is_not_echoed_either(parser: DetectionParser) -> None:
    """Not MAC-shaped, so no pattern masks it: the field name and the batch's own addresses do."""
    parsed = parser.parse(batch("mech-bruul-w1", det("anna-iphone", ts="2026-11-27T12:00:00Z"),
                                det("bob-pixel", ts="2026-11-27T12:01:00Z")), NOW)
    assert [(r.reason, r.detail) for r in parsed.rejections] == [
        ("too_old", "detections[0]: ts is more than 3600 s before now (and 1 more)")]
    schema_bad = parser.parse(batch("mech-bruul-w1", det("anna-iphone", rssi="strong")), NOW)
    text = orjson.dumps([(r.detail, r.payload) for r in [*parsed.rejections, *schema_bad.rejections]]).decode()
    assert "anna" not in text
    assert "bob" not in text


def test_bad_detections_do_not_spoil_the_good_ones(parser: DetectionParser) -> None:
    parsed = parser.parse(batch("mech-bruul-w1", det(), det("b", ts="2026-11-27T14:30:00+01:00"), det("c")), NOW)
    assert len(parsed.detections) == 2
    assert [r.reason for r in parsed.rejections] == ["future_timestamp"]


# -- P2: keyed pseudonyms per zone and window -----------------------------------------------------------------
def test_pseudonyms_are_per_zone_and_window_and_unrelated_elsewhere() -> None:
    secrets = iter(bytes([i]) * 32 for i in range(1, 100))
    counter = DistinctCounter(lambda n: next(secrets))
    a = counter.key("mechelen-bruul", 0).pseudonym(PHONE)
    assert counter.key("mechelen-bruul", 0).pseudonym(PHONE) == a  # same zone and window: same value
    others = {counter.key("mechelen-vismarkt", 0).pseudonym(PHONE), counter.key("mechelen-bruul", W).pseudonym(PHONE),
              counter.key("mechelen-vismarkt", W).pseudonym(PHONE)}
    assert len(others) == 3
    assert a not in others
    assert a != hashlib.sha256(PHONE.encode()).digest()  # keyed, not a stable hash of the address


@pytest.mark.parametrize("dump", [pickle.dumps, copy.copy, copy.deepcopy], ids=["pickle", "copy", "deepcopy"])
def test_the_hasher_and_its_sets_refuse_to_leave_the_process(dump: Any) -> None:
    counter = DistinctCounter(lambda n: b"\x07" * n)
    counter.count("mechelen-bruul", 0, PHONE, [("all",)], now_ms=0)
    key = counter.key("mechelen-bruul", 0)
    for thing in (key, counter):
        with pytest.raises(TypeError, match="P2"):
            dump(thing)
    assert "\\x07" not in repr(key)
    with pytest.raises(TypeError):
        orjson.dumps(key)
    with pytest.raises(ValueError, match="32 random bytes"):
        WindowKey(b"short")


def test_distinct_devices_per_zone_window_over_scanners_and_batches(parser: DetectionParser) -> None:
    """Hand-worked: Bruul 14:10–14:15 sees the phone on w1 and w2 (one device), b on w1; 14:15–14:20 the phone
    again (a new window: counted again); Vismarkt sees the phone too (another zone: counted there)."""
    counter = DistinctCounter(lambda n: b"k" * n)
    first = parser.parse(batch("mech-bruul-w1", det(), det("b", ts="2026-11-27T14:11:00+01:00")), NOW)
    second = parser.parse(batch("mech-bruul-w2", det(ts="2026-11-27T14:12:00+01:00"),
                                det(ts="2026-11-27T14:15:00+01:00")), NOW + W)
    third = parser.parse(batch("mech-vis-w1", det(ts="2026-11-27T14:13:00+01:00")), NOW + W)
    w0 = NOW - NOW % W - W  # 14:10 Brussels
    r1 = zone_records(first, counter, W, NOW)
    assert r1 == {("mechelen-bruul", w0): {"w": w0, "s": "mech-bruul-w1", "n": 2}}
    r2 = zone_records(second, counter, W, NOW + W)
    assert r2 == {("mechelen-bruul", w0): {"w": w0, "s": "mech-bruul-w2", "n": 2},
                  ("mechelen-bruul", w0 + W): {"w": w0 + W, "s": "mech-bruul-w2", "n": 1}}
    assert zone_records(third, counter, W, NOW + W)[("mechelen-vismarkt", w0)]["n"] == 1
    again = zone_records(first, counter, W, NOW + W)  # redelivered: the set does not grow
    assert again[("mechelen-bruul", w0)]["n"] == 2
    assert PHONE not in orjson.dumps([list(r.values()) for r in (r1, r2)]).decode()


def test_sets_and_keys_are_forgotten_when_the_window_is_over() -> None:
    counter = DistinctCounter(lambda n: b"k" * n)
    counter.count("mechelen-bruul", 0, PHONE, [("all",)], now_ms=10)
    counter.count("mechelen-bruul", W, PHONE, [("all",)], now_ms=10)
    counter.count("mechelen-vismarkt", W, PHONE, [("all",)], now_ms=500)
    assert counter.forget(W, idle_before_ms=0) == 1
    assert counter.distinct("mechelen-bruul", 0, ("all",)) == 0
    assert counter.open_windows() == 2
    assert counter.forget(0, idle_before_ms=100) == 1  # nothing added to Bruul's window since 10: idle
    assert counter.open_windows() == 1


# -- the zone side ---------------------------------------------------------------------------------------------
def test_counts_are_maxima_per_process_and_added_across_processes() -> None:
    cell = empty_cell()
    for contributor, n, scanner, p in (("a", 3, "w1", 0), ("a", 5, "w2", 1), ("a", 4, "w1", 0), ("b", 2, "w3", 2)):
        apply_record(cell, contributor, {"n": n, "s": scanner}, p)
    assert cell == {"n": {"a": 5, "b": 2}, "s": ["w1", "w2", "w3"], "ps": [0, 1, 2], "f": False}


def test_a_window_is_due_after_end_and_grace_once_its_partitions_are_vouched_for() -> None:
    cell = empty_cell()
    apply_record(cell, "a", {"n": 20, "s": "w1"}, 2)
    end = W + 60_000
    assert not is_due(cell, 0, W, 60_000, end - 1, {2: end})
    assert not is_due(cell, 0, W, 60_000, end, {2: end - 1})  # its input partition not read that far
    assert is_due(cell, 0, W, 60_000, end, {2: end, 0: 0})


@pytest.mark.parametrize(("n", "scanners", "visitors", "reason"), [
    (47, ["w1", "w2", "w3"], {"min": 40, "max": 50}, None),
    (15, ["w1", "w2", "w3"], {"min": 10, "max": 20}, None),
    (14, ["w1", "w2", "w3"], None, "below_k"),  # one phone fewer: no number (P6)
    (1, ["w1", "w2", "w3"], None, "below_k"),  # the lone phone at night is never a +1
    (400, ["w1", "w2"], None, "few_sensors"),  # two scanners: no number (P7)
])
def test_published_window_is_a_range_or_none(n: int, scanners: list[str], visitors: Any, reason: str | None) -> None:
    zone, city = REGISTRY.zones["mechelen-bruul"], REGISTRY.city_of_zone["mechelen-bruul"]
    cell = empty_cell()
    for i, s in enumerate(scanners):
        apply_record(cell, "a", {"n": n if i == 0 else 0, "s": s}, 0)
    obj = devices_object(zone, city, NOW, W, cell, POLICY)
    assert obj["visitors"] == visitors
    assert obj["privacy"] == {"suppressed": reason is not None, "reason": reason, "k_min": 15, "noise": "none"}
    assert obj["window"] == {"start": "2026-11-27T14:15:00+01:00", "end": "2026-11-27T14:20:00+01:00",
                             "seconds": 300}
    assert obj["quality"] == {"sensors_reporting": len(scanners), "sensors_expected": 3}


def test_live_member_is_null_without_scanners_and_stale_when_old() -> None:
    bruul, ijz = REGISTRY.zones["mechelen-bruul"], REGISTRY.zones["mechelen-ijzerenleen"]
    stored = devices_object(bruul, REGISTRY.city_of_zone[bruul.id], NOW, W,
                            {"n": {"a": 47}, "s": ["w1", "w2", "w3"], "ps": [0], "f": True}, POLICY)
    assert live_devices(ijz, None, NOW, 630_000) is None
    assert live_devices(bruul, None, NOW, 630_000) == {"visitors": None, "suppressed": False, "reason": None,
                                                       "as_of": None, "window": None, "stale": True}
    fresh = live_devices(bruul, stored, NOW + W + 630_000, 630_000)
    assert fresh is not None
    assert (fresh["visitors"], fresh["suppressed"], fresh["stale"]) == ({"min": 40, "max": 50}, False, False)
    old = live_devices(bruul, stored, NOW + W + 630_001, 630_000)
    assert old is not None
    assert old["stale"] is True


def test_registry_keeps_scanners_apart_from_counters() -> None:
    bruul = REGISTRY.zones["mechelen-bruul"]
    assert [s.id for s in bruul.sensors] == ["mech-bruul-01", "mech-bruul-02", "mech-bruul-03"]
    assert [(s.id, s.kind) for s in bruul.device_sensors] == [
        ("mech-bruul-w1", "wifi"), ("mech-bruul-w2", "wifi"), ("mech-bruul-w3", "ble")]
    assert "mech-bruul-w1" not in REGISTRY.sensors  # a footfall reading from a scanner is an unknown sensor
    with pytest.raises(RegistryError, match="has 2 wifi/ble sensors; needs none or at least 3"):
        parse_registry(REGISTRY_TEXT.replace(", {id: mech-bruul-w3, kind: ble}", ""))


# -- the simulator ----------------------------------------------------------------------------------------------
def test_simulated_detections_are_valid_and_the_same_phones_come_back() -> None:
    start = NOW - NOW % 3_600_000 - 24 * 3_600_000  # the day before, 14:00 in Mechelen: shops open
    out = device_batches(REGISTRY, "mechelen", start, start + 30 * MIN, seed=7)
    validate = jsonschema.Draft202012Validator(schemas.load(TOPIC))
    assert out
    assert all(validate.is_valid(b) for b in out)
    assert {b["sensor_id"] for b in out} <= set(REGISTRY.device_sensors)  # IJzerenleen has no scanners
    assert out == [b for m in range(30) for b in device_batches(REGISTRY, "mechelen", start + m * MIN,
                                                                start + (m + 1) * MIN, seed=7)]
    zone_windows: dict[str, set[tuple[str, int]]] = {}
    for b in out:
        zone = REGISTRY.device_sensors[b["sensor_id"]].zone_id
        for d in b["detections"]:
            assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", d["device_address"])
            zone_windows.setdefault(d["device_address"], set()).add((zone, parse_ts(d["ts"]) // W))
    assert any(len({z for z, _ in seen}) > 1 for seen in zone_windows.values())  # seen in both zones
    assert any(len({w for _, w in seen}) > 1 for seen in zone_windows.values())  # and in two windows
    parser = DetectionParser(schemas.load(TOPIC), REGISTRY, max_future_ms=0, max_age_ms=10 * 86_400_000)
    assert all(parser.parse(orjson.dumps(b), start + 31 * MIN).rejections == [] for b in out)


# -- the auditor's scanner, as extended for devices -----------------------------------------------------------
def test_scanner_finds_base64_digests_and_keys_but_not_names() -> None:
    digest = base64.b64encode(hashlib.sha256(PHONE.encode()).digest()).decode()
    key = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
    for text in (f'{{"n": 3, "x": "{digest}"}}', f"set {key} dropped", f'"{digest.rstrip("=")}"'):
        assert [leak.kind for leak in scan_text("t", text)] == ["b64"], text
    name = "drukte-zone-devices-changelog-and-some-more-words"[:43]
    assert scan_text("t", f"topic {name} created") == []
    assert set(identifier_forms(PHONE).values()) >= {PHONE, "a45e60d21f07", hashlib.sha256(PHONE.encode()).hexdigest()}
    assert find_forms({"redis": [b"x A45E60D21F07 y"]}, {}, PHONE) == ["redis: a4:5e:60:d2:1f:07 bare"]
