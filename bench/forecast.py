"""`python -m bench.forecast`: backtest of the 2-hour nowcast on synthetic footfall; prints a WAPE table.

Data: per-minute zone counts from the footfall model of `streams.simulation` (daily profile by day type and
local time, seeded weather per city and day, season, public holidays as Sundays), drawn as the simulator does
(a per-minute gamma burst shared by the zone times Poisson noise; no sensor outages, which sensor health
removes upstream), summed into 5-minute windows. Two scenarios:

- shipped: the simulation as it is; its weather is one factor per city and day, constant within the day.
- shocks: the same plus what real streets add within a day: a regional weather factor that drifts (log
  AR(1), sd 12 %, correlation time 90 min) and, on one zone-day in ten, an event that lifts the street by
  30–100 % for 1–3 hours. Nothing forecasts the start of such an event; it tests how fast a method adapts.

Backtest: 11 weeks from Monday 16 March 2026 (the March clock change, Easter Monday and 1 May fall in the
warm-up; Ascension and Whit Monday in the test weeks). Baselines are built as the worker builds them, with
`streams.daytype` keys and `streams.baseline.remember` (8 dates per day type and slot), and a window's usual
band uses only dates before its own day. The last 3 weeks are the test: at every 5-minute window end each
method forecasts the next 2 hours from the windows observed so far, and we score 15, 60 and 120 minutes ahead
(the window ending that long after the forecast is made). WAPE = Σ|forecast − actual| / Σ actual, over zones
and forecast times, for forecasts made during opening hours (09:00–20:00 local) and over the whole day.

`forecast`'s parameters were chosen with `--tune` on seed 99 and the weeks from 7 September 2026, neither of
which the report uses.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from streams import simulation
from streams.baseline import BASELINE_WEEKS, history_band, last_value, remember
from streams.daytype import baseline_day_type, local_time, observation_key, slot_of_day
from streams.forecast import (
    DEFAULT_PARAMS,
    Forecaster,
    ForecastParams,
    amsterdam,
    forecast,
    naive_last_week,
    naive_persistence,
)
from streams.registry import City, Registry, Zone, parse_registry

REGISTRY_FILE = Path(__file__).resolve().parents[1] / "deploy" / "registry" / "flanders.yaml"
MINUTE_MS = 60_000
WINDOW_MS = 5 * MINUTE_MS
WEEK_WINDOWS = 7 * 24 * 12
HORIZONS_MIN = (15, 60, 120)
HORIZON_WINDOWS = 24
OPEN_FROM, OPEN_TO = 9, 20  # local hours: forecasts made in [09:00, 20:00) count as "opening hours"
START = date(2026, 3, 16)  # a Monday
TUNE_START = date(2026, 9, 7)  # tuning: other weeks (test 2 to 22 November, with 11 November) and another seed
WEEKS, TEST_WEEKS = 11, 3
TUNE_SEED = 99
SCENARIOS = ("shipped", "shocks")

# Shocks: intraday regional weather and local events.
DRIFT_SD, DRIFT_MIN = 0.12, 90.0
EVENT_RATE, EVENT_LIFT, EVENT_HOURS, EVENT_START_H = 0.1, (0.3, 1.0), (1.0, 3.0), (10.0, 17.0)


def _method_forecast(params: ForecastParams) -> Forecaster:
    def run(recent: Sequence[tuple[int, float]], *, usual: Callable[[int], float | None],
            last_week: Callable[[int], float | None], now_end_ms: int, window_ms: int,
            horizon_windows: int) -> list[tuple[int, float]]:
        return forecast(recent, usual=usual, last_week=last_week, now_end_ms=now_end_ms, window_ms=window_ms,
                        horizon_windows=horizon_windows, params=params)
    return run


METHODS: dict[str, Forecaster] = {
    "last week": naive_last_week,
    "persistence": naive_persistence,
    "amsterdam": amsterdam,
    "forecast": _method_forecast(DEFAULT_PARAMS),
}
NAIVE = ("last week", "persistence")
TRUE_RATE = "(noise floor: true rate)"


@dataclass(frozen=True)
class Grid:
    """The 5-minute windows of the backtest and their baseline keys (the same for every zone of a city)."""

    t0: int
    n: int
    keys: list[tuple[str, int]]  # (baseline day type, slot)
    obs_key: list[str]  # history key (local date, or "<date>.2" in the repeated hour)
    day: list[str]  # local date: the usual of a window uses dates before it
    hour: list[int]  # local hour of the window's end, for the opening-hours subset


def _epoch_ms(local_midnight: date, tz: str) -> int:
    dt = datetime(local_midnight.year, local_midnight.month, local_midnight.day, tzinfo=ZoneInfo(tz))
    return int(dt.timestamp() * 1000)


def grid(city: City, start: date, weeks: int) -> Grid:
    t0 = _epoch_ms(start, city.timezone)
    n = (_epoch_ms(start + timedelta(weeks=weeks), city.timezone) - t0) // WINDOW_MS
    starts = [t0 + i * WINDOW_MS for i in range(n)]
    return Grid(
        t0, n,
        [(baseline_day_type(t, city.timezone, city.country), slot_of_day(t, city.timezone, WINDOW_MS))
         for t in starts],
        [observation_key(t, city.timezone) for t in starts],
        [k[:10] for k in (observation_key(t, city.timezone) for t in starts)],
        [local_time(t + WINDOW_MS, city.timezone).hour for t in starts],
    )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


@dataclass
class CityMinutes:
    """Seed-free part of the model per minute: profile share × season by zone kind, and the local date."""

    shares: dict[str, list[float]]
    dates: list[date]
    local_hours: list[float]


def city_minutes(city: City, t0: int, minutes: int) -> CityMinutes:
    shares: dict[str, list[float]] = {simulation.SHOPPING: [], simulation.HOSPITALITY: []}
    dates, hours = [], []
    for m in range(minutes):
        local = local_time(t0 + m * MINUTE_MS + MINUTE_MS // 2, city.timezone)
        s = simulation.season(local.month)
        for kind, out in shares.items():
            out.append(simulation.profile(kind, local, city.country) * s)
        dates.append(local.date())
        hours.append(local.hour + local.minute / 60)
    return CityMinutes(shares, dates, hours)


def drift(seed: int, city_id: str, minutes: int) -> list[float]:
    """Regional intraday weather: exp of an AR(1) in 5-minute steps with stationary sd DRIFT_SD."""
    rng = random.Random(f"{seed}:bench:drift:{city_id}")
    phi = math.exp(-5.0 / DRIFT_MIN)
    x, out = rng.gauss(0, DRIFT_SD), []
    for m in range(minutes):
        if m % 5 == 0:
            x = phi * x + DRIFT_SD * math.sqrt(1 - phi * phi) * rng.gauss(0, 1)
        out.append(math.exp(x - DRIFT_SD * DRIFT_SD / 2))
    return out


def events(seed: int, zone_id: str, cm: CityMinutes) -> list[float]:
    """Per minute lift factor from local events: trapezoids of 1–3 h on one zone-day in ten."""
    out = [1.0] * len(cm.dates)
    plans: dict[date, tuple[float, float, float] | None] = {}
    for m, d in enumerate(cm.dates):
        if d not in plans:
            rng = random.Random(f"{seed}:bench:event:{zone_id}:{d.isoformat()}")
            plans[d] = ((rng.uniform(*EVENT_START_H), rng.uniform(*EVENT_HOURS), rng.uniform(*EVENT_LIFT))
                        if rng.random() < EVENT_RATE else None)
        plan = plans[d]
        if plan is None:
            continue
        start, hours, lift = plan
        h = cm.local_hours[m]
        ramp = min(0.5, hours / 4)
        if start <= h <= start + hours:
            edge = min(h - start, start + hours - h)
            out[m] = 1.0 + lift * min(1.0, edge / ramp)
    return out


def zone_windows(city: City, zone: Zone, cm: CityMinutes, seed: int, scenario: str,
                 city_drift: list[float] | None) -> tuple[list[float], list[float]]:
    """5-minute window counts of one zone, Poisson(rate × gamma burst) per minute summed, and their true rate."""
    rng = random.Random(f"{seed}:bench:{zone.id}")
    base = simulation.peak_per_hour(zone) / 60
    share = cm.shares[simulation.zone_kind(zone)]
    weather = {d: simulation.weather(seed, city.id, d) for d in set(cm.dates)}
    lift = events(seed, zone.id, cm) if scenario == "shocks" else None
    out: list[float] = []
    true: list[float] = []
    acc, expect = 0, 0.0
    for m, d in enumerate(cm.dates):
        rate = base * share[m] * weather[d]
        if city_drift is not None and lift is not None:
            rate *= city_drift[m] * lift[m]
        burst = rng.gammavariate(simulation.BURST_K, 1 / simulation.BURST_K)
        acc += _poisson(rng, rate * burst)
        expect += rate
        if m % 5 == 4:
            out.append(float(acc))
            true.append(expect)
            acc, expect = 0, 0.0
    return out, true


@dataclass
class Baseline:
    usual: list[float | None]  # p50 of the window's band from dates before its own day
    last_week: list[float | None]  # same day type and slot, most recent date before its own day


def baselines(g: Grid, counts: Sequence[float]) -> Baseline:
    """Walk the windows in time order as the worker does: read the band, then remember the window."""
    hist: dict[tuple[str, int], dict[str, int]] = {}
    usual: list[float | None] = []
    last: list[float | None] = []
    for i, v in enumerate(counts):
        h = hist.get(g.keys[i], {})
        b = history_band(h, before=g.day[i], weeks=BASELINE_WEEKS)
        usual.append(None if b is None else b.p50)
        last.append(last_value(h, before=g.day[i]))
        hist[g.keys[i]] = remember(h, g.obs_key[i], int(v), keep=BASELINE_WEEKS)
    return Baseline(usual, last)


@dataclass
class Tally:
    """Σ|error| and Σ actual per (subset, method, horizon), and forecasts a method left out."""

    err: dict[tuple[str, str, int], float]
    act: dict[tuple[str, str, int], float]
    missing: dict[str, int]

    @classmethod
    def empty(cls) -> Tally:
        return cls({}, {}, {})

    def wape(self, subset: str, method: str, horizon: int) -> float:
        key = (subset, method, horizon)
        return self.err.get(key, 0.0) / self.act[key] if self.act.get(key) else math.nan


def backtest(g: Grid, counts: Sequence[float], expected: Sequence[float], base: Baseline,
             methods: dict[str, Forecaster], tally: Tally, lookback: int) -> None:
    """Forecast at every window end of the test weeks with every method; add up the errors in `tally`.

    The row TRUE_RATE is the model's own expected count (what an oracle knowing the day's weather and every
    event would say): its WAPE is the noise floor that no method can beat on average.
    """
    def lookup(values: list[float | None]) -> Callable[[int], float | None]:
        def get(t: int) -> float | None:
            i = (t - g.t0) // WINDOW_MS
            return values[i] if 0 <= i < g.n else None
        return get

    usual, last_week = lookup(base.usual), lookup(base.last_week)
    first = g.n - TEST_WEEKS * WEEK_WINDOWS
    for end in range(first, g.n - HORIZON_WINDOWS + 1):  # forecast made at the end of window end-1
        now_end = g.t0 + end * WINDOW_MS
        recent = [(g.t0 + i * WINDOW_MS, counts[i]) for i in range(max(0, end - lookback), end)]
        subsets = ("all day", "opening hours") if OPEN_FROM <= g.hour[end - 1] < OPEN_TO else ("all day",)
        for h in HORIZONS_MIN:
            target = end + h // 5 - 1
            for s in subsets:
                key = (s, TRUE_RATE, h)
                tally.err[key] = tally.err.get(key, 0.0) + abs(expected[target] - counts[target])
                tally.act[key] = tally.act.get(key, 0.0) + counts[target]
        for name, method in methods.items():
            pred = dict(method(recent, usual=usual, last_week=last_week, now_end_ms=now_end, window_ms=WINDOW_MS,
                               horizon_windows=HORIZON_WINDOWS))
            for h in HORIZONS_MIN:
                target = end + h // 5 - 1
                actual = counts[target]
                p = pred.get(g.t0 + target * WINDOW_MS)
                if p is None:
                    tally.missing[name] = tally.missing.get(name, 0) + 1
                    p = 0.0
                for s in subsets:
                    key = (s, name, h)
                    tally.err[key] = tally.err.get(key, 0.0) + abs(p - actual)
                    tally.act[key] = tally.act.get(key, 0.0) + actual


def pick_zones(registry: Registry, per_city: int) -> list[tuple[City, Zone]]:
    """The first `per_city` zones of each city, alternating shopping streets and squares when it has both."""
    out = []
    for city in registry.cities:
        shops = [z for z in city.zones if simulation.zone_kind(z) == simulation.SHOPPING]
        squares = [z for z in city.zones if simulation.zone_kind(z) == simulation.HOSPITALITY]
        mixed = [z for pair in itertools.zip_longest(shops, squares) for z in pair if z is not None]
        out += [(city, z) for z in mixed[:per_city]]
    return out


def run(seed: int, scenario: str, zones: list[tuple[City, Zone]], methods: dict[str, Forecaster],
        start: date = START, lookback_ms: int = DEFAULT_PARAMS.lookback_ms) -> Tally:
    tally = Tally.empty()
    cache: dict[tuple[str, str], tuple[Grid, CityMinutes]] = {}
    drifts: dict[str, list[float]] = {}
    for city, zone in zones:
        where = (city.timezone, city.country)  # the seed-free model depends on nothing else of the city
        if where not in cache:
            g = grid(city, start, WEEKS)
            cache[where] = (g, city_minutes(city, g.t0, g.n * 5))
        g, cm = cache[where]
        if scenario == "shocks" and city.id not in drifts:
            drifts[city.id] = drift(seed, city.id, g.n * 5)
        counts, expected = zone_windows(city, zone, cm, seed, scenario, drifts.get(city.id))
        backtest(g, counts, expected, baselines(g, counts), methods, tally,
                 lookback=lookback_ms // WINDOW_MS)
    return tally


def table(title: str, tally: Tally, methods: Sequence[str]) -> str:
    subsets = ("opening hours", "all day")
    head = "".join(f"{f'{h} min':>9}" for _ in subsets for h in HORIZONS_MIN)
    lines = [title, f"{'WAPE':<28}{'opening hours 09-20':^27}{'all day':^27}", f"{'method':<28}{head}"]
    for m in methods:
        lines.append(f"{m:<28}" + "".join(f"{tally.wape(s, m, h):>9.1%}" for s in subsets for h in HORIZONS_MIN))

    def best_naive(s: str, h: int) -> float:
        return min(tally.wape(s, n, h) for n in NAIVE)

    lines.append(f"{TRUE_RATE:<28}" + "".join(f"{tally.wape(s, TRUE_RATE, h):>9.1%}" for s in subsets
                                              for h in HORIZONS_MIN))
    lines.append(f"{'better naive':<28}" + "".join(f"{best_naive(s, h):>9.1%}" for s in subsets for h in HORIZONS_MIN))
    for other, label in (("naive", "forecast vs better naive"), ("amsterdam", "forecast vs amsterdam")):
        cells = []
        for s in subsets:
            for h in HORIZONS_MIN:
                ref = best_naive(s, h) if other == "naive" else tally.wape(s, "amsterdam", h)
                cells.append(f"{tally.wape(s, 'forecast', h) / ref - 1:>+9.1%}")
        lines.append(f"{label:<28}" + "".join(cells))
    if tally.missing:
        lines.append(f"left out (counted as 0): {tally.missing}")
    return "\n".join(lines)


def _change(name: str, value: float) -> dict[str, Any]:
    return {name: value}


def _tune_job(job: tuple[str, int, tuple[ForecastParams, ...]]) -> Tally:
    scenario, per_city, candidates = job
    zones = pick_zones(parse_registry(REGISTRY_FILE.read_text(encoding="utf-8")), per_city)
    return run(TUNE_SEED, scenario, zones, {str(i): _method_forecast(c) for i, c in enumerate(candidates)},
               TUNE_START)


def tune(per_city: int, jobs: int) -> None:
    """Coordinate descent over `forecast`'s parameters on TUNE_SEED and TUNE_START (never the reported weeks).

    The score is the mean of the opening-hours and all-day WAPE at 60 and 120 minutes over both scenarios.
    """
    grid_values: dict[str, Sequence[int | float]] = {
        "smooth_windows": [0, 1, 2, 3, 4, 6],
        "short_half_life_ms": [5 * MINUTE_MS, 10 * MINUTE_MS, 20 * MINUTE_MS, 40 * MINUTE_MS],
        "long_half_life_ms": [120 * MINUTE_MS, 240 * MINUTE_MS, 480 * MINUTE_MS, 960 * MINUTE_MS],
        "decay_ms": [20 * MINUTE_MS, 30 * MINUTE_MS, 45 * MINUTE_MS, 60 * MINUTE_MS, 90 * MINUTE_MS],
        "prior_visitors": [10.0, 40.0, 150.0, 400.0, 1000.0],
        "last_week_weight": [0.0, 0.1, 0.2, 0.3],
    }
    best = DEFAULT_PARAMS
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(SCENARIOS)))) as pool:
        for _ in range(2):  # two sweeps
            for name, values in grid_values.items():
                cands = tuple(replace(best, **_change(name, v)) for v in values)
                tallies = list(pool.map(_tune_job, [(sc, per_city, cands) for sc in SCENARIOS]))
                scores = [sum(t.wape(s, str(i), h) for t in tallies for s in ("all day", "opening hours")
                              for h in (60, 120)) / (4 * len(tallies)) for i in range(len(cands))]
                pick = min(range(len(cands)), key=lambda i: scores[i])
                print("  ".join(f"{name}={v}: {sc:.4f}" for v, sc in zip(values, scores, strict=True)),
                      f"-> {values[pick]}", flush=True)
                best = cands[pick]
    print(best)


def _one(job: tuple[int, str, int, int]) -> Tally:
    """One (seed, scenario) backtest; a module-level function so a process pool can run it."""
    seed, scenario, per_city, lookback_min = job
    zones = pick_zones(parse_registry(REGISTRY_FILE.read_text(encoding="utf-8")), per_city)
    return run(seed, scenario, zones, METHODS, lookback_ms=lookback_min * MINUTE_MS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.forecast", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    p.add_argument("--zones-per-city", type=int, default=2, help="zones per city (the registry has 5-7)")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="backtests run in parallel processes (results do not depend on it)")
    p.add_argument("--lookback-min", type=int, default=DEFAULT_PARAMS.lookback_ms // MINUTE_MS,
                   help="minutes of recent windows passed to every method (the worker's look-back)")
    p.add_argument("--tune", action="store_true", help=f"grid-search forecast's parameters on seed {TUNE_SEED}")
    args = p.parse_args(argv)
    if args.tune:
        tune(args.zones_per_city, args.jobs)
        return 0
    zones = pick_zones(parse_registry(REGISTRY_FILE.read_text(encoding="utf-8")), args.zones_per_city)
    began = time.perf_counter()
    test_from = START + timedelta(weeks=WEEKS - TEST_WEEKS)
    test_to = START + timedelta(weeks=WEEKS) - timedelta(days=1)
    print(f"Drukte forecast backtest: {len(zones)} zones ({', '.join(z.id for _, z in zones)}), 5-minute windows, "
          f"{WEEKS} weeks from {START}, baselines of {BASELINE_WEEKS} weeks, test {test_from} .. {test_to}, "
          f"look-back {args.lookback_min} min\n",
          flush=True)
    jobs = [(seed, scenario, args.zones_per_city, args.lookback_min) for scenario in args.scenarios
            for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(jobs)))) as pool:
        for (seed, scenario, _, _), tally in zip(jobs, pool.map(_one, jobs), strict=True):
            print(table(f"scenario {scenario}, seed {seed}", tally, list(METHODS)), "\n", flush=True)
    print(f"{time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
