"""Readiness as CONTRACT.md §4 defines it (store reachable, data fresh): the checks behind `/readyz`.

`/readyz` answers 503 when any check fails:
- `store`: Redis does not answer;
- `worker`: no worker heartbeat younger than `HEARTBEAT_MAX_AGE_S`;
- `data`: no city has a live object younger than the stale limit (`DRUKTE_STALE_S`): everything the API
  would serve is `unknown`.
Some cities stale while others are fresh is still ready (a city's gateways can fail without the system
failing); the `data` check then names them, and `cities` gives every city's age.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.store import LiveStore
from drukte.metrics import ApiMetrics
from streams.freshness import AS_OF_MS
from streams.registry import Registry

HEARTBEAT_MAX_AGE_S = 30  # the worker check fails when the worker's last tick is older than this
OK = "ok"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # check name -> "ok" or what is wrong
    failing: tuple[str, ...]  # names of the checks that make the API not ready
    cities: dict[str, dict[str, Any]]  # city id -> {"age_s": int | None, "stale": bool}; empty if unknown

    def body(self, stale_after_s: int) -> dict[str, Any]:
        return {"checks": self.checks, "stale_after_s": stale_after_s, "cities": self.cities}


def city_ages_ms(registry: Registry, zone_ids: Sequence[str], stored: Sequence[dict[str, Any] | None],
                 now_ms: int) -> dict[str, int | None]:
    """Per city (registry order), ms since its newest live object's `as_of_ms` (0 if in the future); None if none."""
    newest: dict[str, int] = {}
    for zone_id, obj in zip(zone_ids, stored, strict=True):
        as_of = obj.get(AS_OF_MS) if obj else None
        if isinstance(as_of, int) and not isinstance(as_of, bool):
            city_id = registry.city_of_zone[zone_id].id
            newest[city_id] = max(newest.get(city_id, as_of), as_of)
    return {c.id: max(0, now_ms - newest[c.id]) if c.id in newest else None for c in registry.cities}


def worker_check(beat_ms: int | None, now_ms: int) -> tuple[str, bool]:
    if beat_ms is None:
        return "no heartbeat in the store; is `drukte worker` running?", False
    age_ms = max(0, now_ms - beat_ms)
    if age_ms >= HEARTBEAT_MAX_AGE_S * 1000:
        return f"last heartbeat {age_ms // 1000} s ago (limit {HEARTBEAT_MAX_AGE_S} s)", False
    return OK, True


def data_check(ages_s: dict[str, int | None], stale_after_s: int) -> tuple[str, bool]:
    """The `data` outcome from whole-second ages per city; stale as in `streams.freshness`: age > limit."""
    stale = {c: a for c, a in ages_s.items() if a is None or a > stale_after_s}
    if not stale:
        return OK, True
    limit = f"(limit {stale_after_s} s)"
    if len(stale) == len(ages_s):
        known = [a for a in ages_s.values() if a is not None]
        if not known:
            return f"stale: no live object in the store {limit}", False
        return f"stale: newest live object {min(known)} s old {limit}", False
    parts = [f"{c} ({'no live object' if a is None else f'{a} s old'})" for c, a in stale.items()]
    return f"ok, but stale in {len(stale)} of {len(ages_s)} cities: {', '.join(parts)} {limit}", True


async def readiness(store: LiveStore, registry: Registry, clock: Callable[[], int], stale_after_s: int,
                    metrics: ApiMetrics) -> Readiness:
    zone_ids = list(registry.zones)
    try:
        await store.ping()
        beat_ms = await store.heartbeat_ms()
        stored = await store.live(zone_ids)
    except (RedisConnectionError, RedisTimeoutError):
        metrics.redis_errors.inc()
        unknown = "unknown (store unreachable)"
        return Readiness({"store": "unreachable", "worker": unknown, "data": unknown}, ("store",), {})
    now_ms = clock()
    ages_s = {c: None if a is None else a // 1000 for c, a in city_ages_ms(registry, zone_ids, stored, now_ms).items()}
    worker, worker_ok = worker_check(beat_ms, now_ms)
    data, data_ok = data_check(ages_s, stale_after_s)
    failing = tuple(name for name, ok in (("worker", worker_ok), ("data", data_ok)) if not ok)
    cities = {c: {"age_s": a, "stale": a is None or a > stale_after_s} for c, a in ages_s.items()}
    return Readiness({"store": OK, "worker": worker, "data": data}, failing, cities)
