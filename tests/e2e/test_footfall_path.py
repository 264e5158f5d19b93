"""Counters in, live busyness out: the whole path on a real broker and store, with bad input and a crash."""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from drukte.embedded import free_port
from streams.timegrid import parse_ts
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for

pytestmark = pytest.mark.e2e


def scenario(base: int) -> tuple[list[bytes], dict[tuple[str, int], dict[str, Any]]]:
    """Thirteen minutes of batches with duplicates and bad messages mixed in, and the expected windows.

    tt-main: three sensors, 37 + m people in minute m; one reading of tt-main-02 starts half-way minute 11
    and runs 60 s, so its 7 people are apportioned 3 / 4 over windows 11 and 12.
    tt-side: only two of three sensors report → few_sensors (P7). tt-quiet: six people a minute → below_k (P6).
    """
    msgs: list[bytes] = []
    for m in range(13):
        st = base + m * MIN
        readings = [
            {"sensor_id": "tt-main-01", "start": iso(st), "seconds": 60, "in": 10 + m, "out": 5},
            {"sensor_id": "tt-main-03", "start": iso(st), "seconds": 60, "in": 6, "out": 20},
            {"sensor_id": "tt-side-01", "start": iso(st), "seconds": 60, "in": 40, "out": 40},
            {"sensor_id": "tt-side-02", "start": iso(st), "seconds": 60, "in": 40, "out": 40},
        ]
        if m < 12:
            readings += [{"sensor_id": "tt-main-02", "start": iso(st), "seconds": 60, "in": 8, "out": 8},
                         *({"sensor_id": f"tt-quiet-0{i}", "start": iso(st), "seconds": 60, "in": 1, "out": 1}
                           for i in (1, 2, 3))]
        if m == 11:
            readings.append({"sensor_id": "tt-main-02", "start": iso(st + 30_000), "seconds": 60, "in": 7, "out": 0})
        if m == 12:
            readings += [{"sensor_id": f"tt-quiet-0{i}", "start": iso(st), "seconds": 60, "in": 1, "out": 1}
                         for i in (1, 2, 3)]
        if m == 4:  # bad readings inside an otherwise good batch: only they are rejected
            readings += [{"sensor_id": "tt-nowhere-01", "start": iso(st), "seconds": 60, "in": 1, "out": 1},
                         {"sensor_id": "tt-main-01", "start": iso(st + 10_000), "seconds": 60, "in": 9000, "out": 0},
                         {"sensor_id": "tt-main-01", "start": iso(st + 3_600_000), "seconds": 60, "in": 1, "out": 1}]
        batch = orjson.dumps({"source": "gw-testtown-01", "batch_id": f"gw-testtown-01/{m}",
                              "sent_at": iso(st + MIN + 3000), "readings": readings})
        msgs.append(batch)
        if m == 3:
            msgs += [b'{"source": "gw-testtown-01", "readings": [', b"[]", batch]  # bad, bad, resent batch
        if m == 6:  # minute 5 again, in another batch: counted once
            msgs.append(orjson.dumps({"source": "gw-testtown-01", "batch_id": "gw-testtown-01/again",
                                      "sent_at": iso(st), "readings": orjson.loads(msgs[-2])["readings"]}))
    expected: dict[tuple[str, int], dict[str, Any]] = {}
    for m in range(13):
        start = base + m * MIN
        main = {11: 51, 12: 37}.get(m, 37 + m)
        lo = main - main % 10
        expected[("tt-main", start)] = {"visitors": {"min": lo, "max": lo + 10}, "reason": None}
        expected[("tt-side", start)] = {"visitors": None, "reason": "few_sensors"}
        expected[("tt-quiet", start)] = {"visitors": None, "reason": "below_k"}
    return msgs, expected


def by_window(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Published windows keyed by (zone, start); a window published twice must be byte-identical."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        assert "as_of_ms" not in r  # internal field, not on the wire
        key = (r["zone_id"], parse_ts(r["window"]["start"]))
        assert out.get(key, r) == r, f"window {key} was published in two versions"
        out[key] = r
    return out


def summary(windows: dict[tuple[str, int], dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {k: {"visitors": v["visitors"], "reason": v["privacy"]["reason"]} for k, v in windows.items()}


def now_base() -> int:
    now = int(time.time() * 1000)
    return now - now % MIN - 13 * MIN


def test_counters_in_live_busyness_out(stack: Stack) -> None:
    base = now_base()
    msgs, expected = scenario(base)
    metrics_port, api_port = free_port(), free_port()
    stack.spawn("worker", log="worker", DRUKTE_METRICS_PORT=str(metrics_port))
    stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_STALE_S="900")
    stack.produce(msgs)

    records = stack.consume("busyness.zone.v1", lambda rs: len(by_window(rs)) >= len(expected), timeout_s=90)
    assert summary(by_window(records)) == expected
    assert Counter((r["zone_id"], r["as_of"]) for r in records).most_common(1)[0][1] == 1  # once each
    levels = {r["zone_id"]: r["level"]["key"] for r in records}
    assert levels == {"tt-main": "busy", "tt-side": "unknown", "tt-quiet": "quiet"}

    rejected = stack.consume("ingest.rejected.v1", lambda rs: len(rs) >= 5)
    assert sorted(r["reason"] for r in rejected) == sorted(
        ["malformed_json", "schema_violation", "unknown_sensor", "absurd_count", "future_timestamp"])
    assert all({"reason", "detail", "topic", "partition", "offset", "received_at", "payload"} <= r.keys()
               for r in rejected)

    # a late reading for a final window: history only, never a second version (P9)
    late = orjson.dumps({"source": "gw-testtown-01", "batch_id": "late", "sent_at": iso(base + 20 * MIN),
                         "readings": [{"sensor_id": "tt-main-01", "start": iso(base + 2 * MIN + 10_000),
                                       "seconds": 50, "in": 100, "out": 0}]})
    stack.produce([late])

    def metric(name: str) -> float:
        status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert isinstance(body, str)
        lines = [ln for ln in body.splitlines() if ln.startswith(name + " ") or ln.startswith(name + "{")]
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)

    wait_for("the late reading to be counted", lambda: metric("drukte_late_readings_total") >= 1)
    assert metric('drukte_rejected_total{reason="malformed_json"}') == 1
    assert metric("drukte_duplicate_readings_total") >= 16  # batch 3 resent (8) + minute 5 again (8)
    records = stack.consume("busyness.zone.v1", lambda rs: len(rs) >= len(expected), timeout_s=10)
    assert len(records) == len(expected)

    # the API reads the same from Redis: last three windows summed (47 + 51 + 37 = 135 people)
    status, live = wait_for("the API", lambda: (r := http_get(f"http://127.0.0.1:{api_port}/v1/zones/tt-main/live"))
                            [0] == 200 and r)
    assert isinstance(live, dict)
    assert live["visitors"] == {"min": 130, "max": 140}
    assert live["window"]["seconds"] == 180
    assert live["level"]["key"] == "busy"
    assert live["quality"]["sensors_reporting"] == 3
    assert "as_of_ms" not in live
    status, city = http_get(f"http://127.0.0.1:{api_port}/v1/cities/testtown/live")
    assert status == 200
    assert isinstance(city, dict)
    assert [z["zone_id"] for z in city["zones"]] == ["tt-main", "tt-side", "tt-quiet"]
    assert [z["privacy"]["reason"] for z in city["zones"]] == [None, "few_sensors", "below_k"]
    status, problem = http_get(f"http://127.0.0.1:{api_port}/v1/zones/nowhere/live")
    assert status == 404
    assert isinstance(problem, dict)
    assert problem["status"] == 404


def test_worker_killed_mid_stream_publishes_the_same(stack: Stack) -> None:
    base = now_base()
    msgs, expected = scenario(base)
    half = len(msgs) // 2
    # The clock may only close windows when a partition was idle longer than the crash takes; otherwise the
    # second half, whose times lie in the past, would rightly be late. 30 s covers kill, wait and restart.
    idle = {"DRUKTE_IDLE_S": "30"}
    worker = stack.spawn("worker", log="worker1", **idle)
    stack.produce(msgs[:half])
    stack.consume("busyness.zone.v1", lambda rs: len(by_window(rs)) >= 6, timeout_s=90)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    stack.produce(msgs[half:])
    # Tansu keeps a killed member in the group and, unlike Kafka, does not always rebalance once its session
    # (6 s here) expires; an orchestrator's restart delay stands in for that: start after the session is gone.
    time.sleep(8)
    stack.spawn("worker", log="worker2", **idle)
    records = stack.consume("busyness.zone.v1", lambda rs: len(by_window(rs)) >= len(expected), timeout_s=180)
    assert summary(by_window(records)) == expected
    per_zone: dict[str, list[int]] = defaultdict(list)
    for zone, start in by_window(records):
        per_zone[zone].append(start)
    assert all(sorted(v) == [base + m * MIN for m in range(13)] for v in per_zone.values())
