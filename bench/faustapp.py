"""The obvious Faust app, for reference only: what the framework's per-event path costs on this machine.

    footfall.counts.v1 ──[agent explode: one event per reading]──► {app}-readings
        ──[agent count: stream.group_by(Reading.zone) → {app}-byzone, declared explicitly]──►
        tumbling table `visitors` (window_s, event time from the reading's start, relative_to_field) += visitors

No validation, no dedupe, no watermark, no suppression, no busyness topic: just the textbook shape. Windows are
"published" by a timer that copies every changed (zone, window) sum from the table to the Redis hash
`bench:faust:{zone}` (field: window start in ms) once a second, with a progress counter in `bench:faust:progress`
(readings applied to the table). `on_window_close` is not used: Faust closes windows on the wall clock, so with
replayed history it would close them mid-run with partial sums (see /work/shared/STREAMING.md); `expires` is
therefore set far beyond the data.

Run by bench/throughput.py as `python -m bench.faustapp worker -l warn` with BENCH_KAFKA_URL,
BENCH_REDIS_URL, BENCH_APP_ID, BENCH_PARTITIONS and BENCH_WINDOW_S in the environment.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from streams.timegrid import parse_ts

APP_ID = os.environ.get("BENCH_APP_ID", "bench-faust")
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))
WINDOW_S = int(os.environ.get("BENCH_WINDOW_S", "300"))
# street counters only in the bench registry: visitors = in + out (the worker's rule for kind "street")
SENSOR_ZONE_SEP = "-s"  # bench sensor ids are "{zone}-s{j}" (bench/throughput.py)

app = faust.App(
    APP_ID,
    broker=os.environ.get("BENCH_KAFKA_URL", "kafka://127.0.0.1:9092"),
    store="memory://",
    datadir=os.environ.get("BENCH_DATA_DIR", f"/tmp/{APP_ID}"),
    web_enabled=False,
    topic_partitions=PARTITIONS,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    broker_rebalance_timeout=3.0, broker_session_timeout=6.0, broker_heartbeat_interval=1.0,
    table_cleanup_interval=3600.0,
)


class Reading(faust.Record, serializer="json"):
    zone: str
    start_s: float
    visitors: int


footfall = app.topic("footfall.counts.v1", partitions=PARTITIONS, key_serializer="raw", value_serializer="raw")
readings_topic = app.topic(f"{APP_ID}-readings", partitions=PARTITIONS, internal=True, value_type=Reading)
byzone = app.topic(f"{APP_ID}-byzone", partitions=PARTITIONS, internal=True, value_type=Reading)
visitors = (app.Table("visitors", default=int, partitions=PARTITIONS)
            .tumbling(WINDOW_S, expires=timedelta(days=3650))
            .relative_to_field(Reading.start_s))

applied = 0
_published: dict[Any, int] = {}
_redis: aioredis.Redis | None = None


@app.agent(footfall, name="explode")
async def explode(stream: Any) -> None:
    async for raw in stream:
        for r in orjson.loads(raw)["readings"]:
            zone = r["sensor_id"].rsplit(SENSOR_ZONE_SEP, 1)[0]
            await readings_topic.send(key=r["sensor_id"].encode(), value=Reading(
                zone=zone, start_s=parse_ts(r["start"]) / 1000, visitors=r["in"] + r["out"]))


@app.agent(readings_topic, name="count")
async def count(stream: Any) -> None:
    global applied
    async for r in stream.group_by(Reading.zone, name="byzone", topic=byzone):
        visitors[r.zone] += r.visitors
        applied += 1


@app.timer(1.0)
async def publish() -> None:
    """Every changed window sum to Redis (absolute values), then the progress counter."""
    global _redis
    if _redis is None:
        _redis = aioredis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    pipe = _redis.pipeline(transaction=False)
    for key, value in list(visitors.table.data.items()):
        zone, (start, _end) = key
        if _published.get(key) != value:
            _published[key] = value
            pipe.hset(f"bench:faust:{zone}", str(round(start * 1000)), value)
    pipe.set("bench:faust:progress", applied)
    await pipe.execute()


if __name__ == "__main__":
    app.main()
