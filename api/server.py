"""`drukte api`: run the HTTP API with uvicorn against the Redis the worker writes to."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable

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


def implementations() -> tuple[str, str]:
    """(event loop, HTTP parser) the API runs with: uvloop and httptools when importable (C, about twice the
    requests per CPU second), else asyncio and h11 (pure Python)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop != "uvloop":
        return None
    import uvloop

    return uvloop.new_event_loop


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
    loop, http = implementations()
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        runner.run(_serve(settings, registry, client, http))


async def _serve(settings: Settings, registry: Registry, client: aioredis.Redis, http: str) -> None:
    metrics_registry = CollectorRegistry()
    ProcessCollector(registry=metrics_registry)
    PlatformCollector(registry=metrics_registry)
    GCCollector(registry=metrics_registry)
    app = create_app(settings, registry, client, metrics_registry)
    # What is built by now (registry, app, models, imported modules) lives as long as the process: moved out of
    # the collector's sight, a full collection under load walks only what requests leave behind (one took
    # ~35 ms at 6,000 requests/s, a stall for every request in flight).
    gc.collect()
    gc.freeze()
    # no access log: it would record visitors' IP addresses, personal data we have no need for
    # A request head still growing past this is refused by the server (h11: a plain 400; httptools, which has no
    # bound of its own: a 414/431 problem, api/protocol.py). It is above the API's own limits, so a head that
    # arrives whole is answered by them first, with 414/431 problem details and metrics.
    head_bytes = max(16 * 1024, settings.max_url_bytes + settings.max_header_bytes + 1024)
    protocol: str | type[asyncio.Protocol] = "h11"
    if http == "httptools":
        from api.protocol import bounded  # imports httptools

        protocol = bounded(head_bytes, settings.max_url_bytes, settings.max_header_bytes)
    # /v1/stream answers never end by themselves: on SIGTERM give other answers 3 s, then close the streams
    # (EventSource clients reconnect to another process and resume by Last-Event-ID) instead of waiting forever
    config = uvicorn.Config(app, host=HOST, port=settings.port, log_level=settings.log_level,
                            server_header=False, access_log=False, http=protocol,
                            h11_max_incomplete_event_size=head_bytes,
                            timeout_graceful_shutdown=3)
    try:
        await uvicorn.Server(config).serve()
    finally:
        await client.aclose()
