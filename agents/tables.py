"""A Faust table for batches: the caller names the changelog partition of its writes.

Faust sends a table write to the changelog partition of the *current event* (`Table.partition_for_key`). An agent
that takes a batch of events from several partitions (`Stream.take_events`) has no meaningful current event, and
would write every key to one partition (faust#497): after a rebalance another worker would recover a window under
the wrong partition, or not at all. Writes here go through `write_back`, which names the partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust


class PartitionTable(faust.Table[str, Any]):
    """A plain table whose writes use `write_partition` while it is set (during `write_back`)."""

    write_partition: int | None = None

    def partition_for_key(self, key: Any) -> int | None:
        if self.write_partition is not None:
            return self.write_partition
        partition: int | None = super().partition_for_key(key)
        return partition


def partition_table(app: faust.App, name: str, partitions: int) -> PartitionTable:
    table = PartitionTable(app, name=name, default=None, beacon=app.tables.beacon, partitions=partitions)
    app.tables.add(table)
    return table


def write_back(table: PartitionTable, partition: int, writes: Mapping[str, Any], deletes: list[str]) -> None:
    """Apply a batch's net changes to `table`, each a changelog record on `partition`."""
    table.write_partition = partition
    try:
        for key, value in writes.items():
            table[key] = value
        for key in deletes:
            del table[key]
    finally:
        table.write_partition = None
