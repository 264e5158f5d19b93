"""`GET /v1/stream` against a real Valkey over real HTTP (SSE cannot be tested through a buffering transport):
snapshot, updates, resume with Last-Event-ID, heartbeats, one subscription per process, 500 clients."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from api import stream
from api.app import create_app
from drukte.embedded import Service, free_port, wait_for_port
from drukte.settings import Settings
from streams.registry import Registry, parse_registry
from streams.storekeys import UPDATES_CHANNEL
from tests.browser.seed import live_object, now_ms

pytestmark = [pytest.mark.component, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_YAML = """
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: b1, kind: street}, {id: b2, kind: street}, {id: b3, kind: street}]
      - id: mechelen-ijzerenleen
        name: IJzerenleen
        sensors: [{id: i1, kind: street}, {id: i2, kind: street}, {id: i3, kind: street}]
      - id: mechelen-vismarkt
        name: Vismarkt
        sensors: [{id: v1, kind: street}, {id: v2, kind: street}, {id: v3, kind: street}]
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: leuven-diestsestraat
        name: Diestsestraat
        sensors: [{id: d1, kind: street}, {id: d2, kind: street}, {id: d3, kind: street}]
"""
SETTINGS = Settings(redis_url=None, rate_limit_per_min=0)


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.data)


async def sse(resp: httpx.Response) -> AsyncIterator[Event]:
    """Parse a text/event-stream: one Event per blank-line-terminated block (comments kept, for heartbeats)."""
    ev = Event()
    async for line in resp.aiter_lines():
        if line == "":
            yield ev
            ev = Event()
        elif line.startswith(":"):
            ev.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                ev.data = value if not ev.data else ev.data + "\n" + value
            elif name == "event":
                ev.event = value
            elif name == "id":
                ev.id = value


async def next_event(events: AsyncIterator[Event], kind: str = "live", timeout_s: float = 5.0) -> Event:
    async def find() -> Event:
        async for ev in events:
            if ev.event == kind:
                return ev
        raise AssertionError("stream ended")

    return await asyncio.wait_for(find(), timeout_s)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return parse_registry(REGISTRY_YAML)


@pytest.fixture
async def base_url(registry: Registry, store: Service) -> AsyncIterator[str]:
    """The API served by uvicorn in this event loop, over real TCP."""
    client = Redis.from_url(store.url)
    app = create_app(SETTINGS, registry, client, CollectorRegistry())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start within 5 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
    await client.aclose()


async def write(rds: Redis, obj: dict[str, Any], announce: bool = True) -> None:
    await rds.set(f"drukte:live:{obj['zone_id']}", orjson.dumps(obj))
    if announce:
        await rds.publish(UPDATES_CHANNEL, orjson.dumps(
            {"kind": "live", "zone_id": obj["zone_id"], "city_id": obj["city_id"]}))


async def subscribers(rds: Redis) -> int:
    [(_, n)] = await rds.pubsub_numsub(UPDATES_CHANNEL)
    return int(n)


async def test_snapshot_then_updates_then_resume(base_url: str, rds: Redis) -> None:
    t0 = now_ms() - 60_000
    await write(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "busy", t0, 3), announce=False)
    await write(rds, live_object("mechelen-vismarkt", "mechelen", "Vismarkt", "quiet", t0, 3), announce=False)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        async with client.stream("GET", "/v1/stream", params={"city_id": "mechelen"}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-control"] == "no-cache"
            events = sse(resp)
            snapshot = [await next_event(events) for _ in range(3)]  # every zone of the city, in registry order
            assert [e.json()["zone_id"] for e in snapshot] == [
                "mechelen-bruul", "mechelen-ijzerenleen", "mechelen-vismarkt"]
            bruul, ijzerenleen, _ = (e.json() for e in snapshot)
            assert bruul["level"]["key"] == "busy"
            assert "as_of_ms" not in bruul  # served as /live serves it
            assert bruul["quality"]["age_s"] >= 60
            assert ijzerenleen["level"]["key"] == "unknown"  # no data yet: unknown, never quiet
            last_id = snapshot[-1].id
            assert last_id is not None
            assert await subscribers(rds) == 1

            await write(rds, live_object("mechelen-ijzerenleen", "mechelen", "IJzerenleen", "very_busy", t0, 3))
            await write(rds, live_object("leuven-diestsestraat", "leuven", "Diestsestraat", "busy", t0, 3))
            update = await next_event(events)
            assert update.json()["zone_id"] == "mechelen-ijzerenleen"  # Leuven's update is not for this stream
            assert update.json()["level"]["key"] == "very_busy"
            assert update.id != last_id

        # the client went away: the process drops its subscription
        await _eventually(lambda: subscribers(rds), 0)

        # while it was away Bruul changed; resuming sends only that zone
        await write(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "quiet", t0 + 300_000, 3))
        async with client.stream("GET", "/v1/stream", params={"city_id": "mechelen"},
                                 headers={"Last-Event-ID": update.id or ""}) as resp:
            events = sse(resp)
            resumed = await next_event(events)
            assert resumed.json()["zone_id"] == "mechelen-bruul"
            assert resumed.json()["level"]["key"] == "quiet"
            with pytest.raises(TimeoutError):
                await next_event(events, timeout_s=0.5)  # nothing else changed


async def _eventually(probe: Any, expected: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe() == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected}, still {await probe()}")


async def test_stale_objects_are_pushed_as_unknown(base_url: str, rds: Redis) -> None:
    old = live_object("mechelen-bruul", "mechelen", "Bruul", "very_busy", now_ms() - 7_200_000, 3)
    await write(rds, old, announce=False)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/v1/stream", params={"city_id": "mechelen"}) as resp:
        first = (await next_event(sse(resp))).json()
    assert first["level"]["key"] == "unknown"
    assert first["quality"]["stale"] is True
    assert first["index"] == old["index"]  # the last known numbers stay, with their age


async def test_spending_notices_and_heartbeats(base_url: str, rds: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "HEARTBEAT_S", 0.2)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/v1/stream", params={"city_id": "leuven"}) as resp:
        events = sse(resp)
        await next_event(events)  # the snapshot of Leuven's one zone
        async def heartbeat() -> None:
            async for block in events:
                if "ping" in block.comments:
                    return

        await asyncio.wait_for(heartbeat(), 2)
        await rds.publish(UPDATES_CHANNEL, b"not json")  # ignored, the stream goes on
        await rds.publish(UPDATES_CHANNEL, orjson.dumps({"kind": "spending", "zone_id": "leuven-diestsestraat",
                                                         "city_id": "leuven"}))
        notice = await next_event(events, "spending")
        assert notice.json() == {"kind": "spending", "zone_id": "leuven-diestsestraat", "city_id": "leuven"}
        assert notice.id is None  # resume state is the live objects' only


async def test_a_lost_subscription_is_renewed_and_missed_updates_are_sent(base_url: str, rds: Redis) -> None:
    t0 = now_ms() - 60_000
    await write(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "busy", t0, 3), announce=False)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client, \
            client.stream("GET", "/v1/stream", params={"city_id": "mechelen"}) as resp:
        events = sse(resp)
        for _ in range(3):
            await next_event(events)
        await rds.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # the store drops the subscription
        # written while nobody listened: the announcement is lost, the resubscribed hub must resynchronise
        await write(rds, live_object("mechelen-vismarkt", "mechelen", "Vismarkt", "very_busy", t0 + 300_000, 3),
                    announce=False)
        missed = await next_event(events, timeout_s=5)
        assert (missed.json()["zone_id"], missed.json()["level"]["key"]) == ("mechelen-vismarkt", "very_busy")
        await _eventually(lambda: subscribers(rds), 1)
        await write(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "quiet", t0 + 300_000, 3))
        after = await next_event(events)  # and updates flow again
        assert (after.json()["zone_id"], after.json()["level"]["key"]) == ("mechelen-bruul", "quiet")


@pytest.mark.parametrize("query", ["city_id=gent", "city_id=%3Cscript%3E", ""])
async def test_unknown_city_is_a_problem(base_url: str, query: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        resp = await client.get("/v1/stream?" + query)
    assert resp.status_code in (404, 422)
    assert resp.headers["content-type"] == "application/problem+json"
    assert "<script>" not in resp.text


def test_event_ids_round_trip() -> None:
    state = [1_795_785_600, None, 1_795_785_900]
    assert stream.parse_event_id(stream.event_id(state), 3) == state
    assert stream.parse_event_id(stream.event_id(state), 4) is None  # the registry changed: full snapshot
    for bad in (None, "", "x!.y.z", "." * 100):
        assert stream.parse_event_id(bad, 3) is None


def start_api(store: Service, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """An API process, as `drukte api` runs it, with the test registry; returns once it listens."""
    (tmp / "registry.yaml").write_text(REGISTRY_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUKTE_")}
    env.update(DRUKTE_REDIS_URL=store.url, DRUKTE_PORT=str(port), DRUKTE_REGISTRY=str(tmp / "registry.yaml"),
               DRUKTE_LOG_LEVEL="warning")
    with (tmp / "api.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "drukte.cli", "api"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    wait_for_port(port, proc, "the API")
    return proc


@pytest.fixture(scope="module")
def api_process(store: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One API process for the load test."""
    port = free_port()
    proc = start_api(store, tmp_path_factory.mktemp("stream"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


CLIENTS = 500


async def test_500_clients_on_one_api_process_get_an_update_within_a_second(api_process: str, rds: Redis) -> None:
    t0 = now_ms()
    await write(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "busy", t0, 3), announce=False)
    ready = 0
    all_ready = asyncio.Event()
    received: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=0)

    async def client_task(client: httpx.AsyncClient) -> None:
        nonlocal ready
        async with client.stream("GET", "/v1/stream", params={"city_id": "mechelen"}) as resp:
            assert resp.status_code == 200
            events = sse(resp)
            for _ in range(3):
                await next_event(events, timeout_s=60)
            ready += 1
            if ready == CLIENTS:
                all_ready.set()
            ev = await next_event(events, timeout_s=30)
            received.append(time.monotonic())
            assert ev.json()["level"]["key"] == "very_busy"

    async with httpx.AsyncClient(base_url=api_process, timeout=60, limits=limits) as client:
        tasks = [asyncio.create_task(client_task(client)) for _ in range(CLIENTS)]
        try:
            await asyncio.wait_for(all_ready.wait(), 60)
        except TimeoutError:
            failed = [t.exception() for t in tasks if t.done() and t.exception()]
            raise AssertionError(f"only {ready} of {CLIENTS} clients got their snapshot; {failed[:3]}") from None
        assert await subscribers(rds) == 1  # one subscription for 500 clients
        published = time.monotonic()
        await write(rds, live_object("mechelen-bruul", "mechelen", "Bruul", "very_busy", t0 + 300_000, 3))
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert len(received) == CLIENTS
    slowest = max(received) - published
    assert slowest < 1.0, f"the last of {CLIENTS} clients got the update after {slowest:.2f} s"


async def test_the_worker_store_announces_each_live_object_after_writing_it(store: Service, rds: Redis) -> None:
    from agents.store import RedisStore
    from drukte.metrics import WorkerMetrics

    writer = RedisStore(store.url, WorkerMetrics(CollectorRegistry()))
    pubsub = rds.pubsub()
    await pubsub.subscribe(UPDATES_CHANNEL)
    try:
        lives = [live_object(z, "mechelen", z, "busy", now_ms(), 3) for z in ("mechelen-bruul", "mechelen-vismarkt")]
        await writer.publish([], lives, [])
        got = []
        for _ in range(50):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg is not None:
                got.append(orjson.loads(msg["data"]))
                # the key is written before the announcement that makes API processes read it
                assert await rds.exists(f"drukte:live:{got[-1]['zone_id']}")
            if len(got) == 2:
                break
        assert got == [{"kind": "live", "zone_id": "mechelen-bruul", "city_id": "mechelen"},
                       {"kind": "live", "zone_id": "mechelen-vismarkt", "city_id": "mechelen"}]  # ids only
    finally:
        await pubsub.aclose()
        await writer.close()


async def test_the_worker_store_keeps_a_week_and_a_day_of_windows_per_zone_one_per_start(store: Service,
                                                                                          rds: Redis) -> None:
    """Published windows land in the zone's sorted set by start; a window published again replaces its copy;
    the set is trimmed to `HISTORY_MS` before the newest start, zone by zone."""
    from agents.store import HISTORY_MS, RedisStore
    from drukte.metrics import WorkerMetrics
    from streams.storekeys import windows_key

    def window(zone: str, start: int, visitors: int) -> dict[str, Any]:
        return {"zone_id": zone, "as_of_ms": start + 300_000, "window": {"seconds": 300}, "visitors": visitors}

    writer = RedisStore(store.url, WorkerMetrics(CollectorRegistry()))
    t0 = 1_795_785_000_000
    old, kept = t0, t0 + 300_000
    new = old + HISTORY_MS  # trims every start up to `old` (the bound is inclusive)
    try:
        await writer.publish([window("trim-a", old, 1), window("trim-a", kept, 2), window("trim-b", old, 3)], [], [])
        await writer.publish([window("trim-a", kept, 5), window("trim-a", new, 4)], [], [])  # `kept` again
        stored = cast(list[tuple[bytes, float]], await rds.zrange(windows_key("trim-a"), 0, -1, withscores=True))
        a = [(orjson.loads(m)["visitors"], int(score)) for m, score in stored]
        assert a == [(5, kept), (4, new)]  # `old` is past the week and a day, `kept` replaced, not doubled
        assert await rds.zcard(windows_key("trim-b")) == 1  # another zone's newest start says nothing about it
    finally:
        await writer.close()


async def test_an_api_process_with_open_streams_stops_promptly(store: Service, tmp_path: Path) -> None:
    """SIGTERM must not wait for endless event streams (docker stop, drukte up's Ctrl-C)."""
    port = free_port()
    proc = start_api(store, tmp_path, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client, \
                client.stream("GET", "/v1/stream", params={"city_id": "mechelen"}) as resp:
            await next_event(sse(resp))
            started = time.monotonic()
            proc.terminate()
            for _ in range(100):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert proc.poll() is not None, "the API still runs 10 s after SIGTERM with one stream open"
            assert time.monotonic() - started < 8
    except (httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the stream is cut when the process exits: expected
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
