"""The simulator against a real (embedded Tansu) broker: backfill, stop, and what lands on footfall.counts.v1."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

import schemas
from drukte.embedded import Service, start_broker
from drukte.errors import DrukteError
from drukte.kafka import bootstrap
from drukte.settings import Settings
from drukte.simulator import DEFAULT_SEED, run_simulator
from streams.footfall import FootfallParser, IngestPolicy
from streams.registry import Registry, parse_registry
from streams.simulation import batches
from streams.timegrid import parse_ts
from streams.topics import FOOTFALL

pytestmark = pytest.mark.component

REGISTRY = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        levels: {normal: 600, busy: 2500, very_busy: 5000}
        sensors:
          - {id: mech-bruul-01, kind: street}
          - {id: mech-bruul-02, kind: street}
          - {id: mech-bruul-03, kind: entrance}
      - id: mechelen-grote-markt
        name: Grote Markt
        sensors:
          - {id: mech-grotemarkt-01, kind: street}
          - {id: mech-grotemarkt-02, kind: street}
          - {id: mech-grotemarkt-03, kind: street}
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: leuven-oude-markt
        name: Oude Markt
        sensors:
          - {id: leuv-oudemarkt-01, kind: street}
          - {id: leuv-oudemarkt-02, kind: street}
          - {id: leuv-oudemarkt-03, kind: street}
""")
# A frozen clock: Saturday 2026-11-28 15:20:30 in Mechelen. Simulated time never passes the wall clock, so the
# run sends exactly the backfill, then waits for the stop event.
NOW_S = parse_ts("2026-11-28T15:20:30+01:00") / 1000


@pytest.fixture
def broker() -> Iterator[Service]:
    """A fresh broker per test, so each test reads back exactly what it produced."""
    svc = start_broker()
    yield svc
    svc.stop()


def _settings(broker: Service, tmp_path: Path) -> Settings:
    return Settings(kafka_url=broker.url, partitions=3, data_dir=tmp_path)


async def _consume(url: str, expected: int, timeout_s: float = 30.0) -> list[tuple[bytes, dict[str, Any], int]]:
    """Key, value and producer timestamp (ms) of footfall.counts.v1 messages, read from the earliest offset until
    `expected` arrived (STREAMING.md: Tansu's "latest" offset is wrong, so count instead of reading to the end)."""
    consumer = AIOKafkaConsumer(FOOTFALL.name, bootstrap_servers=bootstrap(url), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes, dict[str, Any], int]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend((r.key, orjson.loads(r.value), r.timestamp) for r in records)
    finally:
        await consumer.stop()
    return out


async def _run(settings: Settings, registry: Registry, stop_after_s: float, *,
               clock: Callable[[], float] = lambda: NOW_S, **kwargs: Any) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(stop_after_s, stop.set)
    return await run_simulator(settings, registry, stop=stop, clock=clock, **kwargs)


def test_backfill_arrives_as_contract_batches_covering_every_zone(broker: Service, tmp_path: Path) -> None:
    settings = _settings(broker, tmp_path)
    sent = asyncio.run(_run(settings, REGISTRY, 2.0, city="mechelen", speed=1.0, days=0, backfill_min=4,
                            duplicate_rate=0.3))

    # the four whole minutes before 15:20:30 local, 14:16–14:20 UTC, exactly as the model makes them
    start_ms = parse_ts("2026-11-28T15:16:00+01:00")
    expected = batches(REGISTRY, "mechelen", start_ms, start_ms + 4 * 60_000, DEFAULT_SEED,
                       outage_rate=0.01, duplicate_rate=0.3)
    assert sent == len(expected) >= 4

    got = asyncio.run(_consume(broker.url, sent))
    assert len(got) == sent
    assert {key for key, _, _ in got} == {b"gw-mechelen-01"}
    values = [v for _, v, _ in got]
    assert sorted(values, key=orjson.dumps) == sorted(expected, key=orjson.dumps)
    assert sorted({v["batch_id"] for v in values}) == [
        "gw-mechelen-01/2026-11-28T14:17:00Z", "gw-mechelen-01/2026-11-28T14:18:00Z",
        "gw-mechelen-01/2026-11-28T14:19:00Z", "gw-mechelen-01/2026-11-28T14:20:00Z",
    ]

    parser = FootfallParser(schemas.load("footfall.counts.v1"), REGISTRY, IngestPolicy(300_000, 50))
    zones: Counter[str] = Counter()
    for _, value, _ in got:
        parsed = parser.parse(orjson.dumps(value), int(NOW_S * 1000))
        assert parsed.rejections == []
        assert parsed.source == "gw-mechelen-01"
        zones.update(r.zone_id for r in parsed.readings)
        assert all(r.dur_ms == 60_000 for r in parsed.readings)
    assert set(zones) == {"mechelen-bruul", "mechelen-grote-markt"}
    # Saturday mid-afternoon on the Bruul: a busy street, hundreds of people in four minutes
    bruul = sum(r.visitors for v in values for r in parser.parse(orjson.dumps(v), int(NOW_S * 1000)).readings
                if r.zone_id == "mechelen-bruul")
    assert bruul > 150


def test_history_runs_at_speed_then_stops_at_the_wall_clock(broker: Service, tmp_path: Path) -> None:
    # the wall clock starts at NOW_S and runs in real time; one hour of history at 1800x takes 2 s
    t0 = time.monotonic()
    sent = asyncio.run(_run(_settings(broker, tmp_path), REGISTRY, 3.5, clock=lambda: NOW_S + time.monotonic() - t0,
                            city=None, speed=1800.0, days=1 / 24, backfill_min=0, outage_rate=0.0,
                            duplicate_rate=0.0))
    assert sent == 2 * 60  # two cities, 14:20–15:20 local; the minute 15:20 is not over before the stop
    got = asyncio.run(_consume(broker.url, sent))
    by_source = Counter(key for key, _, _ in got)
    assert by_source == {b"gw-mechelen-01": 60, b"gw-leuven-01": 60}
    first = min(v["readings"][0]["start"] for _, v, _ in got)
    last = max(v["readings"][0]["start"] for _, v, _ in got)
    assert (first, last) == ("2026-11-28T14:20:00+01:00", "2026-11-28T15:19:00+01:00")
    # produced over about 2 real seconds, in time order per gateway, not all at once
    stamps = sorted(ts for _, _, ts in got)
    assert 1.4 <= (stamps[-1] - stamps[0]) / 1000 <= 3.0
    leuven = [v["batch_id"] for k, v, _ in got if k == b"gw-leuven-01"]
    assert leuven == sorted(leuven)


def test_unknown_city_is_refused_with_the_valid_ids(broker: Service, tmp_path: Path) -> None:
    with pytest.raises(DrukteError, match=r"unknown city 'gent'.*mechelen, leuven"):
        asyncio.run(_run(_settings(broker, tmp_path), REGISTRY, 0.5, city="gent", speed=1.0, days=0))


async def _history_dates(url: str) -> set[str]:
    """The days of history on footfall.counts.v1 (each day is a source of its own: `history-<city>-<yyyymmdd>`)."""
    consumer = AIOKafkaConsumer(FOOTFALL.name, bootstrap_servers=bootstrap(url), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    dates: set[str] = set()
    try:
        quiet_until = time.monotonic() + 1.5
        while time.monotonic() < quiet_until:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                quiet_until = time.monotonic() + 1.5
                dates |= {r.key.decode().rsplit("-", 1)[1] for r in records if r.key.startswith(b"history-")}
    finally:
        await consumer.stop()
    return dates


async def _read_everything_as(url: str, group: str) -> None:
    """Commit the end of footfall.counts.v1 for `group`, as a worker group that has read it all would."""
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap(url), group_id=group, enable_auto_commit=False)
    await member.start()
    try:
        tps = [TopicPartition(FOOTFALL.name, p) for p in sorted(member.partitions_for_topic(FOOTFALL.name) or ())]
        member.assign(tps)
        await member.commit(await member.end_offsets(tps))
    finally:
        await member.stop()


@pytest.mark.timeout(120)
def test_history_days_wait_for_the_worker_group(broker: Service, tmp_path: Path) -> None:
    """This weekday's days go at once; every other day only once the worker group has read the ones before,
    so a slow worker is never buried under history while live windows wait behind it."""
    settings = _settings(broker, tmp_path)

    async def scenario() -> tuple[set[str], set[str], set[str]]:
        stop = asyncio.Event()
        sim = asyncio.create_task(run_simulator(settings, REGISTRY, city=None, speed=1.0, days=0, backfill_min=0,
                                                stop=stop, clock=lambda: NOW_S, history_days=15))
        await asyncio.sleep(3)
        first = await _history_dates(broker.url)  # nobody reads: the urgent days and one more
        await asyncio.sleep(2)
        still = await _history_dates(broker.url)
        await _read_everything_as(broker.url, settings.ingest_group)  # the worker's footfall ingest
        await asyncio.sleep(3)
        after = await _history_dates(broker.url)
        stop.set()
        await sim
        return first, still, after

    first, still, after = asyncio.run(scenario())
    # 15 days before Saturday 28 Nov: the urgent ones are the Saturdays 21 and 14 Nov, then newest first
    assert first == still == {"20261121", "20261114", "20261127"}
    assert {"20261126"} <= after - still
