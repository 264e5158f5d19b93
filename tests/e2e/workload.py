"""Generated gateway workloads with a ground truth computed offline, and helpers the fault tests share.

The workload is a few simulated hours of one gateway of Testtown (tests/e2e/registry.yaml), one batch per minute:

- tt-main and tt-side: every reading is a multiple of 10 people and a window holds fewer than 400, so the
  published range (10 wide) starts at the exact count: one reading lost or counted twice changes it;
- tt-side-03 sends five-minute readings that start two minutes into a window, apportioned 3:2 (by time)
  over two windows;
- tt-quiet: a few people per window, published suppressed (below_k).

The ground truth is worked out here, by its own arithmetic, not with the worker's code.
"""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from drukte.kafka import bootstrap
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for
from tests.e2e.test_footfall_path import by_window

WINDOW_MS = 5 * MIN
# Settings the fault tests run the worker with: five-minute windows (fewer publications for hours of data),
# the e2e tier's short grace and idle time.
ENV = {"DRUKTE_WINDOW_S": "300", "DRUKTE_LIVE_S": "900"}
SOURCE = "gw-testtown-01"
ZONES = {
    "tt-main": [("tt-main-01", "street"), ("tt-main-02", "street"), ("tt-main-03", "entrance")],
    "tt-side": [("tt-side-01", "street"), ("tt-side-02", "street"), ("tt-side-03", "street")],
    "tt-quiet": [("tt-quiet-01", "street"), ("tt-quiet-02", "street"), ("tt-quiet-03", "street")],
}
K_MIN = 15
MIN_SENSORS = 3


@dataclass
class Workload:
    base_ms: int
    minutes: int
    batches: list[bytes]
    readings: list[dict[str, Any]]  # every reading sent, in order
    truth: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


def now_window_base(minutes: int, now_ms: int | None = None) -> int:
    """The start of a five-minute window such that `minutes` of data end at or just before now."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return now - now % WINDOW_MS - minutes * MIN


def _readings(rng: random.Random, base: int, m: int, minutes: int) -> list[dict[str, Any]]:
    st = base + m * MIN
    out = []
    for zone, sensors in ZONES.items():
        for sensor, kind in sensors:
            if sensor == "tt-side-03":
                if m % 5 == 2 and m + 5 <= minutes:  # five minutes from 2 minutes into the window: 30 + 20 (3:2)
                    out.append({"sensor_id": sensor, "start": iso(st), "seconds": 300, "in": 25, "out": 25})
                continue
            if zone == "tt-quiet":
                n_in, n_out = (1 if m % 3 == 0 else 0), 0
            elif kind == "entrance":
                n_in, n_out = 10 * rng.randint(0, 2), rng.randint(0, 9)  # an entrance counts who comes in
            else:
                n_in, n_out = 10 * rng.randint(0, 1), 10 * rng.randint(0, 1)
            out.append({"sensor_id": sensor, "start": iso(st), "seconds": 60, "in": n_in, "out": n_out})
    return out


def make_workload(minutes: int, *, base_ms: int | None = None, seed: int = 6) -> Workload:
    """`minutes` (a multiple of 5) of one-minute batches ending at or just before now, with their truth."""
    assert minutes % 5 == 0
    base = now_window_base(minutes) if base_ms is None else base_ms
    rng = random.Random(seed)
    wl = Workload(base, minutes, [], [])
    for m in range(minutes):
        readings = _readings(rng, base, m, minutes)
        wl.readings += readings
        wl.batches.append(orjson.dumps({"source": SOURCE, "batch_id": f"{SOURCE}/{base + m * MIN}",
                                        "sent_at": iso(base + (m + 1) * MIN + 2000), "readings": readings}))
    wl.truth = ground_truth(wl.readings, base, minutes)
    return wl


def ground_truth(readings: list[dict[str, Any]], base: int, minutes: int) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (zone, window start): the published range (or None) and reason, and the sensors reporting.

    Each reading is counted once, whatever the number of times it was sent, split over windows by time."""
    kinds = {s: (zone, kind) for zone, sensors in ZONES.items() for s, kind in sensors}
    people: dict[tuple[str, int], float] = {}
    sensors: dict[tuple[str, int], set[str]] = {}
    seen: set[tuple[str, str]] = set()
    for r in readings:
        if (r["sensor_id"], r["start"]) in seen:
            continue
        seen.add((r["sensor_id"], r["start"]))
        zone, kind = kinds[r["sensor_id"]]
        visitors = r["in"] + r["out"] if kind == "street" else r["in"]
        start = _ms(r["start"])
        end = start + r["seconds"] * 1000
        for w in range(start - start % WINDOW_MS, end, WINDOW_MS):
            overlap = min(end, w + WINDOW_MS) - max(start, w)
            people[(zone, w)] = people.get((zone, w), 0) + visitors * overlap / (end - start)
            sensors.setdefault((zone, w), set()).add(r["sensor_id"])
    truth = {}
    for key, n in people.items():
        if not base <= key[1] < base + minutes * MIN:
            continue  # a reading running past the last window: that window is still open
        count = round(n)
        assert abs(count - n) < 1e-9, f"workload must split into whole people, got {n} in {key}"
        reason = "few_sensors" if len(sensors[key]) < MIN_SENSORS else "below_k" if count < K_MIN else None
        truth[key] = {"visitors": None if reason else {"min": count - count % 10, "max": count - count % 10 + 10},
                      "reason": reason, "sensors": len(sensors[key])}
    return truth


def _ms(text: str) -> int:
    from streams.timegrid import parse_ts

    return parse_ts(text)


def summary(windows: dict[tuple[str, int], dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """What the ground truth says about each published window."""
    return {k: {"visitors": v["visitors"], "reason": v["privacy"]["reason"],
                "sensors": v["quality"]["sensors_reporting"]} for k, v in windows.items()}


def windows_when(stack: Stack, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float,
                 what: str = "") -> list[dict[str, Any]]:
    """Every record of busyness.zone.v1 once `until(records)` holds; on a timeout the error says `what` did not
    happen and where the records stopped (`diagnosis`)."""
    try:
        return stack.consume("busyness.zone.v1", until, timeout_s=timeout_s)
    except AssertionError as exc:
        if "condition not met" not in str(exc):
            raise
        raise AssertionError(f"{what}{exc}\n{diagnosis(stack, 'busyness.zone.v1')}") from exc


def published(stack: Stack, at_least: int, timeout_s: float = 120) -> dict[tuple[str, int], dict[str, Any]]:
    """Every window on busyness.zone.v1 once `at_least` distinct ones are there (a republished one must be
    byte-identical, see `by_window`). On a timeout the error tells where the records stopped (`diagnosis`)."""
    return by_window(windows_when(stack, lambda rs: len(by_window(rs)) >= at_least, timeout_s))


def diagnosis(stack: Stack, topic: str, group: str = "drukte") -> str:
    """Where a stream stopped, for a failure message (CI keeps nothing else): records of `topic` a fresh reader
    gets per partition against the fetch high watermark (a stuck reader, or no more records?), the group's
    committed offsets on the footfall path against theirs (workers that stopped consuming?), and each worker
    log's last assignment, warnings and errors, and last lines."""
    async def offsets() -> list[str]:
        out = []
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap(stack.broker.url), group_id=None,
                                  enable_auto_commit=False, auto_offset_reset="earliest")
        await reader.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
            reader.assign(tps)
            got = dict.fromkeys(tps, 0)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                for tp, records in (await reader.getmany(timeout_ms=300)).items():
                    got[tp] += len(records)
            out.append(f"{topic}: read/highwater " + " ".join(
                f"[{tp.partition}] {got[tp]}/{reader.highwater(tp)}" for tp in tps))
        finally:
            await reader.stop()
        # the footfall ingest commits in a group of its own (agents/ingest.py), the windows in Faust's
        for member_group, name in ((f"{group}-ingest", "footfall.counts.v1"), (group, f"{group}-footfall-byzone")):
            member = AIOKafkaConsumer(bootstrap_servers=bootstrap(stack.broker.url), group_id=member_group,
                                      enable_auto_commit=False)
            await member.start()
            try:
                tps = [TopicPartition(name, p) for p in sorted(member.partitions_for_topic(name) or ())]
                ends = await member.end_offsets(tps) if tps else {}
                committed = [await member.committed(tp) for tp in tps]
                out.append(f"{name} ({member_group}): committed/end " + " ".join(
                    f"[{tp.partition}] {c}/{ends.get(tp)}" for tp, c in zip(tps, committed, strict=True)))
            finally:
                await member.stop()
        return out

    try:
        lines = asyncio.run(asyncio.wait_for(offsets(), 30))
    except Exception as exc:  # a diagnosis must not hide the failure it explains
        lines = [f"offsets not read: {exc!r}"]
    for log in sorted(stack.tmp.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()
        if not log.stem.startswith("worker"):
            continue
        assigned = [ln[:23] for ln in text if "Executing _on_partitions_assigned" in ln]
        ready = [ln[:23] for ln in text if "Worker ready" in ln]
        trouble = [ln[:200] for ln in text if "[WARNING]" in ln or "[ERROR]" in ln]
        lines.append(f"{log.stem}: {len(text)} lines, assigned at {assigned[-3:]}, ready at {ready[-3:]}, "
                     f"{len(trouble)} warnings/errors")
        lines += [f"  ! {ln}" for ln in trouble[-5:]]
        lines += [f"  | {ln[:200]}" for ln in text[-3:]]
    return "\n".join(lines)


def assert_matches_truth(windows: dict[tuple[str, int], dict[str, Any]], truth: dict[tuple[str, int], Any]) -> None:
    got = summary(windows)
    missing = sorted(set(truth) - set(got))
    extra = sorted(set(got) - set(truth))
    wrong = {k: (got[k], truth[k]) for k in sorted(set(got) & set(truth)) if got[k] != truth[k]}
    report = f"missing {missing[:5]} ({len(missing)}), extra {extra[:5]}, wrong {list(wrong.items())[:4]}"

    assert not missing, report
    assert not extra, report
    assert not wrong, report


def republished(stack: Stack, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Every record of busyness.zone.v1 once some window is there twice, each version byte-identical
    (`by_window`): a restarted worker publishing again what its killed predecessor sent but never marked final.

    Waited for, not read once: when the killed worker had already sent the last windows, every window is out
    before the restarted one has even started, so a read at that moment finds nothing republished yet."""
    return windows_when(stack, lambda rs: len(rs) > len(by_window(rs)), timeout_s, "no window was republished: ")


class Feeder:
    """Sends batches in the background at a steady pace, so faults land while data is flowing."""

    def __init__(self, stack: Stack, batches: list[bytes], per_send: int = 5, pause_s: float = 0.25) -> None:
        self.sent = 0
        self._error: BaseException | None = None

        def run() -> None:
            try:
                for i in range(0, len(batches), per_send):
                    stack.produce(batches[i:i + per_send])
                    self.sent = min(len(batches), i + per_send)
                    time.sleep(pause_s)
            except BaseException as exc:  # reported by join()
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self, timeout_s: float = 120) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the feeder did not finish"
        if self._error is not None:
            raise self._error


def wait_log(stack: Stack, name: str, text: str, timeout_s: float = 60, every_s: float = 0.05) -> None:
    wait_for(f"{text!r} in {name}.log", lambda: (stack.tmp / f"{name}.log").exists() and text in stack.log(name),
             timeout_s=timeout_s, every_s=every_s)


def kill9(proc: Any) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def count_when(stack: Stack, pred: Callable[[int], bool], timeout_s: float = 90, distinct: bool = True) -> int:
    """Wait until the number of published windows (distinct ones, or all records) satisfies `pred`; return it."""
    n = 0

    def check(rs: list[dict[str, Any]]) -> bool:
        nonlocal n
        n = len(by_window(rs)) if distinct else len(rs)
        return pred(n)

    stack.consume("busyness.zone.v1", check, timeout_s=timeout_s)
    return n


def settled(stack: Stack, quiet_s: float = 1.5, topic: str = "busyness.zone.v1") -> list[dict[str, Any]]:
    """Every record on `topic` once no new one has come for `quiet_s` (after a kill)."""
    last = (-1, time.monotonic())

    def quiet(rs: list[dict[str, Any]]) -> bool:
        nonlocal last
        if len(rs) != last[0]:
            last = (len(rs), time.monotonic())
        return time.monotonic() - last[1] >= quiet_s

    return stack.consume(topic, quiet, timeout_s=30)


def everything(stack: Stack, topic: str = "busyness.zone.v1", timeout_s: float = 30) -> list[dict[str, Any]]:
    """Every record of `topic` now, read until each partition's position reaches the high watermark of its last
    fetch (Tansu's fetch responses carry the right one, its ListOffsets does not). For a topic nobody writes to
    at the moment (its writer killed, or done): `settled`'s "quiet for a while" undercounts when a loaded
    machine delays a fetch past the quiet time."""
    async def run() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap(stack.broker.url), group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    out += [orjson.loads(r.value) for r in records]
                behind = 0
                for tp in consumer.assignment():
                    mark = consumer.highwater(tp)
                    behind += 1 if mark is None else max(0, mark - await consumer.position(tp))
                if consumer.assignment() and behind == 0:
                    return out
        finally:
            await consumer.stop()
        raise AssertionError(f"{topic}: not read to its end in {timeout_s} s; got {len(out)} records")

    return asyncio.run(run())


def settled_count(stack: Stack, quiet_s: float = 1.5) -> int:
    return len(settled(stack, quiet_s))


def metric(port: int, name: str) -> float:
    """The sum of a worker metric over its labels, from its Prometheus endpoint."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert isinstance(body, str)
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines()
               if ln.startswith((name + " ", name + "{")))


def committed(stack: Stack, group: str, topic: str) -> int:
    """The offsets `group` has committed on `topic`, summed over its partitions (asked as the group's consumer
    does: Tansu's answer to the admin client's request does not decode)."""
    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(stack.broker.url), group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            return sum([await consumer.committed(tp) or 0 for tp in tps])
        finally:
            await consumer.stop()

    return asyncio.run(run())
