"""The API under faults, against a real Valkey: store down and back, worker silent, request limits, readiness."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from api.app import create_app
from api.server import implementations, redis_client
from drukte.embedded import Service, free_port, start_store, wait_for_port
from drukte.settings import Settings
from streams.registry import Registry, parse_registry
from tests.component.conftest import Clock

pytestmark = [pytest.mark.component, pytest.mark.anyio]

REGISTRY_YAML = """
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors:
          - {id: mech-bruul-01, kind: street}
          - {id: mech-bruul-02, kind: street}
          - {id: mech-bruul-03, kind: entrance}
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: leuven-diestsestraat
        name: Diestsestraat
        sensors:
          - {id: leu-di-01, kind: street}
          - {id: leu-di-02, kind: street}
          - {id: leu-di-03, kind: street}
"""
T0 = 1_795_785_600_000  # 2026-11-27T14:20:00+01:00, the as_of of the stored objects
# window 300 s, no grace, idle 30 s: stale after 630 s
# no live-object cache (the store goes down and comes back under these tests) but where a test turns it on
SETTINGS = Settings(window_s=300, grace_s=0, idle_s=30, live_s=900, redis_url=None, api_cache_ms=0)
STALE_S = 630
DATA_ROUTES = ("/v1/zones/mechelen-bruul/live", "/v1/cities/mechelen/live", "/v1/zones/mechelen-bruul/today")
UNKNOWN = "unknown"


def live_object(zone_id: str, city_id: str, as_of_ms: int) -> bytes:
    """A live object as the worker stores it (CONTRACT.md §4 plus the internal as_of_ms)."""
    return orjson.dumps({
        "zone_id": zone_id, "city_id": city_id, "name": zone_id, "as_of": "2026-11-27T14:20:00+01:00",
        "window": {"start": "2026-11-27T14:05:00+01:00", "end": "2026-11-27T14:20:00+01:00", "seconds": 900},
        "level": {"key": "busy", "nr": 2, "label": {"nl": "Druk", "fr": "Animé", "en": "Busy"}},
        "index": 134, "score": 78, "vs_usual": "busier", "usual": {"low": 85, "high": 118},
        "visitors": {"min": 1190, "max": 1240}, "forecast": [],
        "quality": {"stale": False, "age_s": 0, "coverage": 1.0, "sensors_reporting": 3, "sensors_expected": 3},
        "privacy": {"suppressed": False, "reason": None, "k_min": 15, "noise": "none"},
        "next_update_in_s": 300, "as_of_ms": as_of_ms,
    })


@pytest.fixture(scope="module")
def registry() -> Registry:
    return parse_registry(REGISTRY_YAML)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 74_000)


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_app(registry: Registry, rds: Redis, clock: Clock, metrics_registry: CollectorRegistry) -> AppFactory:
    def make(**settings: Any) -> FastAPI:
        return create_app(SETTINGS.model_copy(update=settings), registry, rds, metrics_registry, clock)
    return make


def client_for(app: FastAPI, ip: str = "192.0.2.10") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://drukte.test")


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- request limits -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/zones/" + "a" * 3000 + "/live", {}),  # a long id
        ("/v1/cities", {"q": "x" * 3000}),  # a long query string on a route without parameters
    ],
)
async def test_long_urls_are_414_problems(make_app: AppFactory, rds: Redis, path: str, params: dict[str, str]) -> None:
    await rds.config_resetstat()
    async with client_for(make_app()) as c:
        resp = await c.get(path, params=params)
    body = assert_problem(resp, 414)
    url_bytes = len(httpx.URL(path, params=params).raw_path)
    assert body["detail"] == f"the URL is {url_bytes} bytes; at most 2048 are accepted"
    assert "aaaa" not in resp.text  # a long path is not echoed back
    assert "cmdstat_mget" not in await rds.info("commandstats")  # refused before any route or store


async def test_urls_up_to_the_limit_pass(make_app: AppFactory) -> None:
    path = "/v1/zones/nowhere/live?pad="
    async with client_for(make_app(max_url_bytes=256)) as c:
        ok = await c.get(path + "x" * (256 - len(path)))
        too_long = await c.get(path + "x" * (257 - len(path)))
    assert_problem(ok, 404)  # reached the route
    assert_problem(too_long, 414)


async def test_large_headers_are_431_problems(make_app: AppFactory) -> None:
    async with client_for(make_app()) as c:
        resp = await c.get("/v1/cities", headers={"X-Padding": "p" * 9000})
        fine = await c.get("/v1/cities", headers={"X-Padding": "p" * 7000})
    body = assert_problem(resp, 431)
    assert "at most 8192" in body["detail"]
    assert fine.status_code == 200


async def test_large_bodies_are_413_problems(make_app: AppFactory) -> None:
    app = make_app(max_body_bytes=1000)

    @app.post("/test/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"x" * 100

    async with client_for(app) as c:
        declared = await c.post("/v1/cities", content=b"x" * 1001)  # Content-Length over the limit
        small = await c.post("/v1/cities", content=b"x" * 1000)
        streamed = await c.post("/test/echo", content=chunks(11))  # no Content-Length: counted as it is read
        streamed_ok = await c.post("/test/echo", content=chunks(10))
    body = assert_problem(declared, 413)
    assert body["detail"] == "the request body is 1001 bytes; at most 1000 are accepted"
    assert_problem(small, 405)  # under the limit it reaches routing: this API takes no writes
    assert "at most 1000" in assert_problem(streamed, 413)["detail"]
    assert streamed_ok.json() == {"n": 1000}


async def test_rate_limit_is_429_per_client_with_retry_after(
    make_app: AppFactory, rds: Redis, clock: Clock, metrics_registry: CollectorRegistry
) -> None:
    await rds.set("drukte:live:mechelen-bruul", live_object("mechelen-bruul", "mechelen", T0))
    app = make_app(rate_limit_per_min=3)
    async with client_for(app, "192.0.2.10") as c, client_for(app, "192.0.2.11") as other:
        statuses = [(await c.get("/v1/zones/mechelen-bruul/live")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = await c.get("/v1/cities/mechelen/live", headers={"Origin": "https://scherm.mechelen.be"})
        body = assert_problem(refused, 429)
        assert refused.headers["retry-after"] == "20"  # one token every 20 s at 3 a minute
        assert body["detail"] == "more than 3 requests a minute from your address; try again in 20 s"
        assert body["instance"] == "/v1/cities/mechelen/live"
        assert refused.headers["access-control-allow-origin"] == "*"  # a widget on another origin can read it
        # probes and Prometheus are never refused
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200
        assert (await c.get("/readyz")).status_code == 503  # no worker heartbeat: an answer, not a 429
        # another address has its own bucket
        assert (await other.get("/v1/cities")).status_code == 200
        clock.now_ms += 19_000
        assert (await c.get("/v1/cities")).headers["retry-after"] == "1"
        clock.now_ms += 1_000
        assert (await c.get("/v1/cities")).status_code == 200  # one token back after 20 s
    assert metrics_registry.get_sample_value("drukte_api_rate_limited_total") == 2
    assert metrics_registry.get_sample_value(
        "drukte_http_request_seconds_count", {"route": "unmatched", "method": "GET", "status": "429"}) == 2


async def test_rate_limit_zero_is_off(make_app: AppFactory) -> None:
    async with client_for(make_app(rate_limit_per_min=0)) as c:
        statuses = {(await c.get("/v1/cities")).status_code for _ in range(50)}
    assert statuses == {200}


async def test_default_rate_limit_is_generous(make_app: AppFactory) -> None:
    # a city screen polling every few seconds, a dashboard and a few pages are far below 600 a minute
    async with client_for(make_app()) as c:
        statuses = [(await c.get("/v1/cities")).status_code for _ in range(601)]
    assert statuses[:600] == [200] * 600
    assert statuses[600] == 429


def test_real_server_answers_limits_as_problems(store: Service, tmp_path: Path) -> None:
    """Through uvicorn (uvloop, httptools), not only in process: oversized requests get the API's problem details,
    and a head that keeps growing is cut off at the server's bound with one too (httptools has none of its own)."""
    assert implementations() == ("uvloop", "httptools")  # both are dependencies: this runs what production runs
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(REGISTRY_YAML)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUKTE_")}
    env |= {"DRUKTE_REDIS_URL": store.url, "DRUKTE_REGISTRY": str(registry_file), "DRUKTE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "drukte.cli", "api", "--port", str(port)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, "drukte api")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get("/healthz").status_code == 200
            assert_problem(c.get("/v1/zones/" + "a" * 3000 + "/live"), 414)
            assert_problem(c.get("/v1/cities", headers={"X-Padding": "p" * 12_000}), 431)  # over ours, under the bound
            assert_problem(c.post("/v1/cities", content=b"x" * 20_000), 413)
            # far over, arriving at once: still ours (the server's bound only stops a head that keeps growing)
            assert "8192" in assert_problem(c.get("/v1/cities", headers={"X-Padding": "p" * 40_000}), 431)["detail"]
        # trickled in past the server's bound (16 KiB with the default limits): refused there, then closed
        header = trickle(port, b"GET /v1/cities HTTP/1.1\r\nHost: a\r\nX-Padding: " + b"p" * 40_000 + b"\r\n\r\n")
        assert header.startswith(b"HTTP/1.1 431 ")
        assert "16384 bytes" in assert_raw_problem(header, 431)["detail"]
        url = trickle(port, b"GET /v1/cities?q=" + b"x" * 40_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_raw_problem(url, 414)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get("/healthz").status_code == 200  # and the server is fine
    finally:
        proc.terminate()
        proc.wait(10)


def trickle(port: int, request: bytes) -> bytes:
    """Send `request` 1,000 bytes at a time (each its own read on the server); what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server closes once it has answered: the rest is refused
            for i in range(0, len(request), 1000):
                sock.sendall(request[i:i + 1000])
                time.sleep(0.001)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def assert_raw_problem(answer: bytes, status: int) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"
    assert int(headers["content-length"]) == len(body)
    problem: dict[str, Any] = orjson.loads(body)
    assert problem["status"] == status
    assert problem["type"] == "about:blank"
    return problem


# --- store down and back ---------------------------------------------------------------------------------------


def routes_to_probe(app: FastAPI) -> list[str]:
    """Every GET route of the document with its ids filled in.

    Streams, probes and routes with required query parameters or unknown path parameters are left out.
    """
    ids = {"zone_id": "mechelen-bruul", "city_id": "mechelen"}
    out = []
    for path, operations in app.openapi()["paths"].items():
        op = operations.get("get")
        if op is None or path in ("/readyz", "/healthz", "/metrics"):
            continue
        if any("text/event-stream" in r.get("content", {}) for r in op["responses"].values()):
            continue
        params = op.get("parameters", [])
        if any(p["in"] == "query" and p.get("required") for p in params):
            continue
        names = [p["name"] for p in params if p["in"] == "path"]
        if any(n not in ids for n in names):
            continue
        out.append(path.format(**{n: ids[n] for n in names}))
    return out


async def test_store_down_then_back_on_the_same_port(registry: Registry, clock: Clock) -> None:
    """503 problems (never 500) for every data route while the store is down; recovery without restarting."""
    doomed = start_store()
    port = doomed.port
    rds = redis_client(doomed.url)  # the production client: short timeouts, few retries
    metrics_registry = CollectorRegistry()
    app = create_app(SETTINGS, registry, rds, metrics_registry, clock)

    async def fill(client: Redis) -> None:
        await client.set("drukte:live:mechelen-bruul", live_object("mechelen-bruul", "mechelen", T0))
        await client.set("drukte:worker:heartbeat", str(clock.now_ms))

    revived: Service | None = None
    try:
        await fill(rds)
        async with client_for(app) as c:
            for path in DATA_ROUTES:
                assert (await c.get(path)).status_code == 200, path
            assert (await c.get("/readyz")).status_code == 200
            doomed.stop()
            for _ in range(2):  # and again: a failed connection must not turn into a 500 later on
                for path in DATA_ROUTES:
                    resp = await c.get(path)
                    body = assert_problem(resp, 503)
                    assert body["detail"] == "the live data store is unreachable; try again in a few seconds"
                    assert resp.headers["retry-after"] == "5"
            ready = await c.get("/readyz")
            body = assert_problem(ready, 503)
            assert body["checks"] == {"store": "unreachable", "worker": "unknown (store unreachable)",
                                      "data": "unknown (store unreachable)"}
            assert body["detail"] == "not ready; store: unreachable"
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/v1/cities")).status_code == 200  # the registry needs no store
            probed_503 = 0
            for path in routes_to_probe(app):  # routes added later are held to the same rule: never a 500
                resp = await c.get(path)
                probed_503 += resp.status_code == 503
                assert resp.status_code < 500 or resp.status_code == 503, (path, resp.status_code)
                if resp.status_code >= 400:
                    assert_problem(resp, resp.status_code)
            scrape = await c.get("/metrics")
            assert scrape.status_code == 200
            assert "drukte_api_redis_errors_total" in scrape.text

            revived = start_store(port=port)  # an empty store on the same address, as after a restart
            ready = await c.get("/readyz")  # up, but the worker has not written anything yet
            assert assert_problem(ready, 503)["checks"] == {
                "store": "ok", "worker": "no heartbeat in the store; is `drukte worker` running?",
                "data": "stale: no live object in the store (limit 630 s)"}
            assert (await c.get("/v1/zones/mechelen-bruul/live")).json()["level"]["key"] == UNKNOWN
            await fill(rds)  # the worker writes again
            for path in DATA_ROUTES:
                assert (await c.get(path)).status_code == 200, path
            assert (await c.get("/v1/zones/mechelen-bruul/live")).json()["level"]["key"] == "busy"
            assert (await c.get("/readyz")).status_code == 200
        errors = metrics_registry.get_sample_value("drukte_api_redis_errors_total")
        assert errors == 2 * len(DATA_ROUTES) + probed_503 + 2  # each 503, /readyz, /metrics; none after recovery
    finally:
        doomed.stop()
        if revived is not None:
            revived.stop()
        await rds.aclose()


async def test_hung_store_is_a_503_within_the_timeout(registry: Registry, clock: Clock) -> None:
    """A store that accepts but never answers (SIGSTOP: hung, or a partition) is a 503 after one 2 s timeout."""
    hung = start_store()
    rds = redis_client(hung.url)
    try:
        await rds.set("drukte:live:mechelen-bruul", live_object("mechelen-bruul", "mechelen", T0))
        async with client_for(create_app(SETTINGS, registry, rds, CollectorRegistry(), clock)) as c:
            assert (await c.get("/v1/zones/mechelen-bruul/live")).status_code == 200
            hung.proc.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            resp = await c.get("/v1/zones/mechelen-bruul/live")
            elapsed = time.monotonic() - started
            assert_problem(resp, 503)
            assert elapsed < 3.5  # a timeout is not retried: the client is not kept waiting 3 x 2 s
            hung.proc.send_signal(signal.SIGCONT)
            resp = await c.get("/v1/zones/mechelen-bruul/live")  # the late answer must not be read as this one's
            assert resp.json()["zone_id"] == "mechelen-bruul"
            assert resp.json()["level"]["key"] == "busy"
    finally:
        hung.proc.send_signal(signal.SIGCONT)
        hung.stop()
        await rds.aclose()


async def test_store_down_with_the_cache_on(registry: Registry, clock: Clock) -> None:
    """With DRUKTE_API_CACHE_MS, /live answers from what it read within that time, then 503 as without it."""
    doomed = start_store()
    rds = redis_client(doomed.url)
    seconds = [100.0]  # the cache's monotonic clock, moved by hand
    settings = SETTINGS.model_copy(update={"api_cache_ms": 500})
    app = create_app(settings, registry, rds, CollectorRegistry(), clock, monotonic=lambda: seconds[0])
    zone, city = "/v1/zones/mechelen-bruul/live", "/v1/cities/mechelen/live"
    try:
        await rds.set("drukte:live:mechelen-bruul", live_object("mechelen-bruul", "mechelen", T0))
        async with client_for(app) as c:
            before = {path: (await c.get(path)).content for path in (zone, city)}
            doomed.stop()
            seconds[0] += 0.499
            for path in (zone, city):  # within the time: what was read, byte for byte
                resp = await c.get(path)
                assert (resp.status_code, resp.content) == (200, before[path]), path
            assert_problem(await c.get("/v1/zones/leuven-diestsestraat/live"), 503)  # never read: nothing cached
            seconds[0] += 0.001
            for path in (zone, city):  # 500 ms after the read: gone, and the store's outage shows
                assert_problem(await c.get(path), 503)
    finally:
        doomed.stop()
        await rds.aclose()


# --- the worker stops writing ----------------------------------------------------------------------------------


async def test_worker_silent_serves_last_values_as_stale(
    make_app: AppFactory, rds: Redis, clock: Clock, metrics_registry: CollectorRegistry
) -> None:
    """Broker or worker gone: the last live object stays in the store and is served with its age."""
    await rds.set("drukte:live:mechelen-bruul", live_object("mechelen-bruul", "mechelen", T0))
    await rds.set("drukte:worker:heartbeat", str(T0))
    async with client_for(make_app()) as c:
        fresh = (await c.get("/v1/zones/mechelen-bruul/live")).json()
        assert (fresh["level"]["key"], fresh["quality"]["stale"], fresh["quality"]["age_s"]) == ("busy", False, 74)
        clock.now_ms = T0 + (STALE_S + 1) * 1000  # nothing written since
        live = (await c.get("/v1/zones/mechelen-bruul/live")).json()
        await c.get("/metrics")
        ready = await c.get("/readyz")
    assert live["quality"]["stale"] is True
    assert live["quality"]["age_s"] == STALE_S + 1
    assert live["level"]["key"] == UNKNOWN  # stale is never shown as a level
    assert live["visitors"] == fresh["visitors"]  # the last known values, with their age
    assert live["index"] == fresh["index"]
    assert metrics_registry.get_sample_value("drukte_live_age_seconds", {"city": "mechelen"}) == STALE_S + 1
    body = assert_problem(ready, 503)
    assert body["checks"] == {"store": "ok", "worker": f"last heartbeat {STALE_S + 1} s ago (limit 30 s)",
                              "data": f"stale: newest live object {STALE_S + 1} s old (limit {STALE_S} s)"}
    assert body["cities"] == {"mechelen": {"age_s": STALE_S + 1, "stale": True},
                              "leuven": {"age_s": None, "stale": True}}


# --- readiness: data freshness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ages_s", "status", "data"),
    [
        ({"mechelen": 74, "leuven": 0}, 200, "ok"),  # every city fresh
        ({"mechelen": STALE_S, "leuven": 10}, 200, "ok"),  # exactly at the limit is still fresh
        # one city stale or without data: still ready, and the check names it
        ({"mechelen": 74}, 200, f"ok, but stale in 1 of 2 cities: leuven (no live object) (limit {STALE_S} s)"),
        ({"mechelen": 74, "leuven": 900}, 200,
         f"ok, but stale in 1 of 2 cities: leuven (900 s old) (limit {STALE_S} s)"),
        # nothing fresh anywhere: not ready
        ({"mechelen": 700, "leuven": 2000}, 503, f"stale: newest live object 700 s old (limit {STALE_S} s)"),
        ({}, 503, f"stale: no live object in the store (limit {STALE_S} s)"),
    ],
)
async def test_readyz_reports_data_freshness_per_city(
    make_app: AppFactory, rds: Redis, clock: Clock, ages_s: dict[str, int], status: int, data: str
) -> None:
    now = clock.now_ms
    zones = {"mechelen": "mechelen-bruul", "leuven": "leuven-diestsestraat"}
    for city, age in ages_s.items():
        await rds.set(f"drukte:live:{zones[city]}", live_object(zones[city], city, now - age * 1000))
    await rds.set("drukte:worker:heartbeat", str(now))
    async with client_for(make_app()) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == status
    body = resp.json()
    assert body["checks"] == {"store": "ok", "worker": "ok", "data": data}
    assert body["stale_after_s"] == STALE_S
    assert body["cities"] == {city: {"age_s": ages_s.get(city), "stale": ages_s.get(city, 10**9) > STALE_S}
                              for city in ("mechelen", "leuven")}
    if status == 503:
        assert_problem(resp, 503)
        assert body["detail"] == f"not ready; data: {data}"
    else:
        assert body["status"] == "ready"


async def test_openapi_documents_readiness_and_limits(make_app: AppFactory) -> None:
    async with client_for(make_app()) as c:
        spec = (await c.get("/openapi.json")).json()
    ready = spec["components"]["schemas"]["Ready"]
    assert set(ready["properties"]) == {"status", "checks", "stale_after_s", "cities"}
    assert "stale limit" in spec["paths"]["/readyz"]["get"]["description"]
    assert set(spec["paths"]["/readyz"]["get"]["responses"]["503"]["content"]) == {"application/problem+json"}
    live = spec["paths"]["/v1/zones/{zone_id}/live"]["get"]["responses"]
    assert {"413", "414", "429", "431"} <= set(live)
    assert all(set(live[s]["content"]) == {"application/problem+json"} for s in ("413", "414", "429", "431"))
    assert "Retry-After" in live["429"]["headers"]
    assert "429" not in spec["paths"]["/healthz"]["get"]["responses"]  # probes are never rate limited
    assert "431" in spec["paths"]["/healthz"]["get"]["responses"]
