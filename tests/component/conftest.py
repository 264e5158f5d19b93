"""Shared fixtures of the component tier: one real Valkey per test module, an empty database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from drukte.embedded import Service, start_store


class Clock:
    """A settable clock in epoch ms, injected where the code asks for `now`."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def store() -> Iterator[Service]:
    svc = start_store()
    yield svc
    svc.stop()


@pytest.fixture
async def rds(store: Service) -> AsyncIterator[Redis]:
    client = Redis.from_url(store.url)
    await client.flushdb()
    yield client
    await client.aclose()
