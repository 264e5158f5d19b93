"""Is an ingest agent behind its input? Clock ticks wait while it is, or they would overtake a backlog."""

from __future__ import annotations

from typing import Any


class Backlog:
    """The last offset an agent processed per input partition, against the high watermark of the last fetch."""

    def __init__(self) -> None:
        self.offsets: dict[Any, int] = {}

    def processed(self, tp: Any, offset: int) -> None:
        self.offsets[tp] = offset

    def behind(self, consumer: Any) -> bool:
        """True while one of the agent's assigned partitions has records it has not processed yet."""
        assigned = consumer.assignment()
        for tp, offset in self.offsets.items():
            if tp not in assigned:
                continue
            highwater = consumer.highwater(tp)
            if highwater is not None and highwater > offset + 1:
                return True
        return False
