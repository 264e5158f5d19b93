"""The worker group's backlog, read from a real (embedded Tansu) broker: what the demo's history waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from drukte.embedded import Service, start_broker
from drukte.groupbacklog import GroupBacklog, backlog
from drukte.kafka import bootstrap, ensure_topics
from streams.topics import TopicSpec

pytestmark = pytest.mark.component
GROUP = "drukte-backlog-test"
OTHER = "drukte-backlog-test-ingest"


@pytest.mark.parametrize(("starts", "ends", "committed", "expected"), [
    ({0: 0, 1: 0}, {0: 10, 1: 5}, {0: None, 1: None}, 15),  # nothing committed: all of it
    ({0: 0, 1: 0}, {0: 10, 1: 5}, {0: 7, 1: 5}, 3),
    ({0: 4, 1: 0}, {0: 10, 1: 5}, {0: None, 1: 5}, 6),  # from the log start, not from offset 0
    ({0: 0}, {0: 10}, {0: 12}, 0),  # a commit ahead of a stale end offset never counts negative
    ({}, {}, {}, 0),
])
def test_backlog(starts: dict[int, int], ends: dict[int, int], committed: dict[int, int | None],
                 expected: int) -> None:
    assert backlog(starts, ends, committed) == expected


@pytest.fixture(scope="module")
def broker() -> Iterator[Service]:
    svc = start_broker()
    yield svc
    svc.stop()


async def _produce(url: str, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(url))
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(topic, b"x", partition=i % 2)
    finally:
        await producer.stop()


async def _commit(url: str, topic: str, offsets: dict[int, int], group: str = GROUP) -> None:
    """Commit as a member of `group` would (manual assignment: no rebalance)."""
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap(url), group_id=group, enable_auto_commit=False)
    await member.start()
    try:
        tps = {TopicPartition(topic, p): o for p, o in offsets.items()}
        member.assign(list(tps))
        await member.commit(tps)
    finally:
        await member.stop()


@pytest.mark.timeout(120)
def test_the_backlog_follows_commits_and_drained_waits_for_them(broker: Service) -> None:
    topic = "backlog.test.v1"

    async def scenario() -> None:
        await ensure_topics(broker.url, [TopicSpec(topic, None)], 2)
        await _produce(broker.url, topic, 10)
        group = GroupBacklog(bootstrap(broker.url), {GROUP: [topic], OTHER: [topic]})
        await group.start()
        try:
            assert len(group.partitions[GROUP]) == 2
            assert await group.size() == 20  # neither group has committed anything
            await _commit(broker.url, topic, {0: 5, 1: 5}, OTHER)  # the other group has read everything
            assert await group.size() == 10
            waiting = asyncio.create_task(group.drained(2))
            await asyncio.sleep(1.5)
            assert not waiting.done()  # 10 records behind: the history waits
            await _commit(broker.url, topic, {0: 5, 1: 2})
            assert await group.size() == 3
            await asyncio.sleep(1.5)
            assert not waiting.done()
            await _commit(broker.url, topic, {1: 4})
            await asyncio.wait_for(waiting, 10)  # 1 behind, at most 2 allowed
            assert await group.size() == 1
            stop = asyncio.Event()
            stopped = asyncio.create_task(group.drained(0, stop))
            await asyncio.sleep(1)
            stop.set()
            await asyncio.wait_for(stopped, 5)  # a stopping simulator does not wait for the group
        finally:
            await group.stop()

    asyncio.run(scenario())
