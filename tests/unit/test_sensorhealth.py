"""Sensor health: silent while open, stuck at zero while neighbours count, jumping above 5× its usual share."""

from __future__ import annotations

from statistics import median

from hypothesis import given
from hypothesis import strategies as st

from streams.footfall import Reading
from streams.registry import parse_registry
from streams.sensorhealth import JUMP, OK, SILENT, STUCK, HealthPolicy, SensorHealth, _median_without

REG = parse_registry("""
cities:
  - id: t
    name: T
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: z
        name: Z
        sensors: [{id: a, kind: street}, {id: b, kind: street}, {id: c, kind: street}, {id: d, kind: entrance}]
""")
MIN = 60_000
T0 = 1_795_870_800_000


def health(open_: bool = True) -> SensorHealth:
    return SensorHealth(REG, HealthPolicy(silent_ms=3 * 5 * MIN), lambda zone, ms: open_)


def minute(i: int, a: int, b: int = 20, c: int = 22, d: int = 5) -> list[Reading]:
    start = T0 + i * MIN
    return [Reading(s, "z", start, MIN, v) for s, v in (("a", a), ("b", b), ("c", c), ("d", d))]


def test_healthy_sensors_are_all_kept() -> None:
    h = health()
    for i in range(60):
        keep, excluded = h.observe(minute(i, 18 + i % 5))
        assert len(keep) == 4
        assert excluded == {}
    assert {s for s, _ in h.states(T0 + 61 * MIN).values()} == {OK}


def test_a_counter_stuck_at_zero_is_flagged_and_left_out() -> None:
    h = health()
    for i in range(14):
        keep, _ = h.observe(minute(i, 0))
        assert len(keep) == 4  # a few zeros may be a quiet spot
    keep, excluded = h.observe(minute(14, 0))
    assert excluded == {STUCK: 1}
    assert [r.sensor_id for r in keep] == ["b", "c", "d"]
    assert h.states(T0 + 15 * MIN)["a"] == (STUCK, T0 + 15 * MIN)
    keep, _ = h.observe(minute(15, 19))  # counting again: back in at once
    assert len(keep) == 4
    assert h.states(T0 + 16 * MIN)["a"][0] == OK


def test_zeros_at_night_are_not_stuck() -> None:
    h = health()
    for i in range(100):
        keep, excluded = h.observe(minute(i, 0, b=1, c=0, d=0))
        assert excluded == {}
        assert len(keep) == 4


def test_a_jump_above_five_times_its_usual_share_is_left_out() -> None:
    h = health()
    for i in range(120):
        h.observe(minute(i, 40))  # sensor a usually counts double its neighbours
    keep, excluded = h.observe(minute(120, 180))  # 8× the neighbours but only 4× its usual share: fine
    assert excluded == {}
    keep, excluded = h.observe(minute(121, 250))  # 12× the neighbours, 6× its share
    assert excluded == {JUMP: 1}
    assert "a" not in {r.sensor_id for r in keep}


def test_silent_only_while_the_zone_is_open() -> None:
    h = health()
    h.observe(minute(0, 20))
    h.observe([r for r in minute(1, 20) if r.sensor_id != "b"])
    late = T0 + 20 * MIN
    assert h.states(late)["b"] == (SILENT, T0 + MIN)
    assert health(open_=False).states(late) == {}
    closed = SensorHealth(REG, HealthPolicy(silent_ms=15 * MIN), lambda zone, ms: False)
    closed.observe(minute(0, 20))
    assert {s for s, _ in closed.states(late).values()} == {OK}


@given(st.lists(st.integers(0, 50), min_size=1, max_size=9), st.data())
def test_median_without_is_the_median_of_the_others(visitors: list[int], data: st.DataObject) -> None:
    own = data.draw(st.sampled_from(visitors))
    others = list(visitors)
    others.remove(own)
    rates = sorted(v / 1.5 for v in visitors)
    expected = median(v / 1.5 for v in others) if len(others) >= 2 else None
    assert _median_without(rates, own / 1.5) == expected


def test_a_batch_of_many_minutes_is_judged_like_the_minutes_one_by_one_and_keeps_its_order() -> None:
    """The ingest hands over a whole batch (with one reading per message, minutes and sensors interleaved): the
    verdicts are those of minute-by-minute batches, and the kept readings stay in input order."""
    minutes = [minute(i, 0 if i >= 3 else 19) for i in range(20)]
    one_by_one = health()
    expected_keep = [r for m in minutes for r in one_by_one.observe(m)[0]]
    batch = [r for m in minutes for r in m]
    batch = batch[1::2] + batch[0::2]  # interleaved: b and d of every minute first, then a and c
    keep, excluded = health().observe(batch)
    assert excluded == {STUCK: 3}  # a, from its 15th zero on (minutes 17–19)
    assert keep == [r for r in batch if r in expected_keep]
    assert sorted(keep) == sorted(expected_keep)
