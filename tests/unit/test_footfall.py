"""Ingest validation: the golden examples, the schema as the reference, and every rejection reason."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest

import schemas
from streams.footfall import FootfallParser, IngestPolicy, Reading
from streams.registry import parse_registry

TOPIC = "footfall.counts.v1"
NOW = 1_795_785_300_000  # 2026-11-27T13:15:00Z
REGISTRY = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: mech-bruul-01, kind: street}, {id: mech-bruul-02, kind: street},
                  {id: mech-bruul-03, kind: entrance}]
  - id: antwerpen
    name: Antwerpen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: antwerpen-meir
        name: Meir
        sensors: [{id: ant-meir-01, kind: street}, {id: ant-meir-02, kind: street}, {id: ant-meir-03, kind: street}]
""")
POLICY = IngestPolicy(max_future_ms=300_000, max_rate_per_s=50)


@pytest.fixture(scope="module")
def parser() -> FootfallParser:
    return FootfallParser(schemas.load(TOPIC), REGISTRY, POLICY)


def reference_accepts(doc: object) -> bool:
    validator = jsonschema.Draft202012Validator(schemas.load(TOPIC))
    return bool(validator.is_valid(doc))


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schemas.load(TOPIC))


@pytest.mark.parametrize("path", schemas.examples(TOPIC, "valid"), ids=lambda p: p.stem)
def test_golden_valid_examples(parser: FootfallParser, path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    assert reference_accepts(doc)
    assert parser.schema_error(doc) is None
    parsed = parser.parse(path.read_bytes(), NOW)
    assert [r.reason for r in parsed.rejections if r.reason == "schema_violation"] == []


@pytest.mark.parametrize("path", schemas.examples(TOPIC, "invalid"), ids=lambda p: p.stem)
def test_golden_invalid_examples(parser: FootfallParser, path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    assert not reference_accepts(doc)
    parsed = parser.parse(path.read_bytes(), NOW)
    assert [r.reason for r in parsed.rejections] == ["schema_violation"]
    assert parsed.readings == []


def batch(*readings: dict[str, object]) -> bytes:
    return orjson.dumps({"source": "gw-1", "batch_id": "gw-1/1", "sent_at": "2026-11-27T13:15:03Z",
                         "readings": list(readings)})


def reading(sensor: str = "mech-bruul-01", start: str = "2026-11-27T14:14:00+01:00", seconds: int = 60,
            n_in: int = 12, n_out: int = 9) -> dict[str, object]:
    return {"sensor_id": sensor, "start": start, "seconds": seconds, "in": n_in, "out": n_out}


@pytest.mark.parametrize(
    ("raw", "reasons", "n_readings"),
    [
        (b"{not json", ["malformed_json"], 0),  # broken JSON
        (b"\xff\xfe\x00", ["malformed_json"], 0),  # not UTF-8
        (b'{"a": NaN}', ["malformed_json"], 0),  # NaN is not JSON
        (b"[]", ["schema_violation"], 0),  # valid JSON, wrong shape
        (batch(reading(sensor="nope-01")), ["unknown_sensor"], 0),  # not in the registry
        (batch(reading(n_in=4000)), ["absurd_count"], 0),  # 4000 in a minute through one sensor
        (batch(reading(start="2026-11-27T15:00:00+01:00")), ["future_timestamp"], 0),  # ends 45 min from now
        (batch(reading(start="2026-02-30T10:00:00+01:00")), ["bad_timestamp"], 0),  # no 30 February
        (batch(reading(start="2016-11-27T14:14:00+01:00")), [], 1),  # old is history, not bad input
        (batch(reading(), reading(sensor="nope-01"), reading(sensor="mech-bruul-02")), ["unknown_sensor"], 2),
        (batch(), [], 0),  # an empty batch is fine
        (b"x" * (4 * 1024 * 1024 + 1), ["too_large"], 0),
    ],
)
def test_rejections(parser: FootfallParser, raw: bytes, reasons: list[str], n_readings: int) -> None:
    parsed = parser.parse(raw, NOW)
    assert [r.reason for r in parsed.rejections] == reasons
    assert len(parsed.readings) == n_readings


@pytest.mark.parametrize(
    ("sensor", "expected"),
    [
        ("mech-bruul-01", 21),  # street: passers-by = in + out
        ("mech-bruul-03", 12),  # entrance: visitors = in
    ],
)
def test_visitors_by_sensor_kind(parser: FootfallParser, sensor: str, expected: int) -> None:
    parsed = parser.parse(batch(reading(sensor=sensor)), NOW)
    assert parsed.readings == [Reading(sensor, "mechelen-bruul", 1_795_785_240_000, 60_000, expected)]


def test_rejected_payload_masks_identifiers(parser: FootfallParser) -> None:
    raw = orjson.dumps({"source": "gw", "batch_id": "b", "sent_at": "2026-11-27T13:15:03Z", "readings": [],
                        "device_mac": "aa:bb:cc:dd:ee:ff", "note": "card 4111 1111 1111 1111"})
    parsed = parser.parse(raw, NOW)
    payload = orjson.dumps(parsed.rejections[0].payload).decode()
    assert "aa:bb" not in payload
    assert "4111" not in payload
    assert "mac" not in payload


def test_rejection_detail_never_echoes_an_identifier(parser: FootfallParser) -> None:
    # a "sensor id" that is really a MAC address passes the id pattern; it must not leave in the detail (P1)
    parsed = parser.parse(batch(reading(sensor="a45e60c2110f")), NOW)
    [rej] = parsed.rejections
    assert rej.reason == "unknown_sensor"
    assert "a45e60c2110f" not in rej.detail
    assert "a45e60c2110f" not in orjson.dumps(rej.payload).decode()


def test_a_message_without_a_value_is_rejected_not_raised(parser: FootfallParser) -> None:
    """A null record value (a tombstone someone produced) is one rejection: raised, it would stop the ingest and
    stop it again at every restart, since its offset is never committed."""
    parsed = parser.parse(None, 0)
    assert parsed.readings == []
    assert [r.reason for r in parsed.rejections] == ["malformed_json"]
