"""Today's view: usual curve on the score scale, live windows, forecasts made before, planning hours."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from streams.baseline import Band
from streams.today import empty_profile, profile_record, today_view

TZ = "Europe/Brussels"
W = 3_600_000  # hourly windows keep the tables short


def ms(hour: int) -> int:
    return int(datetime(2026, 11, 28, hour, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def iso(hour: int) -> str:
    return datetime(2026, 11, 28, hour, tzinfo=ZoneInfo(TZ)).isoformat()


HOURLY_P50 = [0, 0, 0, 0, 0, 0, 0, 0, 5, 20, 40, 60, 80, 90, 100, 95, 70, 50, 20, 10, 5, 0, 0, 0]
PROFILE = [(ms(h), Band(p50 * 0.8, p50, p50 * 1.2, 8) if p50 else None) for h, p50 in enumerate(HOURLY_P50)]


def published(hour: int, index: int, forecast: list[dict[str, Any]]) -> dict[str, Any]:
    return {"window": {"start": iso(hour)}, "as_of": iso(hour + 1), "index": index, "score": 50,
            "level": {"key": "busy"}, "visitors": {"min": 100, "max": 110}, "privacy": {"suppressed": False},
            "forecast": forecast}


def test_profile_is_scored_against_the_peak_and_hides_counts() -> None:
    rec = profile_record("z", TZ, PROFILE, peak=100.0)
    assert rec["date"] == "2026-11-28"
    assert rec["windows"][14] == {"start": iso(14), "usual": {"score": 100, "low": 80, "high": 100}}  # capped
    assert rec["windows"][0]["usual"] is None
    assert "visitors" not in str(rec)


def test_today_view_joins_live_forecast_and_hours() -> None:
    rec = profile_record("z", TZ, PROFILE, peak=100.0)
    pubs = [
        published(9, 95, [{"start": iso(11), "index": 110, "level": "normal"}]),
        published(10, 120, [{"start": iso(11), "index": 130, "level": "busy"}]),  # newer forecast wins
    ]
    view = today_view(rec, pubs, TZ)
    rows = {r["start"]: r for r in view["windows"]}
    assert rows[iso(10)]["live"]["index"] == 120
    assert rows[iso(11)]["live"] is None
    assert rows[iso(11)]["forecast"] == {"index": 130, "level": "busy", "made_at": iso(11)}
    assert view["peak_hours"] == [{"start": "13:00", "end": "16:00", "max": 100}]  # ≥ 90 % of the top hour
    assert view["busy_hours"] == ["12:00", "13:00", "14:00", "15:00", "16:00"]  # ≥ 70 %
    assert "08:00" in view["quiet_hours"]
    assert "00:00" not in view["quiet_hours"]  # no usual at night: unknown, not quiet


def test_empty_profile_without_history() -> None:
    rec = empty_profile("z", TZ, ms(0), ms(0) + 24 * W, W)
    view = today_view(rec, [], TZ)
    assert len(view["windows"]) == 24
    assert view["peak_hours"] == []
    assert view["quiet_hours"] == []
