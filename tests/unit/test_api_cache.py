"""The API's live-object cache (api/store.py LiveStore): reuse within DRUKTE_API_CACHE_MS, never past it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from api.store import LiveStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeRedis:
    """MGET over a dict, with every call recorded; `down` makes it fail like a refused connection."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[list[str]] = []
        self.down = False
        self.gate: asyncio.Event | None = None  # when set, MGET waits for it (a slow answer)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        self.calls.append(list(keys))
        if self.down:
            raise RedisConnectionError("refused")
        snapshot = [self.data.get(k) for k in keys]  # what the store held when the command arrived
        gate = self.gate
        if gate is not None:
            await gate.wait()
        return snapshot


class Monotonic:
    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s


def obj(n: int) -> bytes:
    return orjson.dumps({"zone_id": "z", "n": n})


def make(cache_ms: int) -> tuple[LiveStore, FakeRedis, Monotonic]:
    fake, mono = FakeRedis(), Monotonic()
    return LiveStore(cast(aioredis.Redis, fake), cache_ms, mono), fake, mono


def n(objs: list[dict[str, Any] | None]) -> list[int | None]:
    return [o["n"] if o else None for o in objs]


async def test_hit_within_the_time_miss_after() -> None:
    store, fake, mono = make(500)
    fake.data["drukte:live:a"] = obj(1)
    assert n(await store.live(["a"], cached=True)) == [1]
    fake.data["drukte:live:a"] = obj(2)
    mono.s += 0.499
    assert n(await store.live(["a"], cached=True)) == [1]  # hit: the store is not asked
    assert len(fake.calls) == 1
    mono.s += 0.001
    assert n(await store.live(["a"], cached=True)) == [2]  # exactly 500 ms after the read was sent: a miss
    assert len(fake.calls) == 2


async def test_zero_is_off() -> None:
    store, fake, _ = make(0)
    fake.data["drukte:live:a"] = obj(1)
    await store.live(["a"], cached=True)
    fake.data["drukte:live:a"] = obj(2)
    assert n(await store.live(["a"], cached=True)) == [2]
    assert len(fake.calls) == 2


async def test_uncached_reads_neither_use_nor_fill_the_cache() -> None:
    # /v1/stream, /readyz and /metrics read without it: the newest there is, and a /readyz that found the store
    # up just before it went down must not make /live answer from memory
    store, fake, mono = make(500)
    fake.data["drukte:live:a"] = obj(1)
    await store.live(["a"], cached=True)
    fake.data["drukte:live:a"] = obj(2)
    assert n(await store.live(["a"])) == [2]
    assert n(await store.live(["a"], cached=True)) == [1]  # the cache kept what the cached read saw
    mono.s += 0.5
    fake.data["drukte:live:b"] = obj(3)
    assert n(await store.live(["b"])) == [3]
    fake.down = True
    with pytest.raises(RedisConnectionError):
        await store.live(["b"], cached=True)
    assert len(fake.calls) == 4


async def test_only_the_keys_not_cached_are_read_in_one_mget() -> None:
    store, fake, mono = make(500)
    fake.data |= {"drukte:live:a": obj(1), "drukte:live:c": obj(3)}
    await store.live(["a"], cached=True)
    mono.s += 0.1
    # a city: one zone cached, one never read, one without data (None, which is cached too)
    assert n(await store.live(["a", "b", "c"], cached=True)) == [1, None, 3]
    assert fake.calls[-1] == ["drukte:live:b", "drukte:live:c"]
    assert n(await store.live(["c", "b", "a"], cached=True)) == [3, None, 1]
    assert len(fake.calls) == 2


async def test_live_and_device_objects_are_cached_apart() -> None:
    store, fake, _ = make(500)
    fake.data |= {"drukte:live:a": obj(1), "drukte:devices:a": obj(7)}
    assert n(await store.live(["a"], cached=True)) == [1]
    assert {k: v and v["n"] for k, v in (await store.devices(["a"], cached=True)).items()} == {"a": 7}
    assert await store.devices([], cached=True) == {}
    assert fake.calls == [["drukte:live:a"], ["drukte:devices:a"]]


async def test_a_store_error_with_nothing_recent_cached_propagates() -> None:
    store, fake, mono = make(500)
    fake.data["drukte:live:a"] = obj(1)
    await store.live(["a"], cached=True)
    fake.down = True
    assert n(await store.live(["a"], cached=True)) == [1]  # within the time: served
    with pytest.raises(RedisConnectionError):
        await store.live(["a", "b"], cached=True)  # b was never read
    mono.s += 0.5
    with pytest.raises(RedisConnectionError):
        await store.live(["a"], cached=True)  # a's copy is too old now


async def test_reads_on_their_way_are_shared() -> None:
    # the copy runs out under load: the requests in flight wait for one MGET instead of each sending theirs
    store, fake, mono = make(500)
    fake.data |= {"drukte:live:a": obj(1), "drukte:live:b": obj(2)}
    fake.gate = gate = asyncio.Event()
    first = asyncio.create_task(store.live(["a"], cached=True))
    await asyncio.sleep(0.01)
    fake.gate = None
    mono.s += 0.1
    others = [asyncio.create_task(store.live(keys, cached=True)) for keys in (["a"], ["a", "b"], ["b", "a"])]
    await asyncio.sleep(0.01)
    gate.set()
    assert [n(r) for r in await asyncio.gather(first, *others)] == [[1], [1], [1, 2], [2, 1]]
    assert fake.calls == [["drukte:live:a"], ["drukte:live:b"]]  # b was not on its way: read once, shared too


async def test_a_shared_read_that_fails_fails_every_request_that_waited() -> None:
    store, fake, _ = make(500)
    fake.down = True
    fake.gate = gate = asyncio.Event()
    waiting = [asyncio.create_task(store.live(["a"], cached=True)) for _ in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in results)
    assert len(fake.calls) == 1
    fake.down = False
    fake.gate = None
    assert n(await store.live(["a"], cached=True)) == [None]  # nothing on its way any more: read again
    assert len(fake.calls) == 2


async def test_a_request_that_goes_away_leaves_the_shared_read_to_the_others() -> None:
    store, fake, _ = make(500)
    fake.data["drukte:live:a"] = obj(1)
    fake.gate = gate = asyncio.Event()
    first = asyncio.create_task(store.live(["a"], cached=True))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(store.live(["a"], cached=True))
    await asyncio.sleep(0.01)
    first.cancel()
    gate.set()
    assert n(await second) == [1]
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(fake.calls) == 1


async def test_a_read_on_its_way_for_too_long_is_not_waited_for_nor_kept() -> None:
    store, fake, mono = make(500)
    fake.data["drukte:live:a"] = obj(1)
    fake.gate = gate = asyncio.Event()
    slow = asyncio.create_task(store.live(["a"], cached=True))  # a hung store's answer, sent at 1000.0
    await asyncio.sleep(0.01)
    fake.gate = None
    fake.data["drukte:live:a"] = obj(2)
    mono.s += 0.6  # older than the cache time: not joined, a new read is sent and answered first
    assert n(await store.live(["a"], cached=True)) == [2]
    gate.set()
    assert n(await slow) == [1]  # the request that sent it gets what it read
    mono.s += 0.1
    assert n(await store.live(["a"], cached=True)) == [2]  # the newer copy stays: no third read
    assert len(fake.calls) == 2
