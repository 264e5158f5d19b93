"""The hand-written reading check is never looser than the schema: whatever it passes, the schema accepts."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from streams.footfall import plain_reading

SCHEMA = schemas.load("footfall.counts.v1")
ACCEPTS = fastjsonschema.compile({**SCHEMA["properties"]["readings"]["items"], "$defs": SCHEMA["$defs"]})

GOOD = {"sensor_id": "mechelen-bruul-1", "start": "2026-11-27T14:00:00+01:00", "seconds": 60, "in": 3, "out": 4}
texts = st.one_of(st.sampled_from(["2026-11-27T14:00:00Z", "2026-11-27T14:00:00.5+01:00", "2026-11-27T14:00:00Z\n",
                                   "2026-11-27 14:00:00Z", "x", "", "a-1", "-a", "A1", "a" * 64, "a" * 65]),
                  st.text(max_size=70))
values = st.one_of(texts, st.integers(-2, 10_000_002), st.sampled_from([0, 1, 86_400, 86_401, 10_000_000]),
                   st.floats(allow_nan=True), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))


def accepted(r: Any) -> bool:
    try:
        ACCEPTS(r)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@settings(max_examples=800, deadline=None)
@given(changes=st.dictionaries(st.sampled_from([*GOOD, "extra"]), values, max_size=3),
       dropped=st.sets(st.sampled_from(list(GOOD)), max_size=2))
def test_never_looser_than_the_schema(changes: dict[str, Any], dropped: set[str]) -> None:
    r = {k: v for k, v in {**GOOD, **changes}.items() if k not in dropped}
    if plain_reading(r):
        assert accepted(r), r


@pytest.mark.parametrize("r", [GOOD, {**GOOD, "start": "2026-03-29T02:30:00.123456Z"}, {**GOOD, "in": 10_000_000}])
def test_passes_plain_readings(r: dict[str, Any]) -> None:
    assert plain_reading(r)
    assert accepted(r)


@pytest.mark.parametrize("r", [{**GOOD, "in": True}, {**GOOD, "seconds": 60.0}, {**GOOD, "sensor_id": "Bruul"},
                               {**GOOD, "start": "2026-11-27T14:00:00Z\n"}, {**GOOD, "x": 1}, [GOOD]])
def test_asks_the_schema_otherwise(r: Any) -> None:
    assert not plain_reading(r)
