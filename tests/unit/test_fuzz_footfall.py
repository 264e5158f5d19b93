"""FootfallParser under fuzzing: it never raises, and every reading is counted or rejected with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from footfall_corpus import corpus, many_readings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from drukte.registry_check import load_registry
from streams.footfall import MAX_MESSAGE_BYTES, REASONS, FootfallParser, IngestPolicy, Reading

NOW = 1_795_785_300_000  # 2026-11-27T13:15:00Z
POLICY = IngestPolicy(max_future_ms=300_000, max_rate_per_s=50)
REGISTRY = load_registry(Path(__file__).parents[1] / "e2e" / "registry.yaml")
SENSORS = {s.id: s for z in REGISTRY.zones.values() for s in z.sensors}
REFERENCE = jsonschema.Draft202012Validator(schemas.load("footfall.counts.v1"))
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def parser() -> FootfallParser:
    return FootfallParser(schemas.load("footfall.counts.v1"), REGISTRY, POLICY)


def expected(r: dict[str, Any]) -> str | Reading:
    """The outcome the contract gives one schema-valid reading: its rejection reason, or the reading counted.
    Checked in the parser's documented order: sensor, time, future, count."""
    sensor = SENSORS.get(r["sensor_id"])
    if sensor is None:
        return "unknown_sensor"
    try:
        start = int(datetime.fromisoformat(r["start"]).timestamp() * 1000)
    except (ValueError, OverflowError):
        return "bad_timestamp"
    if start < NOW - POLICY.max_past_ms:
        return "bad_timestamp"
    if start + r["seconds"] * 1000 > NOW + POLICY.max_future_ms:
        return "future_timestamp"
    if max(r["in"], r["out"]) > r["seconds"] * POLICY.max_rate_per_s:
        return "absurd_count"
    visitors = r["in"] + r["out"] if sensor.kind == "street" else r["in"]
    return Reading(sensor.id, sensor.zone_id, start, r["seconds"] * 1000, visitors)


def check(parser: FootfallParser, raw: bytes) -> None:
    """The property: no exception; a whole message is rejected once with a known reason, or each of its
    readings has exactly the outcome `expected` gives it."""
    parsed = parser.parse(raw, NOW)
    assert all(rej.reason in REASONS for rej in parsed.rejections)
    if len(raw) > MAX_MESSAGE_BYTES:
        assert ([r.reason for r in parsed.rejections], parsed.readings) == (["too_large"], [])
        return
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        assert ([r.reason for r in parsed.rejections], parsed.readings) == (["malformed_json"], [])
        return
    if not REFERENCE.is_valid(doc):
        assert [r.reason for r in parsed.rejections] == ["schema_violation"]
        assert parsed.readings == []
        return
    outcomes = [expected(r) for r in doc["readings"]]
    assert parsed.readings == [o for o in outcomes if isinstance(o, Reading)]
    by_index = {int(rej.detail.split("]", 1)[0].removeprefix("readings[")): rej.reason for rej in parsed.rejections}
    assert by_index == {i: o for i, o in enumerate(outcomes) if isinstance(o, str)}


# -- strategies ------------------------------------------------------------------------------------------
offsets = st.sampled_from(["Z", "+00:00", "+01:00", "+14:00", "-23:59", "+23:59"])
timestamps = st.one_of(
    st.builds(lambda ms, off: datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None).isoformat(
        timespec="seconds") + off, st.integers(-62_135_596_800_000, 253_402_300_799_000), offsets),  # years 1–9999
    st.builds(lambda ms, off: datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None).isoformat(
        timespec="seconds") + off, st.integers(NOW - 3 * 86_400_000, NOW + 3_600_000), offsets),  # near now
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})\Z"),
    st.text(max_size=30),
)
INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)  # what JSON encoders write; bigger ones are in the corpus
counts = st.one_of(st.integers(0, 200), st.integers(-10, 10 ** 8), INT64, st.floats(allow_nan=False), st.booleans(),
                   st.none(), st.text(max_size=3))
readings = st.fixed_dictionaries(
    {"sensor_id": st.one_of(st.sampled_from(sorted(SENSORS)), st.text(max_size=12), INT64),
     "start": timestamps, "seconds": st.one_of(st.integers(1, 86_400), counts),
     "in": counts, "out": counts},
    optional={"extra": INT64},
)
valid_readings = st.fixed_dictionaries(  # schema-valid: only registry, time and count decide
    {"sensor_id": st.one_of(st.sampled_from(sorted(SENSORS)), st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}\Z")),
     "start": timestamps.filter(lambda t: REFERENCE.is_valid({"source": "g", "batch_id": "b", "sent_at": t,
                                                              "readings": []})),
     "seconds": st.integers(1, 86_400), "in": st.integers(0, 10 ** 7), "out": st.integers(0, 10 ** 7)})
batches = st.fixed_dictionaries(
    {"source": st.one_of(st.just("gw-testtown-01"), st.text(max_size=10)), "batch_id": st.text(max_size=10),
     "sent_at": timestamps, "readings": st.lists(readings, max_size=8)},
    optional={"extra": st.text()},
)
json_values = st.recursive(st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=30)


@FAST
@given(batches)
def test_near_valid_batches(parser: FootfallParser, doc: dict[str, Any]) -> None:
    check(parser, orjson.dumps(doc))


@FAST
@given(st.lists(valid_readings, min_size=1, max_size=20))
def test_valid_batches_every_reading_has_its_outcome(parser: FootfallParser, rs: list[dict[str, Any]]) -> None:
    check(parser, orjson.dumps({"source": "gw-1", "batch_id": "b", "sent_at": "2026-11-27T14:15:03Z", "readings": rs}))


@FAST
@given(json_values)
def test_any_json(parser: FootfallParser, doc: Any) -> None:
    check(parser, orjson.dumps(doc))


@FAST
@given(st.binary(max_size=300))
def test_any_bytes(parser: FootfallParser, raw: bytes) -> None:
    check(parser, raw)


@FAST
@given(batches, st.integers(0, 400))
def test_truncated_messages(parser: FootfallParser, doc: dict[str, Any], cut: int) -> None:
    raw = orjson.dumps(doc)
    check(parser, raw[:cut])


@pytest.mark.parametrize("case", corpus(NOW, NOW - 30 * 60_000), ids=lambda c: c.name)
def test_corpus(parser: FootfallParser, case: Any) -> None:
    check(parser, case.raw)
    parsed = parser.parse(case.raw, NOW)
    assert sorted(r.reason for r in parsed.rejections) == case.reasons
    assert len(parsed.readings) == len(case.valid)


def test_ten_thousand_readings_in_one_batch(parser: FootfallParser) -> None:
    raw, _ = many_readings(NOW - 3_600_000)
    parsed = parser.parse(raw, NOW)
    assert (len(parsed.readings), parsed.rejections) == (10_000, [])
    check(parser, raw)
