"""The footfall input, read by a plain aiokafka consumer in a group of its own (`{app_id}-ingest`).

Ingest is stateless (parse, reject, regroup by zone, send to the zone topic), so it needs none of Faust's
tables, and Faust's per-message delivery was most of its cost: with one reading per message, the worker read
10,000 input messages a second while the windows agent, fed by the same delivery loop behind them, counted
nothing until the input was drained (bench/README). A consumer of its own reads whole fetches with `getmany`,
and the windows agent gets its zone-topic messages from Faust meanwhile.

At-least-once, as before: a batch's offsets are committed only after every zone-topic record and rejection it
sent is on the broker; after a crash or a rebalance the next owner reads it again and the window state's dedupe
drops the readings it already has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from agents.backlog import Backlog
from drukte.kafka import bootstrap, security_options
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.footfall import Parsed, Reading, Rejection
from streams.masking import mask_text

log = logging.getLogger(__name__)

# Readings per zone-topic message, about 250 kB: a batch of 1,000 input messages of 100 readings from a gateway
# that owns one zone would otherwise be one 4.5 MB message, over the producer's 1 MB request limit (a send that
# fails stops the ingest). Consecutive parts are what smaller input batches would have given.
ZONE_MESSAGE_READINGS = 5_000
STOP_WAIT_S = 5.0  # longest a stop waits for the batch under way

Parse = Callable[[bytes | None, int], Parsed]
Encode = Callable[[str, list[Reading], int], bytes]
Reject = Callable[[Rejection, Any, int], Awaitable[Awaitable[Any]]]


def cut(items: list[Reading], size: int) -> list[list[Reading]]:
    """`items` in consecutive parts of at most `size`, in order."""
    return [items[i:i + size] for i in range(0, len(items), size)]


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, ingest: FootfallIngest) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # a batch under way is finished and committed first: its records are then not read again elsewhere
        async with self.ingest.lock:
            self.ingest.backlog.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("footfall ingest assigned %s", sorted(tp.partition for tp in assigned))


class FootfallIngest:
    """Reads `footfall.counts.v1` in batches of up to `batch_events` messages: each message parsed on its own (a
    bad one is rejected alone), the batch's readings regrouped into one zone-topic message per zone, source and
    input partition. Each group passes `check` (sensor health, `agents.sensors`) as a whole: a sensor is judged
    against its neighbours in the same interval, and a gateway sending one reading per message has its
    neighbours in other messages of the batch, not in its own."""

    def __init__(self, app: faust.App, settings: Settings, topic: str, zone_topic: str, parse: Parse,
                 encode: Encode, reject: Reject, metrics: WorkerMetrics, clock: Callable[[], int]) -> None:
        self.app, self.settings, self.topic, self.zone_topic = app, settings, topic, zone_topic
        self.parse, self.encode, self.reject, self.metrics, self.clock = parse, encode, reject, metrics, clock
        self.backlog = Backlog(topic)  # which input partitions a clock tick may vouch for
        self.check: Callable[[list[Reading]], list[Reading]] = lambda readings: readings  # the readings to count
        self.lock = asyncio.Lock()  # one batch at a time, and no revocation in the middle of one
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    def make_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        # A revocation waits for the batch under way (`_Revocations`): the rebalance timeout must outlast a slow
        # batch, or the member is evicted and rejoins in a loop (aiokafka's default is the session timeout).
        timeouts: dict[str, Any] = {"rebalance_timeout_ms": 60_000}
        if s.fast_groups:  # as Faust's group in agents.app: a join on Tansu takes seconds, not half a minute
            timeouts = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000, "rebalance_timeout_ms": 3_000}
        assert s.kafka_url is not None  # create_app checked it
        return AIOKafkaConsumer(
            bootstrap_servers=bootstrap(s.kafka_url), group_id=s.ingest_group, client_id=f"{s.app_id}-ingest",
            enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=1024 * 1024,
            **timeouts, **security_options(s))

    async def start(self) -> None:
        if self.task is not None:
            return
        consumer = self.make_consumer()
        await consumer.start()
        if self.stopping:  # a stop came while the consumer was starting
            await consumer.stop()
            return
        self.consumer = consumer
        consumer.subscribe([self.topic], listener=_Revocations(self))
        self.task = asyncio.create_task(self.run(), name="drukte.footfall.ingest")

    async def stop(self) -> None:
        """Finish the batch under way (its offsets committed), then leave the group. Waiting for records is
        cancelled at once (`getmany` waits for a rebalance to end); a batch that cannot finish within
        `STOP_WAIT_S` (broker away) is abandoned: its input is read again after the restart."""
        self.stopping = True
        task = self.task
        if task is not None and not task.done():
            if not self.lock.locked():  # in getmany (a batch holds the lock from getmany's return on)
                task.cancel()
            await asyncio.wait({task}, timeout=STOP_WAIT_S)
            if not task.done():
                log.warning("footfall ingest: the batch under way did not finish in %.0f s; its input is read "
                            "again after the restart", STOP_WAIT_S)
                task.cancel()
                await asyncio.wait({task})
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    async def run(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        try:
            while not self.stopping:
                batch = await consumer.getmany(timeout_ms=self.settings.batch_wait_ms,
                                               max_records=self.settings.batch_events)
                if not batch:
                    continue
                self.backlog.takes(batch)  # no await since getmany: a tick sees them as not processed yet
                async with self.lock:
                    await self.process(batch)
                    await self.commit(consumer, batch)
        except Exception as exc:
            # as an agent's crash would: the worker stops (its supervisor or the operator restarts it), rather
            # than go on reading nothing
            log.exception("footfall ingest failed")
            await self.app.crash(exc)

    async def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        t0 = time.perf_counter()
        now = self.clock()
        groups: dict[tuple[str, str, int], list[Reading]] = defaultdict(list)
        masked: dict[str, str] = {}  # a batch holds a few sources: each masked once, not once per message
        pending: list[Awaitable[Any]] = []
        n = 0
        for tp, records in batch.items():
            n += len(records)
            for record in records:
                parsed = self.parse(record.value, now)
                for rej in parsed.rejections:
                    pending.append(await self.reject(rej, record, now))
                raw_source = parsed.source or "?"
                source = masked.get(raw_source)
                if source is None:
                    source = masked[raw_source] = mask_text(raw_source)
                for r in parsed.readings:
                    groups[(r.zone_id, source, tp.partition)].append(r)
        self.metrics.messages_in.labels(self.topic).inc(n)
        send = self.app.producer.send
        for (zone_id, source, partition), readings in groups.items():
            for part in cut(self.check(readings), ZONE_MESSAGE_READINGS):
                pending.append(await send(self.zone_topic, zone_id.encode(), self.encode(source, part, partition),
                                          None, None, None))
        for fut in pending:  # on the broker before the offsets are committed, and before a tick vouches for them
            await fut
        for tp, records in batch.items():
            self.backlog.settled(tp, records[-1].offset)
        self.metrics.batch_seconds.labels("ingest").observe(time.perf_counter() - t0)

    async def commit(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]) -> None:
        try:
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # a rebalance took partitions meanwhile: their next owner reads the batch again, and the windows'
            # dedupe drops what it already has
            log.warning("footfall ingest: offsets not committed (%s); the next owner reads them again", exc)
            self.metrics.ingest_commit_failures.labels("rebalanced").inc()
        except KafkaError as exc:
            self.metrics.ingest_commit_failures.labels("error").inc()
            log.warning("footfall ingest: commit failed (%s); a later commit of the partition covers it, or its "
                        "input is read again after a restart", exc)

    def service(self) -> Service:
        """A mode service that starts and stops the ingest with the Faust app (`App.service`)."""
        return _Lifetime(self)

    async def caught_up(self) -> list[int]:
        """The input partitions this worker owns and has read to the end (`agents.backlog.Backlog`)."""
        if self.consumer is None:
            return []
        ready, _everything = await self.backlog.caught_up(self.consumer)
        return ready


class _Lifetime(Service):
    def __init__(self, ingest: FootfallIngest) -> None:
        super().__init__()
        self.ingest = ingest

    async def on_start(self) -> None:
        await self.ingest.start()

    async def on_stop(self) -> None:
        await self.ingest.stop()
