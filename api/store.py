"""The API's read side of Redis: live objects per zone and the worker's heartbeat, in the worker's key layout."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from streams.storekeys import (
    HEARTBEAT_KEY,
    devices_key,
    live_key,
    profile_key,
    sensors_key,
    spending_key,
    windows_key,
)
from streams.timegrid import parse_ts

log = logging.getLogger(__name__)


def _decode(zone_id: str, raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        log.error("live object of zone %s in the store is not JSON (%s); serving it as unknown", zone_id, exc)
        return None
    if not isinstance(obj, dict):
        log.error("live object of zone %s in the store is not a JSON object; serving it as unknown", zone_id)
        return None
    return obj


class LiveStore:
    """Reads what the stream worker wrote. Redis connection and timeout errors propagate to the caller.

    Live and device objects read with `cached=True` may come from an in-process cache instead: each key's
    decoded object (or its absence) is reused for `cache_ms` after the cached read that fetched it was sent,
    timed by `monotonic` (seconds), so what is served is at most `cache_ms` older than the store. A key not read
    so within `cache_ms` is read from the store, so a store error with nothing recent cached still propagates.
    Reads without `cached` neither use nor fill the cache: a probe that found the store up must not keep a
    /live answering after the store went down. `cache_ms` 0: no cache. Cached objects are shared: never change
    one.
    """

    def __init__(self, client: aioredis.Redis, cache_ms: int = 0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._cache_s = cache_ms / 1000
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}  # key -> (read sent at, decoded object)
        # key -> (sent at, the read on its way)
        self._inflight: dict[str, tuple[float, asyncio.Task[dict[str, dict[str, Any] | None]]]] = {}

    async def live(self, zone_ids: Sequence[str], *, cached: bool = False) -> list[dict[str, Any] | None]:
        """The stored live objects of these zones, in order, with one MGET; None where there is none."""
        return await self._mget(zone_ids, [live_key(z) for z in zone_ids], cached)

    async def devices(self, zone_ids: Sequence[str], *, cached: bool = False) -> dict[str, dict[str, Any] | None]:
        """The newest published distinct-device window per zone (one MGET; none asked, no call)."""
        objs = await self._mget(zone_ids, [devices_key(z) for z in zone_ids], cached)
        return dict(zip(zone_ids, objs, strict=True))

    async def _mget(self, zone_ids: Sequence[str], keys: list[str], cached: bool) -> list[dict[str, Any] | None]:
        """The decoded objects at `keys` (one per zone); with `cached`, those read within `cache_ms` are reused,
        and a read of the same key already on its way (sent within `cache_ms`) is waited for, not sent again:
        when a key's copy runs out under load, the requests in flight share one MGET instead of each sending
        theirs (they all waited on the store together, and it showed in p99)."""
        if not (cached and self._cache_s > 0):
            if not keys:
                return []
            raws: list[bytes | str | None] = await self._client.mget(keys)
            return [_decode(z, raw) for z, raw in zip(zone_ids, raws, strict=True)]
        now = self._monotonic()
        out: list[dict[str, Any] | None] = [None] * len(keys)
        waits: dict[asyncio.Task[dict[str, dict[str, Any] | None]], list[int]] = {}
        todo: list[int] = []
        for i, key in enumerate(keys):
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self._cache_s:
                out[i] = hit[1]
                continue
            flight = self._inflight.get(key)
            if flight is not None and now - flight[0] < self._cache_s:
                waits.setdefault(flight[1], []).append(i)
            else:
                todo.append(i)
        if todo:
            # its own task: a request that goes away (cancelled) does not take the others' answer with it
            task = asyncio.ensure_future(self._fetch([zone_ids[i] for i in todo], [keys[i] for i in todo], now))
            task.add_done_callback(_retrieve)
            for i in todo:
                self._inflight[keys[i]] = (now, task)
            waits[task] = todo
        for task, indexes in waits.items():
            got = await asyncio.shield(task)  # a store error reaches every request that waited for this read
            for i in indexes:
                out[i] = got[keys[i]]
        return out

    async def _fetch(self, zone_ids: list[str], keys: list[str], sent_at: float) -> dict[str, dict[str, Any] | None]:
        """One MGET for the cache: the decoded objects by key, kept with the time the read was sent."""
        try:
            raws: list[bytes | str | None] = await self._client.mget(keys)
        finally:
            me = asyncio.current_task()
            for key in keys:
                if self._inflight.get(key, (0.0, None))[1] is me:
                    del self._inflight[key]
        got: dict[str, dict[str, Any] | None] = {}
        for zone_id, key, raw in zip(zone_ids, keys, raws, strict=True):
            got[key] = obj = _decode(zone_id, raw)
            older = self._cache.get(key)
            if older is None or older[0] <= sent_at:  # a slower, older read never replaces a newer one
                self._cache[key] = (sent_at, obj)
        return got

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def heartbeat_ms(self) -> int | None:
        """The worker's last tick in epoch ms; None when absent or not a number."""
        raw = await self._client.get(HEARTBEAT_KEY)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            log.error("worker heartbeat in the store is not epoch ms: %r", raw[:40])
            return None

    async def today(self, zone_id: str, first_ms: int, end_ms: int) -> tuple[dict[str, Any] | None,
                                                                          list[dict[str, Any]]]:
        """The zone's stored day profile and its published windows starting in `[first_ms, end_ms)`."""
        pipe = self._client.pipeline(transaction=False)
        pipe.get(profile_key(zone_id))
        pipe.zrangebyscore(windows_key(zone_id), first_ms, end_ms - 1)
        raw_profile, raw_windows = await pipe.execute()
        windows = [w for w in (_decode(zone_id, r) for r in raw_windows) if w is not None]
        return _decode(zone_id, raw_profile), windows

    async def sensors(self, zone_id: str) -> dict[str, Any] | None:
        """The worker's latest sensor-health report for the zone, or None."""
        return _decode(zone_id, await self._client.get(sensors_key(zone_id)))

    async def spending(self, zone_ids: Sequence[str]) -> list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
        """Per zone, the newest spending object and the footfall windows published in its window's span."""
        if not zone_ids:
            return []
        raws: list[bytes | str | None] = await self._client.mget([spending_key(z) for z in zone_ids])
        objs = [_decode(z, raw) for z, raw in zip(zone_ids, raws, strict=True)]
        pipe = self._client.pipeline(transaction=False)
        for zone_id, obj in zip(zone_ids, objs, strict=True):
            span = _span(obj)
            if span is not None:
                pipe.zrangebyscore(windows_key(zone_id), span[0], span[1] - 1)
        fetched = iter(await pipe.execute())
        out: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
        for zone_id, obj in zip(zone_ids, objs, strict=True):
            if _span(obj) is None:
                out.append((None, []))
                continue
            windows = [w for w in (_decode(zone_id, r) for r in next(fetched)) if w is not None]
            out.append((obj, windows))
        return out


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a shared read's error as seen: when every request that waited for it went away, nobody else does."""
    if not task.cancelled():
        task.exception()


def _span(obj: dict[str, Any] | None) -> tuple[int, int] | None:
    """`[start, end)` in epoch ms of a stored spending object's window; None when it has none readable."""
    try:
        start = parse_ts(obj["window"]["start"])  # type: ignore[index]
        return start, start + int(obj["window"]["seconds"]) * 1000  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
