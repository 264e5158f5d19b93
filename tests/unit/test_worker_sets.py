"""The worker's distinct-card and distinct-device counters (agents.spending, agents.devices) with a fake Faust
app: their window keys come from a CSPRNG, one per zone and window (P2), and the spending path drops a window's
card sets once the window is over (P3). `streams.pseudonyms` is tested on its own with a secret factory the test
picks; these tests check the factory the worker picks."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from prometheus_client import CollectorRegistry

from agents.devices import DevicesPath
from agents.spending import SpendingPath
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.pseudonyms import DistinctCounter
from streams.registry import parse_registry
from streams.timegrid import format_ts

REGISTRY = parse_registry((Path(__file__).parents[1] / "e2e" / "registry-audit.yaml").read_text())
HOUR = 3_600_000
T0 = 1_795_780_800_000  # 2026-11-27 13:00 Brussels: a spending window's start


class FakeTopic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[dict[str, Any]] = []

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


class FakeApp:
    """What the paths ask of a Faust app while they are built: topics, a table, agent and timer decorators."""

    def topic(self, name: str, **_: Any) -> FakeTopic:
        return FakeTopic(name)

    def Table(self, name: str, **_: Any) -> dict[str, Any]:  # Faust's name for it
        return {}

    def agent(self, topic: Any, name: str) -> Callable[[Any], Any]:
        return lambda fn: fn

    def timer(self, seconds: float, name: str) -> Callable[[Any], Any]:
        return lambda fn: fn


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def spending_path(metrics: WorkerMetrics, clock: Clock) -> SpendingPath:
    topics = SimpleNamespace(payments=FakeTopic("payments.v1"), spending=FakeTopic("spending.zone.v1"),
                             rejected=FakeTopic("ingest.rejected.v1"), byzone=FakeTopic("drukte-spending-byzone"))
    return SpendingPath(cast(Any, FakeApp()), cast(Any, topics), Settings.model_construct(), REGISTRY,
                        cast(Any, None), metrics, clock)


def devices_path(metrics: WorkerMetrics, clock: Clock) -> DevicesPath:
    topics = SimpleNamespace(devices=FakeTopic("devices.detections.v1"), rejected=FakeTopic("ingest.rejected.v1"),
                             devices_zone=FakeTopic("devices.zone.v1"))
    return DevicesPath(cast(Any, FakeApp()), cast(Any, topics), Settings.model_construct(), REGISTRY,
                       cast(Any, None), metrics, clock)


def counter_of(path: SpendingPath | DevicesPath) -> DistinctCounter:
    return path.cards if isinstance(path, SpendingPath) else path.counter


@pytest.mark.parametrize("make", [spending_path, devices_path])
def test_window_keys_come_from_the_csprng_one_per_zone_and_window(
        make: Callable[[WorkerMetrics, Clock], SpendingPath | DevicesPath], monkeypatch: pytest.MonkeyPatch) -> None:
    """P2: a key per zone and window of ≥ 32 bytes from `secrets` (not a constant, not `random`), so one card or
    phone gets unrelated pseudonyms in two zones or two windows."""
    asked: list[int | None] = []
    token_bytes = secrets.token_bytes

    def spy(n: int | None = None) -> bytes:
        asked.append(n)
        return token_bytes(n)

    monkeypatch.setattr(secrets, "token_bytes", spy)
    counter = counter_of(make(WorkerMetrics(CollectorRegistry()), Clock(T0)))
    asked.clear()  # building the path may draw other random bytes (a process tag); the keys are what counts
    keys = [counter.key("tt-main", T0), counter.key("tt-main", T0 + HOUR), counter.key("tt-side", T0)]
    assert counter.key("tt-main", T0) is keys[0]  # the same key while the zone window is open
    assert len(asked) == 3, "each zone window's key is drawn from secrets.token_bytes"
    assert all(n is not None and n >= 32 for n in asked), asked
    # two key makes give different keys: the same card has unrelated pseudonyms
    assert len({k.pseudonym("tok-same-card") for k in keys}) == 3


async def payments(path: SpendingPath, batches: list[bytes]) -> None:
    async def events() -> AsyncIterator[Any]:
        for offset, raw in enumerate(batches):
            yield SimpleNamespace(value=raw, message=SimpleNamespace(tp=("payments.v1", 0), offset=offset,
                                                                     partition=0))

    async for _ in path.ingest(cast(Any, SimpleNamespace(events=events))):
        pass


def batch(batch_id: str, start_ms: int, cards: int) -> bytes:
    txs = [{"merchant_id": f"f-{i % 5 + 1}", "ts": format_ts(start_ms + 60_000 * i, "Europe/Brussels"),
            "amount_cents": 1000 + i, "card_ref": f"tok-{batch_id}-{i}"} for i in range(cards)]
    return orjson.dumps({"source": "acq-1", "batch_id": batch_id, "sent_at": format_ts(start_ms, "UTC"),
                         "transactions": txs})


def test_a_window_s_card_sets_are_gone_once_it_is_over() -> None:
    """P3: the sets of a window live while it is open (plus grace); the data's clock passing it, or the payments
    stopping, drops them, and drukte_card_sets_open follows."""
    registry = CollectorRegistry()
    clock = Clock(T0 + 30 * 60_000)
    path = spending_path(WorkerMetrics(registry), clock)

    def gauge() -> float | None:
        return registry.get_sample_value("drukte_card_sets_open")

    asyncio.run(payments(path, [batch("b1", T0, 20)]))
    assert path.cards.size("acq-1", "tt-main", "all", T0) == 20
    assert (path.cards.open_windows(), gauge()) == (1, 1)
    # two hours on by the data's own clock: the first window is over (grace is 5 min), the new one is open
    clock.now_ms = T0 + 2 * HOUR + 30 * 60_000
    asyncio.run(payments(path, [batch("b2", T0 + 2 * HOUR, 3)]))
    assert path.cards.size("acq-1", "tt-main", "all", T0) == 0
    assert path.cards.size("acq-1", "tt-main", "all", T0 + 2 * HOUR) == 3
    assert (path.cards.open_windows(), gauge()) == (1, 1)
    # no payment for longer than a window (the ticks call forget with the wall clock): nothing stays
    clock.now_ms += HOUR + 1
    path.forget(clock.now_ms)
    assert path.cards.size("acq-1", "tt-main", "all", T0 + 2 * HOUR) == 0
    assert (path.cards.open_windows(), gauge()) == (0, 0)
