"""Four weeks of history replayed from CSV (wide, long and inout), through the normal path: every window
published once and exact, the usual band of the last week equal to one computed here, independently, and the
forecast published with the newest window equal to one computed here from `streams.forecast`'s documented
method (the test's own implementation, not the module's).

The history ends at the last full hour: the worker forecasts only for windows it closes within an hour of
their end (older ones are history nobody reads live), so the newest window of each zone carries a forecast.
"""

from __future__ import annotations

import csv
import functools
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import orjson
import pytest

from streams.registry import parse_registry
from streams.storekeys import live_key
from streams.timegrid import parse_ts
from tests.e2e.conftest import REGISTRY, Stack

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Europe/Brussels")
HOUR = 3_600_000
MINUTE = 60_000
WEEKS = 4
K_MIN = 15
SENSORS = {
    "tt-main": ["tt-main-01", "tt-main-02", "tt-main-03"],
    "tt-side": ["tt-side-01", "tt-side-02", "tt-side-03"],
    "tt-quiet": ["tt-quiet-01", "tt-quiet-02", "tt-quiet-03"],
}


def count(sensor: int, ts: int) -> int:
    """A count with a daily and weekly shape that also drifts from week to week, so medians are not trivial."""
    local = datetime.fromtimestamp(ts / 1000, TZ)
    shape = 20 + 60 * max(0, 1 - abs(local.hour - 14) / 6) + (40 if local.weekday() == 5 else 0)
    week = (ts // (7 * 24 * HOUR)) % 5
    return int(shape * (1 + 0.07 * week) + 3 * sensor + (ts // HOUR) % 7)


def ambiguous(ts: int) -> bool:
    local = datetime.fromtimestamp(ts / 1000, TZ)
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def write_files(tmp: Path, hours: list[int]) -> dict[str, dict[int, int]]:
    """One file per format, one zone each; returns the true visitors per zone and window."""
    truth: dict[str, dict[int, int]] = {z: {} for z in SENSORS}
    with (tmp / "wide.csv").open("w", newline="") as f:  # ISO with offset, one column per sensor
        w = csv.writer(f)
        w.writerow(["timestamp", *SENSORS["tt-main"]])
        for ts in hours:
            values = [count(i, ts) for i in range(3)]
            w.writerow([datetime.fromtimestamp(ts / 1000, TZ).isoformat(), *values])
            truth["tt-main"][ts] = sum(values)
    with (tmp / "long.csv").open("w", newline="") as f:  # naive local day-first, semicolons, one row per sensor
        w = csv.writer(f, delimiter=";")
        w.writerow(["sensor", "timestamp", "count"])
        for ts in hours:
            if ambiguous(ts):
                continue
            stamp = datetime.fromtimestamp(ts / 1000, TZ).strftime("%d/%m/%Y %H:%M")
            for i, sensor in enumerate(SENSORS["tt-side"]):
                w.writerow([sensor, stamp, count(i, ts)])
            truth["tt-side"][ts] = sum(count(i, ts) for i in range(3))
    with (tmp / "inout.csv").open("w", newline="") as f:  # per sensor IN and OUT columns
        w = csv.writer(f)
        w.writerow(["timestamp", *(f"{s} {d}" for s in SENSORS["tt-quiet"] for d in ("IN", "OUT"))])
        for ts in hours:
            if ambiguous(ts):
                continue
            row = []
            for i in range(3):
                c = count(i, ts)
                row += [c // 2, c - c // 2]
            w.writerow([datetime.fromtimestamp(ts / 1000, TZ).strftime("%Y-%m-%d %H:%M"), *row])
            truth["tt-quiet"][ts] = sum(count(i, ts) for i in range(3))
    return truth


def visitors_range(n: int) -> dict[str, int]:
    limit = max(10, n // 20)
    step = max(s for s in (10, 20, 25, 50, 100, 200, 250, 500) if s <= limit)
    return {"min": n - n % step, "max": n - n % step + step}


@functools.cache
def day_type(d: date) -> str:
    return "sun" if d in holidays.country_holidays("BE", years=d.year) else d.strftime("%a").lower()


def expected_p50(truth: dict[int, int], ts: int) -> float | None:
    """The median of the same local hour on up to eight earlier days of the same type (holidays as Sundays)."""
    local = datetime.fromtimestamp(ts / 1000, TZ)
    by_day = {datetime.fromtimestamp(t / 1000, TZ).date(): v for t, v in truth.items()
              if datetime.fromtimestamp(t / 1000, TZ).hour == local.hour and not ambiguous(t)}
    earlier = sorted((d for d in by_day if d < local.date() and day_type(d) == day_type(local.date())), reverse=True)
    values = [by_day[d] for d in earlier[:8]]
    return statistics.median(values) if len(values) >= 3 else None


# The forecast method as `streams/forecast.py` documents it, with its documented parameters.
SHORT_HALF_LIFE, LONG_HALF_LIFE, DECAY = 10 * MINUTE, 480 * MINUTE, 45 * MINUTE
PRIOR, SMOOTH, FACTOR_MIN, FACTOR_MAX = 150.0, 4, 0.25, 4.0
LOOKBACK, HORIZON = 6 * HOUR, 2 * HOUR


def smoothed(values: Callable[[int], float | None], t: int) -> float | None:
    """Triangular average over ±SMOOTH windows (weights 1 … SMOOTH + 1 … 1) of those that exist; None when
    the window itself has no value."""
    if values(t) is None:
        return None
    pairs = [(SMOOTH + 1 - abs(d), values(t + d * HOUR)) for d in range(-SMOOTH, SMOOTH + 1)]
    return sum(w * v for w, v in pairs if v is not None) / sum(w for w, v in pairs if v is not None)


def expected_forecast(truth: dict[int, int], usual: Callable[[int], float | None],
                      now_end: int) -> list[tuple[int, float | None]]:
    """(window start, forecast visitors) for the windows of the next two hours after `now_end`."""
    def last_week(t: int) -> float | None:
        """The same local time a week earlier; a window below k counts as k / 2 (`streams.usual`)."""
        week_ago = datetime.fromtimestamp(t / 1000, TZ).replace(tzinfo=None) - timedelta(days=7)
        v = truth.get(int(week_ago.replace(tzinfo=TZ).timestamp() * 1000))
        return None if v is None else float(v) if v >= K_MIN else K_MIN / 2

    def curve(t: int) -> float | None:
        c = smoothed(usual, t)
        return c if c is not None else smoothed(last_week, t)

    seen = {s: (float(v), curve(s)) for s, v in truth.items() if now_end - LOOKBACK <= s < now_end and v >= K_MIN}
    newest = seen[max(seen)][0] if seen else None
    ahead = [(t, curve(t)) for t in range(now_end, now_end + HORIZON, HOUR)]
    if all(c is None for _, c in ahead):
        return [(t, newest) for t, _ in ahead]
    factors = []
    for half_life in (SHORT_HALF_LIFE, LONG_HALF_LIFE):
        num = den = PRIOR
        for s, (v, c) in seen.items():
            if c is not None:
                w = 0.5 ** ((now_end - s - HOUR) / half_life)
                num, den = num + w * v, den + w * c
        factors.append(num / den)
    short, long = factors
    out: list[tuple[int, float | None]] = []
    for t, c in ahead:
        f = long + (short - long) * math.exp(-(t + HOUR / 2 - now_end) / DECAY)
        out.append((t, newest if c is None else c * min(FACTOR_MAX, max(FACTOR_MIN, f))))
    return out


def expected_entries(truth: dict[int, int], now_end: int, zone: str) -> list[dict[str, Any]]:
    """The published form: an index against the window's usual median and a level; under k: quiet, no index."""
    levels = parse_registry(REGISTRY.read_text()).zones[zone].levels
    usual = functools.cache(lambda t: expected_p50(truth, t))
    out = []
    for t, v in expected_forecast(truth, usual, now_end):
        if v is None:
            continue
        p50 = usual(t)
        low = v < K_MIN
        # hourly windows: the forecast is already visitors per hour, the unit of the thresholds
        level = ("quiet" if low or v < levels.normal else "normal" if v < levels.busy
                 else "busy" if v < levels.very_busy else "very_busy")
        out.append({"start": t, "index": None if low or not p50 else round(100 * v / p50), "level": level})
    return out


def test_replayed_history_gives_windows_and_bands(stack: Stack, tmp_path: Path) -> None:
    if time.time() % 3600 > 3600 - 150:  # the newest window must close within the hour it ended
        time.sleep(3600 - time.time() % 3600 + 1)
    now = datetime.now(UTC)
    end = int(now.timestamp() * 1000) // HOUR * HOUR
    hours = list(range(end - WEEKS * 7 * 24 * HOUR, end, HOUR))
    truth = write_files(tmp_path, hours)
    hourly = {"DRUKTE_WINDOW_S": "3600", "DRUKTE_LIVE_S": "3600", "DRUKTE_GRACE_S": "10", "DRUKTE_IDLE_S": "3"}
    stack.spawn("worker", log="worker", **hourly)
    for fmt in ("wide", "long", "inout"):
        done = subprocess.run([sys.executable, "-m", "drukte.cli", "replay", str(tmp_path / f"{fmt}.csv"),
                               "--format", fmt], env=stack.env(**hourly), capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    expected_windows = sum(len(v) for v in truth.values())

    def windows(rs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["zone_id"], parse_ts(r["window"]["start"])): r for r in rs}

    records = stack.consume("busyness.zone.v1", lambda rs: len(windows(rs)) >= expected_windows, timeout_s=240)
    published = windows(records)
    assert len(records) == expected_windows  # each window once
    checked = 0
    for zone, values in truth.items():
        for ts, v in values.items():
            obj = published[(zone, ts)]
            assert obj["visitors"] == visitors_range(v), (zone, ts)
            p50 = expected_p50(values, ts)
            if datetime.fromtimestamp(ts / 1000, TZ) < datetime.fromtimestamp(end / 1000, TZ) - timedelta(days=7):
                continue  # the band of the first weeks is still filling
            if p50 is None:
                assert obj["index"] is None
            else:
                assert obj["index"] == round(100 * v / p50), (zone, ts, v, p50)
                checked += 1
    assert checked >= 3 * 6 * 24  # most windows of the last week, in all three zones

    # forecasts: the newest window of each zone, and its /live object, carry the next two hours
    r = stack.redis()
    for zone, values in truth.items():
        newest = published[(zone, end - HOUR)]
        want = expected_entries(values, end, zone)
        assert len(want) == 2
        assert all(e["index"] is not None for e in want)  # a usual exists, so the index is checked too
        got = [{**f, "start": parse_ts(f["start"])} for f in newest["forecast"]]
        assert got == want, (zone, got, want)
        live = r.get(live_key(zone))
        assert live is not None
        assert [{**f, "start": parse_ts(f["start"])} for f in orjson.loads(live)["forecast"]] == want, zone
    # … and no other window does (closed more than an hour after it ended: history, not forecast)
    assert [k for k, o in published.items() if o["forecast"] and k[1] != end - HOUR] == []
