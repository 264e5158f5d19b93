"""P10 through the real worker, broker, store and API: a DP city publishes noisy counts with `noise: "dp"`, ε and a
budget that goes down window by window, and no numbers once the zone's daily budget is spent; a city without DP
publishes as before."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from drukte.embedded import free_port
from drukte.kafka import bootstrap
from streams.daytype import observation_key
from streams.publication import visitors_range
from streams.timegrid import parse_ts
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for

pytestmark = pytest.mark.e2e
REGISTRY = str(Path(__file__).with_name("registry-dp.yaml"))
WINDOWS = 10
EPSILON, BUDGET = 0.5, 3.0  # registry-dp.yaml: six windows a day get numbers


def batches(base: int) -> list[bytes]:
    """Ten minutes of 100 people a minute on each of three sensors, in both zones: 300 per window."""
    out = []
    for m in range(WINDOWS):
        st = base + m * MIN
        readings = [{"sensor_id": f"{z}-0{i}", "start": iso(st), "seconds": 60, "in": 50, "out": 50}
                    for z in ("dp-main", "pt-main") for i in (1, 2, 3)]
        out.append(orjson.dumps({"source": "gw-dp-01", "batch_id": f"gw-dp-01/{m}", "sent_at": iso(st + MIN),
                                 "readings": readings}))
    return out


def changelog(stack: Stack, until: Any, timeout_s: float = 30) -> dict[str, Any]:
    """The footfall table as its changelog holds it (key → newest value), read until `until(table)` holds."""
    async def run() -> dict[str, Any]:
        consumer = AIOKafkaConsumer("drukte-zone-windows-changelog", bootstrap_servers=bootstrap(stack.broker.url),
                                    auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
        await consumer.start()
        table: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        table[orjson.loads(r.key)] = None if r.value is None else orjson.loads(r.value)
                if until(table):
                    return table
        finally:
            await consumer.stop()
        raise AssertionError(f"changelog: condition not met after {timeout_s} s")

    return asyncio.run(run())


def test_dp_city_publishes_noisy_counts_until_its_budget_is_spent(stack: Stack) -> None:
    now = int(time.time() * 1000)
    base = now - now % MIN - 13 * MIN
    api_port = free_port()
    stack.spawn("worker", log="worker", DRUKTE_REGISTRY=REGISTRY)
    stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_REGISTRY=REGISTRY, DRUKTE_STALE_S="900")
    stack.produce(batches(base), key=b"gw-dp-01")

    def windows(rs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for r in rs:
            key = (r["zone_id"], parse_ts(r["window"]["start"]))
            assert out.get(key, r) == r, f"window {key} published in two versions"
            out[key] = r
        return out

    records = stack.consume("busyness.zone.v1", lambda rs: len(windows(rs)) >= 2 * WINDOWS, timeout_s=120)
    published = windows(records)
    starts = [base + m * MIN for m in range(WINDOWS)]

    # without DP: the payload of before, exact range
    for s in starts:
        assert published[("pt-main", s)]["privacy"] == {"suppressed": False, "reason": None, "k_min": 15,
                                                         "noise": "none"}
        assert published[("pt-main", s)]["visitors"] == {"min": 300, "max": 310}

    # with DP: six windows of a local day get a number (the test may straddle local midnight: a new budget)
    spent: dict[str, float] = {}
    expect_left, expect_numbers = [], []
    for s in starts:
        day = observation_key(s, "Europe/Brussels").split(".")[0]
        has = spent.get(day, 0.0) + EPSILON <= BUDGET
        spent[day] = spent.get(day, 0.0) + (EPSILON if has else 0.0)
        expect_left.append(BUDGET - spent[day])
        expect_numbers.append(has)
    dp = [published[("dp-main", s)] for s in starts]
    assert [o["privacy"]["noise"] for o in dp] == ["dp"] * WINDOWS
    assert [o["privacy"]["epsilon"] for o in dp] == [EPSILON] * WINDOWS
    assert [o["privacy"]["budget_left"] for o in dp] == expect_left  # goes down by ε per window, then stays at 0
    assert [o["visitors"] is not None for o in dp] == expect_numbers
    for o, has in zip(dp, expect_numbers, strict=True):
        if not has:
            assert (o["privacy"]["reason"], o["level"]["key"], o["index"]) == ("dp_budget", "unknown", None)

    # the noise as the worker recorded it (the table's changelog): one draw per window with a number, and what
    # was published is that noisy count's range, not the exact one's
    table = changelog(stack, lambda t: all(f"n|dp-main|{s}" in t for s in starts))
    noisy = [table[f"n|dp-main|{s}"][0] for s in starts]
    assert [v is not None for v in noisy] == expect_numbers
    for o, v in zip(dp, noisy, strict=True):
        if v is not None:
            assert o["visitors"] == visitors_range(v)
            assert abs(v - 300) <= 40  # discrete Laplace of scale 2: beyond ±40 has odds below 1e-8
    assert all(table[f"b|dp-main|{day}"] == round(sec * 1_000_000) for day, sec in spent.items())
    assert not any(k.startswith(("n|pt-main", "b|pt-main")) for k in table)  # no DP, no noise state

    # the API passes the block through: the live span (three windows) after the budget ran out has no numbers
    status, live = wait_for("the API", lambda: (r := http_get(f"http://127.0.0.1:{api_port}/v1/zones/dp-main/live"))
                            [0] == 200 and r)
    assert isinstance(live, dict)
    assert (live["privacy"]["noise"], live["privacy"]["epsilon"]) == ("dp", EPSILON)
    assert live["privacy"]["budget_left"] == expect_left[-1]
    if not expect_numbers[-1]:  # (unless the last window began a new local day)
        assert (live["privacy"]["reason"], live["visitors"]) == ("dp_budget", None)
    status, city = http_get(f"http://127.0.0.1:{api_port}/v1/cities/plaintown/live")
    assert status == 200
    assert isinstance(city, dict)
    assert city["zones"][0]["privacy"]["noise"] == "none"
