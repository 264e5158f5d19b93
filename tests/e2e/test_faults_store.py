"""The store flushed (FLUSHALL) and restarted mid-stream: the worker rewrites every zone's live object, profile
and recent windows within a tick of the store answering again (`agents.store.RedisStore.heartbeat`); the API
answers 503 problem details meanwhile and recovers by itself; `/readyz` says so; the windows on the topic are
those of an undisturbed run."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

from agents.store import KEPT_WINDOWS, RedisStore
from drukte import embedded
from drukte.metrics import WorkerMetrics
from streams.storekeys import live_key, profile_key, sensors_key, windows_key
from streams.timegrid import parse_ts
from tests.e2e.conftest import Stack, http_get, wait_for
from tests.e2e.workload import ENV, ZONES, Feeder, assert_matches_truth, count_when, make_workload, published

pytestmark = pytest.mark.e2e
BACK_WITHIN_S = 10  # far less than one window (300 s): the rewrite comes with the next tick, not the next close


def stored_lives(r: redis.Redis) -> dict[str, Any]:
    return {z: r.get(live_key(z)) for z in ZONES}


def stored_starts(r: redis.Redis, zone: str) -> list[int]:
    pairs = cast(list[tuple[bytes, float]], r.zrange(windows_key(zone), 0, -1, withscores=True))
    return sorted(int(score) for _, score in pairs)


def test_store_flushed_and_restarted_mid_stream(stack: Stack) -> None:
    wl = make_workload(60)
    api_port = embedded.free_port()
    worker = stack.spawn("worker", log="worker", **ENV)
    stack.spawn("api", log="api", DRUKTE_PORT=str(api_port), **ENV)
    api = f"http://127.0.0.1:{api_port}"
    feeder = Feeder(stack, wl.batches, per_send=2, pause_s=0.5)

    # 1. FLUSHALL while windows are being published
    count_when(stack, lambda n: n >= 6)
    stack.redis().flushall()
    feeder.join()
    windows = published(stack, len(wl.truth))
    assert_matches_truth(windows, wl.truth)
    r = stack.redis()
    newest_end = wl.base_ms + wl.minutes * 60_000
    wait_for("every zone's newest live object", lambda: all(
        v is not None and f'"as_of_ms":{newest_end}'.encode() in v for v in stored_lives(r).values()))
    lives = stored_lives(r)
    for zone in ZONES:  # the windows written before the flush were rewritten: the whole hour is there
        assert stored_starts(r, zone) == sorted(s for z, s in wl.truth if z == zone), zone
    status, ready = http_get(f"{api}/readyz")
    assert status == 200, ready

    # 2. FLUSHALL once nothing closes any more: only the rewrite can bring the keys back
    r.flushall()
    t0 = time.monotonic()
    wait_for("live objects rewritten after FLUSHALL", lambda: stored_lives(r) == lives, timeout_s=BACK_WITHIN_S,
             every_s=0.1)
    assert time.monotonic() - t0 < BACK_WITHIN_S
    assert all(r.get(profile_key(z)) for z in ZONES)
    for zone in ZONES:
        assert stored_starts(r, zone) == sorted(s for z, s in wl.truth if z == zone), zone

    # 3. the store process stopped (its memory gone) and started again on the same port
    port = stack.store.port
    stack.store.stop()
    for path in ("/v1/zones/tt-main/live", "/v1/cities/testtown/live", "/v1/zones/tt-main/today"):
        status, body = http_get(api + path)
        assert status == 503, (path, body)
        assert isinstance(body, dict)
        assert body["status"] == 503, body
    status, ready = http_get(f"{api}/readyz")
    assert status == 503
    assert isinstance(ready, dict)
    assert ready["checks"]["store"] == "unreachable", ready
    time.sleep(2)  # a few ticks against a closed port
    store = embedded.start_store(port=port, log=stack.tmp / "store2.log")
    try:
        r = redis.Redis(port=port)
        t0 = time.monotonic()
        wait_for("live objects rewritten after the restart", lambda: stored_lives(r) == lives,
                 timeout_s=BACK_WITHIN_S, every_s=0.1)
        assert time.monotonic() - t0 < BACK_WITHIN_S
        status, ready = wait_for("/readyz 200 again", lambda: (s := http_get(f"{api}/readyz"))[0] == 200 and s,
                                 timeout_s=BACK_WITHIN_S)
        status, body = http_get(f"{api}/v1/zones/tt-main/live")
        assert status == 200, body
        assert isinstance(body, dict)
        newest = max(s for z, s in wl.truth if z == "tt-main")
        assert parse_ts(body["window"]["end"]) == newest + 5 * 60_000
        assert body["quality"]["stale"] is False
        for zone in ZONES:
            assert stored_starts(r, zone) == sorted(s for z, s in wl.truth if z == zone), zone
    finally:
        store.stop()
    assert worker.poll() is None
    assert "Traceback" not in stack.log("worker")


def test_rewrite_keeps_newer_objects_and_bounded_windows(stack: Stack) -> None:
    """What this worker rewrites never overwrites what another worker (the zone's owner after a rebalance)
    wrote since the flush; it keeps the newest `KEPT_WINDOWS` windows per zone, no more."""
    r = stack.redis()
    zone, window_ms = "tt-main", 300_000

    def window(start: int) -> dict[str, Any]:
        return {"zone_id": zone, "city_id": "testtown", "as_of_ms": start + window_ms, "window": {"seconds": 300}}

    async def run() -> None:
        store = RedisStore(stack.store.url, WorkerMetrics(CollectorRegistry()))
        try:
            await store.heartbeat(0)
            starts = [i * window_ms for i in range(KEPT_WINDOWS + 8)]
            live = {"zone_id": zone, "city_id": "testtown", "as_of_ms": starts[-1] + window_ms}
            await store.publish([window(s) for s in starts], [live], [{"zone_id": zone, "mine": True}])
            await store.publish_sensors([{"zone_id": zone, "sensors": []}])
            r.flushall()
            newer = orjson.dumps({"zone_id": zone, "as_of_ms": starts[-1] + 2 * window_ms})
            r.set(live_key(zone), newer)  # the owner's newer object and profile, written after the flush
            r.set(profile_key(zone), b"owner's")
            await store.heartbeat(1)
            assert r.get(live_key(zone)) == newer
            assert r.get(profile_key(zone)) == b"owner's"
            assert r.get(sensors_key(zone)) is not None  # missing: rewritten
            assert stored_starts(r, zone) == starts[-KEPT_WINDOWS:]
            r.delete(live_key(zone))
            await store.heartbeat(2)  # the mark is back: nothing rewritten until the next flush
            assert r.get(live_key(zone)) is None
        finally:
            await store.close()

    asyncio.run(run())
