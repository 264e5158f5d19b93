"""Baselines from the published topic: a window of `busyness.zone.v1` as a row of the day history.

The usual bands read the worker's `d|` day histories. When that state is lost (the changelog topic deleted, a
new app id), `drukte rebuild-baselines` reads every published window back and the worker fills the history
slots it lacks. A published window holds a range, not the exact count: the row takes its middle, at most half
a range step (5 %) off, which moves a band's percentiles by as little. A window published below k becomes 0,
which the bands count as `k_min / 2` like any suppressed window (P6); one with too few sensors keeps its
sensor count, so the bands skip it as before. Windows of DP cities are left out: their bands read the noisy
history, which the rebuild cannot tell from the range.
"""

from __future__ import annotations

from typing import Any

from streams.timegrid import parse_ts


def history_row(window: dict[str, Any], window_ms: int) -> tuple[str, list[int]] | None:
    """(zone, [start, visitors, sensors]) of one published window, or None for what cannot be restored:
    another window length, a DP city, a malformed object."""
    try:
        if window["window"]["seconds"] * 1000 != window_ms or window["privacy"].get("noise", "none") != "none":
            return None
        start = parse_ts(window["window"]["start"])
        sensors = int(window["quality"]["sensors_reporting"])
        visitors = window["visitors"]
        middle = 0 if visitors is None else (int(visitors["min"]) + int(visitors["max"])) // 2
        return str(window["zone_id"]), [start, middle, sensors]
    except (KeyError, TypeError, ValueError):
        return None
