"""`python -m bench.latency`: window close → Redis → `/live`, at steady live rates into a running worker + API.

Set-up: an embedded broker and store, a registry of `zones` × `sensors/zones` street counters, one `drukte worker`
and one `drukte api`, both with a short window and grace (default `DRUKTE_WINDOW_S=60`, `DRUKTE_GRACE_S=5`) so a
few minutes hold many windows. A producer process (`--produce`, internal) sends, paced by the wall clock in
ten slices a second, live readings of the second before last for every sensor, 100 readings per footfall batch,
one gateway per input partition, at each rate of `--rates` for `--phase-s` seconds.

Readings per second = sensors × k: every sensor sends k one-second readings a second, their starts 1/k s apart
(so they overlap). As counts that is unrealistic; as work per reading it is the same as k times the sensors,
and a registry of 50,000 sensors takes minutes to parse here.

For every window of every zone this measures, from the window's end + grace (wall clock):
- redis: the moment the window is in `drukte:windows:{zone}` (the worker writes it, the live object and the
  announcement on `drukte:updates` in one pipeline; this process listens on that channel and reads the zset);
- api: the moment `GET /v1/zones/{zone}/live` serves it (polled every 20 ms from the announcement on; only for
  the newest window of an announcement, as `/live` shows only that one).
Windows that overlap a rate change are left out; windows not published within `--drain-s` after the producer
stopped count as missing. Results go to bench/results/latency-<UTC>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from bench.throughput import (
    cpu_seconds,
    iso,
    msum,
    peak_rss_mb,
    registry_yaml,
    scrape,
    stop_process,
)
from drukte import embedded
from drukte.kafka import bootstrap, ensure_topics
from streams.storekeys import HEARTBEAT_KEY, UPDATES_CHANNEL, windows_key
from streams.topics import FOOTFALL

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 8
PER_MESSAGE = 100
SLICES = 10  # sends per second


def zones_and_sensors(zones: int, sensors: int) -> tuple[list[str], dict[str, list[str]]]:
    names = [f"lat-z{i:02d}" for i in range(zones)]
    per = max(1, sensors // zones)
    return names, {z: [f"{z}-s{j}" for j in range(per)] for z in names}


# -- the producer process --------------------------------------------------------------------------------


async def produce(spec: dict[str, Any]) -> dict[str, Any]:
    """Paced by the wall clock: at second t + j/10, slice j sends every 10th sensor's readings of the last second."""
    zones, sensors_of = zones_and_sensors(spec["zones"], spec["sensors"])
    gateways: list[list[str]] = [[] for _ in range(PARTITIONS)]
    for i, z in enumerate(zones):
        gateways[i % PARTITIONS] += sensors_of[z]
    n_sensors = sum(len(g) for g in gateways)
    rng = random.Random(7)
    counts = [(rng.randrange(0, 4), rng.randrange(0, 4)) for _ in range(997)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(spec["broker"]), acks=1, linger_ms=5,
                                max_batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    sent = 0
    seq = 0
    max_behind = 0.0
    per_phase: list[dict[str, Any]] = []
    try:
        t = float(spec["t0"])
        for rate, secs in spec["phases"]:
            k = max(1, round(rate / n_sensors))
            phase = {"rate": rate, "per_sensor_per_s": k, "offered": k * n_sensors, "start": t, "sent": 0}
            for _ in range(int(secs)):
                for j in range(SLICES):
                    at = t + j / SLICES
                    delay = at - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        max_behind = max(max_behind, -delay)
                    # k one-second readings per sensor of the last second, the newest ending now: [t-1, t) for k = 1
                    base_ms = int(t * 1000) - 2000
                    starts = [iso(base_ms + (m + 1) * 1000 // k) for m in range(k)]
                    sent_at = iso(int(time.time() * 1000))
                    for g, sensors in enumerate(gateways):
                        chunk: list[dict[str, Any]] = []
                        for idx in range(j, len(sensors), SLICES):
                            s = sensors[idx]
                            for m, start in enumerate(starts):
                                n_in, n_out = counts[(idx * 31 + m + seq) % 997]
                                chunk.append({"sensor_id": s, "start": start, "seconds": 1, "in": n_in,
                                              "out": n_out})
                        for i in range(0, len(chunk), PER_MESSAGE):
                            seq += 1
                            source = f"gw-lat-{g:02d}"
                            value = orjson.dumps({"source": source, "batch_id": f"{source}/{seq}",
                                                  "sent_at": sent_at, "readings": chunk[i:i + PER_MESSAGE]})
                            await producer.send(FOOTFALL.name, value, key=source.encode(), partition=g)
                        phase["sent"] += len(chunk)
                        sent += len(chunk)
                t += 1.0
            phase["end"] = t
            per_phase.append(phase)
        await producer.flush()
    finally:
        await producer.stop()
    return {"sent": sent, "phases": per_phase, "max_behind_s": round(max_behind, 3), "end": time.time()}


# -- measuring ---------------------------------------------------------------------------------------------


class Watcher:
    """Listens on `drukte:updates`; per announced zone, the new windows in its zset and the new `/live`."""

    def __init__(self, store_url: str, api: str, window_ms: int, grace_ms: int, zones: list[str]) -> None:
        self.r = aioredis.Redis.from_url(store_url)
        self.api = api
        self.window_ms, self.grace_ms = window_ms, grace_ms
        self.last_start: dict[str, float] = dict.fromkeys(zones, -1.0)
        self.redis_at: dict[tuple[str, int], float] = {}  # (zone, window start ms) → wall time seen
        self.api_at: dict[tuple[str, int], float] = {}
        self.polling: dict[str, asyncio.Task[None]] = {}
        self.want_api: dict[str, int] = {}
        self.session: Any = None

    async def run(self, ready: asyncio.Event) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()
        pubsub = self.r.pubsub()
        await pubsub.subscribe(UPDATES_CHANNEL)
        ready.set()
        try:
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                note = orjson.loads(msg["data"])
                if note.get("kind") == "live" and note.get("zone_id") in self.last_start:
                    await self.on_live(note["zone_id"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await self.session.close()

    async def on_live(self, zone: str) -> None:
        now = time.time()
        rows = cast(list[tuple[bytes, float]], await self.r.zrangebyscore(
            windows_key(zone), f"({self.last_start[zone]}", "+inf", withscores=True))
        if not rows:
            return
        for _, score in rows:
            self.redis_at.setdefault((zone, int(score)), now)
        newest = int(rows[-1][1])
        self.last_start[zone] = newest
        self.want_api[zone] = newest
        task = self.polling.get(zone)
        if task is None or task.done():
            self.polling[zone] = asyncio.create_task(self.poll_api(zone))

    async def poll_api(self, zone: str) -> None:
        """GET /live every 20 ms until it serves the newest announced window (its `as_of` = that window's end)."""
        while True:
            want = self.want_api[zone]
            try:
                async with self.session.get(f"{self.api}/v1/zones/{zone}/live") as resp:
                    body = await resp.read()
                as_of = orjson.loads(body).get("as_of") if resp.status == 200 else None
            except (OSError, orjson.JSONDecodeError):
                as_of = None
            if as_of is not None:
                end_ms = int(datetime.fromisoformat(as_of).timestamp() * 1000)
                if end_ms >= want + self.window_ms:
                    self.api_at.setdefault((zone, want), time.time())
                    if self.want_api[zone] == want:
                        return
                    continue
            await asyncio.sleep(0.02)


def pcts(xs: list[float]) -> dict[str, Any]:
    xs = sorted(xs)
    if not xs:
        return {"n": 0, "p50_s": None, "p99_s": None, "max_s": None}

    def q(p: float) -> float:
        return round(xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))], 3)

    return {"n": len(xs), "p50_s": q(0.5), "p99_s": q(0.99), "max_s": round(xs[-1], 3)}


def summarize(w: Watcher, phases: list[dict[str, Any]], zones: list[str], window_ms: int,
              grace_ms: int) -> list[dict[str, Any]]:
    """Per rate: the windows wholly inside its phase, their latencies from end + grace, and the missing ones."""
    out = []
    for ph in phases:
        lo, hi = int(ph["start"] * 1000), int(ph["end"] * 1000)
        first = -(-lo // window_ms) * window_ms  # the first whole window
        starts = list(range(first, hi - window_ms + 1, window_ms))
        red, api, missing = [], [], 0
        for z in zones:
            for s in starts:
                due = (s + window_ms + grace_ms) / 1000
                if (z, s) in w.redis_at:
                    red.append(w.redis_at[(z, s)] - due)
                else:
                    missing += 1
                if (z, s) in w.api_at:
                    api.append(w.api_at[(z, s)] - due)
        out.append({"rate": ph["rate"], "offered": ph["offered"], "sent": ph["sent"],
                    "seconds": round(ph["end"] - ph["start"]), "windows_per_zone": len(starts),
                    "windows": len(starts) * len(zones), "missing": missing,
                    "redis": pcts(red), "api": pcts(api)})
    return out


# -- the whole benchmark ---------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, store: embedded.Service, broker: embedded.Service, api: str,
                  zones: list[str], work: Path, worker_pid: int, metrics_port: int) -> dict[str, Any]:
    window_ms, grace_ms = args.window_s * 1000, args.grace_s * 1000
    w = Watcher(store.url, api, window_ms, grace_ms, zones)
    ready = asyncio.Event()
    watch = asyncio.create_task(w.run(ready))
    await ready.wait()
    t0 = float(int(time.time()) + 2)
    spec = {"broker": broker.url, "zones": args.zones, "sensors": args.sensors, "t0": t0,
            "phases": [[rate, args.phase_s] for rate in args.rates]}
    spec_path = work / "producer.json"
    spec_path.write_bytes(orjson.dumps(spec))
    cpu0 = cpu_seconds(worker_pid)
    prod = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.latency", "--produce", str(spec_path),
                                                cwd=REPO, stdout=asyncio.subprocess.PIPE)
    t_end = t0 + args.phase_s * len(args.rates)
    while time.time() < t_end:
        await asyncio.sleep(10)
        samples = scrape(metrics_port) or []
        counted = msum(samples, "drukte_readings_in_total")
        print(f"  +{time.time() - t0:4.0f} s: worker counted {counted:,.0f} readings; windows seen "
              f"{len(w.redis_at):,}", file=sys.stderr, flush=True)
    out_raw, _ = await prod.communicate()
    produced = orjson.loads(out_raw.strip().splitlines()[-1])
    # wait for the windows of the last phase (or give up after the drain time)
    last_start = int(t_end * 1000) - int(t_end * 1000) % window_ms - window_ms
    deadline = time.time() + args.drain_s
    while time.time() < deadline and not all((z, last_start) in w.api_at for z in zones):  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    samples = scrape(metrics_port) or []
    res = {
        "producer": produced,
        "rates": summarize(w, produced["phases"], zones, window_ms, grace_ms),
        "worker": {"cpu_s": round(cpu_seconds(worker_pid) - cpu0, 1), "peak_rss_mb": peak_rss_mb(worker_pid),
                   "readings_in": int(msum(samples, "drukte_readings_in_total")),
                   "late": int(msum(samples, "drukte_late_readings_total")),
                   "duplicates": int(msum(samples, "drukte_duplicate_readings_total")),
                   "rejected": int(msum(samples, "drukte_rejected_total")),
                   "windows_published": int(msum(samples, "drukte_windows_published_total"))},
    }
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    for t in w.polling.values():
        t.cancel()
    await w.r.aclose()
    return res


def run(args: argparse.Namespace) -> dict[str, Any]:
    zones, sensors_of = zones_and_sensors(args.zones, args.sensors)
    out: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {"DRUKTE_WINDOW_S": args.window_s, "DRUKTE_GRACE_S": args.grace_s, "DRUKTE_IDLE_S": 5,
                     "zones": args.zones, "sensors": sum(len(v) for v in sensors_of.values()),
                     "per_message": PER_MESSAGE, "partitions": PARTITIONS, "rates": args.rates,
                     "phase_s": args.phase_s, "drain_s": args.drain_s},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                 check=False).stdout.strip(),
        "worker_src": args.worker_src or str(REPO)}
    work = Path(tempfile.mkdtemp(prefix="drukte-bench-latency-"))
    registry = work / "registry.yaml"
    registry.write_text(registry_yaml(zones, sensors_of))
    broker = embedded.start_broker(log=work / "broker.log")
    store = embedded.start_store(log=work / "store.log")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(ensure_topics(broker.url, [FOOTFALL], PARTITIONS))
        metrics_port, api_port = embedded.free_port(), embedded.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRUKTE_")}
        env.update(DRUKTE_KAFKA_URL=broker.url, DRUKTE_REDIS_URL=store.url, DRUKTE_REGISTRY=str(registry),
                   DRUKTE_WINDOW_S=str(args.window_s), DRUKTE_GRACE_S=str(args.grace_s), DRUKTE_IDLE_S="5",
                   DRUKTE_FAST_GROUPS="true", DRUKTE_PARTITIONS=str(PARTITIONS), DRUKTE_APP_ID="bench-latency",
                   DRUKTE_DATA_DIR=str(work / "data"), DRUKTE_METRICS_PORT=str(metrics_port),
                   DRUKTE_PORT=str(api_port), DRUKTE_RATE_LIMIT_PER_MIN="0", DRUKTE_LOG_LEVEL="warning")
        wenv = dict(env)
        if args.worker_src:
            wenv["PYTHONPATH"] = args.worker_src
        for name, e, cwd in (("worker", wenv, args.worker_src or str(REPO)), ("api", env, str(REPO))):
            with (work / f"{name}.log").open("wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "drukte.cli", name], env=e, stdout=log,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd))
        wait_ready(store.url, api_port, procs)
        print("worker and API ready; producing", file=sys.stderr, flush=True)
        out |= asyncio.run(measure(args, store, broker, f"http://127.0.0.1:{api_port}", zones, work,
                                   procs[0].pid, metrics_port))
    finally:
        for p in procs:
            stop_process(p)
        store.stop()
        broker.stop()
        if args.keep_logs:
            RESULTS.mkdir(parents=True, exist_ok=True)
            for name in ("worker.log", "api.log"):
                with contextlib.suppress(OSError):
                    shutil.copyfile(work / name, RESULTS / f"latency-{name}")
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def wait_ready(store_url: str, api_port: int, procs: list[subprocess.Popen[bytes]], timeout_s: float = 180) -> None:
    """The worker's first heartbeat in the store and a 200 from the API."""
    import urllib.request

    import redis

    r = redis.Redis.from_url(store_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("the worker or the API exited during start-up")
            api_ok = False
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"http://127.0.0.1:{api_port}/healthz", timeout=2) as resp:
                api_ok = resp.status == 200
            if api_ok and r.exists(HEARTBEAT_KEY):
                return
            time.sleep(0.5)
    finally:
        r.close()
    raise RuntimeError(f"worker or API not ready within {timeout_s:.0f} s")


def table(res: dict[str, Any]) -> str:
    s = res["settings"]
    lines = [f"Drukte latency: window {s['DRUKTE_WINDOW_S']} s, grace {s['DRUKTE_GRACE_S']} s (short on purpose: "
             f"many windows in a few minutes), {s['zones']} zones, {s['sensors']:,} sensors, {s['per_message']} "
             f"readings per message; load {res['machine']['loadavg_before']} -> {res['machine']['loadavg_after']}; "
             f"commit {res['commit'][:7]}; worker from {res['worker_src']}",
             f"producer: {res['producer']['sent']:,} readings sent, at most {res['producer']['max_behind_s']} s "
             f"behind its schedule", "",
             f"{'rate r/s':>9} {'sent':>11} {'windows':>7} {'missing':>7}   {'redis p50':>9} {'p99':>7} {'max':>7}   "
             f"{'/live p50':>9} {'p99':>7} {'max':>7}   (seconds after window end + grace)"]

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for r in res["rates"]:
        lines.append(f"{r['rate']:>9,} {r['sent']:>11,} {r['windows']:>7} {r['missing']:>7}   "
                     f"{f(r['redis']['p50_s']):>9} {f(r['redis']['p99_s']):>7} {f(r['redis']['max_s']):>7}   "
                     f"{f(r['api']['p50_s']):>9} {f(r['api']['p99_s']):>7} {f(r['api']['max_s']):>7}")
    wk = res["worker"]
    lines.append(f"worker: {wk['readings_in']:,} readings counted of {res['producer']['sent']:,} sent, late "
                 f"{wk['late']:,}, rejected {wk['rejected']:,}, windows published {wk['windows_published']:,}, cpu "
                 f"{wk['cpu_s']} s, peak RSS {wk['peak_rss_mb']} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="20000,50000", help="readings/s, one phase each, comma-separated")
    p.add_argument("--phase-s", type=int, default=180, help="seconds per rate")
    p.add_argument("--drain-s", type=int, default=60, help="seconds to wait for the last windows afterwards")
    p.add_argument("--window-s", type=int, default=60, help="DRUKTE_WINDOW_S for worker and API")
    p.add_argument("--grace-s", type=int, default=5, help="DRUKTE_GRACE_S for worker and API")
    p.add_argument("--zones", type=int, default=40)
    p.add_argument("--sensors", type=int, default=5000, help="street counters in all (each sends rate/sensors a s)")
    p.add_argument("--worker-src", help="run the worker from this source tree")
    p.add_argument("--keep-logs", action="store_true", help="copy worker and API logs to bench/results")
    p.add_argument("--produce", help=argparse.SUPPRESS)  # internal: be the producer process for this spec file
    args = p.parse_args(argv)
    if args.produce:
        spec = orjson.loads(Path(args.produce).read_bytes())
        sys.stdout.write(orjson.dumps(asyncio.run(produce(spec))).decode() + "\n")
        return 0
    args.rates = [int(x) for x in args.rates.split(",") if x.strip()]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = run(args)
    print(table(res))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"latency-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
