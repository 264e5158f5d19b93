"""The usual band (p20, p50, p80 of past weeks) and what we derive from it: index, usual scale, vs_usual, score.

History is plain JSON-able state. Per zone the worker keeps, for every `(day_type, slot)` key, a mapping
`{observation key: visitors}` (the key is the local ISO date, see `streams.daytype.observation_key`) of the
most recent weeks; `remember` updates it and `history_band` turns it into a `Band`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MIN_OBSERVATIONS = 3  # fewer past values than this: no band, so no index, no vs_usual
BASELINE_WEEKS = 8  # DRUKTE_BASELINE_WEEKS: how many past same-day-type dates make the band


@dataclass(frozen=True, slots=True)
class Band:
    """Visitors per window (or per sum of windows) at the 20th, 50th and 80th percentile of `n` past values."""

    p20: float
    p50: float
    p80: float
    n: int


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) of sorted values by linear interpolation between closest ranks.

    This is Hyndman & Fan's type 7 (numpy's default "linear", `statistics.quantiles(method="inclusive")`):
    h = (n − 1)·q, result = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]). It never leaves the range of the data and
    is the median for q = 0.5, so with 8 weeks p50 is the mean of the 4th and 5th value.
    """
    if not ordered:
        msg = "percentile of no values"
        raise ValueError(msg)
    h = (len(ordered) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def band(values: Iterable[float]) -> Band | None:
    """p20/p50/p80 of `values` (see `percentile`); None with fewer than `MIN_OBSERVATIONS` values."""
    ordered = sorted(values)
    if len(ordered) < MIN_OBSERVATIONS:
        return None
    return Band(percentile(ordered, 0.2), percentile(ordered, 0.5), percentile(ordered, 0.8), len(ordered))


def remember(hist: Mapping[str, int], local_date: str, visitors: int, keep: int = BASELINE_WEEKS) -> dict[str, int]:
    """A new history with `visitors` for `local_date`, keeping only the `keep` most recent dates.

    Setting a date that is already there overwrites it: late data updates a date's total (the worker passes
    the window's new total, not an increment). ISO dates sort in time order as text. A date older than all
    `keep` kept ones is dropped at once. Keys may also be `observation_key`s ("2026-10-25.2").

    The day being counted is itself one of the `keep`: to have `weeks` full past weeks in the band while today
    is being recorded, keep `weeks + 1` (or read the band before remembering today).
    """
    merged = dict(hist)
    merged[local_date] = visitors
    return {k: merged[k] for k in sorted(merged)[-keep:]} if keep > 0 else {}


def history_band(hist: Mapping[str, float], before: str | None = None, weeks: int = BASELINE_WEEKS) -> Band | None:
    """The band of the `weeks` most recent observations whose key sorts before `before` (a local ISO date).

    `before` = today's local date keeps today's own (partial, possibly live) value out of its own usual; None
    takes every key.
    """
    keys = sorted(k for k in hist if before is None or k < before)
    return band(hist[k] for k in keys[-weeks:]) if weeks > 0 else None


def combine(bands: Sequence[Band]) -> Band:
    """The band of a sum of windows (the live object's 15 minutes = three 5-minute windows): p's summed, min n.

    Percentiles of a sum are approximated by sums of percentiles. That is exact when the windows move together
    (comonotone: a rainy day is quiet in every window of the afternoon, which is most of what separates the
    weeks) and slightly too wide when they vary independently (sampling noise), so p20/p80 of a sum err on the
    side of "usual". p50 of the sum is the sum of medians, exact for symmetric variation.
    """
    if not bands:
        msg = "combine needs at least one band"
        raise ValueError(msg)
    return Band(sum(b.p20 for b in bands), sum(b.p50 for b in bands), sum(b.p80 for b in bands),
                min(b.n for b in bands))


def index(live: float, usual: Band) -> int | None:
    """round(100 · live / p50): 100 = usual for this day type and time; None when p50 ≤ 0 (nobody usually)."""
    if usual.p50 <= 0:
        return None
    return round(100 * live / usual.p50)


def usual_scale(b: Band) -> dict[str, int] | None:
    """The band on the index scale: {"low": 100·p20/p50, "high": 100·p80/p50}, rounded; None when p50 ≤ 0."""
    if b.p50 <= 0:
        return None
    return {"low": round(100 * b.p20 / b.p50), "high": round(100 * b.p80 / b.p50)}


def vs_usual(live: float, b: Band) -> str:
    """"quieter" below p20, "busier" above p80, otherwise "usual" (the band's edges are usual)."""
    if live < b.p20:
        return "quieter"
    if live > b.p80:
        return "busier"
    return "usual"


def weekly_peak(bands: Iterable[Band | None]) -> float | None:
    """The zone's usual weekly peak: the largest p50 over all its (day type, slot) bands; None if none is > 0."""
    peak = max((b.p50 for b in bands if b is not None), default=0.0)
    return peak if peak > 0 else None


def score(live_per_window: float, weekly_peak_p50: float | None) -> int | None:
    """0–100 against the zone's usual weekly peak (100 = the busiest usual window of the week), clamped.

    For a live figure over several windows pass the mean per window (sum / number of windows), since the peak
    is per window. None when there is no peak yet (no baseline): never a made-up 0.
    """
    if weekly_peak_p50 is None or weekly_peak_p50 <= 0:
        return None
    return max(0, min(100, round(100 * live_per_window / weekly_peak_p50)))


def last_value(hist: Mapping[str, float], before: str) -> float | None:
    """The most recent observation whose key sorts before `before`: "same slot last week" (same day type).

    Keyed by day type and local slot, this is last week's count at the same wall-clock time, also across the
    clock changes (where "now − 7 × 24 h" would be an hour off), and for a holiday the last Sunday's.
    """
    keys = [k for k in hist if k < before]
    return hist[max(keys)] if keys else None
