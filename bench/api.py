"""`python -m bench.api`: one `drukte api` process over a store seeded with live objects for the shipped registry.

1. Requests/s and p50/p99 latency for `GET /v1/zones/{zone}/live` and `GET /v1/cities/{city}/live`, from `wrk`
   (Debian's; `make wrk` installs it) or, without it, a Python (aiohttp) client in its own process.
2. SSE: `--sse-clients` concurrent `GET /v1/stream?city_id=` clients spread over the cities; once every client
   has its snapshot, the bench writes a fresh live object for every zone and announces each on `drukte:updates`
   exactly as the worker's `RedisStore.publish` does (one pipeline), and measures, per client, the time from the
   pipeline's return to its first fresh event and to the fresh event of every zone of its city. Several rounds.

The API runs with `DRUKTE_RATE_LIMIT_PER_MIN=0` (its per-client limit would answer 429 to a load generator).
Results go to bench/results/api-<UTC>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from api.server import implementations
from drukte import embedded
from drukte.registry_check import load_registry
from drukte.settings import DEFAULT_REGISTRY, Settings
from streams.publication import PrivacyPolicy, live_object
from streams.registry import Registry
from streams.storekeys import HEARTBEAT_KEY, UPDATES_CHANNEL, live_key
from streams.timegrid import format_ts
from streams.windows import Cell

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
WINDOW_MS = 300_000
POLICY = PrivacyPolicy(k_min=15, min_sensors=3)


# -- the store's contents --------------------------------------------------------------------------------


def live_objects(registry: Registry, end_ms: int) -> list[dict[str, Any]]:
    """A live object per zone as the worker builds it (streams.publication.live_object), 3 windows to `end_ms`."""
    out = []
    for city in registry.cities:
        for i, zone in enumerate(city.zones):
            n = len(zone.sensors)
            cells = [Cell(zone.id, end_ms - (3 - j) * WINDOW_MS, end_ms - (2 - j) * WINDOW_MS,
                          200 + 37 * i + 11 * j, n, n * WINDOW_MS) for j in range(3)]
            out.append(live_object(zone, city, cells, POLICY, window_ms=WINDOW_MS, grace_ms=120_000))
    return out


async def write_lives(r: aioredis.Redis, lives: list[dict[str, Any]], *, announce: bool) -> None:
    """Like agents.store.RedisStore.publish: SET every live object, then announce each, one pipeline."""
    pipe = r.pipeline(transaction=False)
    for live in lives:
        pipe.set(live_key(live["zone_id"]), orjson.dumps(live))
    if announce:
        for live in lives:
            pipe.publish(UPDATES_CHANNEL, orjson.dumps(
                {"kind": "live", "zone_id": live["zone_id"], "city_id": live["city_id"]}))
    pipe.set(HEARTBEAT_KEY, str(int(time.time() * 1000)))
    await pipe.execute()


# -- HTTP load -------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, p50/p90/p99 (ms), errors and non-2xx from `wrk --latency` output."""
    out: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["requests_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    out["requests"] = int(m.group(1)) if m else None
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        out[f"p{q}_ms"] = round(float(m.group(1)) * _UNITS[m.group(2)], 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return out


def run_wrk(url: str, connections: int, duration_s: int) -> dict[str, Any]:
    proc = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", url],
                          capture_output=True, text=True, timeout=duration_s + 60, check=False)
    return parse_wrk(proc.stdout) | {"client": "wrk -t1", "connections": connections, "duration_s": duration_s}


async def python_load(url: str, connections: int, duration_s: float) -> dict[str, Any]:
    """The fallback client: `connections` keep-alive loops of GET for `duration_s`; latencies of every request."""
    import aiohttp

    lat: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def loop(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(loop(session) for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {"client": "python aiohttp", "connections": connections, "duration_s": duration_s,
            "requests": len(lat), "requests_per_s": round(len(lat) / elapsed, 1), "non_2xx": errors,
            **{f"p{q}_ms": round(1000 * pct(lat, q / 100), 3) for q in (50, 90, 99)}}


def pct(sorted_xs: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_xs:
        return 0.0
    return sorted_xs[min(len(sorted_xs) - 1, max(0, math.ceil(q * len(sorted_xs)) - 1))]


def http_load(url: str, connections: int, duration_s: int, client: str) -> dict[str, Any]:
    if client == "wrk":
        return run_wrk(url, connections, duration_s)
    proc = subprocess.run([sys.executable, "-m", "bench.api", "--load", url, "--connections", str(connections),
                           "--duration", str(duration_s)], capture_output=True, timeout=duration_s + 60,
                          cwd=REPO, check=True)
    return dict(orjson.loads(proc.stdout.strip().splitlines()[-1]))


# -- SSE -------------------------------------------------------------------------------------------------


class SseClient:
    def __init__(self, city_id: str, zones: list[str]) -> None:
        self.city_id = city_id
        self.zones = zones
        self.as_of: dict[str, str] = {}
        self.snapshot = asyncio.Event()
        self.first_fresh: float | None = None
        self.all_fresh: float | None = None
        self.expect: dict[str, str] = {}
        self.done = asyncio.Event()

    def on_event(self, data: bytes) -> None:
        obj = orjson.loads(data)
        zone, as_of = obj.get("zone_id"), obj.get("as_of")
        self.as_of[zone] = as_of
        if len(self.as_of) == len(self.zones):
            self.snapshot.set()
        if self.expect and self.expect.get(zone) == as_of:
            now = time.perf_counter()
            if self.first_fresh is None:
                self.first_fresh = now
            if all(self.as_of.get(z) == a for z, a in self.expect.items()):
                self.all_fresh = now
                self.done.set()

    def arm(self, expect: dict[str, str]) -> None:
        self.expect, self.first_fresh, self.all_fresh = expect, None, None
        self.done = asyncio.Event()


async def sse_reader(session: Any, base: str, client: SseClient) -> None:
    async with session.get(f"{base}/v1/stream", params={"city_id": client.city_id}) as resp:
        resp.raise_for_status()
        event, data = b"", b""
        async for raw in resp.content:
            line = raw.rstrip(b"\r\n")
            if not line:
                if event == b"live" and data:
                    client.on_event(data)
                event, data = b"", b""
            elif line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"data:"):
                data += line[5:].strip()


async def sse_bench(base: str, store_url: str, registry: Registry, lives: list[dict[str, Any]], n_clients: int,
                    rounds: int, timeout_s: float) -> dict[str, Any]:
    import aiohttp

    cities = [c for c in registry.cities if c.zones]
    clients = [SseClient(cities[i % len(cities)].id, [z.id for z in cities[i % len(cities)].zones])
               for i in range(n_clients)]
    r = aioredis.Redis.from_url(store_url)
    out: dict[str, Any] = {"clients": n_clients, "cities": len(cities), "zones": len(lives), "rounds": []}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(sse_reader(session, base, c)) for c in clients]
        try:
            try:
                await asyncio.wait_for(asyncio.gather(*(c.snapshot.wait() for c in clients)), timeout_s)
            except TimeoutError:
                out["error"] = (f"only {sum(c.snapshot.is_set() for c in clients)} of {n_clients} clients had "
                                f"their snapshot after {timeout_s:.0f} s")
                return out
            out["connect_and_snapshot_s"] = round(time.perf_counter() - t0, 3)
            await asyncio.sleep(1.0)
            for k in range(1, rounds + 1):
                fresh = [dict(o) for o in lives]
                for o in fresh:
                    o["as_of_ms"] += k * WINDOW_MS
                    o["as_of"] = format_ts(o["as_of_ms"], registry.city_of_zone[o["zone_id"]].timezone)
                expect = {o["zone_id"]: o["as_of"] for o in fresh}
                for c in clients:
                    c.arm({z: expect[z] for z in c.zones})
                t_pub = time.perf_counter()
                await write_lives(r, fresh, announce=True)
                t_written = time.perf_counter()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in clients)), timeout_s)
                firsts = sorted(c.first_fresh - t_written for c in clients if c.first_fresh is not None)
                alls = sorted(c.all_fresh - t_written for c in clients if c.all_fresh is not None)
                out["rounds"].append({
                    "round": k, "publish_s": round(t_written - t_pub, 4),
                    "clients_updated": len(alls), "clients_first_update": len(firsts),
                    "first_update_p50_s": round(pct(firsts, 0.5), 4), "first_update_p99_s": round(pct(firsts, 0.99), 4),
                    "first_update_max_s": round(firsts[-1], 4) if firsts else None,
                    "all_zones_p50_s": round(pct(alls, 0.5), 4), "all_zones_p99_s": round(pct(alls, 0.99), 4),
                    "all_updated_s": round(alls[-1], 4) if len(alls) == n_clients else None,
                })
                print(f"  SSE round {k}: {len(alls)}/{n_clients} clients had every zone of their city fresh; "
                      f"last after {out['rounds'][-1]['all_updated_s']} s", file=sys.stderr, flush=True)
                await asyncio.sleep(2.0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await r.aclose()
    return out


# -- the whole benchmark ---------------------------------------------------------------------------------


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    registry_path = Path(args.registry)
    registry = load_registry(registry_path)
    now_ms = int(time.time() * 1000)
    end_ms = now_ms - now_ms % WINDOW_MS
    lives = live_objects(registry, end_ms)
    client = "wrk" if args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")) else "python"
    out: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "registry": str(registry_path),
        "cities": len(registry.cities), "zones": len(lives), "client": client,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                 check=False).stdout.strip(),
        # what `drukte api` runs with here: event loop and HTTP parser, and the live-object cache (its default)
        "server": dict(zip(("loop", "http"), implementations(), strict=True))
        | {"api_cache_ms": Settings.model_fields["api_cache_ms"].default}}
    work = Path(tempfile.mkdtemp(prefix="drukte-bench-api-"))
    store = embedded.start_store(log=work / "store.log")
    api: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(_seed(store.url, lives))
        port = embedded.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRUKTE_")}
        env.update(DRUKTE_REDIS_URL=store.url, DRUKTE_RATE_LIMIT_PER_MIN="0", DRUKTE_PORT=str(port),
                   DRUKTE_REGISTRY=str(registry_path), DRUKTE_LOG_LEVEL="warning")
        with (work / "api.log").open("wb") as log:
            api = subprocess.Popen([sys.executable, "-m", "drukte.cli", "api"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
        base = f"http://127.0.0.1:{port}"
        zone = lives[0]["zone_id"]
        city = lives[0]["city_id"]
        wait_http(f"{base}/v1/zones/{zone}/live")
        out["api_pid"] = api.pid
        out["http"] = {}
        for name, path in (("zone_live", f"/v1/zones/{zone}/live"), ("city_live", f"/v1/cities/{city}/live")):
            http_load(base + path, args.connections, 2, client)  # warm-up
            print(f"HTTP {path}: {args.connections} connections, {args.duration} s ({client})", file=sys.stderr,
                  flush=True)
            res = http_load(base + path, args.connections, args.duration, client)
            res["path"] = path
            res["zones_in_body"] = len(registry.city(city).zones) if name == "city_live" else 1  # type: ignore[union-attr]
            out["http"][name] = res
        if args.sse_clients:
            print(f"SSE: {args.sse_clients} clients", file=sys.stderr, flush=True)
            out["sse"] = asyncio.run(sse_bench(base, store.url, registry, lives, args.sse_clients, args.sse_rounds,
                                               args.timeout))
        out["api_peak_rss_mb"] = _vmhwm(api.pid)
    finally:
        if api is not None:
            api.terminate()
            try:
                api.wait(10)
            except subprocess.TimeoutExpired:
                api.kill()
        store.stop()
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _vmhwm(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


async def _seed(url: str, lives: list[dict[str, Any]]) -> None:
    r = aioredis.Redis.from_url(url)
    try:
        await write_lives(r, lives, announce=False)
    finally:
        await r.aclose()


def _server(res: dict[str, Any]) -> str:
    srv = res.get("server")
    if not srv:
        return "server not recorded"
    return f"{srv['loop']} + {srv['http']}, DRUKTE_API_CACHE_MS={srv['api_cache_ms']}"


def table(res: dict[str, Any]) -> str:
    lines = [f"Drukte API: one `drukte api` process, {res['zones']} zones in {res['cities']} cities "
             f"({res['registry']}), client {res['client']}, load {res['machine']['loadavg_before']} -> "
             f"{res['machine']['loadavg_after']}, commit {res['commit'][:7]}, {_server(res)}", "",
             f"{'endpoint':<34} {'conns':>5} {'requests/s':>11} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}  errors"]
    for h in res.get("http", {}).values():
        lines.append(f"{h['path']:<34} {h['connections']:>5} {h['requests_per_s'] or 0:>11,.0f} "
                     f"{h['p50_ms'] or 0:>8.2f} {h['p90_ms'] or 0:>8.2f} {h['p99_ms'] or 0:>8.2f}  "
                     f"{h['non_2xx'] + h.get('socket_errors', 0)}")
    sse = res.get("sse")
    if sse:
        lines += ["", f"SSE: {sse['clients']} clients over {sse['cities']} cities; connected with snapshots in "
                  f"{sse.get('connect_and_snapshot_s')} s; each round rewrites and announces all {sse['zones']} "
                  "zones (as the worker at a window close); times from the pipeline's return"]
        if sse.get("error"):
            lines.append(f"  ERROR: {sse['error']}")
        for rd in sse["rounds"]:
            lines.append(
                f"  round {rd['round']}: {rd['clients_updated']}/{sse['clients']} clients fully updated; first "
                f"fresh event p50 {rd['first_update_p50_s']} s, p99 {rd['first_update_p99_s']} s, max "
                f"{rd['first_update_max_s']} s; every zone of the city p50 {rd['all_zones_p50_s']} s, p99 "
                f"{rd['all_zones_p99_s']} s, all clients {rd['all_updated_s']} s")
    lines.append(f"API peak RSS {res.get('api_peak_rss_mb')} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.splitlines()[0])
    p.add_argument("--registry", default=str(DEFAULT_REGISTRY), help="registry YAML (default: the shipped one)")
    p.add_argument("--connections", type=int, default=50, help="HTTP keep-alive connections")
    p.add_argument("--duration", type=int, default=15, help="seconds per HTTP endpoint")
    p.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--sse-clients", type=int, default=2000, help="concurrent /v1/stream clients (0: skip)")
    p.add_argument("--sse-rounds", type=int, default=5, help="publish rounds measured")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for SSE snapshots or a round")
    p.add_argument("--load", help=argparse.SUPPRESS)  # internal: be the Python load client for this URL
    args = p.parse_args(argv)
    if args.load:
        res = asyncio.run(python_load(args.load, args.connections, args.duration))
        sys.stdout.write(orjson.dumps(res).decode() + "\n")
        return 0
    res = run(args)
    print(table(res))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"api-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
