"""The footfall ingest (`agents.ingest`) with a fake producer and consumer: zone-topic messages stay under the
producer's request limit whatever a batch holds, a partition is processed only after its sends, a revoked one
leaves no offset behind, and a stop is prompt yet finishes the batch under way."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from agents.footfall import encode_readings
from agents.ingest import ZONE_MESSAGE_READINGS, FootfallIngest, cut
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.footfall import Parsed, Reading

PRODUCER_MAX_REQUEST_BYTES = 1_048_576  # aiokafka's default max_request_size, which Faust's producer keeps


def reading(i: int) -> Reading:
    return Reading(f"s{i}", "z", i, 60_000, 1)


def make_ingest(readings: list[Reading], on_send: Any = None, send_s: float = 0.0) -> FootfallIngest:
    """An ingest whose producer calls `on_send(value)` and completes every send after `send_s` seconds."""
    async def send(topic: str, key: bytes, value: bytes, *_: Any) -> asyncio.Future[None]:
        if on_send is not None:
            on_send(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(send_s, done.set_result, None)
        return done

    app = SimpleNamespace(producer=SimpleNamespace(send=send))
    return FootfallIngest(cast(Any, app), Settings.model_construct(), "footfall.counts.v1", "zones",
                          lambda raw, now: Parsed(source="g1", readings=readings), encode_readings,
                          cast(Any, None), WorkerMetrics(CollectorRegistry()), lambda: 0)


@given(st.integers(0, 30), st.integers(1, 7))
def test_cut_keeps_every_reading_in_order_in_parts_of_at_most_size(n: int, size: int) -> None:
    items = [reading(i) for i in range(n)]
    parts = cut(items, size)
    assert [r for p in parts for r in p] == items
    assert all(0 < len(p) <= size for p in parts)
    assert len(parts) == -(-n // size)  # as few as the size allows


def test_the_largest_zone_message_fits_a_produce_request() -> None:
    """The longest sensor id the schema allows (64 characters), the largest values, a long source name: a full
    part still fits with room to spare (a send over the limit would stop the ingest)."""
    longest = "a" * 64
    worst = [Reading(longest, "z", 99_999_999_999_999, 86_400_000, 20_000_000) for _ in range(ZONE_MESSAGE_READINGS)]
    raw = encode_readings("g" * 128, worst, 255)
    assert len(raw) < PRODUCER_MAX_REQUEST_BYTES * 0.6


def test_the_ingest_sends_a_large_zone_group_in_parts_and_only_then_calls_it_processed() -> None:
    """12,000 readings of one zone in one batch become three zone-topic messages in order; the partition counts
    as processed (a tick may vouch for it) only after every send is done."""
    sent: list[bytes] = []
    processed_when_sent: list[bool] = []
    tp = TopicPartition("footfall.counts.v1", 3)

    def sending(value: bytes) -> None:
        sent.append(value)
        processed_when_sent.append(tp in ingest.backlog.offsets)

    ingest = make_ingest([reading(i) for i in range(12_000)], sending)

    async def scenario() -> None:
        ingest.backlog.takes([tp])
        await ingest.process({tp: [SimpleNamespace(value=b"{}", offset=41)]})

    asyncio.run(scenario())
    docs = [orjson.loads(v) for v in sent]
    assert [len(d["r"]) for d in docs] == [5_000, 5_000, 2_000]
    assert [row[1] for d in docs for row in d["r"]] == list(range(12_000))
    assert {d["p"] for d in docs} == {3}
    assert processed_when_sent == [False, False, False]
    assert ingest.backlog.offsets[tp] == 41
    assert tp not in ingest.backlog.busy


def test_a_batch_of_a_partition_revoked_before_it_was_processed_leaves_no_offset_behind() -> None:
    """The revocation ran while the batch waited for the lock: its offset must not come back after `forget`, or a
    later reassignment would compare the high watermark with this stale offset and never vouch for the
    partition while it gets no new input (its idle sources' windows would stay open)."""
    tp = TopicPartition("footfall.counts.v1", 0)

    ingest = make_ingest([reading(1)])

    async def scenario() -> None:
        ingest.backlog.takes([tp])
        ingest.backlog.forget([tp])  # revoked
        await ingest.process({tp: [SimpleNamespace(value=b"{}", offset=7)]})

    asyncio.run(scenario())
    assert tp not in ingest.backlog.offsets


class FakeConsumer:
    """`getmany` hands out `batches`, then waits for records that never come; commits are recorded."""

    def __init__(self, batches: list[dict[Any, list[Any]]]) -> None:
        self.batches = batches
        self.commits: list[dict[Any, int]] = []
        self.stopped = False

    async def getmany(self, **_: Any) -> dict[Any, list[Any]]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(3600)
        return {}

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(offsets)

    async def stop(self) -> None:
        self.stopped = True


def stopped_after(ingest: FootfallIngest, consumer: FakeConsumer, after_s: float) -> float:
    """Run the ingest on `consumer`, stop it after `after_s`; how long the stop took."""
    async def scenario() -> float:
        ingest.consumer = cast(Any, consumer)
        ingest.task = asyncio.create_task(ingest.run())
        await asyncio.sleep(after_s)
        t = time.monotonic()
        await ingest.stop()
        return time.monotonic() - t

    return asyncio.run(scenario())


def test_a_stop_while_waiting_for_records_is_prompt() -> None:
    consumer = FakeConsumer([])
    assert stopped_after(make_ingest([]), consumer, 0.05) < 1
    assert consumer.stopped
    assert consumer.commits == []


def test_a_stop_during_a_batch_waits_for_its_sends_and_commit() -> None:
    """SIGTERM mid-batch: the batch's sends complete and its offsets are committed before the consumer stops."""
    tp = TopicPartition("footfall.counts.v1", 2)
    consumer = FakeConsumer([{tp: [SimpleNamespace(value=b"{}", offset=8)]}])
    ingest = make_ingest([reading(1)], send_s=0.5)
    took = stopped_after(ingest, consumer, 0.1)
    assert 0.2 < took < 3
    assert consumer.commits == [{tp: 9}]
    assert consumer.stopped


class RefusingConsumer(FakeConsumer):
    """Commits fail with `error`, once each."""

    def __init__(self, errors: list[Exception]) -> None:
        super().__init__([])
        self.errors = errors

    async def commit(self, offsets: dict[Any, int]) -> None:
        raise self.errors.pop(0)


def test_a_failed_commit_is_counted_by_reason_and_the_ingest_goes_on() -> None:
    """A commit lost to a rebalance is normal; a broker refusing commits is what ops must see: by reason."""
    ingest = make_ingest([])
    consumer = RefusingConsumer([CommitFailedError(), KafkaConnectionError(), KafkaConnectionError()])
    batch = {TopicPartition("footfall.counts.v1", 0): [SimpleNamespace(value=b"{}", offset=1)]}

    async def scenario() -> None:
        for _ in range(3):
            await ingest.commit(cast(Any, consumer), batch)

    asyncio.run(scenario())
    samples = ingest.metrics.ingest_commit_failures.collect()[0].samples
    assert {s.labels["reason"]: s.value for s in samples if s.name.endswith("_total")} == {"rebalanced": 1,
                                                                                          "error": 2}


def test_sensor_health_sees_a_zone_s_readings_of_the_whole_batch_at_once() -> None:
    """One reading per message (encoding A): a sensor's neighbours are in other messages, so the check gets the
    batch's readings of a zone together, in order, and only what it keeps is sent."""
    checked: list[list[str]] = []

    def check(readings: list[Reading]) -> list[Reading]:
        checked.append([r.sensor_id for r in readings])
        return [r for r in readings if r.sensor_id != "s1"]  # as if s1 were stuck

    sent: list[bytes] = []
    ingest = make_ingest([], sent.append)
    ingest.parse = lambda raw, now: Parsed(source="g1", readings=[reading(int(raw or b"0"))])
    ingest.check = check
    tp = TopicPartition("footfall.counts.v1", 0)
    asyncio.run(ingest.process({tp: [SimpleNamespace(value=str(i).encode(), offset=i) for i in range(3)]}))
    assert checked == [["s0", "s1", "s2"]]
    assert [row[0] for v in sent for row in orjson.loads(v)["r"]] == ["s0", "s2"]
