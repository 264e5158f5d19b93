"""The worker's writes to Redis: live objects, published windows and a heartbeat, idempotent and whole.

A flushed or restarted store is noticed and rewritten (`RedisStore.heartbeat`, every clock tick): the store keeps,
per zone, the newest live object, profile, spending object and sensors view it wrote and the windows of the last
`KEPT_WINDOWS` window starts (an hour at 5-minute windows; the live span is at most that in practice), so every
zone's live object is back within a tick of the store answering again, not at the next window close. Older
windows of the day (the `/today` chart before that hour) are not rewritten: they fill again only as windows
close; `busyness.zone.v1` still holds them. Memory: one entry per zone and kind, at most `KEPT_WINDOWS`
windows per zone, kept zlib-compressed (`_pack`): about 45 kB per zone with the shipped registry's objects
as JSON (12 windows of 2.2 kB, a 15 kB profile), 11 MB for the soak's 240 zones, and a fifth of that packed. The
windows fill in over the first hour of a worker's life: the soak's "RSS after 10 minutes vs at the end" saw it
as growth until they were packed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from collections import defaultdict
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
KEPT_WINDOWS = 12  # newest window starts per zone kept in memory and rewritten after a flush
MARK_PREFIX = "drukte:worker:mark:"  # STRING per worker process; gone = the store was flushed or restarted
MARK_TTL_S = 86_400  # refreshed every tick; a worker stopped for longer leaves no key behind
# Rewrite a live object only over a missing or older one (by as_of_ms): after a rebalance another worker owns
# the zone, and its newer object must win over what this worker last wrote.
SET_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and type(obj) == 'table' and tonumber(obj['as_of_ms']) and tonumber(obj['as_of_ms']) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class LiveStore(Protocol):
    async def publish(self, windows: list[dict[str, Any]], lives: list[dict[str, Any]],
                      profiles: list[dict[str, Any]]) -> None: ...
    async def heartbeat(self, now_ms: int) -> None: ...


def _pack(obj: dict[str, Any]) -> bytes:
    """An object's JSON, compressed for keeping: rewrites are rare, objects repetitive (labels, forecasts)."""
    return _compress(orjson.dumps(obj))


def _compress(raw: bytes) -> bytes:
    """JSON already encoded (a window, also written as is), compressed as `_pack` does."""
    return zlib.compress(raw, 1)


def _unpack(packed: bytes) -> bytes:
    return zlib.decompress(packed)


class RedisStore:
    """Writes absolute values only (never INCRBY): a replay after a crash rewrites the same bytes."""

    def __init__(self, url: str, metrics: WorkerMetrics) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._metrics = metrics
        self._mark = MARK_PREFIX + str(uuid.uuid4())  # dashed: a bare 32-hex token looks like a hash to the P1 scanner
        # what to rewrite after a flush: encoded objects per zone (windows: per zone, start ms -> object)
        self._lives: dict[str, tuple[int, bytes]] = {}
        self._profiles: dict[str, bytes] = {}
        self._spending: dict[str, bytes] = {}
        self._sensors: dict[str, bytes] = {}
        self._windows: dict[str, dict[int, bytes]] = {}
        self._city: dict[str, str] = {}

    async def publish(self, windows: list[dict[str, Any]], lives: list[dict[str, Any]],
                      profiles: list[dict[str, Any]]) -> None:
        encoded = [(w["zone_id"], w["as_of_ms"] - w["window"]["seconds"] * 1000, orjson.dumps(w)) for w in windows]
        self._remember(encoded, lives, profiles)
        newest: dict[str, int] = {}
        for zone_id, start_ms, _ in encoded:
            newest[zone_id] = max(start_ms, newest.get(zone_id, start_ms))

        async def write() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for zone_id, start_ms, raw in encoded:
                key = windows_key(zone_id)
                pipe.zremrangebyscore(key, start_ms, start_ms)
                pipe.zadd(key, {raw: start_ms})
            for zone_id, start_ms in newest.items():  # once per zone: what the newest window puts out of reach
                pipe.zremrangebyscore(windows_key(zone_id), "-inf", start_ms - HISTORY_MS)
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
        for obj in objects:
            self._spending[obj["zone_id"]] = _pack(obj)
            self._city[obj["zone_id"]] = obj["city_id"]

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
        for view in views:
            self._sensors[view["zone_id"]] = _pack(view)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for view in views:
                pipe.set(sensors_key(view["zone_id"]), orjson.dumps(view))
            await pipe.execute()
        except RedisError:
            self._metrics.redis_errors.inc()

    async def heartbeat(self, now_ms: int) -> None:
        """Write the heartbeat; if this worker's mark is gone (store flushed or restarted), rewrite first."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(HEARTBEAT_KEY, str(now_ms))
            pipe.set(self._mark, "1", xx=True, ex=MARK_TTL_S)
            _, marked = await pipe.execute()
            if not marked:
                await self._rewrite()
        except RedisError:
            self._metrics.redis_errors.inc()

    def _remember(self, windows: list[tuple[str, int, bytes]], lives: list[dict[str, Any]],
                  profiles: list[dict[str, Any]]) -> None:
        """`windows`: (zone, start ms, JSON) of each window published."""
        fresh: dict[str, dict[int, bytes]] = defaultdict(dict)
        for zone_id, start_ms, raw in windows:
            fresh[zone_id][start_ms] = raw
        for zone_id, new in fresh.items():
            kept = self._windows.setdefault(zone_id, {})
            # only the newest are kept: a backlog publishes hundreds of windows per zone at once, and compressing
            # each only to drop it was 6 % of the worker's CPU (py-spy, 400k readings, B)
            newest = set(sorted(kept.keys() | new.keys())[-KEPT_WINDOWS:])
            for start in [s for s in kept if s not in newest]:
                del kept[start]
            for start, raw in new.items():
                if start in newest:
                    kept[start] = _compress(raw)
        for live in lives:
            old = self._lives.get(live["zone_id"])
            if old is None or old[0] <= live["as_of_ms"]:
                self._lives[live["zone_id"]] = (live["as_of_ms"], _pack(live))
            self._city[live["zone_id"]] = live["city_id"]
        for profile in profiles:
            self._profiles[profile["zone_id"]] = _pack(profile)

    async def _rewrite(self) -> None:
        """Everything kept, written again (absolute values, as `publish` writes them); the mark last, so a
        rewrite cut short by a new outage is done again at the next tick."""
        pipe = self._redis.pipeline(transaction=False)
        for zone_id, kept in self._windows.items():
            key = windows_key(zone_id)
            for start_ms, raw in sorted(kept.items()):
                pipe.zremrangebyscore(key, start_ms, start_ms)
                pipe.zadd(key, {_unpack(raw): start_ms})
        for zone_id, (as_of_ms, raw) in self._lives.items():
            pipe.eval(SET_IF_NEWER, 1, live_key(zone_id), _unpack(raw), as_of_ms)
        for zone_id, raw in self._profiles.items():
            pipe.set(profile_key(zone_id), _unpack(raw), nx=True)
        for zone_id, raw in self._spending.items():
            pipe.set(spending_key(zone_id), _unpack(raw), nx=True)
        for zone_id, raw in self._sensors.items():
            pipe.set(sensors_key(zone_id), _unpack(raw), nx=True)
        for zone_id in self._lives:
            pipe.publish(UPDATES_CHANNEL, orjson.dumps({"kind": "live", "zone_id": zone_id,
                                                        "city_id": self._city[zone_id]}))
        for zone_id in self._spending:
            pipe.publish(UPDATES_CHANNEL, orjson.dumps({"kind": "spending", "zone_id": zone_id,
                                                        "city_id": self._city[zone_id]}))
        pipe.set(self._mark, "1", ex=MARK_TTL_S)
        await pipe.execute()
        if self._lives or self._windows:
            log.warning("The store had lost this worker's keys (flushed or restarted): rewrote %d live objects "
                        "and %d windows", len(self._lives), sum(len(k) for k in self._windows.values()))

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
