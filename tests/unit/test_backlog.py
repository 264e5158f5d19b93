"""Which input partitions a worker vouches for in its clock ticks (`agents.backlog.Backlog`), against a consumer
stand-in: the read offsets and high watermarks, and a partition revoked by a rebalance while it is asked about."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, OffsetOutOfRangeError

from agents.backlog import Backlog

TOPIC = "footfall.counts.v1"


class Consumer:
    """What `Backlog.caught_up` reads of Faust's consumer. `revoked`: partitions a rebalance takes away between
    `assignment()` and `position()` (aiokafka then raises IllegalStateError); `revoked_before`: before
    `highwater()` (aiokafka asserts)."""

    def __init__(self, highwaters: dict[int, int | None], committed: dict[int, int | None],
                 positions: dict[int, int], revoked: frozenset[int] = frozenset(),
                 revoked_before: frozenset[int] = frozenset()) -> None:
        self.highwaters, self.positions, self.revoked = highwaters, positions, revoked
        self.revoked_before = revoked_before  # taken away before even its high watermark is asked
        self._committed_offset = {TopicPartition(TOPIC, p): o for p, o in committed.items()}

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in self.highwaters} | {TopicPartition("other", 0)}

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp.partition not in self.revoked_before, "Partition is not assigned"  # as aiokafka does
        return self.highwaters[tp.partition]

    async def position(self, tp: TopicPartition) -> int:
        if tp.partition in self.revoked:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        return self.positions[tp.partition]


def caught_up(backlog: Backlog, consumer: Any) -> tuple[list[int], bool]:
    return asyncio.run(backlog.caught_up(consumer))


def test_a_partition_read_to_its_high_watermark_is_caught_up() -> None:
    backlog = Backlog(TOPIC)
    backlog.processed(TopicPartition(TOPIC, 0), 9)  # offsets 0..9 done, highwater 10
    backlog.processed(TopicPartition(TOPIC, 1), 4)  # 5 of 10
    consumer = Consumer({0: 10, 1: 10, 2: None}, {0: 3, 1: 3, 2: None}, {})
    assert caught_up(backlog, consumer) == ([0], False)  # 2: not fetched since its assignment


def test_nothing_processed_since_the_commit_is_caught_up_only_at_the_high_watermark() -> None:
    consumer = Consumer({0: 7, 1: 8}, {0: 7, 1: 5}, {})
    assert caught_up(Backlog(TOPIC), consumer) == ([0], False)


def test_a_new_group_starts_from_the_position_where_its_fetch_began() -> None:
    consumer = Consumer({0: 4, 1: 4}, {0: None, 1: None}, {0: 4, 1: 0})
    assert caught_up(Backlog(TOPIC), consumer) == ([0], False)


def test_a_partition_revoked_while_asked_is_not_caught_up_and_nothing_raises() -> None:
    consumer = Consumer({0: 4, 1: 4, 2: 0}, {0: None, 1: None, 2: 0}, {0: 4}, revoked=frozenset({1}))
    assert caught_up(Backlog(TOPIC), consumer) == ([0, 2], False)


def test_a_partition_revoked_before_its_high_watermark_is_asked_is_not_caught_up() -> None:
    consumer = Consumer({0: 4, 1: 4}, {0: 4, 1: 4}, {}, revoked_before=frozenset({0}))
    assert caught_up(Backlog(TOPIC), consumer) == ([1], False)


class PlainConsumer(Consumer):
    """A plain aiokafka consumer (the footfall ingest's): no record of committed offsets, only positions, which
    move as soon as `getmany` hands records out."""

    def __init__(self, highwaters: dict[int, int | None], positions: dict[int, int]) -> None:
        super().__init__(highwaters, {}, positions)
        del self._committed_offset


def test_a_plain_consumer_is_caught_up_where_its_position_meets_the_high_watermark() -> None:
    consumer = PlainConsumer({0: 4, 1: 6, 2: None}, {0: 4, 1: 2, 2: 0})
    assert caught_up(Backlog(TOPIC), consumer) == ([0], False)


def test_records_taken_and_not_processed_yet_are_a_backlog() -> None:
    """getmany moved the position to the high watermark, but the batch is still being parsed and sent: a tick
    vouching for the partition now would overtake its readings."""
    backlog = Backlog(TOPIC)
    consumer = PlainConsumer({0: 10, 1: 10}, {0: 10, 1: 10})
    backlog.takes([TopicPartition(TOPIC, 0)])
    assert caught_up(backlog, consumer) == ([1], False)
    backlog.processed(TopicPartition(TOPIC, 0), 9)
    assert caught_up(backlog, consumer) == ([0, 1], True)


def test_a_revoked_partition_is_forgotten_so_its_next_assignment_starts_afresh() -> None:
    """Processed up to 9 before a revocation; another worker read on to 20 and committed. Assigned back, the old
    offset must not count, or the partition would never be caught up again while no new input comes."""
    backlog = Backlog(TOPIC)
    tp = TopicPartition(TOPIC, 0)
    backlog.takes([tp])
    backlog.processed(tp, 9)
    backlog.takes([tp])  # a batch in the hands of the ingest when the partition went
    backlog.forget([tp])
    consumer = PlainConsumer({0: 20}, {0: 20})
    assert caught_up(backlog, consumer) == ([0], True)


def test_a_plain_consumer_past_a_gap_is_caught_up_at_its_position() -> None:
    """Offsets without records (transaction markers, compacted records) lie between the last record processed
    and the high watermark: the position, not the last offset + 1, says the partition is read to the end."""
    backlog = Backlog(TOPIC)
    tp = TopicPartition(TOPIC, 0)
    backlog.takes([tp])
    backlog.processed(tp, 9)
    assert caught_up(backlog, PlainConsumer({0: 12}, {0: 12})) == ([0], True)


class StuckConsumer(PlainConsumer):
    """A plain consumer whose position of partition 1 is being reset: it waits (`error` None) or raises."""

    def __init__(self, error: Exception | None) -> None:
        super().__init__({0: 5, 1: 5}, {0: 5, 1: 5})
        self.error = error

    async def position(self, tp: TopicPartition) -> int:
        if tp.partition == 1:
            if self.error is not None:
                raise self.error
            await asyncio.sleep(3600)
        return await super().position(tp)


@pytest.mark.parametrize("error", [None, OffsetOutOfRangeError({})], ids=["waits", "raises"])
def test_a_position_being_reset_is_not_caught_up_and_stops_no_tick(error: Exception | None) -> None:
    started = time.monotonic()
    assert caught_up(Backlog(TOPIC), StuckConsumer(error)) == ([0], False)
    assert time.monotonic() - started < 2  # the tick goes out, without this partition
