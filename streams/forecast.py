"""The 2-hour nowcast per zone: the usual curve scaled by how today compares with usual, and the baselines.

All four methods share one signature so a backtest can swap them:

    method(recent, *, usual, last_week, now_end_ms, window_ms, horizon_windows) -> [(window start, visitors)]

- `recent`: `(window start ms, visitors)` of published windows up to `now_end_ms`, any order; windows that
  are missing are simply absent (never pass a missing window as 0). `forecast` uses those that start at or
  after `now_end_ms − LOOKBACK_MS` (six hours: the last six hourly or 72 five-minute windows).
- `usual(start)`: the usual (p50) visitors of the window starting at `start`, or None when it has no band (the
  worker passes `UsualModel.p50`, in which a past window below k_min counts as k_min / 2, see `streams.usual`).
- `last_week(start)`: visitors of the window one week before `start` (same local day type and slot), or None.
- The forecast covers the windows starting at now_end_ms, now_end_ms + window_ms, … (`horizon_windows` of
  them). A window a method can say nothing about (no usual, no last week, no recent count) is left out rather
  than guessed as 0, so the list is shorter or empty; predictions are never negative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

Lookup = Callable[[int], float | None]

HORIZON_MS = 7_200_000  # two hours
MINUTE_MS = 60_000
# Amsterdam's weights for its last 12 quarters, newest first: a live factor updated as 0.31·new + 0.69·old.
AMSTERDAM_WEIGHTS = (0.311, 0.215, 0.149, 0.103, 0.071, 0.048, 0.034, 0.024, 0.017, 0.012, 0.008, 0.008)
AMSTERDAM_CAP = 4.0


class Forecaster(Protocol):
    def __call__(self, recent: Sequence[tuple[int, float]], *, usual: Lookup, last_week: Lookup,
                 now_end_ms: int, window_ms: int, horizon_windows: int) -> list[tuple[int, float]]: ...


@dataclass(frozen=True, slots=True)
class ForecastParams:
    """The knobs of `forecast`; times in ms so one setting fits 5-minute and hourly windows.

    Chosen with `python -m bench.forecast --tune` (coordinate descent on seed 99 and the autumn weeks, never on
    the seeds and weeks the benchmark reports). The WAPE surface is flat around these values except for
    smoothing; see the notes per knob.
    """

    # "right now" factor; 5 and 10 min scored the same, 10 is steadier on small streets
    short_half_life_ms: int = 10 * MINUTE_MS
    # "today" factor (weather, season, a trend the 8-week median lags); 8 h ≈ all of today's lookback
    long_half_life_ms: int = 480 * MINUTE_MS
    # e-folding time, in lead time, of the short factor's excess over the long one (best of 20–90 min)
    decay_ms: int = 45 * MINUTE_MS
    # shrinkage: pseudo-visitors at factor 1, so a factor from a handful of people stays near 1 (flat 150–400)
    prior_visitors: float = 150.0
    # the usual curve is averaged over ±this many windows with triangular weights; tuning kept improving up to
    # the widest tried (±6), but the synthetic profile is piecewise linear and real ones have sharper edges
    # (closing time), so we stop at ±4 (±20 min for 5-minute windows; 0.05 points of WAPE on the dev data)
    smooth_windows: int = 4
    # share of last week's (smoothed) counts in the base curve; 0 scored best (a single week is noisier than
    # the median of eight and the live factor already follows the trend); kept for data where it helps
    last_week_weight: float = 0.0
    factor_min: float = 0.25
    factor_max: float = 4.0
    lookback_ms: int = 6 * 60 * MINUTE_MS  # recent windows older than this are ignored


DEFAULT_PARAMS = ForecastParams()
LOOKBACK_MS = DEFAULT_PARAMS.lookback_ms


def horizon_starts(now_end_ms: int, window_ms: int, horizon_windows: int) -> list[int]:
    """Starts of the forecast windows: now_end_ms, now_end_ms + window_ms, …"""
    return [now_end_ms + j * window_ms for j in range(max(0, horizon_windows))]


def _observed(recent: Sequence[tuple[int, float]], now_end_ms: int, window_ms: int) -> dict[int, float]:
    """Recent windows that ended by `now_end_ms`, by start; a window given twice keeps its last value."""
    return {s: v for s, v in recent if s + window_ms <= now_end_ms and v >= 0}


def _newest(obs: dict[int, float]) -> float | None:
    return obs[max(obs)] if obs else None


def _persist(obs: dict[int, float], starts: list[int]) -> list[tuple[int, float]]:
    last = _newest(obs)
    return [] if last is None else [(t, last) for t in starts]


def naive_persistence(recent: Sequence[tuple[int, float]], *, usual: Lookup, last_week: Lookup,
                      now_end_ms: int, window_ms: int, horizon_windows: int) -> list[tuple[int, float]]:
    """Naive: the newest observed window, repeated over the horizon; empty when nothing was observed."""
    return _persist(_observed(recent, now_end_ms, window_ms), horizon_starts(now_end_ms, window_ms, horizon_windows))


def naive_last_week(recent: Sequence[tuple[int, float]], *, usual: Lookup, last_week: Lookup,
                    now_end_ms: int, window_ms: int, horizon_windows: int) -> list[tuple[int, float]]:
    """Naive: the same window one week earlier; a window without last week's count gets the newest observation."""
    last = _newest(_observed(recent, now_end_ms, window_ms))
    out = []
    for t in horizon_starts(now_end_ms, window_ms, horizon_windows):
        v = last_week(t)
        if v is None:
            v = last
        if v is not None:
            out.append((t, max(0.0, v)))
    return out


def amsterdam(recent: Sequence[tuple[int, float]], *, usual: Lookup, last_week: Lookup,
              now_end_ms: int, window_ms: int, horizon_windows: int) -> list[tuple[int, float]]:
    """Amsterdam crowd monitoring's nowcast, as in its SQL view, with their quarters read as our windows.

    - Curve: the usual (median of the same weekday and time over 8 weeks) smoothed 0.25 / 0.5 / 0.25 with the
      previous and next window.
    - Live factor: for each of the last 12 windows, observed / usual capped at 4, or 1 when either is missing
      or zero; their weighted mean with `AMSTERDAM_WEIGHTS` (0.311 for the newest … 0.008 for the oldest).
    - Forecast = smoothed curve × live factor. Where Amsterdam shows nothing (no curve), we persist the newest
      observation, as the naive method does.
    """
    obs = _observed(recent, now_end_ms, window_ms)
    factor = 0.0
    for k, weight in enumerate(AMSTERDAM_WEIGHTS):
        start = now_end_ms - (k + 1) * window_ms
        seen, med = obs.get(start), usual(start)
        ratio = 1.0  # Amsterdam: factor 1 when the count or the median is missing or zero
        if seen is not None and med is not None and med > 0 and seen > 0:
            ratio = min(seen / med, AMSTERDAM_CAP)
        factor += weight * ratio
    factor /= sum(AMSTERDAM_WEIGHTS)
    last = _newest(obs)
    starts = horizon_starts(now_end_ms, window_ms, horizon_windows)
    raw = [_clean(usual(now_end_ms + (j - 1) * window_ms)) for j in range(len(starts) + 2)]
    out = []
    for j, t in enumerate(starts):
        num = den = 0.0
        for u, w in zip(raw[j:j + 3], (0.25, 0.5, 0.25), strict=True):  # previous, this and next window
            if u is not None:
                num += w * u
                den += w
        if den > 0:
            out.append((t, num / den * factor))
        elif last is not None:
            out.append((t, last))
    return out


def _clean(v: float | None) -> float | None:
    return None if v is None or not v >= 0 else float(v)  # `not v >= 0` also refuses NaN


def _smoothed(raw: list[float | None], k: int) -> list[float | None]:
    """Triangular moving average (weights 1, 2, …, k+1, …, 2, 1) over the neighbours that exist.

    `raw` has k extra values at each end; the result has len(raw) − 2k values, None where the centre is None.
    """
    if k == 0:
        return raw
    kernel = [(d, float(k + 1 - abs(d))) for d in range(-k, k + 1)]
    out: list[float | None] = []
    for i in range(k, len(raw) - k):
        if raw[i] is None:
            out.append(None)
            continue
        num = den = 0.0
        for d, w in kernel:
            v = raw[i + d]
            if v is not None:
                num += w * v
                den += w
        out.append(num / den)
    return out


def base_curve(usual: Lookup, last_week: Lookup, first_ms: int, n: int, window_ms: int,
               params: ForecastParams = DEFAULT_PARAMS) -> list[float | None]:
    """The curve `forecast` scales, for the n windows from `first_ms`: smoothed usual, blended with last week.

    Each lookup is called once per window (plus `smooth_windows` at each end). Where the usual is missing the
    smoothed last week stands in; `last_week_weight` > 0 blends it in everywhere.
    """
    k = max(0, params.smooth_windows)
    starts = [first_ms + (i - k) * window_ms for i in range(n + 2 * k)]
    u = _smoothed([_clean(usual(t)) for t in starts], k)
    beta = params.last_week_weight
    if beta <= 0 and all(v is not None for v in u):
        return u
    lw = _smoothed([_clean(last_week(t)) for t in starts], k)
    out: list[float | None] = []
    for a, b in zip(u, lw, strict=True):
        if a is None or b is None:
            out.append(b if a is None else a)
        else:
            out.append(a if beta <= 0 else (1 - beta) * a + beta * b)
    return out


def live_factors(seen: Sequence[tuple[int, float, float]], half_lives_ms: Sequence[int],
                 prior_visitors: float) -> list[float]:
    """How today compares with the curve, one factor per half-life: weighted Σ observed / Σ curve, shrunk to 1.

    `seen`: (age ms, observed, curve) of past windows, age = how long before now the window ended.
    factor = (Σ wᵢ·observedᵢ + prior) / (Σ wᵢ·curveᵢ + prior), wᵢ = 2^(−ageᵢ/half-life). A ratio of sums, not a
    mean of ratios: quiet windows (night, a curve of 0) weigh by their volume instead of producing huge or
    undefined ratios, and `prior` pseudo-visitors at factor 1 keep a factor from a handful of people near 1
    (Poisson-gamma shrinkage: it takes about `prior` counted people to move it).
    """
    out = []
    for half_life in half_lives_ms:
        num = den = prior_visitors
        for age, obs, c in seen:
            w = 0.5 ** (age / half_life)
            num += w * obs
            den += w * c
        out.append(num / den if den > 0 else 1.0)
    return out


def forecast(recent: Sequence[tuple[int, float]], *, usual: Lookup, last_week: Lookup,
             now_end_ms: int, window_ms: int, horizon_windows: int,
             params: ForecastParams = DEFAULT_PARAMS) -> list[tuple[int, float]]:
    """Our nowcast: the smoothed usual curve × a live factor that fades from "right now" to "today" with the lead.

    - Curve c(t) (`base_curve`): the usual p50 averaged with its neighbours, which removes most of the
      week-to-week noise of an 8-value median: c(t) = Σ w_d·usual(t + d·W) / Σ w_d over d = −4 … 4
      (`smooth_windows`) with w_d = 5 − |d|, summed over the neighbours that have a usual only; None when
      t itself has none. Where c(t) is None, last week's counts smoothed the same way stand in.
    - Two live factors (`live_factors`): a short one (half-life 10 min) for what is happening now, a long one
      (half-life 8 h) for the whole day's level (weather, season, a trend the 8-week median lags behind).
      Each is (150 + Σ wᵢ·observedᵢ) / (150 + Σ wᵢ·c(sᵢ)) over the recent windows sᵢ that have a curve, with
      wᵢ = 2^(−ageᵢ / half-life) and ageᵢ = now_end_ms − (sᵢ + W), the time since the window ended: ratios of
      sums shrunk towards 1 (`prior_visitors` = 150), so zero or tiny usual values and few windows are harmless.
    - For a window starting at t, whose middle lies L = t + W/2 − now_end_ms ahead, the forecast is
      c(t) · f with f = long + (short − long)·e^(−L/decay) (decay 45 min), clamped to [0.25, 4]: a burst now
      says a lot about the next 15 minutes and little about two hours from now, while a rainy day stays rainy.
    - Without any curve ahead (a new zone, no history yet) it falls back to persistence: the newest observed
      window for every horizon window (a flat line), the best naive guess without a daily profile. A window
      without a curve among others that have one gets the newest observation too; a window with neither is
      left out, and nothing known at all gives [].
    Recent windows must lie on the grid of `now_end_ms` (start = now_end_ms − k·window_ms); others are ignored.
    """
    p = params
    starts = horizon_starts(now_end_ms, window_ms, horizon_windows)
    if not starts:
        return []
    back = max(0, p.lookback_ms // window_ms)
    obs = {s: v for s, v in _observed(recent, now_end_ms, window_ms).items()
           if s >= now_end_ms - back * window_ms and (now_end_ms - s) % window_ms == 0}
    n_back = (now_end_ms - min(obs)) // window_ms if obs else 0
    first = now_end_ms - n_back * window_ms
    curve = base_curve(usual, last_week, first, n_back + len(starts), window_ms, p)
    ahead = curve[n_back:]
    if all(c is None for c in ahead):
        return _persist(obs, starts)
    seen = [(now_end_ms - s - window_ms, v, c) for s, v in obs.items()
            if (c := curve[(s - first) // window_ms]) is not None]
    short, long = live_factors(seen, (p.short_half_life_ms, p.long_half_life_ms), p.prior_visitors)
    last = _newest(obs)
    out = []
    for t, c in zip(starts, ahead, strict=True):
        if c is None:
            if last is not None:
                out.append((t, last))
            continue
        lead = t + window_ms / 2 - now_end_ms
        f = long + (short - long) * math.exp(-lead / p.decay_ms) if p.decay_ms > 0 else long
        out.append((t, c * min(p.factor_max, max(p.factor_min, f))))
    return out
