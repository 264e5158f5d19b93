"""A gateway back from an outage re-sends a whole day of batches: counted once, no final window published again,
and the hours it had missed complete the day history that usual bands read."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from drukte.embedded import free_port
from streams.daytype import baseline_day_type
from streams.timegrid import parse_ts
from tests.e2e.conftest import Stack, iso, wait_for
from tests.e2e.workload import metric, published, settled

pytestmark = pytest.mark.e2e
HOUR = 3_600_000
TZ = "Europe/Brussels"
ENV = {"DRUKTE_WINDOW_S": "3600", "DRUKTE_LIVE_S": "3600"}
GATEWAY, LIVE_GATEWAY = "gw-testtown-01", "gw-testtown-02"


def hour_batch(source: str, start: int, total: int) -> bytes:
    """One hour of tt-main: four quarter-hour readings of each of its three sensors, `total` people in all."""
    readings = []
    for i in range(12):
        sensor, quarter = f"tt-main-0{i % 3 + 1}", i // 3
        v = total // 12 + (1 if i < total % 12 else 0)
        n_in, n_out = (v - v // 2, v // 2) if sensor != "tt-main-03" else (v, 0)  # 03 is an entrance
        readings.append({"sensor_id": sensor, "start": iso(start + quarter * 900_000), "seconds": 900,
                         "in": n_in, "out": n_out})
    return orjson.dumps({"source": source, "batch_id": f"{source}/{start}", "sent_at": iso(start + HOUR),
                         "readings": readings})


def weeks_back(ms: int, weeks: int) -> int:
    """The same local wall-clock time `weeks` weeks earlier (the slot usual bands compare)."""
    local = datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ))
    return int((local.replace(tzinfo=None) - timedelta(weeks=weeks)).replace(tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def test_gateway_resends_a_day_after_an_outage(stack: Stack) -> None:
    now = int(time.time() * 1000)
    w2 = now - now % HOUR - HOUR  # the last complete hour, and the one before it: the live windows checked
    w1 = w2 - HOUR
    # three past days of the same day type: B2, B1 sent whole, D the gateway's day with the outage
    past = [k for k in range(1, 9) if all(baseline_day_type(weeks_back(w, k), TZ, "BE") == baseline_day_type(
        w, TZ, "BE") for w in (w1, w2))][:3]
    d, b1, b2 = ([weeks_back(w1, k), weeks_back(w2, k)] for k in past)
    day = [d[1] - 20 * HOUR + h * HOUR for h in range(24)]  # a day of hourly batches, ending 4 h after d[1]
    outage = {h for h in day if h >= d[1]}  # its last four hours never arrived, among them the slot of w2
    usual = {"b2": 100, "b1": 200, "d": 150}  # each slot's count on those days: median 150

    def day_batch(h: int) -> bytes:
        return hour_batch(GATEWAY, h, usual["d"] if h in d else 60)

    port = free_port()
    stack.spawn("worker", log="worker", DRUKTE_METRICS_PORT=str(port), **ENV)
    stack.produce([hour_batch(GATEWAY, h, usual["b2"]) for h in b2] + [hour_batch(GATEWAY, h, usual["b1"]) for h in b1]
                  + [day_batch(h) for h in day if h not in outage])
    # the day's windows up to the outage are published (the last once the silent gateway's watermark moves)
    before = published(stack, len(b2) + len(b1) + len(day) - len(outage))
    assert sorted(s for _, s in before) == sorted([*b2, *b1, *(h for h in day if h not in outage)])

    # back online, the gateway re-sends the whole day
    stack.produce([day_batch(h) for h in day])
    wait_for("the re-sent day to be read", lambda: metric(port, "drukte_late_readings_total") >= 12 * len(outage)
             and metric(port, "drukte_duplicate_readings_total") + metric(port, "drukte_late_untracked_readings_total")
             >= 12 * (len(day) - len(outage)))
    assert metric(port, "drukte_late_readings_total") == 12 * len(outage)  # the hours it missed: history only

    # live data from another gateway of the zone: its windows are banded against the three past days
    stack.produce([hour_batch(LIVE_GATEWAY, w1, 190), hour_batch(LIVE_GATEWAY, w2, 120)], key=LIVE_GATEWAY.encode())
    windows = published(stack, len(before) + 2)
    # every record: a read stopped at len(windows) may not have reached a partition's republished ones yet
    records = settled(stack, quiet_s=1.0)
    assert len(records) >= len(windows)
    assert Counter((r["zone_id"], r["window"]["start"]) for r in records).most_common(1)[0][1] == 1  # never revised
    assert set(windows) == set(before) | {("tt-main", w1), ("tt-main", w2)}  # the outage hours: not published

    def usual_of(w: int) -> dict[str, Any]:
        win = windows[("tt-main", w)]
        assert parse_ts(win["window"]["start"]) == w
        return {"visitors": win["visitors"], "index": win["index"], "usual": win["usual"], "vs": win["vs_usual"]}

    # band of 100, 200 and 150 people: p20 120, p50 150, p80 180 → usual 80–120 on the index scale. Counted
    # twice, the day's 150 would be 300 (p50 200, index 95); without the re-sent hours w2 would have no band.
    assert usual_of(w1) == {"visitors": {"min": 190, "max": 200}, "index": 127, "usual": {"low": 80, "high": 120},
                            "vs": "busier"}
    assert usual_of(w2) == {"visitors": {"min": 120, "max": 130}, "index": 80, "usual": {"low": 80, "high": 120},
                            "vs": "usual"}
