"""The FastAPI application factory: everything it reads (settings, registry, store, clock) is injected."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from api import problems
from api.fastpath import FastLive
from api.limits import Limits, document_limits
from api.observe import Observe
from api.pages import build_pages_router
from api.routes import Context, build_router
from api.sensors import build_sensors_router
from api.spending import build_spending_router
from api.store import LiveStore
from api.stream import build_stream_router
from drukte.metrics import ApiMetrics
from drukte.settings import Settings
from streams.registry import Registry

DESCRIPTION = """Live, privacy-first busyness of city shopping zones.

Live objects are read from the store the stream worker writes; `quality` says how old they are, and data
older than the stale limit is shown with level `unknown`, never as quiet. Errors are RFC 9457 problem
details (`application/problem+json`)."""


# Newer FastAPI has native OpenTelemetry that asks the global providers (and the environment) on every request,
# about 6 % of a /live request's CPU. Drukte's metrics are Prometheus (api/observe.py) and it sets up no
# OpenTelemetry: switch it off where FastAPI has it.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def wall_clock_ms() -> int:
    """Epoch milliseconds from the system clock."""
    return time.time_ns() // 1_000_000


def _version() -> str:
    try:
        return version("drukte")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(
    settings: Settings,
    registry: Registry,
    redis_client: aioredis.Redis,
    metrics_registry: CollectorRegistry | None = None,
    clock: Callable[[], int] = wall_clock_ms,
    monotonic: Callable[[], float] = time.monotonic,
    fast_live: bool = True,
) -> FastAPI:
    """Build the API. The caller owns `redis_client` (and closes it); metrics go to `metrics_registry`.

    `clock` is the time the answers speak of (epoch ms); `monotonic` (s) only times the live-object cache.
    `fast_live` False serves /live through FastAPI's router only (tests compare the two)."""
    metrics_registry = metrics_registry if metrics_registry is not None else CollectorRegistry()
    metrics = ApiMetrics(metrics_registry)
    store = LiveStore(redis_client, settings.api_cache_ms, monotonic)
    ctx = Context(settings, registry, store, metrics, metrics_registry, clock)
    app = FastAPI(title="Drukte", version=_version(), description=DESCRIPTION, **_NO_TELEMETRY)
    problems.install(app, metrics)
    live_router = build_router(ctx)
    app.include_router(live_router)
    app.include_router(build_spending_router(ctx))
    app.include_router(build_sensors_router(ctx))
    app.include_router(build_stream_router(ctx, redis_client))
    app.include_router(build_pages_router(ctx, redis_client))
    if fast_live:  # added first = innermost: inside Limits, CORS and Observe, like the routes
        app.add_middleware(FastLive, ctx=ctx, routes=[r for r in live_router.routes if isinstance(r, APIRoute)])
    s = settings
    app.add_middleware(Limits, metrics=metrics, clock=clock, per_min=s.rate_limit_per_min,
                       max_url_bytes=s.max_url_bytes, max_header_bytes=s.max_header_bytes,
                       max_body_bytes=s.max_body_bytes)  # inside CORS, so a 429 is readable cross-origin
    document_limits(app)
    # City screens embed widgets from other origins: any origin may read, nobody may write.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"])
    app.add_middleware(Observe, metrics=metrics)  # added last = outermost: times CORS answers too
    return app
