"""How far behind is the worker group? Lets the demo's history follow the worker's own pace.

History and live readings share the worker's input partitions, so a history day sent while the worker is still
reading the previous ones puts the live windows behind it. A fixed pace (a day every 20 s) was right on an idle
laptop and far too fast on a loaded one: in a CI-like run the backlog grew for eight minutes and the demo's live
objects never became fresh. The simulator now sends the next day once the group's backlog has (nearly) drained,
which is as fast as the worker takes it on any machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

POLL_S = 0.5
LOG_EVERY_S = 30.0


def backlog(starts: dict[Any, int], ends: dict[Any, int], committed: dict[Any, int | None]) -> int:
    """Records the group has not committed yet: the end offset minus the committed one, per partition. A
    partition without a commit is behind by everything it still holds (the worker reads from the earliest)."""
    total = 0
    for tp, end in ends.items():
        at = committed.get(tp)
        total += max(0, end - (starts.get(tp, 0) if at is None else at))
    return total


class GroupBacklog:
    """Reads a consumer group's committed offsets and the topics' end offsets. It never joins the group (no
    subscription), so it causes no rebalance; it only asks the group coordinator, as `kafka-consumer-groups`
    does."""

    def __init__(self, bootstrap_servers: str, group: str, topics: Sequence[str], **security: Any) -> None:
        self.topics = list(topics)
        self.group = group
        self.client = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group,
                                       enable_auto_commit=False, client_id="drukte-simulator-backlog", **security)
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.client.start()
        self.partitions = [TopicPartition(t, p) for t in self.topics
                           for p in sorted(self.client.partitions_for_topic(t) or ())]

    async def stop(self) -> None:
        await self.client.stop()

    async def size(self) -> int:
        ends = await self.client.end_offsets(self.partitions)
        committed = {tp: await self.client.committed(tp) for tp in self.partitions}
        fresh = [tp for tp, at in committed.items() if at is None]  # log starts matter only where none is committed
        starts = await self.client.beginning_offsets(fresh) if fresh else {}
        return backlog(starts, ends, committed)

    async def drained(self, limit: int, stop: asyncio.Event | None = None) -> None:
        """Return once at most `limit` records are behind (or `stop` is set). Says every 30 s what it waits for:
        without a worker reading the group, history waits too (live goes on)."""
        loop = asyncio.get_running_loop()
        said = loop.time()
        while stop is None or not stop.is_set():
            try:
                behind = await self.size()
            except KafkaError as exc:  # the broker is busy or away: history can wait, live goes on
                behind = -1
                log.debug("simulator: backlog not read: %r", exc)
            if 0 <= behind <= limit:
                return
            if loop.time() - said >= LOG_EVERY_S:
                said = loop.time()
                log.info("simulator: history waits for group %r to read its backlog (%s records)", self.group,
                         behind if behind >= 0 else "?")
            await asyncio.sleep(POLL_S)
