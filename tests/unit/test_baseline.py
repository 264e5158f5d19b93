"""The usual band: percentiles, history, index, usual scale, vs_usual, score and sums of windows."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.baseline import (
    MIN_OBSERVATIONS,
    Band,
    band,
    combine,
    history_band,
    index,
    last_value,
    percentile,
    remember,
    score,
    usual_scale,
    vs_usual,
    weekly_peak,
)

counts = st.lists(st.integers(0, 100_000).map(float), min_size=MIN_OBSERVATIONS, max_size=60)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),  # no history
        ([5.0, 7.0], None),  # two weeks are not enough
        ([5.0, 1.0, 3.0], Band(1.8, 3.0, 4.2, 3)),  # sorted 1,3,5: h = 0.4 / 1 / 1.6
        ([1.0, 2.0, 3.0, 4.0], Band(1.6, 2.5, 3.4, 4)),  # the median of an even count is the mid-point
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0], Band(24.0, 45.0, 66.0, 8)),  # eight weeks
        ([0.0, 0.0, 0.0], Band(0.0, 0.0, 0.0, 3)),  # a closed street: a band of zeros, not "no band"
        ([7.0] * 8, Band(7.0, 7.0, 7.0, 8)),
    ],
)
def test_band(values: list[float], expected: Band | None) -> None:
    got = band(values)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got.n == expected.n
        assert (got.p20, got.p50, got.p80) == pytest.approx((expected.p20, expected.p50, expected.p80))


@given(counts)
def test_percentiles_are_type_7(values: list[float]) -> None:
    # statistics.quantiles(method="inclusive") is the same linear interpolation, computed independently
    q = statistics.quantiles(values, n=10, method="inclusive")
    b = band(values)
    assert b is not None
    assert (b.p20, b.p50, b.p80) == pytest.approx((q[1], q[4], q[7]), rel=1e-9, abs=1e-9)


@given(counts)
def test_band_is_ordered_and_within_the_data(values: list[float]) -> None:
    b = band(values)
    assert b is not None
    assert min(values) <= b.p20 <= b.p50 <= b.p80 <= max(values)
    assert b.n == len(values)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


@pytest.mark.parametrize(
    ("hist", "day", "visitors", "keep", "expected"),
    [
        ({}, "2026-11-28", 120, 8, {"2026-11-28": 120}),  # first week
        ({"2026-11-21": 100}, "2026-11-28", 120, 8, {"2026-11-21": 100, "2026-11-28": 120}),
        ({"2026-11-21": 100}, "2026-11-21", 130, 8, {"2026-11-21": 130}),  # late data overwrites the total
        ({"2026-11-07": 1, "2026-11-14": 2, "2026-11-21": 3}, "2026-11-28", 4, 3,
         {"2026-11-14": 2, "2026-11-21": 3, "2026-11-28": 4}),  # the oldest week falls out
        ({"2026-11-14": 2, "2026-11-21": 3}, "2026-11-07", 1, 2,
         {"2026-11-14": 2, "2026-11-21": 3}),  # late data older than every kept week is dropped
        ({"2026-11-14": 2, "2026-11-21": 3}, "2026-11-14", 9, 2,
         {"2026-11-14": 9, "2026-11-21": 3}),  # … but a kept week is still updated
        ({"2026-10-25": 5}, "2026-10-25.2", 6, 8, {"2026-10-25": 5, "2026-10-25.2": 6}),  # repeated hour
        ({"2026-11-21": 100}, "2026-11-28", 1, 0, {}),  # keep nothing
    ],
)
def test_remember(hist: dict[str, int], day: str, visitors: int, keep: int, expected: dict[str, int]) -> None:
    before = dict(hist)
    assert remember(hist, day, visitors, keep) == expected
    assert hist == before  # a new dict; the state passed in is not changed


def test_remember_keeps_eight_weeks_by_default() -> None:
    hist: dict[str, int] = {}
    for day in range(1, 31):
        hist = remember(hist, f"2026-11-{day:02d}", day)
    assert list(hist) == [f"2026-11-{d:02d}" for d in range(23, 31)]


def test_history_band_leaves_today_out() -> None:
    hist = {"2026-11-07": 10, "2026-11-14": 20, "2026-11-21": 30, "2026-11-28": 1000}
    b = history_band(hist, before="2026-11-28")
    assert b == Band(14.0, 20.0, 26.0, 3)
    assert history_band(hist, before="2026-11-21") is None  # only two weeks before that
    all_weeks = history_band(hist)
    assert all_weeks is not None
    assert all_weeks.n == 4
    recent = history_band({f"2026-11-{d:02d}": d for d in range(1, 31)}, before="2026-11-30", weeks=8)
    assert recent is not None  # the 8 keys before the 30th: values 22 … 29
    assert (recent.p20, recent.p50, recent.p80, recent.n) == pytest.approx((23.4, 25.5, 27.6, 8))
    assert history_band(hist, weeks=0) is None


def test_last_value() -> None:
    hist = {"2026-11-14": 2, "2026-11-21": 3, "2026-11-28": 4}
    assert last_value(hist, before="2026-11-28") == 3  # same slot last week, not today
    assert last_value(hist, before="2026-11-29") == 4
    assert last_value(hist, before="2026-11-14") is None


B = Band(80.0, 100.0, 125.0, 8)
ZERO = Band(0.0, 0.0, 0.0, 8)
LOW_ZERO = Band(0.0, 0.0, 3.0, 8)


@pytest.mark.parametrize(
    ("live", "b", "idx", "scale", "vs"),
    [
        (134.0, B, 134, {"low": 80, "high": 125}, "busier"),
        (100.0, B, 100, {"low": 80, "high": 125}, "usual"),
        (80.0, B, 80, {"low": 80, "high": 125}, "usual"),  # on the low edge: still usual
        (125.0, B, 125, {"low": 80, "high": 125}, "usual"),  # on the high edge: still usual
        (79.9, B, 80, {"low": 80, "high": 125}, "quieter"),  # rounds to 80 but is below p20
        (0.0, B, 0, {"low": 80, "high": 125}, "quieter"),
        (10.0, ZERO, None, None, "busier"),  # nobody usually: no index, but more than usual
        (0.0, ZERO, None, None, "usual"),
        (2.0, LOW_ZERO, None, None, "usual"),  # p50 = 0 but p80 = 3: within the band
        (0.0, Band(2.0, 4.0, 6.0, 3), 0, {"low": 50, "high": 150}, "quieter"),
    ],
)
def test_index_usual_and_vs_usual(live: float, b: Band, idx: int | None, scale: dict[str, int] | None,
                                  vs: str) -> None:
    assert index(live, b) == idx
    assert usual_scale(b) == scale
    assert vs_usual(live, b) == vs


@pytest.mark.parametrize(
    ("live", "peak", "expected"),
    [
        (500.0, 1000.0, 50),
        (1000.0, 1000.0, 100),  # the usual weekly peak
        (1500.0, 1000.0, 100),  # busier than the usual peak: clamped
        (0.0, 1000.0, 0),
        (-5.0, 1000.0, 0),  # cannot happen, but never below 0
        (4.0, 1000.0, 0),  # rounds down to 0
        (10.0, 0.0, None),  # no peak: no score, never a made-up 0
        (10.0, None, None),
    ],
)
def test_score(live: float, peak: float | None, expected: int | None) -> None:
    assert score(live, peak) == expected


def test_weekly_peak() -> None:
    assert weekly_peak([B, None, Band(1.0, 300.0, 400.0, 8), ZERO]) == 300.0
    assert weekly_peak([None, ZERO]) is None
    assert weekly_peak([]) is None


def test_combine_sums_percentiles() -> None:
    assert combine([B, Band(10.0, 20.0, 30.0, 3), ZERO]) == Band(90.0, 120.0, 155.0, 3)
    assert combine([B]) == B
    with pytest.raises(ValueError, match="at least one"):
        combine([])


def test_combine_is_exact_for_windows_that_move_together() -> None:
    # three windows of eight weeks, each week one factor (weather) times a fixed profile
    factors = [0.8, 0.9, 0.95, 1.0, 1.0, 1.05, 1.1, 1.2]
    profile = [100.0, 150.0, 120.0]
    per_window = [band([f * p for f in factors]) for p in profile]
    assert all(b is not None for b in per_window)
    summed = band([f * sum(profile) for f in factors])
    approx = combine([b for b in per_window if b is not None])
    assert summed is not None
    assert (approx.p20, approx.p50, approx.p80) == pytest.approx((summed.p20, summed.p50, summed.p80))


@given(counts, st.floats(0, 1e6), st.floats(0, 1e6))
def test_index_is_monotone_in_live(values: list[float], a: float, b: float) -> None:
    usual = band(values)
    assert usual is not None
    lo, hi = sorted((a, b))
    i_lo, i_hi = index(lo, usual), index(hi, usual)
    if usual.p50 <= 0:
        assert i_lo is None
        assert i_hi is None
    else:
        assert i_lo is not None
        assert i_hi is not None
        assert 0 <= i_lo <= i_hi
    order = ("quieter", "usual", "busier")
    assert order.index(vs_usual(lo, usual)) <= order.index(vs_usual(hi, usual))


@given(counts)
def test_usual_scale_brackets_100(values: list[float]) -> None:
    b = band(values)
    assert b is not None
    scale = usual_scale(b)
    if b.p50 > 0:
        assert scale is not None
        assert scale["low"] <= 100 <= scale["high"]
        assert index(b.p50, b) == 100
    else:
        assert scale is None
