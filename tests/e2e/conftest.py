"""The e2e tier: a real Tansu broker and a real Valkey per test, workers and API as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from drukte import embedded
from drukte.kafka import bootstrap

REGISTRY = Path(__file__).with_name("registry.yaml")
MIN = 60_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def wait_for(what: str, pred: Callable[[], Any], timeout_s: float = 60.0, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Stack:
    broker: embedded.Service
    store: embedded.Service
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        # nor pytest's own (xdist puts a 32-hex run id there, which the auditor's scan of the environment flags)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DRUKTE_", "PYTEST_"))}
        env.update(
            DRUKTE_KAFKA_URL=self.broker.url, DRUKTE_REDIS_URL=self.store.url, DRUKTE_REGISTRY=str(REGISTRY),
            DRUKTE_WINDOW_S="60", DRUKTE_GRACE_S="10", DRUKTE_IDLE_S="3", DRUKTE_LIVE_S="180",
            DRUKTE_FAST_GROUPS="true", DRUKTE_SINGLE_RECORD_BATCHES="true", DRUKTE_PARTITIONS="4",
            DRUKTE_DATA_DIR=str(self.tmp / "data"),
            DRUKTE_METRICS_PORT="0", DRUKTE_TICK_S="0.5",
        )
        env.update(extra)
        return env

    def spawn(self, *args: str, log: str, **extra: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{log}.log").open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "drukte.cli", *args], env=self.env(**extra),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def produce(self, messages: list[bytes], key: bytes = b"gw-testtown-01",
                topic: str = "footfall.counts.v1", max_request_size: int = 1_048_576) -> None:
        async def run() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap(self.broker.url),
                                        max_request_size=max_request_size)
            await producer.start()
            try:
                for m in messages:
                    await producer.send_and_wait(topic, m, key=key)
            finally:
                await producer.stop()

        asyncio.run(run())

    def consume(self, topic: str, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60) -> list[
            dict[str, Any]]:
        """Every record of `topic` from the start, read until `until(records)` holds (Tansu's end offsets
        are unreliable, so we never stop at them)."""
        async def run() -> list[dict[str, Any]]:
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap(self.broker.url),
                                        auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
            await consumer.start()
            out: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout_s
            try:
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        out += [orjson.loads(r.value) for r in records]
                    if until(out):
                        return out
            finally:
                await consumer.stop()
            raise AssertionError(f"{topic}: condition not met after {timeout_s} s; got {len(out)} records")

        return asyncio.run(run())

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.store.port)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    broker = embedded.start_broker(log=tmp_path / "broker.log")
    store = embedded.start_store(log=tmp_path / "store.log")
    s = Stack(broker, store, tmp_path)
    yield s
    for p in s.procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in s.procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    store.stop()
    broker.stop()


def http_get(url: str) -> tuple[int, dict[str, Any] | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body.decode()
