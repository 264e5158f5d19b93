"""kill -9 of the worker mid-batch, just after a window publish, and during recovery: the windows are exact."""

from __future__ import annotations

import signal

import orjson
import pytest

from streams.storekeys import windows_key
from streams.timegrid import parse_ts
from tests.e2e.conftest import Stack, wait_for
from tests.e2e.test_footfall_path import by_window
from tests.e2e.workload import (
    ENV,
    Feeder,
    assert_matches_truth,
    count_when,
    everything,
    kill9,
    make_workload,
    published,
    republished,
    wait_log,
)

pytestmark = pytest.mark.e2e
# Small takes: the worker then writes its state several times before each kill, so the third worker has a
# changelog to recover from (with the default 1,000 messages a take, the first takes hold the whole backlog).
ENV = {**ENV, "DRUKTE_BATCH_EVENTS": "8"}


def test_kill9_at_three_points_then_restart(stack: Stack) -> None:
    """Three simulated hours from one gateway, fed while the worker is killed three times:

    1. mid-batch: while it works through the input (15 windows out);
    2. just after a window publish: the store is frozen (SIGSTOP), so the worker sends windows to the topic
       and then hangs on the store write, before marking them final; killed there;
    3. during recovery: as soon as the next worker restores its table from the changelog.

    The restarts use the e2e tier's idle time of 3 s, far shorter than the outages: the sources were not idle,
    the worker was, so the restarted worker must not tick their watermarks past the input it has still to read.
    """
    wl = make_workload(180)
    w1 = stack.spawn("worker", log="worker1", **ENV)
    feeder = Feeder(stack, wl.batches)

    # 1. mid-batch
    count_when(stack, lambda n: n >= 15)
    kill9(w1)
    at_kill = len(everything(stack))  # exact: nobody writes now (a read stopped by a quiet spell undercounted, and
    # a record of w1's then passed for one of w2's: w2 was killed before it published anything)

    # 2. just after a window publish, before its store write and before it is marked final
    store_pid = stack.store.proc.pid
    stack.store.proc.send_signal(signal.SIGSTOP)
    try:
        w2 = stack.spawn("worker", log="worker2", **ENV)
        count_when(stack, lambda n: n > at_kill, distinct=False)  # a record sent after the freeze
        kill9(w2)
    finally:
        stack.store.proc.send_signal(signal.SIGCONT)
    assert stack.store.proc.pid == store_pid

    # 3. during recovery
    w3 = stack.spawn("worker", log="worker3", **ENV)
    wait_log(stack, "worker3", "Restoring state from changelog topics")
    kill9(w3)

    stack.spawn("worker", log="worker4", **ENV)
    feeder.join()
    windows = published(stack, len(wl.truth))
    assert_matches_truth(windows, wl.truth)

    # the windows sent before the frozen store write are published again, byte for byte, and the store holds
    # every window once with the same figures
    records = republished(stack)
    assert by_window(records) == windows
    # the store is written after the topic (and a take's last windows a moment after they show there)
    keys = [windows_key(z) for z in {z for z, _ in wl.truth}]
    wait_for("every window in the store", lambda: sum(int(stack.redis().zcard(k)) for k in keys) >= len(wl.truth),
             timeout_s=30)
    r = stack.redis()
    for zone in {z for z, _ in wl.truth}:
        stored = [orjson.loads(m) for m in r.zrange(windows_key(zone), 0, -1)]
        assert sorted(parse_ts(w["window"]["start"]) for w in stored) == sorted(
            s for z, s in wl.truth if z == zone)
        assert all(w["visitors"] == windows[(zone, parse_ts(w["window"]["start"]))]["visitors"] for w in stored)
