"""The devices path: ingest (validate, count distinct devices in memory under per-zone-window keys, forget)
and zone windows (integer counts per zone window, closed on clock ticks, published with P6/P7 as ranges).

Nothing keyed by a device leaves `ingest`: the zone topic, the table's changelog, Redis, logs and metrics see
integer counts, scanner ids and window starts only (PRIVACY.md P1–P3; `streams.devices`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import faust
import orjson

import schemas
from agents.app import Topics
from agents.backlog import Backlog
from agents.footfall import send_rejection, wall_ms
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.devices import DetectionParser, apply_record, devices_object, empty_cell, is_due, zone_records
from streams.pseudonyms import DistinctCounter
from streams.publication import PrivacyPolicy
from streams.registry import Registry
from streams.topics import DEVICES

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
RETENTION_MS = 2 * HOUR_MS  # final windows kept to refuse late counts; ingest refuses detections older than 1 h


class DevicesStore(Protocol):
    """What the devices path needs from the store (`agents.store.RedisStore` has it)."""

    async def publish_devices(self, objects: list[dict[str, Any]]) -> None: ...


class DevicesPath:
    """Wires `streams.devices` and `streams.pseudonyms` into two agents and a timer."""

    def __init__(self, app: faust.App, topics: Topics, settings: Settings, registry: Registry,
                 store: DevicesStore, metrics: WorkerMetrics, clock: Callable[[], int] = wall_ms) -> None:
        self.app, self.topics, self.registry, self.store, self.metrics = app, topics, registry, store, metrics
        self.clock = clock
        self.window_ms = settings.window_s * 1000
        self.grace_ms = settings.grace_s * 1000
        self.partitions = settings.partitions
        self.tick_ms = int(settings.tick_s * 1000)
        self.parser = DetectionParser(schemas.load(DEVICES.name), registry, max_future_ms=settings.max_future_s * 1000,
                                      max_age_ms=DEVICES.retention_ms or HOUR_MS)
        self.counter = DistinctCounter(secrets.token_bytes)  # process memory only (P2, P3)
        # which process counted: sets cannot be merged across processes, so their counts are added
        self.contributor = secrets.token_hex(4)
        self.privacy = PrivacyPolicy(k_min=settings.k_min, min_sensors=settings.min_sensors)
        self.backlog = Backlog(topics.devices.get_topic_name())
        # per input partition: the newest detection time read there, and when (wall clock); the slowest recent
        # partition is the sets' clock, so a backlog on one partition keeps its windows' sets while it is read
        self.data_ms: dict[Any, tuple[int, int]] = {}
        self.vouched: dict[int, dict[int, int]] = {}  # zone-topic partition → input partition → newest tick
        self.byzone = app.topic(f"{settings.app_id}-devices-byzone", partitions=settings.partitions, internal=True,
                                key_serializer="raw", value_serializer="raw")
        self.table = app.Table("zone-devices", default=None, partitions=settings.partitions)
        app.agent(topics.devices, name="drukte.devices.ingest")(self.ingest)
        app.agent(self.byzone, name="drukte.devices.windows")(self.windows)
        app.timer(settings.tick_s, name="drukte.devices.ticks")(self.ticks)

    async def ingest(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        topic = self.topics.devices.get_topic_name()
        async for event in stream.events():
            t0 = time.perf_counter()
            now = self.clock()
            self.backlog.processed(event.message.tp, event.message.offset)
            parsed = self.parser.parse(event.value, now)
            self.metrics.messages_in.labels(topic).inc()
            for rej in parsed.rejections:
                await send_rejection(self.topics.rejected, self.metrics, rej, event.message, now)
            self.metrics.detections_in.inc(len(parsed.detections))
            if parsed.detections:
                newest = max(min(d.ts_ms, now) for d in parsed.detections)
                self.data_ms[event.message.tp] = (max(newest, self.data_ms.get(event.message.tp, (0, 0))[0]), now)
                records = zone_records(parsed, self.counter, self.window_ms, now)
                for (zone_id, _start), rec in sorted(records.items()):
                    rec |= {"c": self.contributor, "p": event.message.partition}
                    await self.byzone.send(key=zone_id.encode(), value=orjson.dumps(rec), force=True)
            del parsed  # the addresses: counted, and gone with this batch
            self.forget(now)
            self.metrics.batch_seconds.labels("devices").observe(time.perf_counter() - t0)
            yield None

    def forget(self, now: int, caught_up: bool = False) -> None:
        """P3: drop sets and keys when nothing was added to them for a window length by the wall clock (the data
        stopped), and, once every input partition this worker owns is read to the end (`caught_up`), when the
        data's own clock has passed their window's end + grace on every partition that delivered detections
        within a window length. Partitions are read in no fixed order: while a backlog is read, one partition's
        clock may be far ahead of another's, whose detections still belong in the open sets."""
        idle = now - max(self.window_ms, self.grace_ms)
        clocks = [ts for ts, seen in self.data_ms.values() if seen >= idle]
        closed = min(clocks) - self.window_ms - self.grace_ms + 1 if clocks and caught_up else 0
        self.counter.forget(closed, idle)
        self.metrics.device_sets_open.set(self.counter.open_windows())

    def _part(self, partition: int) -> dict[str, Any]:
        state: dict[str, Any] | None = self.table.get(f"p|{partition}")
        return state if state is not None else {"open": [], "final": []}

    async def windows(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            msg = event.message
            doc = orjson.loads(event.value)
            if "tick" not in doc:
                self.apply(bytes(event.key).decode(), msg.partition, doc)
            else:
                tick_ms = int(msg.timestamp * 1000)
                seen = self.vouched.setdefault(msg.partition, {})
                seen.update({p: max(seen.get(p, 0), tick_ms) for p in doc.get("in", [])})
                await self.close_due(msg.partition, tick_ms)
            yield None

    def apply(self, zone_id: str, partition: int, rec: dict[str, Any]) -> None:
        key = f"d|{zone_id}|{int(rec['w'])}"
        cell: dict[str, Any] = self.table.get(key) or empty_cell()
        if cell["f"]:
            self.metrics.device_late.inc()  # P9: a published window gets no second version
            return
        apply_record(cell, str(rec["c"]), rec, rec.get("p"))
        self.table[key] = cell
        part = self._part(partition)
        if key not in part["open"]:
            self.table[f"p|{partition}"] = {**part, "open": [*part["open"], key]}

    async def close_due(self, partition: int, tick_ms: int) -> None:
        """Publish every open window of the partition that is over (`streams.devices.is_due`): topic first
        (awaited), then the store, then final; a crash in between republishes the same bytes."""
        part = self._part(partition)
        seen = self.vouched.get(partition, {})

        def start(key: str) -> int:
            return int(key.rsplit("|", 1)[1])

        due = sorted((k for k in part["open"] if is_due(self.table[k], start(k), self.window_ms, self.grace_ms,
                                                        tick_ms, seen)), key=start)
        newest: dict[str, dict[str, Any]] = {}
        for key in due:
            zone_id = key.split("|")[1]
            zone, city = self.registry.zones[zone_id], self.registry.city_of_zone[zone_id]
            obj = devices_object(zone, city, start(key), self.window_ms, self.table[key], self.privacy)
            public = {k: v for k, v in obj.items() if k != "as_of_ms"}
            await (await self.topics.devices_zone.send(key=zone_id.encode(), value=orjson.dumps(public), force=True))
            self.metrics.device_windows.labels(obj["privacy"]["reason"] or "published").inc()
            if self.table.get(f"l|{zone_id}", -1) <= start(key):
                newest[zone_id] = obj
        await self.store.publish_devices(list(newest.values()))
        for zone_id, obj in newest.items():
            self.table[f"l|{zone_id}"] = obj["as_of_ms"] - self.window_ms
        for key in due:
            self.table[key] = {**self.table[key], "f": True}
        hourly = tick_ms // HOUR_MS != (tick_ms - self.tick_ms) // HOUR_MS
        if due or hourly:  # a tick that changes nothing writes nothing to the changelog
            final = [*part.get("final", []), *due]
            if hourly:
                for key in [k for k in final if start(k) < tick_ms - RETENTION_MS]:
                    self.table.pop(key, None)
                    final.remove(key)
            self.table[f"p|{partition}"] = {"open": [k for k in part["open"] if k not in due], "final": final}

    async def ticks(self) -> None:
        """Clock ticks to every partition of the zone topic, vouching for the input partitions this worker has
        read to the end; they also drop the sets of windows gone idle (P3) when no detection comes."""
        ready, everything = await self.backlog.caught_up(self.app.consumer)
        self.forget(self.clock(), caught_up=everything)
        tick = orjson.dumps({"tick": 1, "in": ready})
        for p in range(self.partitions):
            await self.byzone.send(key=None, value=tick, partition=p, force=True)
