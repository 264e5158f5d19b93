"""`drukte topics apply` against a real (embedded Tansu) broker: creates the plan, repeats harmlessly, reports drift."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from drukte.cli import main
from drukte.embedded import Service, start_broker
from drukte.kafka import bootstrap
from drukte.settings import Settings
from drukte.topics_cmd import apply, plan
from streams.topics import FOOTFALL, PAYMENTS

pytestmark = pytest.mark.component


@pytest.fixture
def broker() -> Iterator[Service]:
    """A fresh broker per test: each test starts from no topics."""
    svc = start_broker()
    yield svc
    svc.stop()


def settings_for(broker: Service, tmp_path: Path) -> Settings:
    return Settings(kafka_url=broker.url, partitions=3, data_dir=tmp_path)


async def describe(url: str) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Partition count and the configs set on each topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(url))
    await admin.start()
    try:
        names = await admin.list_topics()
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        configs: dict[str, dict[str, str]] = {}
        for response in responses:
            for _code, _msg, _type, name, entries, *_ in response.resources:
                configs[name] = {e[0]: e[1] for e in entries}
        return partitions, configs
    finally:
        await admin.close()


async def create(url: str, *topics: Any) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(url))
    await admin.start()
    try:
        await admin.create_topics(list(topics))
    finally:
        await admin.close()


def test_apply_creates_every_planned_topic_with_partitions_and_retention(broker: Service, tmp_path: Path) -> None:
    settings = settings_for(broker, tmp_path)
    planned = plan(settings)
    outcomes = asyncio.run(apply(settings, planned))
    assert [(o.name, o.action) for o in outcomes] == [(t.name, "created") for t in planned]
    partitions, configs = asyncio.run(describe(broker.url))
    for t in planned:
        assert partitions[t.name] == 3
        for key, value in t.configs.items():  # P4: retention.ms and segment.ms as planned
            assert configs[t.name][key] == value, (t.name, key)


def test_apply_again_changes_nothing(broker: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # through the command line, as the compose `topics` service runs it
    monkeypatch.setenv("DRUKTE_KAFKA_URL", broker.url)
    monkeypatch.setenv("DRUKTE_PARTITIONS", "3")
    assert main(["topics", "apply"]) == 0
    first = capsys.readouterr().out
    before = asyncio.run(describe(broker.url))
    assert main(["topics", "apply"]) == 0
    second = capsys.readouterr().out
    assert first.count("created") == len(plan(settings_for(broker, tmp_path)))
    assert "created" not in second
    assert [line.split()[1] for line in second.splitlines()] == ["exists"] * len(plan(settings_for(broker, tmp_path)))
    assert asyncio.run(describe(broker.url)) == before


def test_apply_reports_a_topic_with_other_partitions_and_leaves_it(broker: Service, tmp_path: Path) -> None:
    settings = settings_for(broker, tmp_path)
    asyncio.run(create(broker.url, NewTopic(FOOTFALL.name, num_partitions=2, replication_factor=1,
                                            topic_configs=FOOTFALL.configs())))
    outcomes = {o.name: o for o in asyncio.run(apply(settings, plan(settings)))}
    assert outcomes[FOOTFALL.name].action == "differs"
    assert "has 2 partitions, the plan 3" in outcomes[FOOTFALL.name].detail
    assert {o.action for name, o in outcomes.items() if name != FOOTFALL.name} == {"created"}
    partitions, _ = asyncio.run(describe(broker.url))
    assert partitions[FOOTFALL.name] == 2


def test_apply_fails_with_exit_code_1_when_a_topic_differs(broker: Service, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(create(broker.url, NewTopic(PAYMENTS.name, num_partitions=5, replication_factor=1,
                                            topic_configs=PAYMENTS.configs())))
    monkeypatch.setenv("DRUKTE_KAFKA_URL", broker.url)
    monkeypatch.setenv("DRUKTE_PARTITIONS", "3")
    assert main(["topics", "apply"]) == 1
    assert f"{PAYMENTS.name}" in capsys.readouterr().out


def test_on_tansu_a_wrong_retention_is_named_with_the_tool_that_fixes_it(broker: Service, tmp_path: Path) -> None:
    # Tansu has no AlterConfigs; a real Kafka gets the retention changed (unit-tested with a fake admin)
    from drukte.errors import DrukteError

    settings = settings_for(broker, tmp_path)
    asyncio.run(create(broker.url, NewTopic(PAYMENTS.name, num_partitions=3, replication_factor=1,
                                            topic_configs={"retention.ms": "999999999"})))
    with pytest.raises(DrukteError, match=r"kafka-configs\.sh"):
        asyncio.run(apply(settings, plan(settings)))
