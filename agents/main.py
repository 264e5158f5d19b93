"""`drukte worker`: build the Faust app with the footfall path and run it until stopped."""

from __future__ import annotations

import asyncio
import logging

from faust.worker import Worker
from prometheus_client import REGISTRY, start_http_server

from agents.app import create_app, declare_topics
from agents.devices import DevicesPath
from agents.flushing import complete_flushes, seek_before_streaming
from agents.footfall import FootfallPath, wall_ms
from agents.sensors import SensorWatch
from agents.spending import SpendingPath, SpendingTopics
from agents.store import RedisStore
from drukte.errors import SettingsError
from drukte.heap import tune_gc, tune_malloc
from drukte.kafka import ensure_topics, security_options
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.registry import Registry
from streams.topics import INPUT_TOPICS, OUTPUT_TOPICS


def run_worker(settings: Settings, registry: Registry) -> None:
    """Run one stream worker; start more with the same settings to scale out."""
    if settings.redis_url is None:
        msg = "DRUKTE_REDIS_URL is not set: point it at Redis/Valkey, or run `drukte up` for an embedded store"
        raise SettingsError(msg)
    tune_malloc()  # before the worker's heap grows: freed batch memory goes back to the system
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    complete_flushes(app)  # no offset committed before its table writes reached the broker
    seek_before_streaming(app)  # no event skipped when streams start after table recovery
    assert settings.kafka_url is not None  # create_app checked it
    # Input topics with their retention (P4) before Faust would auto-create them without it.
    asyncio.run(ensure_topics(settings.kafka_url, [*INPUT_TOPICS, *OUTPUT_TOPICS], settings.partitions,
                              replication=settings.replication_factor, options=security_options(settings)))
    metrics = WorkerMetrics(REGISTRY)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=REGISTRY)
    store = RedisStore(settings.redis_url, metrics)
    topics = declare_topics(app, settings)
    footfall = FootfallPath(app, topics, settings, registry, store, metrics)
    footfall.ingest.check = SensorWatch(app, settings, registry, store, metrics, wall_ms).filter
    SpendingPath(app, SpendingTopics(app, settings, topics.payments, topics.spending, topics.rejected), settings,
                 registry, store, metrics)
    DevicesPath(app, topics, settings, registry, store, metrics)
    logging.getLogger("drukte").setLevel(settings.log_level.upper())
    tune_gc()  # last: what was built up to here lives as long as the worker
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
