"""kill -9 of the worker while it publishes spending cells: after a restart every cell is there, exactly as the
pure core computes it, and a cell published twice is published with the same bytes (P9)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import orjson
import pytest

from drukte.registry_check import load_registry
from streams.registry import SpendRules
from streams.spending import add_totals, close_cell, empty_cell, sector_merchants, slot_for, spending_object
from streams.topics import PAYMENTS
from tests.e2e.conftest import Stack, iso
from tests.e2e.test_spending_path import REGISTRY, iso_local, weeks_before
from tests.e2e.workload import kill9

# Failed about once in twelve runs until 28 Nov 2026: killed before its first commit, the worker left the payments
# and zone records uncommitted; the restarted one fetched them while Faust resumed its streams, cleared them at the
# seek, and aiokafka's seek_to_committed never sought a partition without a commit back (agents/flushing.py,
# `rewind_uncommitted`). The cells whose writes had not reached the changelog were then never published.
pytestmark = pytest.mark.e2e
HOUR = 3_600_000
MERCHANTS = [f"f-{i}" for i in range(1, 7)] + [f"l-{i}" for i in range(1, 6)] + ["d-1", "d-2"]


def totals(start: int, scale: int) -> bytes:
    """Acquirer totals for one hour: exact figures, so a restart cannot change any cell (no card sets)."""
    rows = [{"merchant_id": m, "start": iso(start), "seconds": 3600, "tx_count": 5,
             "amount_cents": scale * (1000 + 37 * i), "cards": 16 + i % 5} for i, m in enumerate(MERCHANTS)]
    return orjson.dumps({"source": "acq-crash", "batch_id": f"crash/{start}", "sent_at": iso(start + HOUR),
                         "totals": rows})


def expected(starts: list[tuple[int, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Every published cell of tt-main, worked out by the pure core in time order, as the worker must."""
    registry = load_registry(REGISTRY)
    zone, city = registry.zones["tt-main"], registry.cities[0]
    merchants = sector_merchants(registry, zone.id)
    histories: dict[str, Any] = {}
    out = {}
    for start, scale in sorted(starts):
        cell = empty_cell()
        add_totals(cell, [[r["merchant_id"], start, r["amount_cents"], r["tx_count"], r["cards"]]
                          for r in orjson.loads(totals(start, scale))["totals"]])
        views, histories = close_cell(cell, merchants, histories, slot_for(start, city, HOUR), SpendRules(), 8)
        out[(zone.id, start)] = spending_object(zone, city, start, HOUR, views, SpendRules())
    return out


def test_spending_cells_survive_a_kill_mid_publication(stack: Stack) -> None:
    now = int(time.time() * 1000)
    h = now - now % HOUR - 8 * HOUR
    starts = [(weeks_before(h + i * HOUR, w), 10 + w) for i in range(6) for w in (3, 2, 1)]
    starts += [(h + i * HOUR, 12 + i % 3) for i in range(6)]
    stack.produce([totals(s, scale) for s, scale in sorted(starts)], key=b"acq-crash", topic=PAYMENTS.name)
    truth = expected(starts)
    assert sum(1 for obj in truth.values() if obj["all"]["index"] is not None) >= 6  # indices against a usual

    env = {"DRUKTE_REGISTRY": str(REGISTRY)}
    w1 = stack.spawn("worker", log="worker1", **env)
    stack.consume("spending.zone.v1", lambda rs: len(rs) >= 1, timeout_s=120)
    kill9(w1)  # mid-publication, or just after: either way nothing may be lost or changed
    stack.spawn("worker", log="worker2", **env)

    def by_window(records: list[dict[str, Any]]) -> dict[tuple[str, int], list[bytes]]:
        out: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        for r in records:
            if r["zone_id"] == "tt-main":
                key = (r["zone_id"], next(s for s, _ in starts if iso_local(s) == r["window"]["start"]))
                out[key].append(orjson.dumps(r))
        return out

    records = stack.consume("spending.zone.v1", lambda rs: len(by_window(rs)) >= len(truth), timeout_s=120)
    got = by_window(records)
    assert set(got) == set(truth)
    for key, versions in got.items():
        assert set(versions) == {orjson.dumps(truth[key])}, key  # republished with the same bytes
