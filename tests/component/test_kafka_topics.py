"""`drukte.kafka.ensure_topics` (what the worker runs at start) against a real (embedded Tansu) broker: the input
topics get P4's short retention, and segments that roll in time for it to delete anything."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from drukte.embedded import Service, start_broker
from drukte.kafka import ensure_topics
from streams.topics import INPUT_TOPICS, OUTPUT_TOPICS
from tests.component.test_topics_cmd import describe

pytestmark = pytest.mark.component

HOUR_MS = 3_600_000
# PRIVACY.md P4, written out here rather than read from streams.topics, so loosening a spec fails too:
# topic → the longest retention allowed (ms)
P4_RETENTION = {
    "devices.detections.v1": HOUR_MS,  # devices ≤ 1 h
    "payments.v1": 24 * HOUR_MS,  # payments ≤ 24 h
    "footfall.counts.v1": 7 * 24 * HOUR_MS,  # counters ≤ 7 days
}


@pytest.fixture
def broker() -> Iterator[Service]:
    """A fresh broker: ensure_topics leaves existing topics alone, so each test starts from none."""
    svc = start_broker()
    yield svc
    svc.stop()


def test_ensure_topics_creates_the_input_topics_with_p4_retention(broker: Service) -> None:
    assert {t.name for t in INPUT_TOPICS} == set(P4_RETENTION)  # every input topic is judged below
    asyncio.run(ensure_topics(broker.url, [*INPUT_TOPICS, *OUTPUT_TOPICS], 3))
    partitions, configs = asyncio.run(describe(broker.url))
    for name, longest in P4_RETENTION.items():
        assert partitions[name] == 3, name
        got = configs[name]
        assert "retention.ms" in got, (name, got)  # not the broker's default (a week, or forever)
        assert "segment.ms" in got, (name, got)  # a segment is deleted only once closed
        retention, segment = int(got["retention.ms"]), int(got["segment.ms"])
        assert 0 < retention <= longest, (name, retention)
        assert 0 < segment <= retention, (name, segment)
