"""Two repairs to Faust's at-least-once delivery: a producer flush that really waits for every table changelog
write (no offset committed ahead of its state), and a clean seek when streams start after table recovery
(`seek_before_streaming`: no event skipped, also on partitions that have no committed offset yet).

Faust flushes its producer before it commits input offsets (`Consumer._commit_offsets`), but the first step of
that flush, `ProducerBuffer.flush`, returns as soon as 100 ms pass without a message leaving the buffer
(faust-streaming 0.15.3, `flush_atmost`). Table writes go through that buffer (`send_soon`). On a busy CPU, or
with one record per batch (Tansu: each record then waits for the previous one to be drained), a send can take
longer, and the offsets of events whose changelog writes were still queued got committed. A kill -9 then lost
those writes for good: the restarted worker recovered a table without them and never re-read their input
(seen as windows that never closed after a restart).

`complete_flushes` replaces the flush of the app's producer buffer with one that puts a marker at the end of the
buffer and waits until the buffer's sender reaches it: every write queued before has then been handed to the
Kafka client, whose own flush (the next step of Faust's producer flush) waits until the broker has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import faust

log = logging.getLogger(__name__)
Flush = Callable[[], Awaitable[None]]


@dataclass
class _Channel:
    reached: asyncio.Event

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        self.reached.set()


@dataclass
class _Marker:
    """Stands in the buffer's queue for a message: the buffer's sender calls
    `marker.message.channel.publish_message(marker, wait=False)` once every earlier entry is sent."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    message: Any = None

    def __post_init__(self) -> None:
        self.message = _Message(_Channel(self.reached))


@dataclass
class _Message:
    channel: _Channel


def complete_flush(buffer: Any, original: Flush, poll_s: float = 1.0) -> Flush:
    """A flush for `buffer` (a Faust `ProducerBuffer`) that returns once everything queued before it was sent."""

    async def flush() -> None:
        if buffer.should_stop or buffer.app.conf.producer_threaded:
            await original()  # the sender is stopping (or lives in another thread): Faust's own flush
            return
        marker = _Marker()
        buffer.put(marker)
        while not marker.reached.is_set():
            if buffer.should_stop:
                await original()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(marker.reached.wait(), poll_s)

    return flush


def complete_flushes(app: faust.App) -> None:
    """Install `complete_flush` on the app's producer buffer at the first partition assignment (the producer
    exists and runs on the worker's loop by then; no event has been processed and no offset committed)."""

    async def install(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        buffer: Any = app.producer.buffer  # faust-streaming 0.15.3 ProducerBuffer
        if not getattr(buffer, "_drukte_complete_flush", False):
            buffer.flush = complete_flush(buffer, buffer.flush)
            buffer._drukte_complete_flush = True
            log.info("producer flush before commits waits for every queued table write")

    app.on_partitions_assigned.connect(install)  # type: ignore[arg-type]  # mode types handlers as a union mypy cannot match


def seek_before_streaming(app: faust.App) -> None:
    """Make Faust's seek to the committed offsets, after table recovery, start from a clean slate.

    faust-streaming 0.15.3 resumes the stream partitions (with flow already active since recovery began) before
    it seeks them to their committed offsets, and clears the stream queues only after the seek
    (`Recovery.on_recovery_completed`). Events fetched in between from the consumer's old position are partly
    processed, partly cleared away; a batch still being handed out then makes the consumer record the cleared
    offsets as a gap, acknowledged, and drop them when they are fetched again. Seen here after a restart: one
    zone message never processed and committed, its window published short (faust-streaming #221, #606 are of
    the same family). Before the seek we stop the flow (the batch being handed out is abandoned) and clear the
    queues; Faust resumes the flow right after its seek, and everything from the committed offset is fetched
    again (events already processed count as duplicates).

    A partition with no committed offset (or 0) is not sought at all: aiokafka's `seek_to_committed` seeks only
    to offsets > 0, so the events fetched there before the seek were cleared and never fetched again. Seen here
    (the spending kill -9 test, about 1 run in 12) when the worker was killed before its first commit: the
    restarted one fetched the 24 payments and 24 zone records left uncommitted, cleared them at the seek, and
    went on past them; the cells whose table writes had not reached the changelog were never published.
    `rewind_uncommitted` sends such partitions back to their first offset, where the consumer started them
    (`consumer_auto_offset_reset="earliest"`).
    """

    async def install(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        consumer: Any = app.consumer
        if getattr(consumer, "_drukte_clean_seek", False):
            return
        original = consumer.perform_seek
        if app.conf.consumer_auto_offset_reset == "earliest":
            consumer.seek_to_committed = rewind_uncommitted(consumer, consumer.seek_to_committed,
                                                            lambda: app.tables.changelog_topics)

        async def perform_seek() -> None:
            consumer.stop_flow()
            app.flow_control.clear()
            await original()

        consumer.perform_seek = perform_seek
        consumer._drukte_clean_seek = True

    app.on_partitions_assigned.connect(install)  # type: ignore[arg-type]  # as in complete_flushes


SeekToCommitted = Callable[[], Awaitable[Mapping[Any, int | None]]]


def rewind_uncommitted(consumer: Any, seek_to_committed: SeekToCommitted,
                       changelogs: Callable[[], Set[str]]) -> SeekToCommitted:
    """`seek_to_committed` that also seeks the stream partitions without a committed offset (None or 0) to their
    first offset. `consumer` has Faust's `earliest_offsets(*tps)` and `seek(tp, offset)`; table changelog
    partitions are left alone (recovery reads those)."""

    async def seek() -> Mapping[Any, int | None]:
        committed = await seek_to_committed()
        skip = changelogs()
        fresh = sorted(tp for tp, offset in committed.items() if not offset and tp.topic not in skip)
        if fresh:
            earliest = await consumer.earliest_offsets(*fresh)
            for tp in fresh:
                await consumer.seek(tp, earliest[tp])
            by_topic: dict[str, list[int]] = {}
            for tp in fresh:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            log.info("no committed offset, back to the first offset: %s",
                     " ".join(f"{topic}{parts}" for topic, parts in by_topic.items()))
        return committed

    return seek
