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
from collections.abc import Mapping, Sequence
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
    """Reads consumer groups' committed offsets and their topics' end offsets. It never joins a group (no
    subscription), so it causes no rebalance; it only asks the group coordinator, as `kafka-consumer-groups`
    does. `groups`: group id → the topics it reads (the worker's footfall ingest has a group of its own, see
    `agents.ingest`)."""

    def __init__(self, bootstrap_servers: str, groups: Mapping[str, Sequence[str]], **security: Any) -> None:
        self.groups = {group: list(topics) for group, topics in groups.items()}
        self.clients = {group: AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group,
                                                enable_auto_commit=False, client_id="drukte-simulator-backlog",
                                                **security) for group in self.groups}
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        for group, client in self.clients.items():
            await client.start()
            self.partitions[group] = [TopicPartition(t, p) for t in self.groups[group]
                                      for p in sorted(client.partitions_for_topic(t) or ())]

    async def stop(self) -> None:
        for client in self.clients.values():
            await client.stop()

    async def size(self) -> int:
        total = 0
        for group, client in self.clients.items():
            tps = self.partitions.get(group, [])
            ends = await client.end_offsets(tps)
            committed = {tp: await client.committed(tp) for tp in tps}
            fresh = [tp for tp, at in committed.items() if at is None]  # log starts matter only where none is committed
            starts = await client.beginning_offsets(fresh) if fresh else {}
            total += backlog(starts, ends, committed)
        return total

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
                log.info("simulator: history waits for groups %s to read their backlog (%s records)",
                         ", ".join(self.groups),
                         behind if behind >= 0 else "?")
            await asyncio.sleep(POLL_S)
