"""The 2-hour nowcast per zone: the usual curve scaled by how today compares with usual, and the baselines.

All four methods share one signature so a backtest can swap them:

    method(recent, *, usual, last_week, now_end_ms, window_ms, horizon_windows) -> [(window start, visitors)]

- `recent`: `(window start ms, visitors)` of published windows up to `now_end_ms`, any order; windows that
  are missing are simply absent (never pass a missing window as 0). `forecast` uses up to `LOOKBACK_MS`.
- `usual(start)`: the usual (p50) visitors of the window starting at `start`, or None when it has no band.
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

    The defaults were chosen on a development seed of the synthetic data (`bench/forecast.py --tune`), never
    on the weeks the benchmark reports.
    """

    short_half_life_ms: int = 20 * MINUTE_MS  # "right now" factor: how fast old windows stop counting
    long_half_life_ms: int = 240 * MINUTE_MS  # "today" factor: the day's weather, season, trend
    decay_ms: int = 45 * MINUTE_MS  # e-folding time of the short factor's excess over the long one, by lead
    prior_visitors: float = 40.0  # shrinkage: pseudo-visitors at factor 1 (little data → factor near 1)
    smooth_windows: int = 1  # the usual curve is averaged over ±this many windows (1-2-1 style triangle)
    last_week_weight: float = 0.0  # share of last week's (smoothed) curve in the base curve
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
    return {s: float(v) for s, v in recent if s + window_ms <= now_end_ms and v >= 0}


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
    out = []
    for t in horizon_starts(now_end_ms, window_ms, horizon_windows):
        parts = [(w, usual(t + d * window_ms)) for d, w in ((-1, 0.25), (0, 0.5), (1, 0.25))]
        have = [(w, u) for w, u in parts if u is not None]
        if have:
            curve = sum(w * u for w, u in have) / sum(w for w, _ in have)
            out.append((t, max(0.0, curve * factor)))
        elif last is not None:
            out.append((t, last))
    return out


class _Curve:
    """The base curve of `forecast`: usual smoothed over neighbouring windows, optionally blended with last week.

    Memoises the lookups, which the worker may back with dictionaries or the store.
    """

    def __init__(self, usual: Lookup, last_week: Lookup, window_ms: int, p: ForecastParams) -> None:
        self.usual, self.last_week, self.window_ms, self.p = usual, last_week, window_ms, p
        self._memo: dict[tuple[int, int], float | None] = {}
        self._curve: dict[int, float | None] = {}
        k = max(0, p.smooth_windows)
        self._kernel = [(d, float(k + 1 - abs(d))) for d in range(-k, k + 1)]  # triangle: 1, 2, …, k+1, …, 2, 1

    def _get(self, which: int, start: int) -> float | None:
        key = (which, start)
        if key not in self._memo:
            v = (self.usual if which == 0 else self.last_week)(start)
            self._memo[key] = None if v is None or v < 0 or math.isnan(v) else float(v)
        return self._memo[key]

    def _smooth(self, which: int, start: int) -> float | None:
        """Kernel-weighted mean over the neighbours that exist; None when the window itself has no value."""
        if self._get(which, start) is None:
            return None
        num = den = 0.0
        for d, w in self._kernel:
            v = self._get(which, start + d * self.window_ms)
            if v is not None:
                num += w * v
                den += w
        return num / den

    def __call__(self, start: int) -> float | None:
        if start not in self._curve:
            self._curve[start] = self._blend(start)
        return self._curve[start]

    def _blend(self, start: int) -> float | None:
        u, beta = self._smooth(0, start), self.p.last_week_weight
        lw = self._smooth(1, start) if beta > 0 or u is None else None
        if u is None:
            return lw
        if lw is None:
            return u
        return (1 - beta) * u + beta * lw


def live_factors(obs: dict[int, float], curve: Callable[[int], float | None], now_end_ms: int, window_ms: int,
                 half_lives_ms: Sequence[int], prior_visitors: float) -> list[float]:
    """How today compares with the curve, one factor per half-life: weighted Σ observed / Σ curve, shrunk to 1.

    factor = (Σ wᵢ·observedᵢ + prior) / (Σ wᵢ·curveᵢ + prior), wᵢ = 2^(−ageᵢ/half-life), over windows that have
    both. A ratio of sums, not a mean of ratios: quiet windows (night, a curve of 0) weigh by their volume
    instead of producing huge or undefined ratios, and `prior` pseudo-visitors at factor 1 keep a factor from
    a handful of people near 1 (Poisson-gamma shrinkage: it takes about `prior` counted people to move it).
    """
    num = [prior_visitors] * len(half_lives_ms)
    den = [prior_visitors] * len(half_lives_ms)
    for start, seen in obs.items():
        c = curve(start)
        if c is None:
            continue
        age = now_end_ms - (start + window_ms)
        for j, half_life in enumerate(half_lives_ms):
            w = 0.5 ** (age / half_life)
            num[j] += w * seen
            den[j] += w * c
    return [n / d if d > 0 else 1.0 for n, d in zip(num, den, strict=True)]


def forecast(recent: Sequence[tuple[int, float]], *, usual: Lookup, last_week: Lookup,
             now_end_ms: int, window_ms: int, horizon_windows: int,
             params: ForecastParams = DEFAULT_PARAMS) -> list[tuple[int, float]]:
    """Our nowcast: the smoothed usual curve × a live factor that fades from "right now" to "today" with the lead.

    - Curve c(t): the usual p50 averaged with its neighbours (±`smooth_windows`, triangular weights), which
      removes most of the week-to-week noise of an 8-value median; where there is no usual, last week's
      (smoothed) count stands in.
    - Two live factors (`live_factors`): a short one (half-life 20 min) for what is happening now, a long one
      (half-life 4 h) for the whole day's level (weather, season, a trend the 8-week median lags behind).
      Both are ratios of sums shrunk towards 1, so zero or tiny usual values and few windows are harmless.
    - For a window whose middle lies L ms ahead the factor is long + (short − long)·e^(−L/decay), clamped to
      [0.25, 4]: a burst now says a lot about the next 15 minutes and little about two hours from now, while
      a rainy day stays rainy.
    - Without any curve at all (a new zone, no history yet) it falls back to persistence: the newest observed
      window for every horizon window (a flat line), which is the best naive guess without a daily profile.
      Windows with neither a curve nor any recent count are left out; nothing known gives [].
    """
    p = params
    starts = horizon_starts(now_end_ms, window_ms, horizon_windows)
    obs = {s: v for s, v in _observed(recent, now_end_ms, window_ms).items() if s >= now_end_ms - p.lookback_ms}
    curve = _Curve(usual, last_week, window_ms, p)
    ahead = [(t, curve(t)) for t in starts]
    if all(c is None for _, c in ahead):
        return _persist(obs, starts)
    short, long = live_factors(obs, curve, now_end_ms, window_ms, (p.short_half_life_ms, p.long_half_life_ms),
                               p.prior_visitors)
    last = _newest(obs)
    out = []
    for t, c in ahead:
        if c is None:
            if last is not None:
                out.append((t, last))
            continue
        lead = t + window_ms / 2 - now_end_ms
        f = long + (short - long) * math.exp(-lead / p.decay_ms) if p.decay_ms > 0 else long
        out.append((t, c * min(p.factor_max, max(p.factor_min, f))))
    return out
