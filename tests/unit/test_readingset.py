"""The reading set of a window: runs of starts per sensor, exact as a plain set of (sensor, start)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import readingset
from streams.readingset import Seen

SENSORS = ["a", "b"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SENSORS), st.integers(0, 40)), max_size=80))
def test_the_runs_hold_exactly_the_starts_added(adds: list[tuple[str, int]]) -> None:
    seen: Seen = {}
    plain: set[tuple[str, int]] = set()
    for sensor, start in adds:
        assert readingset.has(seen, sensor, start) == ((sensor, start) in plain)
        if (sensor, start) not in plain:
            readingset.add(seen, sensor, start)
            plain.add((sensor, start))
    assert all(readingset.has(seen, s, t) == ((s, t) in plain) for s in SENSORS for t in range(-5, 50))
    assert readingset.size(seen) == len(plain)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SENSORS), st.integers(0, 40)), max_size=40, unique=True), st.data())
def test_a_shallow_copy_is_a_safe_copy(adds: list[tuple[str, int]], data: st.DataObject) -> None:
    """`add` never changes a run in place: a copy made with `dict(seen)` is not changed by adds to the original."""
    seen: Seen = {}
    cut = data.draw(st.integers(0, len(adds)))
    for sensor, start in adds[:cut]:
        readingset.add(seen, sensor, start)
    copy = dict(seen)
    for sensor, start in adds[cut:]:
        readingset.add(seen, sensor, start)
    assert readingset.size(copy) == cut
    assert all(readingset.has(copy, s, t) for s, t in adds[:cut])


@pytest.mark.parametrize(
    ("starts", "runs"),
    [
        ([0, 60, 120, 180], [[0, 60, 4]]),  # a sensor at its pace: one run
        ([0, 60, 180, 240], [[0, 60, 2], [180, 60, 2]]),  # a gap opens a second run
        ([120, 0, 60], [[120, 0, 1], [0, 60, 2]]),  # out of order: still exact
    ],
)
def test_a_sensor_at_its_pace_is_one_run(starts: list[int], runs: list[list[int]]) -> None:
    seen: Seen = {}
    for s in starts:
        readingset.add(seen, "a", s)
    assert seen == {"a": runs}


def test_tags_from_before_runs_are_read() -> None:
    assert readingset.from_state(["a@0", "a@60", "b-2@0"]) == {"a": [[0, 60, 2]], "b-2": [[0, 0, 1]]}
    assert readingset.from_state("a@0 a@60") == {"a": [[0, 60, 2]]}
    assert readingset.from_state("") == {}
