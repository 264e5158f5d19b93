"""`python -m bench.soak`: the whole stack for an hour at ten times the simulated four-city load.

Set-up: an embedded Tansu broker and Valkey store, and a registry made of `--scale` copies of the shipped
Flanders registry (cities, zones, sensors and merchants with `-x<i>` appended to their ids), so
`drukte simulate` (live pace, default seed) sends `--scale` times the four cities' batches and payments. Then
`drukte worker`, `drukte api` and `drukte simulate` run as child processes, and this script adds, every
`--inject-every` seconds:

- bad input: a few hand-made broken batches (not JSON, cut UTF-8, wrong types, NaN, negative counts, an
  unknown sensor, far future) on `footfall.counts.v1`;
- duplicates: the batches of a city copy for a minute already sent, regenerated with the simulator's seed, so
  byte for byte what it sent (on top of the simulator's own 0.5 % duplicated batches);
- API reads: `/v1/cities/{city}/live` of one city and `/readyz`, a few per second.

Every minute it records the RSS (VmRSS) of worker and API, the worker's consumer lag on `footfall.counts.v1`
(committed offsets against the broker's end offsets; Tansu's end offset is the base offset of the last
record batch + 1, so this can under-count by a batch), the largest `drukte_watermark_lag_seconds`, and the
minute's `drukte_window_close_to_store_seconds` (count, mean, bucket holding p95).

Pass: worker and API alive to the end, and each one's RSS at the end within `--rss-tolerance` (10 %) of its RSS
at minute `--base-minute` (10, or half the run when shorter). Writes `bench/results/soak-<UTC>.json` and prints
a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.throughput import cpu_seconds, histogram, msum, scrape, stop_process, versions
from drukte import embedded
from drukte.kafka import bootstrap, ensure_topics
from streams import simulation
from streams.registry import parse_registry
from streams.topics import FOOTFALL, PAYMENTS

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
FLANDERS = REPO / "deploy" / "registry" / "flanders.yaml"
APP_ID = "drukte-soak"
MINUTE_MS = 60_000
SEED = 2026  # the simulator's default seed: regenerated batches are exact duplicates of what it sent
# Duplicates only once the simulator's 30-minute backfill is surely sent: a re-sent minute arriving before the
# backfill's older minutes of its city moved that source's watermark past them (567 readings late at start of
# the first one-hour run, under load 9). A real gateway sends in time order.
DUPLICATES_AFTER_S = 180


def scaled_registry(text: str, copies: int) -> str:
    """`copies` copies of a registry; copy 0 keeps its ids, copy i appends `-x<i>` to every id."""
    doc = yaml.safe_load(text)
    cities, merchants = [], []
    for i in range(copies):
        suffix = "" if i == 0 else f"-x{i}"
        for city in doc["cities"]:
            c = dict(city, id=city["id"] + suffix, name=f"{city['name']}{' ' + str(i) if i else ''}")
            c["zones"] = [dict(z, id=z["id"] + suffix,
                               sensors=[dict(s, id=s["id"] + suffix) for s in z["sensors"]]) for z in city["zones"]]
            cities.append(c)
        merchants += [dict(m, id=m["id"] + suffix, zone=m["zone"] + suffix) for m in doc.get("merchants", [])]
    out = {k: v for k, v in doc.items() if k not in ("cities", "merchants")}
    return str(yaml.safe_dump({**out, "cities": cities, "merchants": merchants}, sort_keys=False))


def bad_batches(now_ms: int, n: int) -> list[bytes]:
    """Hand-made broken footfall batches; each is rejected with a reason (none counts a reading)."""
    minute = now_ms - now_ms % MINUTE_MS - 2 * MINUTE_MS
    start = datetime.fromtimestamp(minute / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    far = datetime.fromtimestamp(minute / 1000 + 86400 * 30, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def batch(readings: Any, **extra: Any) -> bytes:
        return orjson.dumps({"source": "gw-soak-bad", "batch_id": f"soak-bad/{n}/{len(extra)}", "sent_at": start,
                             "readings": readings, **extra})

    def reading(**over: Any) -> dict[str, Any]:
        return {"sensor_id": "mech-bruul-01", "start": start, "seconds": 60, "in": 1, "out": 1} | over

    return [
        b"this is not json",
        '{"source": "gw-soak-bad", "readings": [{"sensor_id": "\u00e9'.encode()[:-1],  # cut UTF-8
        batch("not a list"),
        batch([reading(**{"in": "ten"})]),
        batch([reading(out=-5)]),
        b'{"source": "gw-soak-bad", "batch_id": "nan", "sent_at": "' + start.encode()
        + b'", "readings": [{"sensor_id": "mech-bruul-01", "start": "' + start.encode()
        + b'", "seconds": 60, "in": NaN, "out": 1}]}',
        batch([reading(sensor_id=f"no-such-sensor-{n}")]),
        batch([reading(start=far)]),
        batch([], unexpected_key=True),
    ]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def http_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0


async def consumer_lag(url: str, group: str, topic: str) -> int | None:
    """End offsets minus the group's committed offsets, summed over the topic's partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(url), group_id=group, enable_auto_commit=False)
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            lag += max(0, ends[tp] - (await consumer.committed(tp) or 0))
        return lag
    except Exception:  # a missed sample is recorded as None, the soak goes on
        return None
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def bucket_delta(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """One minute of a cumulative histogram (as from `bench.throughput.histogram`): count, mean, p95 bucket."""
    b0 = before["buckets"] if before else {}
    count = now["count"] - (before["count"] if before else 0)
    total = now["sum_s"] - (before["sum_s"] if before else 0.0)
    p95 = next((le for le, v in now["buckets"].items() if count and v - b0.get(le, 0) >= 0.95 * count), None)
    return {"count": count, "mean_s": round(total / count, 3) if count else None, "p95_le_s": p95}


def live_latency(end: dict[str, Any], warm: dict[str, Any] | None) -> dict[str, Any]:
    """close -> store from the base minute to the end (the simulator's backfill, closed at start, left out):
    count, mean and the buckets holding p50/p95/p99."""
    w = warm or {"count": 0, "sum_s": 0.0, "buckets": {}}
    count = end["count"] - w["count"]
    out: dict[str, Any] = {"count": count, "mean_s": round((end["sum_s"] - w["sum_s"]) / count, 3) if count else None}
    for q in (0.5, 0.95, 0.99):
        out[f"p{round(q * 100)}_le_s"] = next((le for le, v in end["buckets"].items()
                                               if count and v - w["buckets"].get(le, 0) >= q * count), None)
    return out


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.registry_path = work / "registry.yaml"
        # the shipped registry of the tree the processes run from: another tree's may have keys they do not know
        src = Path(args.worker_src) if args.worker_src else REPO
        self.registry_path.write_text(scaled_registry((src / FLANDERS.relative_to(REPO)).read_text(), args.scale))
        self.registry = parse_registry(self.registry_path.read_text())
        self.injected = {"bad": 0, "duplicate_batches": 0, "duplicate_readings": 0}
        self.api_requests = {"ok": 0, "other": 0}
        self.samples: list[dict[str, Any]] = []
        self.base_minute = min(args.base_minute, max(1, args.minutes // 2))
        self.warm_hist: dict[str, Any] | None = None  # close -> store at the base minute

    def env(self, broker: embedded.Service, store: embedded.Service) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRUKTE_")}
        src = str(Path(self.args.worker_src).resolve()) if self.args.worker_src else str(REPO)
        env.update(DRUKTE_KAFKA_URL=broker.url, DRUKTE_REDIS_URL=store.url, DRUKTE_REGISTRY=str(self.registry_path),
                   DRUKTE_FAST_GROUPS="true", DRUKTE_APP_ID=APP_ID, DRUKTE_DATA_DIR=str(self.work / "data"),
                   DRUKTE_RATE_LIMIT_PER_MIN="0", PYTHONPATH=src)
        return env

    def spawn(self, env: dict[str, str], name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        cwd = self.args.worker_src or str(REPO)
        with (self.work / f"{name}.log").open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "drukte.cli", *args], env=env | extra, cwd=cwd,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def inject(self, url: str, stop: asyncio.Event) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap(url), linger_ms=20)
        await producer.start()
        cities = [c.id for c in self.registry.cities]
        n, started = 0, time.monotonic()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.args.inject_every)
                if stop.is_set():
                    break
                now = int(time.time() * 1000)
                for raw in bad_batches(now, n):
                    await producer.send_and_wait(FOOTFALL.name, raw, key=b"gw-soak-bad")
                    self.injected["bad"] += 1
                if time.monotonic() - started < DUPLICATES_AFTER_S:
                    n += 1
                    continue
                # a minute the simulator sent about two minutes ago, again, for one city copy
                minute = now - now % MINUTE_MS - 2 * MINUTE_MS
                city = cities[n % len(cities)]
                for batch in simulation.batches(self.registry, city, minute, minute + MINUTE_MS, SEED):
                    await producer.send_and_wait(FOOTFALL.name, orjson.dumps(batch), key=batch["source"].encode())
                    self.injected["duplicate_batches"] += 1
                    self.injected["duplicate_readings"] += len(batch["readings"])
                n += 1
        finally:
            await producer.stop()

    async def read_api(self, port: int, stop: asyncio.Event) -> None:
        cities = [c.id for c in self.registry.cities]
        n = 0
        while not stop.is_set():
            path = f"/v1/cities/{cities[n % len(cities)]}/live" if n % 4 else "/readyz"
            status = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}{path}")
            self.api_requests["ok" if status == 200 else "other"] += 1
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / self.args.api_rps)

    async def run(self) -> dict[str, Any]:
        a = self.args
        t_start = time.time()
        load_before = os.getloadavg()
        broker = embedded.start_broker(log=self.work / "broker.log")
        store = embedded.start_store(log=self.work / "store.log")
        metrics_port, api_port = embedded.free_port(), embedded.free_port()
        env = self.env(broker, store)
        await ensure_topics(broker.url, [FOOTFALL, PAYMENTS], 8, replication=1)
        worker = self.spawn(env, "worker", "worker", DRUKTE_METRICS_PORT=str(metrics_port))
        api = self.spawn(env, "api", "api", DRUKTE_PORT=str(api_port))
        sim = self.spawn(env, "simulator", "simulate")
        procs = {"worker": worker, "api": api, "simulator": sim}
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.inject(broker.url, stop)),
                 asyncio.create_task(self.read_api(api_port, stop))]
        died: dict[str, int] = {}
        prev_hist: dict[str, Any] | None = None
        t0 = time.monotonic()
        try:
            for minute in range(1, a.minutes + 1):
                while time.monotonic() < t0 + minute * 60:
                    await asyncio.sleep(1)
                    died |= {n: p.returncode for n, p in procs.items() if p.poll() is not None and n not in died}
                    if died:
                        break
                if died:
                    break
                samples = await asyncio.to_thread(scrape, metrics_port) or []
                hist = histogram(samples, "drukte_window_close_to_store_seconds") if samples else None
                sample = {
                    "minute": minute,
                    "rss_mb": {"worker": rss_mb(worker.pid), "api": rss_mb(api.pid)},
                    "cpu_s": {"worker": round(cpu_seconds(worker.pid), 1), "api": round(cpu_seconds(api.pid), 1),
                              "broker": round(cpu_seconds(broker.proc.pid), 1)},
                    "consumer_lag": await consumer_lag(broker.url, APP_ID, FOOTFALL.name),
                    "watermark_lag_max_s": max((v for n, _, v in samples if n == "drukte_watermark_lag_seconds"),
                                               default=None),
                    "close_to_store": bucket_delta(hist, prev_hist) if hist else None,
                    "counters": {k: msum(samples, f"drukte_{k}_total") for k in
                                 ("readings_in", "duplicate_readings", "rejected", "late_readings",
                                  "windows_published", "redis_errors")},
                    "loadavg": os.getloadavg()[0],
                }
                prev_hist = hist or prev_hist
                if minute == self.base_minute:
                    self.warm_hist = hist
                self.samples.append(sample)
                print(row(sample), flush=True)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            final = await asyncio.to_thread(scrape, metrics_port) or []
            for name in ("simulator", "api", "worker"):
                stop_process(procs[name])
            store.stop()
            broker.stop()
        return self.result(final, died, t_start, load_before)

    def result(self, final: list[tuple[str, str, float]], died: dict[str, int], t_start: float,
               load_before: tuple[float, float, float]) -> dict[str, Any]:
        a = self.args
        base_minute = self.base_minute
        base = next((s for s in self.samples if s["minute"] == base_minute), None)
        end = self.samples[-1] if self.samples else None
        rss: dict[str, Any] = {}
        for proc in ("worker", "api"):
            b = base["rss_mb"][proc] if base else None
            e = end["rss_mb"][proc] if end else None
            change = (e - b) / b if b and e else None
            rss[proc] = {"at_base_mb": b, "at_end_mb": e, "change": None if change is None else round(change, 4),
                         "ok": change is not None and abs(change) <= a.rss_tolerance}
        readings = msum(final, "drukte_readings_in_total")
        checks = {
            "ran_to_the_end": not died and len(self.samples) == a.minutes,
            "rss_worker": rss["worker"]["ok"],
            "rss_api": rss["api"]["ok"],
            "bad_input_rejected": msum(final, "drukte_rejected_total") >= self.injected["bad"],
            "duplicates_seen": msum(final, "drukte_duplicate_readings_total") > 0,
        }
        lags = [s["consumer_lag"] for s in self.samples if s["consumer_lag"] is not None]
        return {
            "config": {k: v for k, v in vars(a).items()}, "base_minute": base_minute,
            "started": datetime.fromtimestamp(t_start, UTC).isoformat(), "duration_s": round(time.time() - t_start),
            "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
            "versions": versions(), "source": a.worker_src or str(REPO),
            "registry": {"cities": len(self.registry.cities), "zones": len(self.registry.zones),
                         "sensors": sum(len(z.sensors) for z in self.registry.zones.values()),
                         "merchants": len(self.registry.merchants)},
            "injected": self.injected, "api_requests": self.api_requests, "died": died,
            "samples": self.samples, "rss": rss,
            "consumer_lag": {"max": max(lags, default=None), "end": lags[-1] if lags else None},
            "close_to_store": histogram(final, "drukte_window_close_to_store_seconds") if final else None,
            "close_to_store_live": live_latency(histogram(final, "drukte_window_close_to_store_seconds"),
                                                self.warm_hist) if final else None,
            "final_counters": {"readings_in": readings,
                               **{k: msum(final, f"drukte_{k}_total") for k in
                                  ("messages_in", "duplicate_readings", "rejected", "late_readings",
                                   "late_untracked_readings", "windows_published", "redis_errors")}},
            "checks": checks, "passed": all(checks.values()),
        }


HEADER = (f"{'min':>4} {'worker MB':>9} {'api MB':>7} {'lag':>6} {'wm lag s':>8} {'c2s n':>6} {'c2s mean':>8} "
          f"{'c2s p95<=':>9} {'readings':>9} {'dups':>6} {'rejected':>8} {'windows':>8} {'load':>5}")


def row(s: dict[str, Any]) -> str:
    c2s = s["close_to_store"] or {}
    c = s["counters"]

    def f(x: Any, spec: str = "") -> str:
        return "-" if x is None else format(x, spec)

    return (f"{s['minute']:>4} {f(s['rss_mb']['worker'], '.1f'):>9} {f(s['rss_mb']['api'], '.1f'):>7} "
            f"{f(s['consumer_lag']):>6} {f(s['watermark_lag_max_s'], '.0f'):>8} {f(c2s.get('count')):>6} "
            f"{f(c2s.get('mean_s')):>8} {f(c2s.get('p95_le_s')):>9} {c['readings_in']:>9.0f} "
            f"{c['duplicate_readings']:>6.0f} {c['rejected']:>8.0f} {c['windows_published']:>8.0f} "
            f"{s['loadavg']:>5.1f}")


def summary(res: dict[str, Any]) -> str:
    r, c2s, fc = res["rss"], res["close_to_store_live"] or {}, res["final_counters"]
    lines = [
        f"soak: {res['config']['minutes']} min, x{res['config']['scale']} ({res['registry']}), "
        f"injected {res['injected']}, API requests {res['api_requests']}",
        f"RSS worker {r['worker']['at_base_mb']} -> {r['worker']['at_end_mb']} MB ({fmt_pct(r['worker']['change'])}), "
        f"API {r['api']['at_base_mb']} -> {r['api']['at_end_mb']} MB ({fmt_pct(r['api']['change'])}), "
        f"from minute {res['base_minute']} to the end; tolerance {res['config']['rss_tolerance']:.0%}",
        f"consumer lag max {res['consumer_lag']['max']}, at the end {res['consumer_lag']['end']}; close -> store "
        f"from minute {res['base_minute']}: "
        f"{c2s.get('count')} windows, mean {c2s.get('mean_s')} s, p50 <= {c2s.get('p50_le_s')} s, "
        f"p95 <= {c2s.get('p95_le_s')} s, p99 <= {c2s.get('p99_le_s')} s",
        f"worker counters: {fc}",
        f"checks: {res['checks']}; died: {res['died'] or 'none'}",
        f"PASS: {res['passed']}",
    ]
    return "\n".join(lines)


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=int, default=60, help="length of the soak in minutes (default 60)")
    p.add_argument("--scale", type=int, default=10, help="copies of the four-city registry (default 10)")
    p.add_argument("--base-minute", type=int, default=10,
                   help="minute whose RSS the end is compared with (default 10; at most half the run)")
    p.add_argument("--rss-tolerance", type=float, default=0.10, help="allowed RSS change, base to end (0.10)")
    p.add_argument("--inject-every", type=float, default=10.0,
                   help="seconds between rounds of bad input and duplicated batches (default 10)")
    p.add_argument("--api-rps", type=float, default=2.0, help="API requests per second (default 2)")
    p.add_argument("--worker-src", help="run worker, API and simulator from this source tree (e.g. a "
                   "`git archive HEAD` snapshot while the working tree is mid-edit)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) after the run")
    args = p.parse_args(argv)
    if args.minutes < 2 or args.scale < 1:
        p.error("--minutes must be at least 2 and --scale at least 1")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="drukte-soak-"))
    print(f"soak {stamp}: {args.minutes} min at x{args.scale}, work dir {work}", flush=True)
    print(HEADER, flush=True)
    res = asyncio.run(Soak(args, work).run())
    print(summary(res))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{stamp}.json"
    res["work_dir"] = str(work)
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if not res["passed"] or args.keep:
        for name in ("worker", "api", "simulator"):
            with contextlib.suppress(OSError):
                shutil.copy(work / f"{name}.log", RESULTS / f"soak-{stamp}-{name}.log")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"results: {path}")
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
