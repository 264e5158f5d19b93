"""A counter stuck at zero while its neighbours count: flagged, left out of the zone sum, shown in the API."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from drukte.embedded import free_port
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for


def batches(start: int, stuck: bool, per_message: int) -> list[bytes]:
    readings = [{"sensor_id": s, "start": iso(start), "seconds": 60, "in": n, "out": n}
                for s, n in (("tt-side-01", 0 if stuck else 11), ("tt-side-02", 10), ("tt-side-03", 12))]
    return [orjson.dumps({"source": "gw-testtown-01", "batch_id": f"b/{start}/{i}", "sent_at": iso(start + MIN),
                          "readings": readings[i:i + per_message]}) for i in range(0, len(readings), per_message)]


@pytest.mark.parametrize("per_message", [3, 1])  # a minute in one message, or one reading per message
def test_a_stuck_counter_is_flagged_and_left_out(stack: Stack, per_message: int) -> None:
    now = int(time.time() * 1000)
    base = now - now % MIN - 24 * MIN  # the last minute is the current one: no sensor looks silent
    metrics_port, api_port = free_port(), free_port()
    stack.spawn("worker", log="worker", DRUKTE_METRICS_PORT=str(metrics_port))
    stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_STALE_S="3600")
    # five healthy minutes, then tt-side-01 reads zero for twenty
    stack.produce([m for i in range(25) for m in batches(base + i * MIN, i >= 5, per_message)])

    def side(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["window"]["start"]: r for r in records if r["zone_id"] == "tt-side"}

    records = stack.consume("busyness.zone.v1", lambda rs: len(side(rs)) >= 24, timeout_s=120)
    windows = [side(records)[k] for k in sorted(side(records))]
    reporting = [w["quality"]["sensors_reporting"] for w in windows]
    # zeros counted while they might be a quiet spot (minutes 5–18), left out from the 15th zero on
    assert reporting[:19] == [3] * 19
    assert set(reporting[19:24]) == {2}
    assert {w["privacy"]["reason"] for w in windows[19:24]} == {"few_sensors"}  # P7 with two healthy sensors
    assert {w["level"]["key"] for w in windows[19:24]} == {"unknown"}

    def sensors() -> dict[str, str] | None:
        status, body = http_get(f"http://127.0.0.1:{api_port}/v1/zones/tt-side/sensors")
        if status != 200 or not isinstance(body, dict) or body["as_of"] is None:
            return None
        return {s["id"]: s["state"] for s in body["sensors"]}

    states = wait_for("the sensor report", sensors, timeout_s=30)
    assert states == {"tt-side-01": "stuck", "tt-side-02": "ok", "tt-side-03": "ok"}
    status, text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    assert isinstance(text, str)
    assert 'drukte_readings_excluded_total{state="stuck"} 6.0' in text
    assert 'drukte_sensor_health{state="stuck"} 1.0' in text
