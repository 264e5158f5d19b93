"""Which input partitions has an ingest agent read to the end? Clock ticks vouch only for those: a tick written
while a backlog is unread would make its sources look idle and close their windows before its data arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka.errors import IllegalStateError, KafkaError

REVOKED = (AssertionError, IllegalStateError)  # what aiokafka raises for a partition no longer assigned to it
POSITION_WAIT_S = 0.1  # a known position answers at once; an unknown one (being reset) is not caught up


class Backlog:
    """The last offset an agent processed per partition of its input topic, against the high watermark of the
    consumer's last fetch and the committed offset the partition was assigned at.

    Works with Faust's consumer and with a plain aiokafka one (the footfall ingest, `agents.ingest`). Faust's
    consumer fetches ahead of the agent, so there the last offset processed counts. The plain one hands out
    records only when asked: its position is the next offset the caller gets, which tells whether it read to
    the end as long as none of its records are in the caller's hands, so the caller marks the partitions of a
    batch it `takes` until it has `processed` them."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.offsets: dict[Any, int] = {}
        self.busy: set[Any] = set()  # partitions with records taken and not processed yet

    def takes(self, tps: Iterable[Any]) -> None:
        self.busy.update(tps)

    def processed(self, tp: Any, offset: int) -> None:
        self.offsets[tp] = offset
        self.busy.discard(tp)

    def settled(self, tp: Any, offset: int) -> None:
        """A batch marked with `takes` is processed up to `offset`; not recorded for a partition `forget` dropped
        meanwhile (revoked: its next owner says where it is, and a stale offset here would outlive a later
        reassignment)."""
        if tp in self.busy:
            self.processed(tp, offset)

    def forget(self, tps: Iterable[Any]) -> None:
        """Partitions revoked: whoever gets them next starts at its own committed offset."""
        for tp in tps:
            self.offsets.pop(tp, None)
            self.busy.discard(tp)

    async def caught_up(self, consumer: Any) -> tuple[list[int], bool]:
        """The input partitions this worker owns and has read to the end, and whether that is all it owns.

        On a caught-up partition the high watermark of the last fetch is not past the next offset to process
        (after the last one processed, never before the committed offset). A partition not fetched yet since
        its assignment is not caught up: after a restart, the input missed meanwhile is such a backlog (its
        sources were not silent, the worker was down)."""
        # faust-streaming 0.15.3 keeps the committed offsets (sought at assignment, updated per commit) here; a
        # plain aiokafka consumer has none, and its position serves (see the class)
        committed: dict[Any, int | None] | None = getattr(consumer, "_committed_offset", None)
        ready, owned = [], 0
        for tp in consumer.assignment():
            if tp.topic != self.topic:
                continue
            owned += 1
            if tp in self.busy:
                continue
            try:
                if committed is None:
                    done = await self._plain_read_to_end(consumer, tp)
                else:
                    done = await self._read_to_end(consumer, tp, committed.get(tp))
                if done:
                    ready.append(tp.partition)
            except (*REVOKED, KafkaError, TimeoutError):
                # Faust's assignment and the Kafka client's (in the consumer's own thread) differ while a rebalance
                # is under way: aiokafka then refuses `highwater` (AssertionError) and `position` (IllegalStateError)
                # for a partition just taken away. Not caught up. Raised from a tick timer, either one crashed the
                # whole worker (the two-worker test's intermittent failure). A position being reset (offset out of
                # range) makes `position` wait or raise the reset's error: not caught up either.
                continue
        return sorted(ready), len(ready) == owned

    async def _read_to_end(self, consumer: Any, tp: Any, start: int | None) -> bool:
        highwater = consumer.highwater(tp)
        if highwater is None:
            return False
        done = self.offsets.get(tp)
        if start is None and done is None:
            start = await consumer.position(tp)  # a new group: from the log start, where the fetch began
        next_offset = 0 if done is None else done + 1
        return bool(highwater <= max(next_offset, start or 0))

    @staticmethod
    async def _plain_read_to_end(consumer: Any, tp: Any) -> bool:
        """A plain consumer's partition with no records in the caller's hands: its position is the next offset
        the caller will get, so it is read to the end where the high watermark is not past it (gaps such as
        transaction markers included, which a processed offset + 1 would never reach)."""
        highwater = consumer.highwater(tp)
        if highwater is None:
            return False
        position = await asyncio.wait_for(consumer.position(tp), POSITION_WAIT_S)
        return bool(highwater <= position)
