"""The API under schemathesis and hostile ids, in process, against a real Valkey whose commands are recorded.

Every request goes through `httpx.ASGITransport` on one event loop we own (an anyio blocking portal), so the
app's Redis client lives on one loop. Schemathesis generates the cases from the app's own `/openapi.json` and
checks the answers against it; on top of that every error must be an RFC 9457 problem detail. A `MONITOR`
connection records every command the store receives, to prove that no id a client sent reached Redis unless it
is an id of the registry, and that no key is ever looked up by pattern.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import anyio
import httpx
import pytest
import redis
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from drukte.embedded import Service
from drukte.settings import Settings
from streams.registry import parse_registry

pytestmark = [pytest.mark.component]

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
      - id: mechelen-ijzerenleen
        name: IJzerenleen
        sensors:
          - {id: mech-ijz-01, kind: street}
          - {id: mech-ijz-02, kind: street}
          - {id: mech-ijz-03, kind: street}
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
REGISTRY = parse_registry(REGISTRY_YAML)
T0 = 1_795_785_600_000  # 2026-11-27T14:20:00+01:00
NOW = T0 + 74_000
SETTINGS = Settings(window_s=300, grace_s=0, idle_s=30, live_s=900, redis_url=None, rate_limit_per_min=0)
BASE = "http://drukte.test"
REQUEST_TIMEOUT_S = 10  # a route that never answers (a stream) fails the test instead of hanging it
EXAMPLES = 40  # per operation: enough to vary every parameter, small enough for CI
# The answer is what the document says: a documented status, content type, headers and body schema. Not run:
# schemathesis' `positive_data_acceptance` (OpenAPI cannot say "exactly one of `date` or `hours`", so a route
# may rightly refuse a schema-valid combination with 422), and the checks that re-send requests on their own
# transport (they would reach the app on another event loop than its Redis client's).
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]

# What the store may see: command names and arguments made of these characters only (no glob characters,
# no escapes, nothing a client typed), and keys of the API's layout only for ids of the registry.
SAFE_ARG = re.compile(r"[A-Za-z0-9:._-]{1,200}")
PATTERN_COMMANDS = {"KEYS", "SCAN", "SSCAN", "HSCAN", "ZSCAN", "EVAL", "EVALSHA", "FCALL"}
KNOWN_IDS = {z for z in REGISTRY.zones} | {c.id for c in REGISTRY.cities}

# Hand-made hostile ids, as raw path segments (percent-encoded where needed: a bare "?" starts the query).
HOSTILE_IDS = [
    "*", "[", "]", "[a-z]*", "mechelen-*", "mechelen-bru?l", "mechelen-bruul*", "mechelen-bruul[0]",
    "mechelen-bruu[l]", "%2A", "%3F", "%5B", "{}", "mechelen-bruul%5C*", "%5C", "^", "!",
    "..", "%2E%2E", "...", ".", "mechelen-bruul%2F..%2Fleuven", "%2F", "a%2Fb", "%2F%2F",
    "%00", "mechelen-bruul%00", "%00*", "%0D%0ASET%20x%201", "%0A", "%20", "mechelen%20bruul",
    "a" * 65, "mechelen-bruul" * 5, "a" * 5000, "%F0%9F%98%80", "%C3%A9", "%FF", "%", "%zz",
    "drukte:live:mechelen-bruul", "drukte%3Alive%3Amechelen-bruul", "MECHELEN-BRUUL", "mechelen_bruul",
]


def event_stream(operation: dict[str, Any]) -> bool:
    return any("text/event-stream" in answer.get("content", {}) for answer in operation.get("responses", {}).values())


def spec() -> dict[str, Any]:
    app = create_app(SETTINGS, REGISTRY, Redis())  # never connects: only for the document
    document: dict[str, Any] = app.openapi()
    return document


SPEC = spec()
OPERATIONS = sorted((path, method.upper()) for path, ops in SPEC["paths"].items()
                    for method, op in ops.items() if not event_stream(op))
# every GET route with one path parameter, with the parameter as a format placeholder
ID_ROUTES = sorted(re.sub(r"\{[^}]+\}", "{}", p) for p, ops in SPEC["paths"].items()
                   if "get" in ops and len(re.findall(r"\{[^}]+\}", p)) == 1)
# every GET route with a required query parameter named *_id (e.g. a stream of one city)
QUERY_ID_ROUTES = sorted((p, prm["name"]) for p, ops in SPEC["paths"].items() if "get" in ops
                         for prm in ops["get"].get("parameters", [])
                         if prm.get("in") == "query" and prm.get("required") and prm["name"].endswith("_id"))


@dataclass
class Monitor:
    """Every command the store receives, from a MONITOR connection read on a thread."""

    url: str
    commands: list[str] = field(default_factory=list)
    _seen: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    _marks: int = 0

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            client = redis.Redis.from_url(self.url)
            with client.monitor() as m:
                ready.set()
                while True:
                    command = str(m.next_command()["command"])
                    with self._seen:
                        self.commands.append(command)
                        self._seen.notify_all()
                    if command == "ECHO drukte-monitor-stop":
                        break
            client.close()

        self._thread = threading.Thread(target=run, name="valkey-monitor", daemon=True)
        self._thread.start()
        assert ready.wait(5)

    def drain(self) -> list[str]:
        """The commands received since the last drain (a marker command proves they are all in)."""
        self._marks += 1
        marker = f"ECHO drukte-monitor-mark-{self._marks}"
        with redis.Redis.from_url(self.url) as client:
            client.echo(marker.split(" ", 1)[1])
        with self._seen:
            assert self._seen.wait_for(lambda: marker in self.commands, timeout=10), "MONITOR fell behind"
            upto = self.commands.index(marker)
            out, self.commands = self.commands[:upto], self.commands[upto + 1:]
        return out

    def stop(self) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.echo("drukte-monitor-stop")
        if self._thread is not None:
            self._thread.join(10)


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    portal: BlockingPortal
    monitor: Monitor

    def get(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            with anyio.fail_after(REQUEST_TIMEOUT_S):
                return await self.client.request(method, url, **kwargs)
        return self.portal.call(call)

    def raw(self, raw_path: str) -> tuple[int, dict[str, str], bytes]:
        """Send a path exactly as given (no client-side normalisation), the way a server would pass it on."""
        path_part, _, query = raw_path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": unquote_to_bytes(path_part).decode("utf-8", "replace"),
                 "raw_path": path_part.encode(), "query_string": query.encode(), "root_path": "",
                 "headers": [(b"host", b"drukte.test")], "client": ("192.0.2.7", 50000),
                 "server": ("drukte.test", 80)}
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = {k.decode().lower(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        async def call() -> None:
            with anyio.fail_after(REQUEST_TIMEOUT_S):
                await self.app(scope, receive, send)

        self.portal.call(call)
        return answer["status"], answer["headers"], answer["body"]


@pytest.fixture(scope="module")
def api(store: Service) -> Iterator[Api]:
    seed = redis.Redis.from_url(store.url)
    live = ('{"zone_id":"mechelen-bruul","city_id":"mechelen","name":"Bruul","as_of":"2026-11-27T14:20:00+01:00",'
            '"window":{"start":"2026-11-27T14:05:00+01:00","end":"2026-11-27T14:20:00+01:00","seconds":900},'
            '"level":{"key":"busy","nr":2,"label":{"nl":"Druk","fr":"Animé","en":"Busy"}},"index":134,"score":78,'
            '"vs_usual":"busier","usual":{"low":85,"high":118},"visitors":{"min":1190,"max":1240},"forecast":[],'
            '"quality":{"stale":false,"age_s":0,"coverage":1.0,"sensors_reporting":3,"sensors_expected":3},'
            '"privacy":{"suppressed":false,"reason":null,"k_min":15,"noise":"none"},"next_update_in_s":300,'
            f'"as_of_ms":{T0}}}')
    seed.set("drukte:live:mechelen-bruul", live)
    seed.set("drukte:live:leuven-diestsestraat", live.replace("mechelen-bruul", "leuven-diestsestraat")
             .replace('"mechelen"', '"leuven"'))
    seed.set("drukte:worker:heartbeat", str(NOW))
    seed.zadd("drukte:windows:mechelen-bruul", {live: T0 - 300_000})
    seed.close()
    monitor = Monitor(store.url)
    monitor.start()
    with start_blocking_portal() as portal:
        rds = Redis.from_url(store.url)
        app = create_app(SETTINGS, REGISTRY, rds, clock=lambda: NOW)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        yield Api(app, client, portal, monitor)
        portal.call(client.aclose)
        portal.call(rds.aclose)
    monitor.stop()


def assert_problem(status: int, content_type: str, body: bytes) -> None:
    """An error answer is an RFC 9457 problem detail."""
    assert content_type == "application/problem+json", (status, content_type, body[:200])
    problem = httpx.Response(status, content=body).json()
    assert problem["status"] == status
    assert isinstance(problem["type"], str)
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"]


def assert_store_saw_nothing_hostile(commands: list[str]) -> None:
    for command in commands:
        name, *args = command.split(" ")
        assert name.upper() not in PATTERN_COMMANDS, f"the API asked the store by pattern: {command[:200]!r}"
        for arg in args:
            assert SAFE_ARG.fullmatch(arg), f"a client's input reached the store: {command[:200]!r}"
            assert ".." not in arg, command
            if arg.startswith("drukte:") and arg.count(":") >= 2 and not arg.startswith("drukte:worker:"):
                assert arg.rsplit(":", 1)[1] in KNOWN_IDS, f"a key for an id outside the registry: {arg!r}"


def test_the_document_lists_the_routes_under_test() -> None:
    assert ("/v1/zones/{zone_id}/live", "GET") in OPERATIONS
    assert {"/v1/zones/{}/live", "/v1/zones/{}/today", "/v1/cities/{}/live"} <= set(ID_ROUTES)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_schemathesis_no_server_error_and_problem_details(api: Api, path: str, method: str) -> None:
    schema = schemathesis.openapi.from_dict(SPEC)
    operation = schema[path][method]
    api.monitor.drain()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def check(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE)
        resp = api.get(kwargs["method"], kwargs["url"], params=kwargs.get("params"),
                       headers={k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "connection"})
        assert resp.status_code < 500, (kwargs["url"], resp.status_code, resp.text[:300])
        case.validate_response(resp, checks=CHECKS)
        if resp.status_code >= 400:
            assert_problem(resp.status_code, resp.headers["content-type"], resp.content)

    check()
    commands = api.monitor.drain()
    assert_store_saw_nothing_hostile(commands)


def test_monitor_records_what_the_api_reads(api: Api) -> None:
    """The recording works: a valid request shows up as the keys it reads (else the other checks prove nothing)."""
    api.monitor.drain()
    assert api.get("GET", "/v1/cities/mechelen/live").status_code == 200
    commands = api.monitor.drain()
    assert "MGET drukte:live:mechelen-bruul drukte:live:mechelen-ijzerenleen" in commands
    with pytest.raises(AssertionError, match="reached the store"):
        assert_store_saw_nothing_hostile(["GET drukte:live:mechelen-*"])
    with pytest.raises(AssertionError, match="outside the registry"):
        assert_store_saw_nothing_hostile(["GET drukte:live:mechelen-nowhere"])


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids_are_refused_before_the_store(api: Api, hostile: str) -> None:
    api.monitor.drain()
    for route in ID_ROUTES:
        status, headers, body = api.raw(route.format(hostile))
        assert status in (404, 414, 422), (route, hostile, status, body[:200])
        assert_problem(status, headers["content-type"], body)
    for route, name in QUERY_ID_ROUTES:
        status, headers, body = api.raw(f"{route}?{name}={hostile}")
        assert status in (404, 414, 422), (route, hostile, status, body[:200])
        assert_problem(status, headers["content-type"], body)
    assert_store_saw_nothing_hostile(api.monitor.drain())


GLOB_TEXT = st.text(alphabet=st.sampled_from("*?[]^!\\-./%:{}\x00 mechlnbru0123"), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ident=st.one_of(GLOB_TEXT, st.text(min_size=1, max_size=80)))
def test_any_id_is_a_registry_id_or_a_problem(api: Api, ident: str) -> None:
    """Property: whatever the id, the answer is 200 for an id of the registry, else a 404/422 problem."""
    api.monitor.drain()
    for route in ID_ROUTES:
        status, headers, body = api.raw(route.format(quote(ident, safe="")))
        if ident in KNOWN_IDS and status == 200:
            continue
        assert status in (404, 414, 422), (route, ident, status, body[:200])
        assert_problem(status, headers["content-type"], body)
    assert_store_saw_nothing_hostile(api.monitor.drain())
