"""SIGTERM: the worker finishes what it is doing, commits, leaves nothing half-published and exits 0 in 10 s."""

from __future__ import annotations

import signal
import time
from collections import Counter

import orjson
import pytest

from streams.storekeys import windows_key
from streams.timegrid import parse_ts
from tests.e2e.conftest import MIN, Stack
from tests.e2e.workload import (
    ENV,
    ZONES,
    Feeder,
    assert_matches_truth,
    committed,
    count_when,
    make_workload,
    published,
    settled,
    settled_count,
)

pytestmark = pytest.mark.e2e


def test_sigterm_mid_stream_exits_cleanly_and_loses_nothing(stack: Stack) -> None:
    wl = make_workload(120)
    worker = stack.spawn("worker", log="worker1", **ENV)
    feeder = Feeder(stack, wl.batches)
    count_when(stack, lambda n: n >= 20)

    t0 = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(12) == 0
    assert time.monotonic() - t0 < 10
    assert "Traceback" not in stack.log("worker1")

    # nothing half-done: every window on the topic is in the store too (topic, then store, then final)
    before = settled_count(stack)
    records = stack.consume("busyness.zone.v1", lambda rs: len(rs) >= before, timeout_s=10)
    r = stack.redis()
    for rec in records:
        start = parse_ts(rec["window"]["start"])
        assert r.zrangebyscore(windows_key(rec["zone_id"]), start, start), f"{rec['zone_id']} {start} not stored"

    # it committed what it had processed: every input batch whose readings all reached the zone topic, no more
    zones_of: dict[int, set[str]] = {}
    for doc in settled(stack, quiet_s=0.5, topic="drukte-footfall-byzone"):
        for sensor, start, *_ in doc.get("r", []):
            zones_of.setdefault((start - wl.base_ms) // MIN, set()).add(sensor.rsplit("-", 1)[0])
    done = next(m for m in range(len(wl.batches) + 1) if len(zones_of.get(m, ())) < len(ZONES))
    assert done > 0
    assert committed(stack, "drukte-ingest", "footfall.counts.v1") == done  # the ingest's own group

    # the next worker counts the rest, and republishes nothing
    stack.spawn("worker", log="worker2", **ENV)
    feeder.join()
    windows = published(stack, len(wl.truth))
    assert_matches_truth(windows, wl.truth)
    # every record: a read stopped at len(windows) may not have reached a partition's republished ones yet
    records = settled(stack, quiet_s=1.0)
    assert len(records) >= len(windows)
    assert Counter(orjson.dumps(r) for r in records).most_common(1)[0][1] == 1
