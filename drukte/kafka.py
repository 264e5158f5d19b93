"""Small Kafka helpers shared by the worker, the simulator and tests: bootstrap parsing and topic creation."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from drukte.errors import DrukteError
from streams.topics import TopicSpec


def bootstrap(url: str) -> str:
    """`kafka://h1:9092;h2:9092` (Faust's form) or `h1:9092,h2:9092` → aiokafka's `h1:9092,h2:9092`."""
    hosts = url.removeprefix("kafka://").replace(";", ",")
    if not hosts or any(":" not in h for h in hosts.split(",")):
        msg = f"DRUKTE_KAFKA_URL={url!r} must look like kafka://host:9092"
        raise DrukteError(msg)
    return hosts


async def ensure_topics(url: str, specs: list[TopicSpec], partitions: int, attempts: int = 20) -> None:
    """Create missing topics with their retention settings; existing topics are left as they are."""
    last: Exception | None = None
    for _ in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(url), request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            new = [
                NewTopic(s.name, num_partitions=partitions, replication_factor=1, topic_configs=s.configs())
                for s in specs
                if s.name not in existing
            ]
            if new:
                # another process may create a topic between our list and create: that is fine
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
            return
        except KafkaError as exc:
            last = exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    msg = f"could not create topics on {url}: {last}"
    raise DrukteError(msg) from last
