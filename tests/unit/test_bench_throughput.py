"""Pure helpers of bench/throughput.py: the steady-state rate and the exact check of published sums."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is not an installed package: import it from the checkout this test lives in
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.throughput import compare_sums, crossing, steady_rate

POINTS = [(0.0, 0.0), (1.0, 0.0), (2.0, 100.0), (3.0, 300.0), (4.0, 1000.0)]


@pytest.mark.parametrize(("mark", "expected"), [
    (0.0, 0.0),      # already reached at the first sample
    (50.0, 1.5),     # halfway between 1 s (0) and 2 s (100)
    (100.0, 2.0),    # exactly on a sample
    (650.0, 3.5),    # halfway between 3 s (300) and 4 s (1000)
    (1001.0, None),  # never reached
])
def test_crossing_interpolates_between_samples(mark: float, expected: float | None) -> None:
    assert crossing(POINTS, mark) == expected


def test_steady_rate_leaves_out_start_up_and_tail() -> None:
    # 1,000 readings: 100 by 2 s, 900 by 3.857 s (300 + 600/700 of the last second): 800 readings in 1.857 s
    assert steady_rate(POINTS, 1000) == pytest.approx(800 / (3 + 600 / 700 - 2), abs=0.1)


def test_steady_rate_is_none_before_90_percent() -> None:
    assert steady_rate(POINTS[:4], 1000) is None


def test_compare_sums_exact_only_when_every_window_equals_the_truth() -> None:
    truth = {("z1", 0): 10, ("z1", 300_000): 20, ("z2", 0): 5}
    assert compare_sums(truth, dict(truth))["correct"]
    got = {("z1", 0): 10, ("z1", 300_000): 19, ("z2", 0): 6, ("z3", 0): 1}
    res = compare_sums(truth, got)
    assert not res["correct"]
    assert res["counts"] == {"exact": 1, "below": 1, "above": 1, "missing": 0, "unexpected": 1}
    assert compare_sums(truth, {("z1", 0): 10})["counts"]["missing"] == 2
