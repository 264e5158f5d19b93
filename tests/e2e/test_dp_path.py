"""P10 through the real worker, broker, store and API: a DP city publishes noisy counts with `noise: "dp"`, ε and a
budget that goes down window by window, and no numbers once the zone's daily budget is spent; a city without DP
publishes as before."""

from __future__ import annotations

import asyncio
import signal
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
from streams.storekeys import windows_key
from streams.timegrid import parse_ts
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for
from tests.e2e.workload import count_when, kill9, republished

pytestmark = pytest.mark.e2e
REGISTRY = str(Path(__file__).with_name("registry-dp.yaml"))
WINDOWS = 10
EPSILON, BUDGET = 0.5, 3.0  # registry-dp.yaml: six windows a day get numbers


def batches(base: int, zones: tuple[str, ...] = ("dp-main", "pt-main")) -> list[bytes]:
    """Ten minutes of 100 people a minute on each of three sensors, in both zones: 300 per window."""
    out = []
    for m in range(WINDOWS):
        st = base + m * MIN
        readings = [{"sensor_id": f"{z}-0{i}", "start": iso(st), "seconds": 60, "in": 50, "out": 50}
                    for z in zones for i in (1, 2, 3)]
        out.append(orjson.dumps({"source": "gw-dp-01", "batch_id": f"gw-dp-01/{m}", "sent_at": iso(st + MIN),
                                 "readings": readings}))
    return out


def windows(rs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Published windows by (zone, start); a window published twice must be byte-identical (P9)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rs:
        key = (r["zone_id"], parse_ts(r["window"]["start"]))
        assert out.get(key, r) == r, f"window {key} published in two versions"
        out[key] = r
    return out


def expected_budget(starts: list[int]) -> tuple[list[float], list[bool], dict[str, float]]:
    """Per window: the budget left after it and whether it has a number; and ε spent per local day (the test
    may straddle local midnight, where a new budget begins)."""
    spent: dict[str, float] = {}
    left, numbers = [], []
    for s in starts:
        day = observation_key(s, "Europe/Brussels").split(".")[0]
        has = spent.get(day, 0.0) + EPSILON <= BUDGET
        spent[day] = spent.get(day, 0.0) + (EPSILON if has else 0.0)
        left.append(BUDGET - spent[day])
        numbers.append(has)
    return left, numbers, spent


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

    records = stack.consume("busyness.zone.v1", lambda rs: len(windows(rs)) >= 2 * WINDOWS, timeout_s=120)
    published = windows(records)
    starts = [base + m * MIN for m in range(WINDOWS)]

    # without DP: the payload of before, exact range
    for s in starts:
        assert published[("pt-main", s)]["privacy"] == {"suppressed": False, "reason": None, "k_min": 15,
                                                         "noise": "none"}
        assert published[("pt-main", s)]["visitors"] == {"min": 300, "max": 310}

    # with DP: six windows of a local day get a number
    expect_left, expect_numbers, spent = expected_budget(starts)
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


def test_a_window_republished_after_a_crash_keeps_its_noise(stack: Stack) -> None:
    """kill -9 after windows went to the topic but before their store write (the store is frozen), so before they
    were marked final: the restarted worker publishes them again, byte for byte, with the noise drawn before the
    crash (read back from the table's changelog), and the budget is not spent twice."""
    now = int(time.time() * 1000)
    base = now - now % MIN - 13 * MIN
    msgs = batches(base, zones=("dp-main",))
    starts = [base + m * MIN for m in range(WINDOWS)]
    w1 = stack.spawn("worker", log="worker1", DRUKTE_REGISTRY=REGISTRY)
    stack.produce(msgs[:3], key=b"gw-dp-01")
    at_freeze = count_when(stack, lambda n: n >= 2)
    # their store writes done, so the worker is idle when the store freezes (not stuck on those writes)
    wait_for("the windows in the store", lambda: stack.redis().zcard(windows_key("dp-main")) >= at_freeze)
    store = stack.store.proc
    store.send_signal(signal.SIGSTOP)
    try:
        stack.produce(msgs[3:], key=b"gw-dp-01")
        count_when(stack, lambda n: n > at_freeze, distinct=False)  # sent to the topic, stuck on the store write
        kill9(w1)
    finally:
        store.send_signal(signal.SIGCONT)
    time.sleep(8)  # Tansu keeps a killed member until its session is over (see test_faults_kill)
    stack.spawn("worker", log="worker2", DRUKTE_REGISTRY=REGISTRY)
    # waited for: had the killed worker sent every window already, all would be out before this one started
    republished(stack)
    # every window, each in one version across every record (the republished ones included)
    published = windows(stack.consume("busyness.zone.v1", lambda rs: len(windows(rs)) >= WINDOWS, timeout_s=120))
    expect_left, expect_numbers, _spent = expected_budget(starts)
    dp = [published[("dp-main", s)] for s in starts]
    assert [o["privacy"]["budget_left"] for o in dp] == expect_left  # nothing spent twice
    assert [o["visitors"] is not None for o in dp] == expect_numbers
