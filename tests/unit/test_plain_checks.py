"""The hand-written checks of a reading (`plain_reading`) and of a batch around its readings (`plain_envelope`,
which leaves the items to `plain_reading`) are never looser than the schema: whatever they pass, the schema
accepts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from streams.footfall import (
    MAX_READINGS,
    SCHEMA_VIOLATION,
    FootfallParser,
    IngestPolicy,
    envelope_schema,
    plain_envelope,
    plain_reading,
)
from streams.registry import parse_registry

SCHEMA = schemas.load("footfall.counts.v1")
READING_SCHEMA = fastjsonschema.compile({**SCHEMA["properties"]["readings"]["items"], "$defs": SCHEMA["$defs"]})
BATCH_SCHEMA = fastjsonschema.compile(SCHEMA)
ENVELOPE_SCHEMA = fastjsonschema.compile(envelope_schema(SCHEMA))

REGISTRY = parse_registry((Path(__file__).parents[1] / "e2e" / "registry-audit.yaml").read_text())
NOW = 1_795_785_300_000  # 2026-11-27T13:15:00Z
READING = {"sensor_id": "mechelen-bruul-1", "start": "2026-11-27T14:00:00+01:00", "seconds": 60, "in": 3, "out": 4}
BATCH = {"source": "gw-mechelen-01", "batch_id": "gw-mechelen-01/2026-11-27T14:15:00Z",
         "sent_at": "2026-11-27T14:15:03Z", "readings": [READING]}
texts = st.one_of(st.sampled_from(["2026-11-27T14:00:00Z", "2026-11-27T14:00:00.5+01:00", "2026-11-27T14:00:00Z\n",
                                   "2026-11-27 14:00:00Z", "x", "", "a-1", "-a", "A1", "a" * 64, "a" * 65,
                                   "gw-1\n", "gw.1:a_b", "_gw", "a" * 128, "a" * 129, "b" * 256, "b" * 257,
                                   "aa:bb:cc:dd:ee:ff", "é-gw"]),
                  st.text(max_size=260))
values = st.one_of(texts, st.integers(-2, 10_000_002), st.sampled_from([0, 1, 86_400, 86_401, 10_000_000]),
                   st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                   st.lists(st.integers(), max_size=2), st.lists(st.just(READING), max_size=2), st.just({}))


def accepted(validate: Callable[[Any], Any], value: Any) -> bool:
    try:
        validate(value)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def changed(good: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """`good` with up to three fields set to odd values or added, and up to two dropped."""
    changes = data.draw(st.dictionaries(st.sampled_from([*good, "extra"]), values, max_size=3))
    dropped = data.draw(st.sets(st.sampled_from(list(good)), max_size=2))
    return {k: v for k, v in {**good, **changes}.items() if k not in dropped}


@settings(max_examples=800, deadline=None)
@given(data=st.data())
def test_the_reading_check_is_never_looser_than_the_schema(data: st.DataObject) -> None:
    r = changed(READING, data)
    if plain_reading(r):
        assert accepted(READING_SCHEMA, r), r


@settings(max_examples=800, deadline=None)
@given(data=st.data())
def test_the_batch_checks_are_never_looser_than_the_schema(data: st.DataObject) -> None:
    """As the parser uses them: a plain envelope whose readings are all plain is a batch the schema accepts."""
    doc = changed(BATCH, data)
    if plain_envelope(doc) and all(map(plain_reading, doc["readings"])):
        assert accepted(BATCH_SCHEMA, doc), doc


@pytest.mark.parametrize("r", [READING, {**READING, "start": "2026-03-29T02:30:00.123456Z"},
                               {**READING, "in": 10_000_000}])
def test_passes_plain_readings(r: dict[str, Any]) -> None:
    assert plain_reading(r)
    assert accepted(READING_SCHEMA, r)


@pytest.mark.parametrize("r", [{**READING, "in": True}, {**READING, "seconds": 60.0}, {**READING, "sensor_id": "Bruul"},
                               {**READING, "start": "2026-11-27T14:00:00Z\n"}, {**READING, "x": 1}, [READING]])
def test_asks_the_schema_about_other_readings(r: Any) -> None:
    assert not plain_reading(r)


@pytest.mark.parametrize("doc", [BATCH, {**BATCH, "readings": []}, {**BATCH, "source": "A" + "b" * 127},
                                 {**BATCH, "batch_id": "é" * 256}, {**BATCH, "readings": [READING] * MAX_READINGS}])
def test_passes_plain_batches(doc: dict[str, Any]) -> None:
    assert plain_envelope(doc)
    assert accepted(ENVELOPE_SCHEMA, doc)
    assert accepted(BATCH_SCHEMA, doc)


@pytest.mark.parametrize("doc", [{**BATCH, "source": "gw-1\n"}, {**BATCH, "source": "gw 1"}, {**BATCH, "batch_id": ""},
                                 {**BATCH, "sent_at": "2026-11-27 14:15:03Z"}, {**BATCH, "readings": {}},
                                 {**BATCH, "readings": [{}] * (MAX_READINGS + 1)}, {**BATCH, "x": 1}, [BATCH],
                                 {k: v for k, v in BATCH.items() if k != "sent_at"}])
def test_asks_the_schema_about_other_batches(doc: Any) -> None:
    assert not plain_envelope(doc)


def test_the_reading_limit_is_the_schema_s() -> None:
    assert SCHEMA["properties"]["readings"]["maxItems"] == MAX_READINGS


@pytest.mark.parametrize("items", [[0], [None], ["x"], [[1]], [READING, 0]])
def test_a_plain_envelope_around_items_that_are_no_objects_is_still_a_schema_violation(items: list[Any]) -> None:
    """`plain_envelope` leaves the items to `plain_reading`; the parser then asks the whole schema."""
    doc = {**BATCH, "readings": items}
    assert plain_envelope(doc)
    parsed = FootfallParser(SCHEMA, REGISTRY, IngestPolicy(300_000, 50)).parse(orjson.dumps(doc), NOW)
    assert [r.reason for r in parsed.rejections] == [SCHEMA_VIOLATION]
    assert "must be object" in parsed.rejections[0].detail
    assert parsed.readings == []
