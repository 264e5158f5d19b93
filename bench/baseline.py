"""The ceiling, as its own process: plain aiokafka, orjson decode, dict sums per (zone, window), one Redis pipeline.

`python -m bench.baseline SPEC.json` reads {broker, store, group_id, readings, window_ms, sensors: {id: [zone,
street]}, timeout_s} and prints one JSON line: times (perf_counter, from this process's start), readings seen,
its own peak RSS and CPU. Its sums go to the Redis hashes `bench:baseline:{zone}` (field: window start ms), where
the bench checks them against the ground truth. A process of its own so peak RSS and CPU are its own.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from drukte.kafka import bootstrap
from streams.timegrid import parse_ts
from streams.topics import FOOTFALL

# The worker's group settings with DRUKTE_FAST_GROUPS=true; the baseline joins its group with the same ones.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "rebalance_timeout_ms": 3000}


def add(sums: dict[tuple[str, int], int], value: bytes, sensors: dict[str, tuple[str, bool]],
        window_ms: int) -> int:
    """The ceiling's whole work per message: decode, sum per (zone, window); returns the readings it held."""
    readings = orjson.loads(value)["readings"]
    for r in readings:
        zone, street = sensors[r["sensor_id"]]
        ts = parse_ts(r["start"])
        key = (zone, ts - ts % window_ms)
        sums[key] = sums.get(key, 0) + (r["in"] + r["out"] if street else r["in"])
    return len(readings)


async def consume(spec: dict[str, Any], t_start: float) -> dict[str, Any]:
    n, window_ms = int(spec["readings"]), int(spec["window_ms"])
    sensors: dict[str, tuple[str, bool]] = {s: (z, bool(st)) for s, (z, st) in spec["sensors"].items()}
    marks = {"p10": n // 10, "p90": n - n // 10}
    at: dict[str, float] = {}
    seen = 0
    sums: dict[tuple[str, int], int] = {}
    consumer = AIOKafkaConsumer(FOOTFALL.name, bootstrap_servers=bootstrap(spec["broker"]),
                                group_id=spec["group_id"], auto_offset_reset="earliest", enable_auto_commit=False,
                                **FAST_GROUP)
    store = aioredis.Redis.from_url(spec["store"])
    await consumer.start()
    try:
        while seen < n:  # counts readings: Tansu's ListOffsets "latest" is wrong, end offsets cannot stop us
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                at.setdefault("first_record", time.perf_counter())
                for rec in records:
                    seen += add(sums, rec.value, sensors, window_ms)
                for name, mark in marks.items():
                    if name not in at and seen >= mark:
                        at[name] = time.perf_counter()
        at["all_read"] = time.perf_counter()
        pipe = store.pipeline(transaction=False)
        by_zone: dict[str, dict[Any, int]] = defaultdict(dict)  # Any: redis-py types its keys invariantly
        for (zone, start), visitors in sums.items():
            by_zone[zone][str(start)] = visitors
        for zone, mapping in by_zone.items():
            pipe.hset(f"bench:baseline:{zone}", mapping=mapping)
        await pipe.execute()
        at["published"] = time.perf_counter()
    finally:
        await consumer.stop()
        await store.aclose()
    return {"seen": seen, "at": {k: round(v - t_start, 4) for k, v in at.items()}}


def main() -> int:
    t_start = time.perf_counter()
    spec = orjson.loads(open(sys.argv[1], "rb").read())  # noqa: SIM115 - read once
    try:
        out = asyncio.run(asyncio.wait_for(consume(spec, t_start), float(spec["timeout_s"])))
        out["ok"] = True
    except TimeoutError:
        out = {"ok": False, "error": f"timed out after {spec['timeout_s']} s"}
    ru = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so it would show the bench's own size
    out["peak_rss_mb"] = next((round(int(line.split()[1]) / 1024, 1) for line in
                               Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")), None)
    out["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
