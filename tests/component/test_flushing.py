"""The producer flush Faust runs before committing offsets, made complete (agents/flushing.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.producer import ProducerBuffer

from agents.flushing import complete_flush

pytestmark = pytest.mark.component


class SlowChannel:
    """A topic whose every send takes longer than the 100 ms Faust's buffer flush waits for one."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.sent: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay_s)
        self.sent.append(fut.n)


def queued(channel: SlowChannel, n: int) -> Any:
    return SimpleNamespace(n=n, message=SimpleNamespace(channel=channel))


async def flushed_after(complete: bool) -> list[int]:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    channel = SlowChannel(0.15)
    flush = complete_flush(buffer, buffer.flush, poll_s=0.05) if complete else buffer.flush
    for n in range(4):
        buffer.put(queued(channel, n))
    await flush()
    sent = list(channel.sent)
    await complete_flush(buffer, buffer.flush, poll_s=0.05)()  # empty before stopping (stop flushes too)
    await buffer.stop()
    return sent


def test_faust_buffer_flush_gives_up_on_a_slow_send() -> None:
    # the flaw itself (faust-streaming 0.15.3): a send slower than 100 ms ends the flush with writes queued
    assert len(asyncio.run(flushed_after(complete=False))) < 4


def test_complete_flush_waits_for_every_write_queued_before_it() -> None:
    assert asyncio.run(flushed_after(complete=True)) == [0, 1, 2, 3]
