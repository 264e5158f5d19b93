"""bench.floor: the worker's pure logic over the throughput data closes every window exactly, and the bound it states
follows from the stage times it measured."""

from __future__ import annotations

from typing import Any

import pytest

from bench import floor


@pytest.mark.parametrize("encoding", ["A", "B"])
def test_the_floor_runs_the_whole_logic_and_bounds_the_ratio(encoding: str) -> None:
    res = floor.measure(encoding, readings=2_000, repeats=1, ceiling_rps=500_000.0)
    assert res["windows"] == 80  # 2,000 readings of 200 sensors, one a minute: two 5-minute windows per zone
    us = res["us_per_reading"]
    assert all(us[stage] > 0 for stage in floor.STAGES)
    assert res["floor_us"] == pytest.approx(sum(us[s] for s in floor.STAGES), abs=0.01)
    assert res["max_ratio"] == pytest.approx(1e6 / 500_000 / res["floor_us"], abs=5e-4)  # rounded to 3 places
    assert res["budget_us"] == pytest.approx(1e6 / (floor.TARGETS[encoding] * 500_000), rel=1e-3)


def test_every_window_must_close_exact_or_the_floor_is_not_the_worker_s_work(monkeypatch: pytest.MonkeyPatch) -> None:
    real = floor.pipeline

    def one_off(*args: Any) -> tuple[floor.Clocked, dict[tuple[str, int], int]]:
        clock, closed = real(*args)
        key = next(iter(closed))
        return clock, {**closed, key: closed[key] + 1}

    monkeypatch.setattr(floor, "pipeline", one_off)
    with pytest.raises(SystemExit, match="1 of the 80 expected missing or not exact"):
        floor.measure("B", readings=2_000, repeats=1, ceiling_rps=500_000.0)
