"""The footfall path: ingest (validate, reject, regroup by zone) and windows (count, close, publish)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson

import schemas
from agents.app import Topics
from agents.ingest import FootfallIngest
from agents.store import LiveStore
from agents.tables import partition_table, write_back
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.footfall import FootfallParser, IngestPolicy, Reading, Rejection
from streams.forecast import forecast
from streams.masking import MAX_TEXT, mask_text
from streams.noise import Noise, is_noise_key
from streams.overlay import Overlay
from streams.publication import PrivacyPolicy, Usual, live_object
from streams.registry import Registry
from streams.timegrid import format_ts
from streams.today import profile_record
from streams.usual import UsualModel
from streams.windows import Cell, WindowConfig, WindowEngine

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
HORIZON_MS = 2 * HOUR_MS  # the forecast's reach
# A replay of weeks closes its windows within minutes, and their states (with every reading's id) would stay until
# the hourly purge: 8 weeks of demo history took the worker to 900 MB.
PURGE_AFTER_WINDOWS = 20_000
PROFILE_RETRY_MS = 30_000  # a zone's peak and day profile are made again at most this often while history arrives
RETENTION_MS = 48 * HOUR_MS  # final windows kept for late dedupe: a gateway may resend a day
PART_BYTES = 1024 * 1024  # zone-topic bytes applied as one unit (`parts`): about 25,000 readings
MAX_REJECTION_BYTES = 64 * 1024  # far below the producer's 1 MB request limit


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def is_history(cell: Cell, msg_ts: int) -> bool:
    """Closed more than an hour before the message that closed it: a replay's past, published without forecast
    and score (see `FootfallPath.usual_for`)."""
    return cell.end_ms < msg_ts - HOUR_MS


def parts(events: Sequence[faust.EventT[Any]], max_bytes: int) -> Iterator[list[faust.EventT[Any]]]:
    """A take cut into consecutive parts of at most `max_bytes` of message values (a part holds at least one).

    With a backlog on the zone topic a take of a thousand messages can hold a quarter of a million readings and
    close ten thousand windows at once; applied whole, its window states and published objects took the worker
    past 300 MB. Parts are applied one after the other, as smaller takes would be."""
    part: list[faust.EventT[Any]] = []
    size = 0
    for event in events:
        n = len(event.value or b"")
        if part and size + n > max_bytes:
            yield part
            part, size = [], 0
        part.append(event)
        size += n
    if part:
        yield part


def takes(stream: faust.StreamT[bytes]) -> faust.Stream[bytes]:
    """The stream as Faust's class, whose `take_events` the StreamT protocol does not declare."""
    return cast(faust.Stream[bytes], stream)


def encode_readings(source: str, readings: list[Reading], input_partition: int | None = None) -> bytes:
    """A zone's part of an input message; `p` is the input partition it was read from (see `ticks`)."""
    return orjson.dumps({"s": source, "p": input_partition,
                         "r": [[r.sensor_id, r.start_ms, r.dur_ms, r.visitors] for r in readings]})


def decode_readings(zone_id: str, doc: dict[str, Any]) -> list[Reading]:
    return [Reading(s, zone_id, start, dur, v) for s, start, dur, v in doc["r"]]


def rejection_record(rej: Rejection, msg: Any, now_ms: int) -> bytes:
    """The record for ingest.rejected.v1 of input message `msg` (a Faust message or an aiokafka record: topic,
    partition, offset). A payload that would make it larger than `MAX_REJECTION_BYTES` (a message of 100,000
    unknown keys, masked, is still megabytes) is cut to the head of its JSON text, so the record always fits a
    Kafka message: a rejection too big to send would crash the ingest."""
    record = {
        "reason": rej.reason, "detail": rej.detail, "topic": msg.topic, "partition": msg.partition,
        "offset": msg.offset, "received_at": format_ts(now_ms, "UTC"), "payload": rej.payload,
    }
    out = orjson.dumps(record)
    if len(out) > MAX_REJECTION_BYTES:
        text = orjson.dumps(rej.payload)
        record["payload"] = text[:MAX_TEXT].decode("utf-8", "ignore")
        record["detail"] = f"{rej.detail} (payload of {len(text)} bytes cut to its first {MAX_TEXT})"
        out = orjson.dumps(record)
    return out


async def send_rejection(topic: faust.TopicT, metrics: WorkerMetrics, rej: Rejection, msg: Any,
                         now_ms: int) -> Awaitable[Any]:
    """Count a rejection of input message `msg` and send its record to `ingest.rejected.v1`, keyed by the input
    key, masked: the key is whatever the sender chose, so it is masked like the payload (P1). Returns the send's
    future (the ingest awaits it before it commits)."""
    metrics.rejected.labels(rej.reason).inc()
    key = mask_text(bytes(msg.key or b"").decode("utf-8", "replace")[:128]).encode()
    return await topic.send(key=key, value=rejection_record(rej, msg, now_ms), force=True)


@dataclass
class Take:
    """What a take of zone-topic messages produced: the overlay per partition, the windows it closed (in log
    order, with their published objects), and per zone whose live object changed, its partition and the log
    time of the message that changed it last."""

    states: dict[int, Overlay] = field(default_factory=dict)
    windows: list[tuple[Cell, dict[str, Any]]] = field(default_factory=list)
    lives: dict[str, tuple[int, int]] = field(default_factory=dict)
    histories: dict[str, int] = field(default_factory=dict)  # zone → partition, for zones with past windows closed
    drawn: bool = False  # DP noise drawn: its record must be in the changelog before the windows are published


class FootfallPath:
    """Wires the pure core into the Kafka edge: the input read by a plain consumer (`FootfallIngest`), the windows
    agent and a clock-tick timer on a Faust app."""

    def __init__(self, app: faust.App, topics: Topics, settings: Settings, registry: Registry,
                 store: LiveStore, metrics: WorkerMetrics, clock: Callable[[], int] = wall_ms) -> None:
        self.app, self.topics, self.registry, self.store, self.metrics = app, topics, registry, store, metrics
        self.clock = clock
        self.partitions = settings.partitions
        self.tick_s = settings.tick_s
        self.parser = FootfallParser(schemas.load("footfall.counts.v1"), registry, IngestPolicy(
            max_future_ms=settings.max_future_s * 1000, max_rate_per_s=settings.max_rate_per_s))
        self.usual = UsualModel(registry, lambda zone, day: self.noise.history(  # P10: DP zones' noisy history
            self.state, zone, day, self.engine.history(self.state, zone, day)),
                                window_ms=settings.window_s * 1000, weeks=settings.baseline_weeks,
                                min_sensors=settings.min_sensors, k_min=settings.k_min)
        self.engine = WindowEngine(WindowConfig(
            window_ms=settings.window_s * 1000, grace_ms=settings.grace_s * 1000, idle_ms=settings.idle_s * 1000,
            live_ms=settings.live_s * 1000, retention_ms=RETENTION_MS), self.usual.calendar)
        self.privacy = PrivacyPolicy(k_min=settings.k_min, min_sensors=settings.min_sensors)
        self.noise = Noise.for_registry(registry, self.usual.calendar, settings.min_sensors)  # P10, DP cities
        self.table = partition_table(app, "zone-windows", settings.partitions)
        self.state: MutableMapping[str, Any] = self.table  # what the engine reads: a take's overlay while it runs
        self.batch_events, self.batch_wait_s = settings.batch_events, settings.batch_wait_ms / 1000
        self.closed_since_purge: dict[int, int] = defaultdict(int)
        self.owned: set[Any] = set()  # the consumer's assignment at the last take
        self.profile_tried: dict[str, int] = {}  # zone → process clock (ms) of its last profile retry
        self.ingest = FootfallIngest(
            app, settings, topics.footfall.get_topic_name(), topics.byzone.get_topic_name(),
            lambda raw, now: self.parser.parse(raw, now), encode_readings,
            lambda rej, record, now: send_rejection(topics.rejected, metrics, rej, record, now), metrics, clock)
        app.service(cast(Any, self.ingest.service()))  # started after table recovery, like the agents
        app.on_before_shutdown.connect(self.stop_ingest)  # type: ignore[arg-type]  # as in agents.flushing
        app.agent(topics.byzone, name="drukte.footfall.windows")(self.windows)
        app.timer(settings.tick_s, name="drukte.footfall.ticks")(self.ticks)

    async def windows(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """Zone-topic messages in takes, applied in parts of at most `PART_BYTES` (`apply`)."""
        async for events in takes(stream).take_events(self.batch_events, within=self.batch_wait_s):
            for part in parts(events, PART_BYTES):
                await self.apply(part)
            yield None

    async def apply(self, events: list[faust.EventT[Any]]) -> None:
        """State changes gather in an overlay per partition, every message is applied and closes its windows in
        log order exactly as alone (so a crash replays to the same windows), and the part ends with one round of
        topic sends, one Redis pipeline and one changelog record per key."""
        t0 = time.perf_counter()
        by_partition: dict[int, list[faust.EventT[bytes]]] = defaultdict(list)
        owned = self.app.consumer.assignment()
        if owned != self.owned:  # partitions came or went: their history is another worker's or new to us
            self.owned = owned
            self.usual.forget()
        for event in events:
            # a take filled before a rebalance may hold events of partitions now another worker's: their state
            # is no longer ours to write (the new owner reads them again from the last commit)
            if event.message.tp in owned:
                by_partition[event.message.partition].append(event)
        take = Take()
        for partition, part_events in by_partition.items():
            take.states[partition] = state = Overlay(self.table)
            with self.reading(state):
                for event in part_events:
                    self.step(take, state, partition, event)
        changes = {partition: state.changes() for partition, state in take.states.items()}
        if take.drawn:  # the draws reach the changelog before anything is published: a republish reads them
            for partition, (writes, _) in changes.items():
                write_back(self.table, partition, {k: writes.pop(k) for k in list(writes) if is_noise_key(k)}, [])
            await self.app.producer.flush()
        if take.windows:
            await self.publish(take)
        for partition, (writes, deletes) in changes.items():
            write_back(self.table, partition, self.engine.settle_order(writes), deletes)
            wm = self.engine.watermark(self.table, partition)
            self.metrics.watermark_lag.labels(str(partition)).set(max(0, self.clock() - wm) / 1000)
        self.metrics.batch_seconds.labels("windows").observe(time.perf_counter() - t0)

    @contextmanager
    def reading(self, state: Overlay) -> Iterator[Overlay]:
        """Make `state` what the usual model's history lookups read (a take's overlay), then the table again."""
        self.state = state
        try:
            yield state
        finally:
            self.state = self.table

    def step(self, take: Take, state: Overlay, partition: int, event: faust.EventT[bytes]) -> None:
        """One zone-topic message: count it or tick, then close what is due, in the overlay."""
        msg = event.message
        ts = int(msg.timestamp * 1000)
        doc = orjson.loads(event.value)
        if "tick" in doc:
            self.engine.tick(state, partition, ts, doc.get("in"))
            if ts // HOUR_MS != (ts - 1000 * self.tick_s) // HOUR_MS:
                self.purge(state, partition)
        elif "h" in doc:  # published windows read back by `drukte rebuild-baselines`: history only
            filled = self.engine.restore(state, cast(bytes, event.key).decode(), doc["h"])
            self.metrics.history_restored.inc(filled)
            if filled:
                self.usual.forget()
        else:
            zone_id = cast(bytes, event.key).decode()
            # a watermark per source and zone: a gateway's batch spans many zones, and each zone's part
            # arrives as its own message, so one zone's part must not make another zone's part late
            res = self.engine.ingest(state, partition, f"{doc['s']}|{zone_id}", ts,
                                     decode_readings(zone_id, doc), doc.get("p"))
            self.metrics.readings_in.inc(res.accepted)
            self.metrics.duplicates.inc(res.duplicates)
            self.metrics.late.inc(res.late)
            self.metrics.late_untracked.inc(res.untracked)
            for zone, day in res.histories:  # late readings went into a past day's history
                self.usual.changed(zone, day)
        due = self.engine.due(state, partition, ts)
        # Day by day: a band reads the days before its window's, so a message that closes several days at once
        # (a replay's batch) finalizes each day before the next day's windows are made, as if they had come
        # one message at a time.
        days: dict[str, list[Cell]] = defaultdict(list)
        for cell in due:
            days[self.noise.day(cell.zone_id, cell.start_ms)].append(cell)  # the local date
        for cells in days.values():
            published, drawn = self.noise.publishable(state, cells)  # P10: noisy counts, drawn once per window
            take.drawn = take.drawn or drawn
            zones = {c.zone_id for c in cells}
            newest = {z: self.engine.newest_start(state, z, published) for z in zones}
            recents: dict[str, list[Cell]] = {}  # made only for zones with a window young enough for a forecast
            for cell in published:
                if not is_history(cell, ts) and cell.zone_id not in recents:
                    recents[cell.zone_id] = self.noise.recall(
                        state, self.engine.recent_with(state, cell.zone_id, published))
                take.windows.append((cell, self.window_object(cell, recents.get(cell.zone_id, []), ts)))
            for zone_id, local_date in self.engine.finalize(state, partition, cells):
                self.usual.changed(zone_id, local_date)  # the next day's bands read this one
            for zone_id in zones:
                if any(c.zone_id == zone_id and c.start_ms == newest[zone_id] for c in cells):
                    take.lives[zone_id] = (partition, ts)  # its live object changes (not only a replay's past)
                else:
                    take.histories[zone_id] = partition  # only its past: the usual may know more now
        self.closed_since_purge[partition] += len(due)
        if self.closed_since_purge[partition] >= PURGE_AFTER_WINDOWS:
            self.purge(state, partition)

    def purge(self, state: Overlay, partition: int) -> None:
        """Once an hour, and after every `PURGE_AFTER_WINDOWS` closed: forget final windows past retention (late
        dedupe needs them only that long)."""
        self.closed_since_purge[partition] = 0
        zones = set(self.engine.partition(state, partition).get("zones", []))
        wm = self.engine.watermark(state, partition)
        for key in self.engine.expired(state, zones, wm):
            del state[key]

    def profile(self, zone_id: str, newest_ms: int) -> dict[str, Any]:
        """The zone's usual band for every window of the local day of its newest window (the `/today` chart)."""
        tz = self.registry.city_of_zone[zone_id].timezone
        return profile_record(zone_id, tz, self.usual.day_profile(zone_id, newest_ms),
                              self.usual.peak(zone_id, newest_ms))

    def usual_for(self, cells: list[Cell], recent: list[Cell], msg_ts: int) -> Usual:
        """Bands for `cells`, the weekly peak, and the 2-hour forecast after the newest of them.

        Windows closed more than an hour before the message that closed them are history (a replay): they get
        no forecast and no score, which nobody would read and which would make replays slow. The decision uses the log's
        timestamp, so a republish after a crash yields the same bytes.
        """
        zone_id, newest = cells[-1].zone_id, cells[-1]
        bands = [self.usual.band(zone_id, c.start_ms) for c in cells]
        if is_history(newest, msg_ts):
            return Usual(bands, None, [])
        peak = self.usual.peak(zone_id, newest.start_ms)
        window_ms = self.engine.cfg.window_ms
        # published windows only (P6): a suppressed window's exact count would move the forecast's index, and
        # a lone walker would show as +1 there (the auditor's twin-zone test caught it)
        observed = [(c.start_ms, float(c.visitors)) for c in recent
                    if c.start_ms <= newest.start_ms and c.sensors >= self.privacy.min_sensors
                    and c.visitors >= self.privacy.k_min]
        ahead = forecast(observed, usual=lambda s: self.usual.p50(zone_id, s),
                         last_week=lambda s: self.usual.last_week(zone_id, s), now_end_ms=newest.end_ms,
                         window_ms=window_ms, horizon_windows=HORIZON_MS // window_ms)
        return Usual(bands, peak, [(s, v, self.usual.p50(zone_id, s)) for s, v in ahead])

    def window_object(self, cell: Cell, recent: list[Cell], msg_ts: int) -> dict[str, Any]:
        """The published window, made when it closes (before it is final): the same message closes it again
        after a crash, with the same state, so a republish carries the same bytes."""
        cfg = self.engine.cfg
        zone, city = self.registry.zones[cell.zone_id], self.registry.city_of_zone[cell.zone_id]
        return live_object(zone, city, [cell], self.privacy, window_ms=cfg.window_ms, grace_ms=cfg.grace_ms,
                           usual=self.usual_for([cell], recent, msg_ts))

    async def publish(self, take: Take) -> None:
        """Topic first (awaited), then Redis; the caller then writes the take's state, which marks them final:
        a crash in between republishes the same windows instead of losing one. Live objects and day profiles
        are made once per zone and take, from the state after it."""
        cfg = self.engine.cfg
        futures = []
        for cell, obj in take.windows:
            public = {k: v for k, v in obj.items() if k != "as_of_ms"}  # the contract object, nothing internal
            futures.append(await self.topics.busyness.send(
                key=cell.zone_id.encode(), value=orjson.dumps(public), force=True))
            self.metrics.windows_published.labels(cell.zone_id).inc()
            if obj["privacy"]["reason"]:
                self.metrics.windows_suppressed.labels(obj["privacy"]["reason"]).inc()
        for fut in futures:
            await fut
        lives: list[dict[str, Any]] = []
        profiles: list[dict[str, Any]] = []
        now = self.clock()
        for zone_id, partition in sorted(take.histories.items()):
            # history arrived under a day profile already made (a replay, the demo's weeks): it is made again now
            # rather than at the zone's next live window, so today's chart fills as soon as the history is in; at
            # most every PROFILE_RETRY_MS per zone (a scan takes ~30 ms), since a replay closes past windows in
            # every take
            if now - self.profile_tried.get(zone_id, 0) < PROFILE_RETRY_MS or not self.usual.outdated(zone_id):
                continue
            self.profile_tried[zone_id] = now
            if zone_id not in take.lives:
                with self.reading(take.states[partition]) as state:
                    recent = self.engine.recent(state, zone_id)
                    if recent:
                        profiles.append(self.profile(zone_id, recent[-1].start_ms))
        for zone_id, (partition, msg_ts) in sorted(take.lives.items()):
            with self.reading(take.states[partition]) as state:
                recent = self.noise.recall(state, self.engine.recent(state, zone_id))
                span = [c for c in recent if c.start_ms >= recent[-1].end_ms - cfg.live_ms]
                zone, city = self.registry.zones[zone_id], self.registry.city_of_zone[zone_id]
                lives.append(live_object(zone, city, span, self.privacy, window_ms=cfg.window_ms,
                                         grace_ms=cfg.grace_ms, usual=self.usual_for(span, recent, msg_ts)))
                profiles.append(self.profile(zone_id, recent[-1].start_ms))
        await self.store.publish([obj for _, obj in take.windows], lives, profiles)
        now = self.clock()
        for cell, _ in take.windows:
            delay_ms = now - cell.end_ms - cfg.grace_ms
            if delay_ms < HOUR_MS:  # replays of history would drown the live latency
                self.metrics.close_to_store.observe(max(0, delay_ms) / 1000)

    async def stop_ingest(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        """Before Faust flushes its producer for the last time: the ingest's last batch is then sent too."""
        await self.ingest.stop()

    async def ticks(self) -> None:
        """Clock ticks to every partition of the zone topic: they carry the log's time to idle zones, and the
        input partitions this worker vouches for (`caught_up`); only their idle sources move on."""
        await self.store.heartbeat(self.clock())
        tick = orjson.dumps({"tick": 1, "in": await self.ingest.caught_up()})
        for p in range(self.partitions):
            await self.topics.byzone.send(key=None, value=tick, partition=p, force=True)
