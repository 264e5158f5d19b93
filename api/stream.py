"""Live push: `GET /v1/stream?city_id=` as Server-Sent Events, fed by one Redis subscription per API process.

The worker announces every live object it writes on `UPDATES_CHANNEL` (ids only). The `Hub` holds the one
subscription of this process while at least one client listens, re-reads each announced zone once (one MGET per
burst, `streams.freshness.refresh` as `/live` does) and offers the same bytes to every client of that city.

A client first gets a snapshot (one `live` event per zone of the city), then updates. The event id is the
`as_of` (epoch seconds, base 36) of every zone of the city in registry order, `.`-joined, so a reconnecting
client's `Last-Event-ID` says exactly what it has: a resumed stream sends only the zones that changed since,
whichever API process answers. `spending` events carry ids only (the page re-reads
`/v1/zones/{zone_id}/spending`) and no event id. A comment every `HEARTBEAT_S` keeps proxies from closing an
idle stream. A client too slow to keep up is resynchronised from the store instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Header, Query
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from starlette.responses import StreamingResponse

from api.problems import ProblemError, problem_doc
from api.routes import PATH_ID, Context
from streams.freshness import AS_OF_MS
from streams.registry import City
from streams.storekeys import UPDATES_CHANNEL

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # a comment this often: proxies close streams idle for 30–60 s
RETRY_MS = 3000  # EventSource reconnect delay the server asks for
QUEUE_MAX = 64  # updates buffered per client before it is resynchronised from the store instead
SUBSCRIBE_TIMEOUT_S = 5.0
DRAIN_MAX = 200  # announcements handled per store read
READS_MAX = 4  # concurrent snapshot reads per process (the Redis pool is shared with every route)
KINDS = frozenset({"live", "spending"})
MEDIA_TYPE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Update:
    """What the hub hands to a client: a re-read live object, a spending notice, or `resync` (read the store)."""

    kind: str
    zone_id: str | None = None
    data: bytes = b""
    as_of_s: int | None = None


RESYNC = Update("resync")


@dataclass(eq=False)
class Subscriber:
    city_id: str
    queue: asyncio.Queue[Update] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))

    def offer(self, update: Update) -> None:
        try:
            self.queue.put_nowait(update)
        except asyncio.QueueFull:  # too slow: drop the backlog, send what the store holds now
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


def _as_of_s(obj: dict[str, Any] | None) -> int | None:
    as_of = obj.get(AS_OF_MS) if obj else None
    return as_of // 1000 if isinstance(as_of, int) and not isinstance(as_of, bool) else None


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def event_id(state: Sequence[int | None]) -> str:
    """The event id for the per-zone `as_of` seconds a client has: base 36, `.`-joined, empty for none."""
    return ".".join("" if s is None else _b36(s) for s in state)


def parse_event_id(raw: str | None, zones: int) -> list[int | None] | None:
    """The per-zone state in a `Last-Event-ID`; None (send everything) if absent, malformed or for another
    number of zones (the registry changed)."""
    if not raw or len(raw) > 16 * zones:
        return None
    parts = raw.split(".")
    if len(parts) != zones:
        return None
    state: list[int | None] = []
    for p in parts:
        if not p:
            state.append(None)
            continue
        try:
            state.append(int(p, 36))
        except ValueError:
            return None
    return state


def frame(kind: str, data: bytes, ident: str | None = None) -> bytes:
    head = b"" if ident is None else b"id: " + ident.encode() + b"\n"
    return head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


class Hub:
    """One pub/sub subscription per process, alive while clients listen, fanned out per city."""

    def __init__(self, ctx: Context, client: aioredis.Redis) -> None:
        self._ctx = ctx
        self._client = client
        self._subs: dict[str, set[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._reads = asyncio.Semaphore(READS_MAX)
        self._pending: dict[str, asyncio.Future[list[dict[str, Any] | None]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def join(self, city_id: str) -> Subscriber:
        """Register a client; returns once the subscription is active, so no update after this is missed."""
        sub = Subscriber(city_id)
        self._subs.setdefault(city_id, set()).add(sub)
        if self._task is None or self._task.done():
            self._subscribed = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._subscribed), name="drukte-stream-hub")
        try:
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError as exc:
            self.leave(sub)
            msg = "could not subscribe to the store's update channel"
            raise RedisConnectionError(msg) from exc
        return sub

    async def read_city(self, city: City) -> list[dict[str, Any] | None]:
        """The stored live objects of a city's zones, read after this call began. Clients asking at once share
        one read that has not started yet (a burst of 500 reconnecting screens is a few MGETs, not 500)."""
        fut = self._pending.get(city.id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._pending[city.id] = fut
            task = asyncio.create_task(self._read(city, fut))
            task.add_done_callback(self._background.discard)
            self._background.add(task)
        return await asyncio.shield(fut)

    async def _read(self, city: City, fut: asyncio.Future[list[dict[str, Any] | None]]) -> None:
        async with self._reads:
            if self._pending.get(city.id) is fut:
                del self._pending[city.id]  # from now on a newcomer needs a read of its own
            try:
                fut.set_result(await self._ctx.store.live([z.id for z in city.zones]))
            except RedisError as exc:
                fut.set_exception(exc)
                fut.exception()  # retrieved here: waiters (if any) get it too

    def leave(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.city_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.city_id]
        if not self._subs and self._task is not None:
            self._task.cancel()  # nobody listens: drop the subscription
            self._task = None

    async def _run(self, subscribed: asyncio.Event) -> None:
        delay = 0.2
        first = True
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(UPDATES_CHANNEL)
                if not first:  # messages may have been missed while disconnected
                    self._broadcast(RESYNC)
                subscribed.set()
                first, delay = False, 0.2
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None:
                        continue
                    batch = [msg["data"]]
                    while len(batch) < DRAIN_MAX:
                        more = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                        if more is None:
                            break
                        batch.append(more["data"])
                    await self._dispatch(batch)
            except RedisError as exc:
                self._ctx.metrics.redis_errors.inc()
                log.warning("stream subscription lost (%s); resubscribing in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]  # redis-py lacks the hint

    async def _dispatch(self, raws: list[Any]) -> None:
        live: dict[str, str] = {}  # zone -> city, in order, each zone once
        notices: list[Update] = []
        for raw in raws:
            try:
                msg = orjson.loads(raw)
            except (orjson.JSONDecodeError, TypeError):
                log.warning("ignoring an update announcement that is not JSON")
                continue
            zone_id = msg.get("zone_id") if isinstance(msg, dict) else None
            zone = self._ctx.registry.zones.get(zone_id) if isinstance(zone_id, str) else None
            if zone is None or msg.get("kind") not in KINDS or zone.city_id not in self._subs:
                continue  # unknown zone (another registry), unknown kind, or nobody listens to that city
            if msg["kind"] == "live":
                live[zone.id] = zone.city_id
            else:
                body = orjson.dumps({"kind": msg["kind"], "zone_id": zone.id, "city_id": zone.city_id})
                notices.append(Update(msg["kind"], zone.id, body))
        if live:
            zone_ids = list(live)
            stored = await self._ctx.store.live(zone_ids)
            now = self._ctx.clock()
            for zone_id, obj in zip(zone_ids, stored, strict=True):
                view = self._ctx.view(self._ctx.registry.zones[zone_id], obj, now)
                self._fan_out(live[zone_id], Update("live", zone_id, orjson.dumps(view), _as_of_s(obj)))
        for notice in notices:
            self._fan_out(self._ctx.registry.zones[notice.zone_id or ""].city_id, notice)

    def _fan_out(self, city_id: str, update: Update) -> None:
        for sub in self._subs.get(city_id, ()):
            sub.offer(update)

    def _broadcast(self, update: Update) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.offer(update)


async def _snapshot(ctx: Context, hub: Hub, city: City, state: list[int | None], known: list[int | None] | None
                    ) -> AsyncIterator[bytes]:
    """One `live` event per zone whose `as_of` differs from `known` (every zone when `known` is None)."""
    stored = await hub.read_city(city)
    now = ctx.clock()
    for i, (zone, obj) in enumerate(zip(city.zones, stored, strict=True)):
        as_of = _as_of_s(obj)
        if known is not None and known[i] == as_of:
            continue
        state[i] = as_of
        yield frame("live", orjson.dumps(ctx.view(zone, obj, now)), event_id(state))


async def events(ctx: Context, hub: Hub, sub: Subscriber, city: City, last_event_id: str | None
                 ) -> AsyncIterator[bytes]:
    index = {z.id: i for i, z in enumerate(city.zones)}
    known = parse_event_id(last_event_id, len(city.zones))
    state: list[int | None] = list(known) if known is not None else [None] * len(city.zones)
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        async for chunk in _snapshot(ctx, hub, city, state, known):
            yield chunk
        yield b": snapshot sent\n\n"
        while True:
            try:
                update = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if update.kind == "resync":
                async for chunk in _snapshot(ctx, hub, city, state, list(state)):
                    yield chunk
            elif update.kind == "live" and update.zone_id in index:
                i = index[update.zone_id]
                old = state[i]
                if old is not None and (update.as_of_s is None or update.as_of_s < old):
                    continue  # read before the snapshot: the client already has something newer
                state[i] = update.as_of_s
                yield frame("live", update.data, event_id(state))
            else:
                yield frame(update.kind, update.data)
    except RedisError as exc:  # the answer has started: end the stream; EventSource reconnects and resumes
        ctx.metrics.redis_errors.inc()
        log.warning("stream of %s ended: store unreachable (%s)", city.id, exc)
    finally:
        hub.leave(sub)


def build_stream_router(ctx: Context, client: aioredis.Redis) -> APIRouter:
    router = APIRouter()
    hub = Hub(ctx, client)

    @router.get(
        "/v1/stream", tags=["live"], responses={200: {"content": {MEDIA_TYPE: {}},
                                                      "description": "an endless Server-Sent Events stream"},
                                                **problem_doc(404, 503)},
        summary="Server-Sent Events: a snapshot of every zone of a city, then each update, resumable",
        description=(
            "Event `live`: the live object of one zone (as `/v1/zones/{zone_id}/live` serves it). The snapshot "
            "sends one per zone, then one per update. Event `spending`: `{kind, zone_id, city_id}` when new "
            "spending figures are out (read `/v1/zones/{zone_id}/spending`). Reconnect with `Last-Event-ID` to "
            "get only the zones that changed. A comment line every 15 s keeps the connection open."),
        response_class=StreamingResponse,
    )
    async def stream(
        city_id: Annotated[str, Query(description="a city id from GET /v1/cities", examples=["mechelen"])],
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", include_in_schema=False)] = None,
    ) -> StreamingResponse:
        city = ctx.registry.city(city_id) if PATH_ID.fullmatch(city_id) else None
        if city is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, "there is no such city; GET /v1/cities lists the valid ids")
        sub = await hub.join(city.id)
        return StreamingResponse(
            events(ctx, hub, sub, city, last_event_id), media_type=MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router
