"""What leaves the worker: the live object of CONTRACT.md §4 built from final cells, with P6/P7/P8 applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.baseline import Band, combine, index, score, usual_scale, vs_usual
from streams.levels import level, level_for_rate
from streams.noise import NoisyCell
from streams.opening import closed_throughout
from streams.registry import City, Zone
from streams.timegrid import format_ts
from streams.windows import Cell

BELOW_K = "below_k"
FEW_SENSORS = "few_sensors"
DP_BUDGET = "dp_budget"
_NICE_STEPS = (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000)


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    k_min: int
    min_sensors: int


@dataclass(frozen=True, slots=True)
class Usual:
    """What the baselines say about the cells of a live object: one band per cell (None: no baseline yet),
    the zone's usual weekly peak per window, and the forecast `(window start, visitors, usual p50)`."""

    bands: list[Band | None]
    peak: float | None
    forecast: list[tuple[int, float, float | None]]


NO_USUAL = Usual([], None, [])


def forecast_entries(zone: Zone, city: City, forecast: list[tuple[int, float, float | None]], policy: PrivacyPolicy,
                     window_ms: int) -> list[dict[str, Any]]:
    """Forecast windows as published: an index against the usual and a level, never a visitor count.
    A forecast under k people is `quiet` without index, like a live window below k (P6)."""
    out = []
    for start, visitors, p50 in forecast:
        low = visitors < policy.k_min
        idx = None if low or p50 is None else index(visitors, Band(p50, p50, p50, 1))
        lvl = "quiet" if low else level_for_rate(visitors * 3_600_000 / window_ms, zone.levels)
        out.append({"start": format_ts(start, city.timezone), "index": idx, "level": lvl})
    return out


def visitors_range(n: int) -> dict[str, int]:
    """A rounded range holding `n`, at most 10 people or 5 % wide, whichever is larger.

    The step is the largest 'nice' number within that width, and the range is the step-aligned bucket of n,
    so nearby counts share a range: it is honest about precision and hides the exact count.
    """
    limit = max(10, n // 20)
    step = max(s for s in _NICE_STEPS if s <= limit) if limit < _NICE_STEPS[-1] else (limit // 10000) * 10000
    low = n - n % step
    return {"min": low, "max": low + step}


def suppression(cells: list[Cell], policy: PrivacyPolicy) -> str | None:
    """Why these cells (one window, or the windows summed for /live) must be published without numbers.

    P7 before P6: a window with too few sensors says nothing reliable, so it is `unknown`, not `quiet`.
    P10: a window without a noisy count (the zone's daily budget is spent) has nothing to show. P6 is then
    decided on the (noisy, under DP) counts.
    P8: a sum over windows is suppressed when any of its parts is, or it would reveal that part by
    subtraction from the published neighbours.
    """
    if not cells or any(c.sensors < policy.min_sensors for c in cells):
        return FEW_SENSORS
    if any(isinstance(c, NoisyCell) and c.withheld for c in cells):
        return DP_BUDGET
    if any(c.visitors < policy.k_min for c in cells) or sum(c.visitors for c in cells) < policy.k_min:
        return BELOW_K
    return None


def privacy_block(cells: list[Cell], reason: str | None, policy: PrivacyPolicy) -> dict[str, Any]:
    """The payload's `privacy`: with DP (P10) it also states `epsilon` per window and the ε the zone has left
    for its local day after the newest window (`budget_left`); without, `noise` is `none` as before."""
    out: dict[str, Any] = {"suppressed": reason is not None, "reason": reason, "k_min": policy.k_min,
                           "noise": "none"}
    newest = cells[-1]
    if isinstance(newest, NoisyCell):
        out.update(noise="dp", epsilon=newest.epsilon, budget_left=newest.budget_left)
    return out


def live_object(zone: Zone, city: City, cells: list[Cell], policy: PrivacyPolicy, *, window_ms: int,
                grace_ms: int, usual: Usual = NO_USUAL) -> dict[str, Any]:
    """The live object over `cells` (consecutive final windows of one zone, oldest first).

    Deterministic in its inputs: republishing after a crash yields the same bytes. `as_of_ms` is an internal
    field for the API's freshness arithmetic. Under DP the cells are `streams.noise.NoisyCell`s and every figure
    (P6 decision, level, index, score, visitors range) comes from their noisy counts.
    """
    start, end = cells[0].start_ms, cells[-1].end_ms
    seconds = sum(c.end_ms - c.start_ms for c in cells) // 1000
    reason = suppression(cells, policy)
    visitors = sum(c.visitors for c in cells)
    expected = len(zone.sensors)
    covered = sum(c.sensor_ms for c in cells)
    coverage = min(1.0, covered / (expected * seconds * 1000)) if expected and seconds else 0.0
    if reason is not None and closed_throughout(zone.opening, start, end, city.timezone, city.country):
        lvl = "closed"  # outside opening hours with no counts to show: a shut street, not an unknown one
    elif reason in (FEW_SENSORS, DP_BUDGET):
        lvl = "unknown"
    elif reason == BELOW_K:
        lvl = "quiet"
    else:
        lvl = level_for_rate(visitors * 3600 / seconds, zone.levels)
    idx = usual_band = vs = scr = None
    bands = [b for b in usual.bands if b is not None]
    if reason is None and bands and len(bands) == len(cells):
        total = combine(bands)
        idx, usual_band, vs = index(visitors, total), usual_scale(total), vs_usual(visitors, total)
    if reason is None:
        scr = score(visitors / len(cells), usual.peak)
    return {
        "zone_id": zone.id,
        "city_id": city.id,
        "name": zone.name,
        "as_of": format_ts(end, city.timezone),
        "as_of_ms": end,
        "window": {"start": format_ts(start, city.timezone), "end": format_ts(end, city.timezone),
                   "seconds": seconds},
        "level": level(lvl),
        "index": idx,
        "score": scr,
        "vs_usual": vs,
        "usual": usual_band,
        "visitors": None if reason else visitors_range(visitors),
        "forecast": forecast_entries(zone, city, usual.forecast, policy, window_ms),
        "quality": {"stale": False, "age_s": 0, "coverage": round(coverage, 3),
                    "sensors_reporting": cells[-1].sensors, "sensors_expected": expected},
        "privacy": privacy_block(cells, reason, policy),
        "next_update_in_s": (window_ms + grace_ms) // 1000,
    }
