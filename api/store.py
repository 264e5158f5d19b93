"""The API's read side of Redis: live objects per zone and the worker's heartbeat, in the worker's key layout."""

from __future__ import annotations

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

    async def live(self, zone_ids: Sequence[str], *, cached: bool = False) -> list[dict[str, Any] | None]:
        """The stored live objects of these zones, in order, with one MGET; None where there is none."""
        return await self._mget(zone_ids, [live_key(z) for z in zone_ids], cached)

    async def devices(self, zone_ids: Sequence[str], *, cached: bool = False) -> dict[str, dict[str, Any] | None]:
        """The newest published distinct-device window per zone (one MGET; none asked, no call)."""
        objs = await self._mget(zone_ids, [devices_key(z) for z in zone_ids], cached)
        return dict(zip(zone_ids, objs, strict=True))

    async def _mget(self, zone_ids: Sequence[str], keys: list[str], cached: bool) -> list[dict[str, Any] | None]:
        """The decoded objects at `keys` (one per zone); with `cached`, those read within `cache_ms` are reused."""
        sent_at = self._monotonic()
        out: list[dict[str, Any] | None] = [None] * len(keys)
        todo: list[int] = []
        use_cache = cached and self._cache_s > 0
        for i, key in enumerate(keys):
            hit = self._cache.get(key) if use_cache else None
            if hit is not None and sent_at - hit[0] < self._cache_s:
                out[i] = hit[1]
            else:
                todo.append(i)
        if not todo:
            return out
        raws: list[bytes | str | None] = await self._client.mget([keys[i] for i in todo])
        for i, raw in zip(todo, raws, strict=True):
            out[i] = obj = _decode(zone_ids[i], raw)
            if use_cache:
                older = self._cache.get(keys[i])
                if older is None or older[0] <= sent_at:  # a slower, older read never replaces a newer one
                    self._cache[keys[i]] = (sent_at, obj)
        return out

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


def _span(obj: dict[str, Any] | None) -> tuple[int, int] | None:
    """`[start, end)` in epoch ms of a stored spending object's window; None when it has none readable."""
    try:
        start = parse_ts(obj["window"]["start"])  # type: ignore[index]
        return start, start + int(obj["window"]["seconds"]) * 1000  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
