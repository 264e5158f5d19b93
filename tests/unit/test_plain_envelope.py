"""The hand-written batch envelope check is never looser than the schema: whatever it passes, the schema's
envelope (readings as any objects; they are checked on their own) accepts."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from streams.footfall import MAX_READINGS, envelope_schema, plain_envelope

SCHEMA = schemas.load("footfall.counts.v1")
ACCEPTS = fastjsonschema.compile(envelope_schema(SCHEMA))

READING = {"sensor_id": "mechelen-bruul-1", "start": "2026-11-27T14:00:00+01:00", "seconds": 60, "in": 3, "out": 4}
GOOD = {"source": "gw-mechelen-01", "batch_id": "gw-mechelen-01/2026-11-27T14:15:00Z",
        "sent_at": "2026-11-27T14:15:03Z", "readings": [READING]}
texts = st.one_of(st.sampled_from(["2026-11-27T14:00:00Z", "2026-11-27T14:00:00.5+01:00", "2026-11-27T14:00:00Z\n",
                                   "gw-1\n", "gw.1:a_b", "_gw", "", "x", "a" * 128, "a" * 129, "b" * 256, "b" * 257,
                                   "aa:bb:cc:dd:ee:ff", "é-gw"]),
                  st.text(max_size=260))
values = st.one_of(texts, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                   st.lists(st.just(READING), max_size=2), st.just([]), st.just({}))


def accepted(doc: Any) -> bool:
    try:
        ACCEPTS(doc)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@settings(max_examples=800, deadline=None)
@given(changes=st.dictionaries(st.sampled_from([*GOOD, "extra"]), values, max_size=3),
       dropped=st.sets(st.sampled_from(list(GOOD)), max_size=2))
def test_never_looser_than_the_schema(changes: dict[str, Any], dropped: set[str]) -> None:
    doc = {k: v for k, v in {**GOOD, **changes}.items() if k not in dropped}
    if plain_envelope(doc):
        assert accepted(doc), doc


@pytest.mark.parametrize("doc", [GOOD, {**GOOD, "readings": []}, {**GOOD, "source": "A" + "b" * 127},
                                 {**GOOD, "batch_id": "é" * 256}, {**GOOD, "readings": [{}] * MAX_READINGS}])
def test_passes_plain_batches(doc: dict[str, Any]) -> None:
    assert plain_envelope(doc)
    assert accepted(doc)


@pytest.mark.parametrize("doc", [{**GOOD, "source": "gw-1\n"}, {**GOOD, "source": "gw 1"}, {**GOOD, "batch_id": ""},
                                 {**GOOD, "sent_at": "2026-11-27 14:15:03Z"}, {**GOOD, "readings": {}},
                                 {**GOOD, "readings": [{}] * (MAX_READINGS + 1)}, {**GOOD, "x": 1}, [GOOD],
                                 {k: v for k, v in GOOD.items() if k != "sent_at"}])
def test_asks_the_schema_otherwise(doc: Any) -> None:
    assert not plain_envelope(doc)


def test_the_reading_limit_is_the_schema_s() -> None:
    assert SCHEMA["properties"]["readings"]["maxItems"] == MAX_READINGS
