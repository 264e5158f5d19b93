"""The Faust app factory: broker, group timeouts and the topics of the footfall path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from drukte.kafka import ssl_context
from drukte.settings import Settings
from streams.topics import BUSYNESS, DEVICES, DEVICES_ZONE, FOOTFALL, PAYMENTS, REJECTED, SPENDING, TopicSpec


def broker_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's form of the Kafka security settings; drukte.kafka.security_options gives aiokafka the same."""
    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_username is not None
        assert settings.kafka_sasl_password is not None  # Settings checked both
        # with an SSL context Faust speaks SASL_SSL, without one SASL_PLAINTEXT
        return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                     password=settings.kafka_sasl_password.get_secret_value(),
                                     ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
    return faust.SSLCredentials(context) if context is not None else None


def create_app(settings: Settings) -> faust.App:
    if settings.kafka_url is None:
        from drukte.errors import SettingsError

        msg = "DRUKTE_KAFKA_URL is not set: point it at Kafka, or run `drukte up` for an embedded broker"
        raise SettingsError(msg)
    if settings.single_record_batches:
        # Tansu answers ListOffsets "latest" with the base offset of the last record batch + 1; recovery of
        # table changelogs reads up to that offset, so there every record must be a batch of its own.
        extra: dict[str, Any] = {"producer_max_batch_size": 1}
    else:
        # A take sends hundreds of windows and changelog records at once: let them share produce requests
        # (Faust's default of no linger and 16 KiB batches sent each window on its own, a third of the CPU).
        extra = {"producer_linger_ms": 5, "producer_max_batch_size": 256 * 1024}
    if settings.fast_groups:
        # STREAMING.md: Faust's default timeouts make a group join on Tansu take ~30 s; these take ~4 s.
        extra |= {"broker_rebalance_timeout": 3.0, "broker_session_timeout": 6.0,
                "broker_heartbeat_interval": 1.0}
    return faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        broker_credentials=broker_credentials(settings),
        topic_replication_factor=settings.replication_factor,
        store="memory://",
        datadir=str(settings.data_dir / "worker"),
        # Defaults serve the table (str keys, JSON-able state). Every topic names "raw" explicitly: we decode
        # ourselves, so one bad value cannot crash an agent (STREAMING.md).
        key_serializer="json",
        value_serializer="json",
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Our own window logic is the state that matters; keep the standby copy for fast failover.
        table_standby_replicas=1,
        # The ingest (agents/ingest.py) fills the zone topic faster than the windows take it, and Faust would
        # prefetch 4 MB a partition and queue 4,096 of its messages (each a zone's part of a whole batch): 360 MB
        # of peak RSS in the throughput benchmark. The windows agent needs one take's worth queued.
        stream_buffer_maxsize=settings.batch_events,
        consumer_max_fetch_size=1024 * 1024,
        **extra,
    )


@dataclass(frozen=True)
class Topics:
    footfall: faust.TopicT
    byzone: faust.TopicT
    busyness: faust.TopicT
    rejected: faust.TopicT
    payments: faust.TopicT
    spending: faust.TopicT
    devices: faust.TopicT
    devices_zone: faust.TopicT


def _topic(app: faust.App, spec: TopicSpec, partitions: int) -> faust.TopicT:
    return app.topic(spec.name, partitions=partitions, key_serializer="raw", value_serializer="raw",
                     config=spec.configs() or None)


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    p = settings.partitions
    return Topics(
        footfall=_topic(app, FOOTFALL, p),
        # Readings regrouped by zone, so one worker owns all sensors of a zone; declared explicitly with our
        # partition count and app id (STREAMING.md: group_by topics clash and leak between apps).
        byzone=app.topic(settings.zone_topic, partitions=p, internal=True,
                         key_serializer="raw", value_serializer="raw"),
        busyness=_topic(app, BUSYNESS, p),
        rejected=_topic(app, REJECTED, p),
        payments=_topic(app, PAYMENTS, p),
        spending=_topic(app, SPENDING, p),
        devices=_topic(app, DEVICES, p),
        devices_zone=_topic(app, DEVICES_ZONE, p),
    )
