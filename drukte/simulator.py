"""`drukte simulate`: the simulated city gateways, producing footfall batches to Kafka (model: streams.simulation),
payments (streams.paysim) and, for zones with WiFi/BLE scanners in the registry, device detections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from drukte.errors import DrukteError
from drukte.groupbacklog import GroupBacklog
from drukte.kafka import bootstrap, ensure_topics, security_options
from drukte.settings import Settings
from streams import paysim, simulation
from streams.registry import City, Registry
from streams.timegrid import format_ts
from streams.topics import DEVICES, FOOTFALL, PAYMENTS

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DEFAULT_SEED = 2026  # fixed, so a restarted simulator re-sends identical batches (deduplicated downstream)
PROGRESS_EVERY_S = 10.0
MAX_MINUTES_PER_STEP = 60  # per city and loop turn while catching up: keeps stop and progress responsive
MAX_WAIT_S = 1.0
HISTORY_BACKLOG = 100  # records the worker group may still have to read before the next day of history goes
MINUTE_MS = simulation.MINUTE_MS
SEND_LAG_MS = simulation.SEND_DELAY_MS  # a minute is sent 3 s after it ends
Pace = Callable[[], Awaitable[None]]


def _cities(registry: Registry, city: str | None) -> list[City]:
    if city is None:
        return list(registry.cities)
    return [simulation.city_of(registry, city)]


async def run_simulator(
    settings: Settings,
    registry: Registry,
    *,
    city: str | None,
    speed: float,
    days: float,
    backfill_min: int = 30,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.time,
    seed: int = DEFAULT_SEED,
    outage_rate: float = simulation.OUTAGE_RATE,
    duplicate_rate: float = simulation.DUPLICATE_RATE,
    history_days: float = 0.0,
    history_pace_s: float | None = None,
) -> int:
    """Run one simulated gateway per city (or only `city`) until `stop` is set; return the batches sent.

    Time, with `t0 = clock()` at start and `origin = t0 - days`:

    1. Backfill: the `backfill_min` whole minutes before `origin` are sent at once, as a gateway sends what it
       buffered, so the first windows close right away.
    2. History (only with `days` > 0): simulated time runs from `origin` at `speed` simulated seconds per real
       second (`inf` = as fast as the broker takes it), one batch per city and simulated minute.
    3. Live: simulated time never overtakes the wall clock (the worker rejects readings from the future), so
       once history has caught up, or from the start when `days` is 0, each minute is sent 3 s after it ends.
       `speed` then no longer matters; with `speed` < 1 and `days` > 0 history never catches up.

    With `history_days` > 0, a second source per city (`history-<city>`) meanwhile sends the quarter-hour
    counts of the `history_days` days before the backfill, so baselines fill while the live gateways run: it
    has its own watermark, so it neither closes nor waits for live windows. This weekday's days go first at
    full speed; each other day follows once the worker group has read the backlog (`history_pace_s` None), or
    `history_pace_s` seconds after the previous one.

    Batches are JSON (CONTRACT.md §3) on `footfall.counts.v1`, keyed by `source`. A fixed `seed` makes a
    restart re-send identical batches, which the worker deduplicates. Logs one progress line about every 10 s.
    Unknown `city` → `DrukteError` listing the valid ids.
    """
    cities = _cities(registry, city)
    if not cities:
        msg = "the registry has no cities to simulate"
        raise DrukteError(msg)
    if not speed > 0:
        msg = f"--speed must be above 0, got {speed}"
        raise DrukteError(msg)
    if days < 0 or backfill_min < 0:
        msg = f"--days and the backfill must not be negative, got days={days}, backfill_min={backfill_min}"
        raise DrukteError(msg)
    if settings.kafka_url is None:
        msg = "DRUKTE_KAFKA_URL is not set: point it at Kafka, or run `drukte up` for an embedded broker"
        raise DrukteError(msg)
    stop = stop if stop is not None else asyncio.Event()
    security = security_options(settings)
    scanners = any(z.device_sensors for c in cities for z in c.zones)  # WiFi/BLE detections only where scanned
    await ensure_topics(settings.kafka_url, [FOOTFALL, PAYMENTS, *([DEVICES] if scanners else [])], settings.partitions,
                        replication=settings.replication_factor, options=security)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(settings.kafka_url), client_id="drukte-simulator",
                                acks="all", linger_ms=20, **security)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        msg = f"the simulator could not connect to Kafka at {settings.kafka_url}: {exc}"
        raise DrukteError(msg) from exc
    sim = _Gateways(cities, registry, producer, seed, outage_rate, duplicate_rate)
    t0 = clock()
    origin = t0 - days * 86400.0
    next_min = math.floor(origin * 1000) // MINUTE_MS - backfill_min  # first epoch minute to send
    last_log = asyncio.get_running_loop().time()
    log.info("simulator: %d cities, from %s at speed %g", len(cities),
             format_ts(next_min * MINUTE_MS, cities[0].timezone), speed)
    history = None
    if history_days > 0:
        history_end = next_min * MINUTE_MS
        chunks = _history_chunks(history_end - round(history_days * 86_400_000), history_end)
        # this weekday's days before the backfill: in every partition the worker reads them first, so the
        # backfill's windows, the first it publishes, already carry today's usual band, index and forecast
        await _send_history(cities, registry, producer, seed, [c for c in chunks if c[2]], None)
        history = asyncio.create_task(_send_older_history(
            cities, registry, producer, seed, [c for c in chunks if not c[2]], settings, settings.kafka_url,
            history_pace_s, stop))
    try:
        while not stop.is_set():
            real = clock()
            upto_ms = _simulated_ms(real, t0, origin, speed)
            due_end = min(upto_ms // MINUTE_MS, next_min + MAX_MINUTES_PER_STEP)  # minutes ending by upto_ms
            if due_end > next_min:
                await sim.send(next_min * MINUTE_MS, due_end * MINUTE_MS)
                next_min = due_end
            else:
                wait = _due_in_s((next_min + 1) * MINUTE_MS, real, t0, origin, speed)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(max(wait, 0.01), MAX_WAIT_S))
            now_mono = asyncio.get_running_loop().time()
            if now_mono - last_log >= PROGRESS_EVERY_S:
                last_log = now_mono
                behind_h = (real * 1000 - SEND_LAG_MS - next_min * MINUTE_MS) / 3_600_000
                mode = "live" if behind_h < 1 / 30 else f"catching up, {behind_h:.1f} h behind"
                log.info("simulator: %d batches sent, simulated time %s (%s)", sim.sent,
                         format_ts(next_min * MINUTE_MS, cities[0].timezone), mode)
    finally:
        if history is not None:
            history.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await history
        await producer.stop()
    log.info("simulator: stopped after %d batches", sim.sent)
    return sim.sent



def history_order(start_ms: int, end_ms: int, day_ms: int = 86_400_000) -> list[tuple[int, int, bool]]:
    """Day chunks `(start, end, urgent)` of `[start_ms, end_ms)`, in the order the demo sends them.

    Urgent first, newest first: the chunks 7, 14, … days before the end, which hold this time of day on this
    weekday and the hours after it. Today's usual band, index, score and 2-hour forecast need only those, so
    they are filled once these are read. The other days follow, newest first, paced."""
    chunks = []
    t = start_ms
    while t < end_ms:
        chunks.append((t, min(t + day_ms, end_ms)))
        t += day_ms
    week = 7 * day_ms
    urgent = [c for c in reversed(chunks) if (end_ms - c[0]) % week == 0]
    return [(a, b, True) for a, b in urgent] + [(a, b, False) for a, b in reversed(chunks) if (a, b) not in urgent]


async def _send_older_history(cities: list[City], registry: Registry, producer: Any, seed: int,
                              chunks: list[tuple[int, int, bool]], settings: Settings, kafka_url: str,
                              pace_s: float | None, stop: asyncio.Event) -> None:
    """The days that are not urgent, each after the worker group's backlog drained (`pace_s` None: one
    `GroupBacklog` client for all of them), or `pace_s` seconds after the previous one."""
    if pace_s is not None:
        await _send_history(cities, registry, producer, seed, chunks, lambda: asyncio.sleep(pace_s))
        return
    # the worker's footfall ingest reads the input in a group of its own and hands readings on to its zone
    # topic, where the windows (in the worker's Faust group) take them: a backlog there holds live back too
    group = GroupBacklog(bootstrap(kafka_url), {
        settings.ingest_group: [FOOTFALL.name],
        settings.app_id: [PAYMENTS.name, settings.zone_topic]}, **security_options(settings))
    await group.start()
    try:
        await _send_history(cities, registry, producer, seed, chunks, lambda: group.drained(HISTORY_BACKLOG, stop))
    finally:
        await group.stop()


def _history_chunks(start_ms: int, end_ms: int) -> list[tuple[int, int, bool]]:
    """`history_order` of whole quarter-hours only, so consecutive day chunks leave no quarter-hour out."""
    step = simulation.HISTORY_STEP_MS
    return history_order(start_ms - start_ms % step, end_ms - end_ms % step)


async def _send_history(cities: list[City], registry: Registry, producer: Any, seed: int,
                        chunks: list[tuple[int, int, bool]], pace: Pace | None) -> None:
    """Past quarter-hours of the day `chunks` (`_history_chunks`), a day for every city at a time, `pace()`
    after each one (None: as fast as the broker takes them).

    History and live share the worker's partitions, and a history backlog holds the live windows back behind
    it (a real replay of years should run before going live, or on its own worker group): so only the urgent
    days go at once, and the others as the worker reads them. Each day is a source of its own
    (`history-<city>-<date>`): days come newest first, and within one source a day older than the last would be
    late (history only, never published, P9).
    """
    sent = 0
    for t, upto, urgent in chunks:
        pending = []
        for city in cities:
            source = f"{simulation.history_source(city.id)}-{format_ts(t, 'UTC')[:10].replace('-', '')}"
            for batch in simulation.history_batches(registry, city.id, t, upto, seed, source=source):
                pending.append(await producer.send(FOOTFALL.name, value=orjson.dumps(batch),
                                                   key=batch["source"].encode()))
            # the acquirer's export comes in whole hours: chunk edges floored to the hour, so none is left out
            for batch in paysim.history_payments(registry, city.id, t - t % HOUR_MS, upto - upto % HOUR_MS, seed):
                pending.append(await producer.send(PAYMENTS.name, value=orjson.dumps(batch),
                                                   key=batch["source"].encode()))
        await asyncio.gather(*pending)
        sent += len(pending)
        log.info("simulator: history of %s sent (%d batches%s)", format_ts(t, cities[0].timezone)[:10], sent,
                 ", for today's bands" if urgent else "")
        if pace is not None:
            await pace()
    log.info("simulator: history %s, %d batches", "of this weekday sent" if pace is None else "complete", sent)


def _simulated_ms(real: float, t0: float, origin: float, speed: float) -> int:
    """Simulated now in epoch ms: `origin` advancing at `speed`, capped at the wall clock minus the send lag."""
    live = real * 1000 - SEND_LAG_MS
    if math.isinf(speed):
        return math.floor(live)
    return math.floor(min(live, (origin + speed * (real - t0)) * 1000))


def _due_in_s(end_ms: int, real: float, t0: float, origin: float, speed: float) -> float:
    """Real seconds until the minute ending at `end_ms` may be sent."""
    live_due = (end_ms + SEND_LAG_MS) / 1000
    sim_due = t0 if math.isinf(speed) else t0 + (end_ms / 1000 - origin) / speed
    return max(live_due, sim_due) - real


class _Gateways:
    """Sends the batches of every city for a range of minutes, waiting for the broker's acknowledgements."""

    def __init__(self, cities: list[City], registry: Registry, producer: Any, seed: int, outage_rate: float,
                 duplicate_rate: float) -> None:
        self.cities, self.registry, self.producer, self.seed = cities, registry, producer, seed
        self.outage_rate, self.duplicate_rate = outage_rate, duplicate_rate
        self.sent = 0

    async def send(self, start_ms: int, end_ms: int) -> None:
        pending = []
        for city in self.cities:
            for batch in simulation.batches(self.registry, city.id, start_ms, end_ms, self.seed,
                                            outage_rate=self.outage_rate, duplicate_rate=self.duplicate_rate):
                pending.append(await self.producer.send(
                    FOOTFALL.name, value=orjson.dumps(batch), key=batch["source"].encode()))
            for batch in paysim.payment_batches(self.registry, city.id, start_ms, end_ms, self.seed):
                pending.append(await self.producer.send(
                    PAYMENTS.name, value=orjson.dumps(batch), key=batch["source"].encode()))
            for batch in simulation.device_batches(self.registry, city.id, start_ms, end_ms, self.seed):
                pending.append(await self.producer.send(
                    DEVICES.name, value=orjson.dumps(batch), key=batch["sensor_id"].encode()))
        try:
            await asyncio.gather(*pending)
        except KafkaError as exc:
            msg = f"the simulator could not deliver batches to {FOOTFALL.name}: {exc}"
            raise DrukteError(msg) from exc
        self.sent += len(pending)
