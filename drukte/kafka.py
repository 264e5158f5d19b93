"""Small Kafka helpers shared by the worker, the simulator and tests: bootstrap, security and topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from drukte.errors import DrukteError
from drukte.settings import Settings
from streams.topics import TopicSpec


def bootstrap(url: str) -> str:
    """`kafka://h1:9092;h2:9092` (Faust's form) or `h1:9092,h2:9092` → aiokafka's `h1:9092,h2:9092`."""
    hosts = url.removeprefix("kafka://").replace(";", ",")
    if not hosts or any(":" not in h for h in hosts.split(",")):
        msg = f"DRUKTE_KAFKA_URL={url!r} must look like kafka://host:9092"
        raise DrukteError(msg)
    return hosts


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for `SSL` / `SASL_SSL` (system CAs, or `DRUKTE_KAFKA_SSL_CAFILE`); None without TLS."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    cafile = settings.kafka_ssl_cafile
    if cafile is not None and not cafile.is_file():
        msg = f"DRUKTE_KAFKA_SSL_CAFILE={str(cafile)!r} is not a readable file; point it at the CA's PEM file"
        raise DrukteError(msg)
    context: ssl.SSLContext = create_ssl_context(cafile=cafile)
    return context


def security_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin) that carry the Kafka security settings."""
    opts: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        opts["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # Settings checked it
        opts |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                 "sasl_plain_username": settings.kafka_sasl_username,
                 "sasl_plain_password": settings.kafka_sasl_password.get_secret_value()}
    return opts


async def ensure_topics(url: str, specs: list[TopicSpec], partitions: int, attempts: int = 20, *,
                        replication: int = 1, options: Mapping[str, Any] | None = None) -> None:
    """Create missing topics with their retention settings; existing topics are left as they are.

    `options`: `security_options(settings)` on a cluster that needs TLS or SASL.
    """
    last: Exception | None = None
    for _ in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(url), request_timeout_ms=10_000, **(options or {}))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            new = [
                NewTopic(s.name, num_partitions=partitions, replication_factor=replication, topic_configs=s.configs())
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
