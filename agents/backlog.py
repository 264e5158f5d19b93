"""Is an ingest agent behind its input? Clock ticks wait while it is, or they would overtake a backlog."""

from __future__ import annotations

from typing import Any, cast


class Backlog:
    """The last offset an agent processed per partition of its input topic, against the high watermark of the
    consumer's last fetch and the committed offset the partition was assigned at."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.offsets: dict[Any, int] = {}

    def processed(self, tp: Any, offset: int) -> None:
        self.offsets[tp] = offset

    async def behind(self, consumer: Any) -> bool:
        """True while an assigned partition of the topic has records not processed yet. A partition not fetched
        since its assignment counts as behind: after a restart, ticks wait until the input missed meanwhile is
        read (its sources were not idle; the worker was down)."""
        # faust-streaming 0.15.3 keeps the committed offsets (sought at assignment, updated per commit) here
        committed: dict[Any, int | None] = cast(Any, consumer)._committed_offset
        for tp in consumer.assignment():
            if tp.topic != self.topic:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                return True
            done = self.offsets.get(tp)
            start = committed.get(tp)
            if start is None and done is None:
                start = await consumer.position(tp)  # a new group: from the log start, where the fetch began
            next_offset = 0 if done is None else done + 1
            if highwater > max(next_offset, start or 0):
                return True
        return False
