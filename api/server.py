"""`drukte api`: run the HTTP API with uvicorn against the Redis the worker writes to."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import uvicorn
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from api.app import create_app
from drukte.errors import SettingsError
from drukte.settings import Settings
from streams.registry import Registry

HOST = "0.0.0.0"  # reachable from other machines and containers; put a reverse proxy in front for TLS


def redis_client(url: str) -> aioredis.Redis:
    """A client that gives up quickly, so a store outage becomes a 503, not a hang.

    A refused connection is retried twice (a restarting store), which takes well under a second; a store that
    accepts but does not answer (hung, or a network partition) is not retried: one 2 s timeout, then 503.
    """
    try:
        return aioredis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=1.0, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2, supported_errors=(RedisConnectionError,)),
        )
    except ValueError as exc:
        msg = f"DRUKTE_REDIS_URL={url!r} is not a Redis URL ({exc}); use e.g. redis://localhost:6379/0"
        raise SettingsError(msg) from exc


def serve(settings: Settings, registry: Registry) -> None:
    """Serve the API on 0.0.0.0:`settings.port` until interrupted."""
    if settings.redis_url is None:
        msg = ("the API reads live data from Redis, but DRUKTE_REDIS_URL is not set: set it "
               "(e.g. DRUKTE_REDIS_URL=redis://localhost:6379/0) or run `drukte up`, which starts a store, "
               "the worker and the API together")
        raise SettingsError(msg)
    client = redis_client(settings.redis_url)
    asyncio.run(_serve(settings, registry, client))


async def _serve(settings: Settings, registry: Registry, client: aioredis.Redis) -> None:
    metrics_registry = CollectorRegistry()
    ProcessCollector(registry=metrics_registry)
    PlatformCollector(registry=metrics_registry)
    GCCollector(registry=metrics_registry)
    app = create_app(settings, registry, client, metrics_registry)
    # no access log: it would record visitors' IP addresses, personal data we have no need for
    # h11 refuses a request head over this with a plain 400; keep it above the API's own limits, so those
    # answer first with 414/431 problem details
    head_bytes = max(16 * 1024, settings.max_url_bytes + settings.max_header_bytes + 1024)
    # /v1/stream answers never end by themselves: on SIGTERM give other answers 3 s, then close the streams
    # (EventSource clients reconnect to another process and resume by Last-Event-ID) instead of waiting forever
    config = uvicorn.Config(app, host=HOST, port=settings.port, log_level=settings.log_level,
                            server_header=False, access_log=False, h11_max_incomplete_event_size=head_bytes,
                            timeout_graceful_shutdown=3)
    try:
        await uvicorn.Server(config).serve()
    finally:
        await client.aclose()
