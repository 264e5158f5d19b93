"""The 2-hour nowcast: Amsterdam's method by hand, our method's behaviour, fallbacks and the naive baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.forecast import (
    AMSTERDAM_WEIGHTS,
    Forecaster,
    ForecastParams,
    amsterdam,
    base_curve,
    forecast,
    horizon_starts,
    live_factors,
    naive_last_week,
    naive_persistence,
)

W = 300_000  # 5-minute windows
NOW = 1_795_870_800_000  # 2026-11-28T14:00:00+01:00, the end of the newest observed window
H = 24  # two hours
METHODS: list[Forecaster] = [amsterdam, forecast, naive_last_week, naive_persistence]
Lookup = Callable[[int], float | None]


def const(v: float | None) -> Lookup:
    return lambda _t: v


def table(values: dict[int, float]) -> Lookup:
    """Lookup by window offset from NOW (0 = the first forecast window, -1 = the newest observed one)."""
    return lambda t: values.get((t - NOW) // W)


def past(values: Sequence[float]) -> list[tuple[int, float]]:
    """Observed windows ending at NOW, oldest first."""
    n = len(values)
    return [(NOW - (n - i) * W, v) for i, v in enumerate(values)]


def run(method: Forecaster, recent: Sequence[tuple[int, float]], usual: Lookup, last_week: Lookup | None = None,
        horizon: int = H) -> list[tuple[int, float]]:
    return method(recent, usual=usual, last_week=last_week or const(None), now_end_ms=NOW, window_ms=W,
                  horizon_windows=horizon)


# --- Amsterdam, computed by hand -------------------------------------------------------------------------


def test_amsterdam_weights_sum_to_one() -> None:
    assert sum(AMSTERDAM_WEIGHTS) == pytest.approx(1.0)
    assert len(AMSTERDAM_WEIGHTS) == 12


def test_amsterdam_hand_computed() -> None:
    # usual 100 everywhere except the second forecast window (200); observed, newest first:
    # 200 (ratio 2), 50 (0.5), 0 (zero count: factor 1), missing (factor 1), then 8 × 100 (1)
    obs = [100.0] * 8 + [None, 0.0, 50.0, 200.0]
    recent = [(NOW - (12 - i) * W, v) for i, v in enumerate(obs) if v is not None]
    usual = table({1: 200.0} | {k: 100.0 for k in range(-20, 40) if k != 1})
    factor = 0.311 * 2 + 0.215 * 0.5 + 0.149 * 1 + 0.103 * 1 + (1 - 0.311 - 0.215 - 0.149 - 0.103) * 1
    assert factor == pytest.approx(1.2035)
    got = dict(run(amsterdam, recent, usual))
    # smoothing 0.25 / 0.5 / 0.25: window 0 sees 100, 100, 200 → 125; window 1: 100, 200, 100 → 150
    assert got[NOW] == pytest.approx(125 * factor)
    assert got[NOW + W] == pytest.approx(150 * factor)
    assert got[NOW + 2 * W] == pytest.approx(125 * factor)
    assert got[NOW + 3 * W] == pytest.approx(100 * factor)


def test_amsterdam_caps_each_ratio_at_4() -> None:
    recent = past([10_000.0] * 12)  # a hundred times the usual
    got = run(amsterdam, recent, const(100.0))
    assert [v for _, v in got] == pytest.approx([400.0] * H)


def test_amsterdam_ignores_zero_usual() -> None:
    recent = past([50.0] * 12)
    got = run(amsterdam, recent, table({k: 0.0 for k in range(-12, 0)} | {k: 100.0 for k in range(0, 30)}))
    # the observed windows have usual 0: every factor is 1
    assert dict(got)[NOW + 5 * W] == pytest.approx(100.0)


# --- shared behaviour of all four methods ----------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_horizon_length_and_aligned_starts(method: Forecaster) -> None:
    got = run(method, past([100.0] * 12), const(100.0), const(90.0))
    assert [t for t, _ in got] == [NOW + j * W for j in range(H)] == horizon_starts(NOW, W, H)
    assert run(method, past([100.0] * 12), const(100.0), const(90.0), horizon=0) == []


@pytest.mark.parametrize("method", METHODS)
def test_nothing_known_gives_nothing(method: Forecaster) -> None:
    assert run(method, [], const(None), const(None)) == []  # never a made-up 0 ("quiet")


@pytest.mark.parametrize("method", METHODS)
def test_a_window_still_in_progress_is_not_an_observation(method: Forecaster) -> None:
    recent = [*past([100.0] * 12), (NOW, 5000.0)]  # starts at NOW: not yet complete
    assert run(method, recent, const(100.0), const(100.0)) == run(method, past([100.0] * 12), const(100.0),
                                                                   const(100.0))


obs_values = st.lists(st.one_of(st.none(), st.floats(0, 1e5)), min_size=0, max_size=80)
lookups = st.dictionaries(st.integers(-90, 30), st.one_of(st.none(), st.floats(0, 1e5)), max_size=120)


@given(obs=obs_values, usual=lookups, last=lookups)
def test_never_negative_and_always_on_the_grid(obs: list[float | None], usual: dict[int, float | None],
                                               last: dict[int, float | None]) -> None:
    recent = [(NOW - (len(obs) - i) * W, v) for i, v in enumerate(obs) if v is not None]
    for method in METHODS:
        got = method(recent, usual=lambda t: usual.get((t - NOW) // W), last_week=lambda t: last.get((t - NOW) // W),
                     now_end_ms=NOW, window_ms=W, horizon_windows=H)
        assert all(v >= 0 for _, v in got)
        assert all(v == v for _, v in got)  # no NaN
        starts = [t for t, _ in got]
        assert starts == sorted(set(starts))
        assert set(starts) <= set(horizon_starts(NOW, W, H))


# --- our method ----------------------------------------------------------------------------------------


def test_forecast_is_the_usual_when_today_is_usual() -> None:
    got = run(forecast, past([100.0] * 72), const(100.0))
    assert [v for _, v in got] == pytest.approx([100.0] * H)


def test_forecast_keeps_a_day_long_difference() -> None:
    # a rainy day: 30 % below usual for the last 6 hours; two hours ahead it is still 30 % below usual
    profile = {k: 1000.0 + 10 * k for k in range(-90, 40)}  # rising through the afternoon
    recent = past([0.7 * profile[k] for k in range(-72, 0)])
    got = dict(run(forecast, recent, table(profile)))
    for j in (0, 11, 23):
        assert got[NOW + j * W] == pytest.approx(0.7 * profile[j], rel=0.03)


def test_forecast_lets_a_sudden_burst_fade() -> None:
    # usual all day, then the last 15 minutes twice as busy: soon busier, two hours later nearly usual
    recent = past([100.0] * 69 + [200.0] * 3)
    got = dict(run(forecast, recent, const(100.0)))
    soon, later = got[NOW], got[NOW + 23 * W]
    assert soon > 130
    assert 100 < later < 115
    assert all(got[NOW + j * W] >= got[NOW + (j + 1) * W] for j in range(H - 1))  # fading, never growing


def test_forecast_shrinks_small_counts_towards_usual() -> None:
    # at night 1 person where 0.2 are usual: a ratio of 5 from a handful of people is not believed
    got = dict(run(forecast, past([1.0] * 12), const(0.2)))
    assert got[NOW] < 0.3


def test_forecast_survives_zero_usual() -> None:
    # the street is usually empty in the recent windows (ratio undefined) and busy ahead
    usual = table({k: 0.0 for k in range(-12, 0)} | {k: 100.0 for k in range(0, 30)})
    got = dict(run(forecast, past([30.0] * 12), usual))
    assert 100.0 <= got[NOW + 10 * W] <= 400.0  # finite, more than usual, capped at 4× the usual
    assert all(0 < v <= 400.0 for v in got.values())  # (the first windows ahead see the smoothed step up)


def test_forecast_factor_is_clamped() -> None:
    got = run(forecast, past([1e6] * 72), const(100.0))
    assert max(v for _, v in got) == pytest.approx(400.0)
    got = run(forecast, past([0.0] * 72), const(1000.0))
    assert min(v for _, v in got) == pytest.approx(250.0)


def test_forecast_falls_back_to_persistence_without_any_usual() -> None:
    recent = past([10.0, 20.0, 30.0])
    got = run(forecast, recent, const(None), const(None))
    assert got == [(NOW + j * W, 30.0) for j in range(H)]


def test_forecast_uses_last_week_where_the_usual_is_missing() -> None:
    usual = table({k: 100.0 for k in range(-80, 30) if k != 5})
    got = dict(run(forecast, past([100.0] * 72), usual, const(60.0)))
    assert got[NOW + 5 * W] == pytest.approx(60.0)  # last week's count stands in, at today's factor (1)
    assert got[NOW + 4 * W] == pytest.approx(100.0)


def test_forecast_without_recent_data_is_the_usual() -> None:
    got = run(forecast, [], const(100.0))
    assert [v for _, v in got] == pytest.approx([100.0] * H)


def test_forecast_params_are_honoured() -> None:
    recent = past([100.0] * 69 + [200.0] * 3)
    flat = ForecastParams(decay_ms=0)  # only the day-long factor
    got = forecast(recent, usual=const(100.0), last_week=const(None), now_end_ms=NOW, window_ms=W,
                   horizon_windows=H, params=flat)
    assert len({round(v, 9) for _, v in got}) == 1


def test_base_curve_smooths_and_blends() -> None:
    usual = table({0: 100.0, 1: 200.0, 2: 100.0})
    p = ForecastParams(smooth_windows=1)
    assert base_curve(usual, const(None), NOW + W, 1, W, p) == [pytest.approx((100 + 400 + 100) / 4)]
    assert base_curve(usual, const(None), NOW, 1, W, p) == [pytest.approx((100 * 2 + 200) / 3)]  # edge
    blend = ForecastParams(smooth_windows=0, last_week_weight=0.25)
    assert base_curve(usual, const(300.0), NOW, 2, W, blend) == pytest.approx([150.0, 225.0])


def test_live_factors_are_ratios_of_sums_with_a_prior() -> None:
    seen = [(0, 150.0, 100.0), (W, 50.0, 100.0)]
    short, long = live_factors(seen, (1, 10**12), prior_visitors=0.0)
    assert short == pytest.approx(1.5)  # only the newest window counts
    assert long == pytest.approx(1.0)  # both count equally: (150 + 50) / 200
    (with_prior,) = live_factors([(0, 10.0, 5.0)], (10**12,), prior_visitors=5.0)
    assert with_prior == pytest.approx(15 / 10)
    assert live_factors([], (W,), prior_visitors=0.0) == [1.0]


# --- the naive baselines ---------------------------------------------------------------------------------


def test_naive_persistence() -> None:
    got = run(naive_persistence, [(NOW - W, 42.0), (NOW - 2 * W, 7.0)], const(100.0))
    assert got == [(NOW + j * W, 42.0) for j in range(H)]


def test_naive_last_week_falls_back_to_the_newest_count() -> None:
    last = table({k: 10.0 * k for k in range(0, 12)})
    got = dict(run(naive_last_week, past([5.0, 6.0]), const(None), last))
    assert got[NOW + 3 * W] == 30.0
    assert got[NOW + 20 * W] == 6.0  # no count last week: persistence
