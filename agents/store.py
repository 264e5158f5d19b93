"""The worker's writes to Redis: live objects, published windows and a heartbeat, idempotent and whole."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from drukte.metrics import WorkerMetrics
from streams.storekeys import (
    HEARTBEAT_KEY,
    UPDATES_CHANNEL,
    devices_key,
    live_key,
    profile_key,
    sensors_key,
    spending_key,
    windows_key,
)

log = logging.getLogger(__name__)
HISTORY_MS = 8 * 24 * 3_600_000  # windows kept per zone in Redis: a week and a day, for /today and charts


class LiveStore(Protocol):
    async def publish(self, windows: list[dict[str, Any]], lives: list[dict[str, Any]],
                      profiles: list[dict[str, Any]]) -> None: ...
    async def heartbeat(self, now_ms: int) -> None: ...


class RedisStore:
    """Writes absolute values only (never INCRBY): a replay after a crash rewrites the same bytes."""

    def __init__(self, url: str, metrics: WorkerMetrics) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._metrics = metrics

    async def publish(self, windows: list[dict[str, Any]], lives: list[dict[str, Any]],
                      profiles: list[dict[str, Any]]) -> None:
        async def write() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for w in windows:
                key = windows_key(w["zone_id"])
                start_ms = w["as_of_ms"] - w["window"]["seconds"] * 1000
                pipe.zremrangebyscore(key, start_ms, start_ms)
                pipe.zadd(key, {orjson.dumps(w): start_ms})
                pipe.zremrangebyscore(key, "-inf", start_ms - HISTORY_MS)
            for live in lives:
                pipe.set(live_key(live["zone_id"]), orjson.dumps(live))
            for profile in profiles:
                pipe.set(profile_key(profile["zone_id"]), orjson.dumps(profile))
            for live in lives:  # announced after every write of the batch: API processes re-read and push
                pipe.publish(UPDATES_CHANNEL, orjson.dumps(
                    {"kind": "live", "zone_id": live["zone_id"], "city_id": live["city_id"]}))
            await pipe.execute()

        await self._retry(write)

    async def publish_spending(self, objects: list[dict[str, Any]]) -> None:
        """The newest spending object per zone (indices only), announced like live objects."""
        if not objects:
            return

        async def write() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for obj in objects:
                pipe.set(spending_key(obj["zone_id"]), orjson.dumps(obj))
            for obj in objects:
                pipe.publish(UPDATES_CHANNEL, orjson.dumps(
                    {"kind": "spending", "zone_id": obj["zone_id"], "city_id": obj["city_id"]}))
            await pipe.execute()

        await self._retry(write)

    async def publish_devices(self, objects: list[dict[str, Any]]) -> None:
        """The newest distinct-device window per zone (a range or none, never an address), in one MSET. Not
        announced on the updates channel: the API reads it with the zone's live object."""
        if objects:
            await self._retry(lambda: self._redis.mset({devices_key(o["zone_id"]): orjson.dumps(o) for o in objects}))

    async def publish_sensors(self, views: list[dict[str, Any]]) -> None:
        """Sensor health per zone; best effort (the next report rewrites it), never blocks the stream."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for view in views:
                pipe.set(sensors_key(view["zone_id"]), orjson.dumps(view))
            await pipe.execute()
        except RedisError:
            self._metrics.redis_errors.inc()

    async def heartbeat(self, now_ms: int) -> None:
        try:
            await self._redis.set(HEARTBEAT_KEY, str(now_ms))
        except RedisError:
            self._metrics.redis_errors.inc()

    async def _retry(self, op: Any) -> None:
        # A store outage must not lose a final window: wait and retry; the stream backs up meanwhile.
        delay = 0.2
        while True:
            try:
                await op()
                return
            except RedisError as exc:
                self._metrics.redis_errors.inc()
                log.warning("Redis write failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        await self._redis.aclose()
