"""The worker's state is lost, the published topic is not: `drukte rebuild-baselines` gives the usual bands back.

Four weeks of hourly history for one zone are replayed and published by a worker, which is then stopped. Its
table's changelog topic is deleted (the state is lost; the input offsets stay committed, so nothing is read
again), a worker starts on the empty table and gets the published windows back through the rebuild, and its
next window carries the index computed here from the published ranges' middles, independently.
"""

from __future__ import annotations

import asyncio
import csv
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from drukte.embedded import free_port
from drukte.kafka import bootstrap
from streams.publication import visitors_range
from streams.timegrid import format_ts, parse_ts
from tests.e2e.conftest import Stack, wait_for
from tests.e2e.test_replay_baselines import HOUR, SENSORS, TZ, count, expected_p50
from tests.e2e.workload import metric

pytestmark = pytest.mark.e2e
HOURLY = {"DRUKTE_WINDOW_S": "3600", "DRUKTE_LIVE_S": "3600", "DRUKTE_GRACE_S": "10", "DRUKTE_IDLE_S": "3"}
ZONE = "tt-main"


def wide(path: Path, hours: list[int]) -> dict[int, int]:
    truth = {}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", *SENSORS[ZONE]])
        for ts in hours:
            values = [count(i, ts) for i in range(3)]
            w.writerow([datetime.fromtimestamp(ts / 1000, TZ).isoformat(), *values])
            truth[ts] = sum(values)
    return truth


async def delete_topic(stack: Stack, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(stack.broker.url))
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def replay(stack: Stack, path: Path, **env: str) -> None:
    done = subprocess.run([sys.executable, "-m", "drukte.cli", "replay", str(path), "--format", "wide"],
                          env=stack.env(**HOURLY, **env), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def windows(stack: Stack, n: int) -> dict[int, dict[str, object]]:
    records = stack.consume("busyness.zone.v1", lambda rs: len({r["window"]["start"] for r in rs}) >= n,
                            timeout_s=180)
    return {parse_ts(r["window"]["start"]): r for r in records}


def test_a_lost_table_gets_its_baselines_back_from_the_published_topic(stack: Stack, tmp_path: Path) -> None:
    end = int(datetime.now(TZ).timestamp() * 1000) // HOUR * HOUR - HOUR
    hours = list(range(end - 4 * 7 * 24 * HOUR, end, HOUR))
    truth = wide(tmp_path / "history.csv", hours)
    first = stack.spawn("worker", log="worker-a", **HOURLY)
    replay(stack, tmp_path / "history.csv")
    windows(stack, len(hours))
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    asyncio.run(delete_topic(stack, "drukte-zone-windows-changelog"))

    port = free_port()
    stack.spawn("worker", log="worker-b", DRUKTE_METRICS_PORT=str(port), **HOURLY)
    wait_for("worker b's zone topic", lambda: "Worker ready" in stack.log("worker-b"), timeout_s=90)
    done = subprocess.run([sys.executable, "-m", "drukte.cli", "rebuild-baselines"],
                          env=stack.env(**HOURLY), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(hours):,} history rows sent for 1 zones" in done.stdout, done.stdout
    wait_for("history restored", lambda: metric(port, "drukte_history_restored_total") >= len(hours))
    assert metric(port, "drukte_readings_in_total") == 0  # nothing came back from the input: only the rebuild

    # the next hour, through the normal path: its index reads the rebuilt bands
    counts = [count(i, end) for i in range(len(SENSORS[ZONE]))]
    readings = [{"sensor_id": sensor, "start": format_ts(end, "UTC"), "seconds": 3600, "in": c, "out": 0}
                for sensor, c in zip(SENSORS[ZONE], counts, strict=True)]
    truth[end] = sum(counts)
    stack.produce([orjson.dumps({"source": "gw-next", "batch_id": "gw-next/1", "readings": readings,
                                 "sent_at": format_ts(end + HOUR, "UTC")})], key=b"gw-next")
    new = windows(stack, len(hours) + 1)[end]
    middles = {ts: (visitors_range(v)["min"] + visitors_range(v)["max"]) // 2 for ts, v in truth.items()}
    p50 = expected_p50(middles, end)
    assert p50 is not None
    assert new["index"] == round(100 * truth[end] / p50), (new, p50)
    exact = expected_p50(truth, end)
    assert exact is not None
    # each middle is within half a range step of its exact count, and a step is at most max(10, n // 20) wide
    # (`visitors_range`): below 100 people that is 5 people, more than 5 % (the night hours failed a 5 % bound)
    assert abs(p50 - exact) <= max(5, exact / 40)
