"""Today at a glance for a zone: the usual curve, the published windows, the forecasts made before them, and
the peak, busy and quiet hours for staff planning. Scores only (0–100 of the usual weekly peak), no counts."""

from __future__ import annotations

from typing import Any

from streams.baseline import Band
from streams.daytype import local_time
from streams.timegrid import format_ts, parse_ts

PEAK_SHARE, BUSY_SHARE, QUIET_SHARE = 0.9, 0.7, 0.3  # of the day's highest usual hour


def _score(value: float, peak: float) -> int:
    return max(0, min(100, round(100 * value / peak)))


def profile_record(zone_id: str, tz: str, profile: list[tuple[int, Band | None]], peak: float | None) -> dict[str, Any]:
    """What the worker stores per zone and day: the usual band of every window on the score scale."""
    windows = []
    for start, band in profile:
        usual = None
        if band is not None and peak:
            usual = {"score": _score(band.p50, peak), "low": _score(band.p20, peak), "high": _score(band.p80, peak)}
        windows.append({"start": format_ts(start, tz), "usual": usual})
    return {"zone_id": zone_id, "date": local_time(profile[0][0], tz).date().isoformat() if profile else None,
            "windows": windows}


def _hours(profile: dict[str, Any], tz: str) -> dict[str, list[Any]]:
    """BestTime-style planning hours from the usual curve: runs of hours near the day's peak, busy hours, quiet
    hours (only hours that have a usual)."""
    by_hour: dict[int, list[int]] = {}
    for w in profile["windows"]:
        if w["usual"] is not None:
            by_hour.setdefault(local_time(parse_ts(w["start"]), tz).hour, []).append(w["usual"]["score"])
    mean = {h: sum(v) / len(v) for h, v in sorted(by_hour.items())}
    top = max(mean.values(), default=0)
    if top <= 0:
        return {"peak_hours": [], "busy_hours": [], "quiet_hours": []}
    peaks: list[dict[str, Any]] = []
    for h, v in mean.items():
        if v >= PEAK_SHARE * top:
            if peaks and peaks[-1]["end_hour"] == h:
                peaks[-1]["end_hour"] = h + 1
                peaks[-1]["max"] = max(peaks[-1]["max"], round(v))
            else:
                peaks.append({"start_hour": h, "end_hour": h + 1, "max": round(v)})
    return {
        "peak_hours": [{"start": f"{p['start_hour']:02d}:00", "end": f"{p['end_hour'] % 24:02d}:00", "max": p["max"]}
                       for p in peaks],
        "busy_hours": [f"{h:02d}:00" for h, v in mean.items() if v >= BUSY_SHARE * top],
        "quiet_hours": [f"{h:02d}:00" for h, v in mean.items() if v <= QUIET_SHARE * top],
    }


def empty_profile(zone_id: str, tz: str, first_ms: int, end_ms: int, window_ms: int) -> dict[str, Any]:
    """A day without a usual yet (no history, or the worker has not written today's profile)."""
    return profile_record(zone_id, tz, [(s, None) for s in range(first_ms, end_ms, window_ms)], None)


def today_view(profile: dict[str, Any], published: list[dict[str, Any]], tz: str) -> dict[str, Any]:
    """Per window of today: usual band (score), live (index, score, level, visitors range) when published, and
    the forecast for it as made by the newest window published before it started."""
    live = {w["window"]["start"]: w for w in published}
    made: dict[str, dict[str, Any]] = {}
    for pub in sorted(published, key=lambda o: parse_ts(o["window"]["start"])):  # newer forecasts overwrite older
        for f in pub.get("forecast") or []:
            made[f["start"]] = {"index": f["index"], "level": f["level"], "made_at": pub["as_of"]}
    rows = []
    for slot in profile["windows"]:
        w: dict[str, Any] | None = live.get(slot["start"])
        rows.append({
            "start": slot["start"],
            "usual": slot["usual"],
            "live": None if w is None else {"index": w["index"], "score": w["score"], "level": w["level"]["key"],
                                            "visitors": w["visitors"], "suppressed": w["privacy"]["suppressed"]},
            "forecast": made.get(slot["start"]),
        })
    return {"zone_id": profile["zone_id"], "date": profile["date"], "windows": rows, **_hours(profile, tz)}
