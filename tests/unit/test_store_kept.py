"""What the worker's store keeps in memory to rewrite after a flush: the newest `KEPT_WINDOWS` windows per zone,
over every publish, whatever order and batch size they came in (no connection is made: nothing is written)."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from agents.store import KEPT_WINDOWS, RedisStore, _unpack
from drukte.metrics import WorkerMetrics

W = 300_000


def window(zone: str, start: int) -> tuple[str, int, bytes]:
    return zone, start, orjson.dumps({"zone_id": zone, "start": start})


@pytest.mark.parametrize(("calls", "expected"), [
    ([list(range(30))], list(range(18, 30))),  # a backlog at once: only the newest are kept
    ([[i] for i in range(30)], list(range(18, 30))),  # live, one at a time
    ([list(range(10, 30)), list(range(5))], list(range(18, 30))),  # older ones after newer: not kept
    ([list(range(5)), list(range(20, 25))], [*range(5), *range(20, 25)]),  # under the bound: all
    ([list(range(12)), [40, 3]], [*range(1, 12), 40]),  # a rewrite of a kept one stays, one new evicts the oldest
])
def test_the_newest_windows_per_zone_are_kept(calls: list[list[int]], expected: list[int]) -> None:
    assert KEPT_WINDOWS == 12  # the table above is written for it
    store = RedisStore("redis://127.0.0.1:1/0", WorkerMetrics(CollectorRegistry()))
    for starts in calls:
        store._remember([window("z", s * W) for s in starts] + [window("other", 0)], [], [])
    kept = store._windows["z"]
    assert sorted(kept) == [s * W for s in expected]
    assert all(orjson.loads(_unpack(raw))["start"] == start for start, raw in kept.items())
    assert list(store._windows["other"]) == [0]
