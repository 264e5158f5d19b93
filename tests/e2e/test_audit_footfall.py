"""The auditor attacks the running footfall path as an outsider (PRIVACY.md §D): lone walker (P6), differencing
over time and zones (P8), late-event injection (P9) and an identifier scan of everything the system holds (P1).

One stack for the whole module: the fixture plays an attack session against a real broker, store, worker and
API and records everything an outsider can see; each test then judges one attack from that record.

The session, in one-minute windows (DRUKTE_WINDOW_S=60, /live sums the last 3, k_min = 15):

- tt-quiet is a quiet square at night: 0 people, a lone walker (1), 0 …, and later the walker again between
  windows of 20 people;
- tt-twin gets exactly the same counts without the walker: whatever an outsider sees of the two must be the
  same, or the walker is visible. Both have the same four weeks of history (30–36 people a minute), so their
  windows carry an index and a score and their forecasts an index: the walker must not move any of them;
- tt-side has windows just below k (14, 2) between windows above it, so a /live sum over them is ≥ k and would
  reveal the part below k by subtraction if P8 were broken;
- tt-main is busy throughout (38 + m people), its last window is 49: one late person would move its range.

Batches are fed one minute at a time: batch m closes window m - 1 (the gateway's watermark passes it), and
after each close the auditor reads /live of every zone, the city's /live and /today. So every /live the API
ever served is seen, not only the last. Then late readings (+1) arrive for published windows, and finally a
hostile workload: sources, batch ids, sensor ids, keys and payloads full of MAC addresses, hashes and card
numbers, plus HTTP requests carrying them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from drukte.embedded import free_port
from drukte.kafka import ensure_topics
from streams.storekeys import live_key, windows_key
from streams.timegrid import parse_ts
from streams.topics import BUSYNESS, FOOTFALL, INPUT_TOPICS, PAYMENTS, REJECTED
from tests.e2e.audit import Leak, determined, drain, non_input_topics, redis_dump, scan, start_stack, stop_stack
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for
from tests.e2e.test_spending_path import weeks_before

pytestmark = pytest.mark.e2e

REGISTRY = Path(__file__).with_name("registry-audit.yaml")
K_MIN = 15
N = 12  # windows 0 … 11 are published one by one; batch 12 closes window 11
COUNTS = {
    "tt-main": [38 + m for m in range(N + 1)],
    "tt-side": [20, 14, 20, 30, 2, 30, 16, 16, 16, 14, 14, 40, 20],
    "tt-quiet": [0, 0, 1, 0, 0, 20, 1, 20, 20, 20, 1, 0, 0],
}
COUNTS["tt-twin"] = [0 if v == 1 else v for v in COUNTS["tt-quiet"]]
WALKER = [m for m, v in enumerate(COUNTS["tt-quiet"][:N]) if v == 1]
ZONES = tuple(COUNTS)
SOURCE = "gw-testtown-01"
HISTORY_WEEKS = 4
# times that change between two reads of the same object
VOLATILE = ("age_s", "next_update_in_s", "stale")


def readings(zone: str, n: int, start: int) -> list[dict[str, Any]]:
    """Three sensors reporting `n` people of `zone` in the minute at `start`, spread evenly (all three report,
    also 0; a sensor left at zero while its neighbours count would be flagged stuck and leave the sum)."""
    one = {"start": iso(start), "seconds": 60}
    if zone == "tt-main":  # 01 and 02 street (in + out), 03 entrance (in only): 5 visitors through 03
        rest = n - 5
        a, b = rest - rest // 2, rest // 2
        return [{**one, "sensor_id": "tt-main-01", "in": a - a // 2, "out": a // 2},
                {**one, "sensor_id": "tt-main-02", "in": b - b // 2, "out": b // 2},
                {**one, "sensor_id": "tt-main-03", "in": 5, "out": 7}]
    parts = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    return [{**one, "sensor_id": f"{zone}-0{i + 1}", "in": p - p // 2, "out": p // 2} for i, p in enumerate(parts)]


def batch(source: str, batch_id: str, sent: int, rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"source": source, "batch_id": batch_id, "sent_at": iso(sent), "readings": rows})


def history(base: int) -> list[bytes]:
    """Four past weeks of tt-quiet and tt-twin alike, the same minutes of the same weekday: a usual of 30–36
    people (above k), so published windows get an index and a score, and forecasts an index, from an usual
    the walker never touched. A separate source, sent before the worker starts, closed like a replay."""
    out = []
    for w in range(HISTORY_WEEKS, 0, -1):
        for m in range(N + 4):
            st = weeks_before(base, w) + m * MIN
            rows = [r for z in ("tt-quiet", "tt-twin") for r in readings(z, 30 + m % 7, st)]
            out.append(batch("gw-history", f"gw-history/{w}/{m}", st + MIN, rows))
    return out


def minute(base: int, m: int) -> bytes:
    st = base + m * MIN
    rows = [r for z in ZONES for r in readings(z, COUNTS[z][m], st)]
    return batch(SOURCE, f"{SOURCE}/{m}", st + MIN + 3000, rows)


@dataclass
class Session:
    """Everything the auditor saw."""

    base: int
    topic: list[dict[str, Any]] = field(default_factory=list)  # busyness.zone.v1 after the session
    lives: list[dict[str, Any]] = field(default_factory=list)  # every /live served (zones and city)
    steps: list[dict[str, Any]] = field(default_factory=list)  # per step: {zone: {"live": …, "today": …}}
    before_late: dict[str, Any] = field(default_factory=dict)
    after_late: dict[str, Any] = field(default_factory=dict)
    late_counted: float = 0
    history_windows: int = 0
    leaks: list[Leak] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)  # where → records or characters scanned
    rejected: list[dict[str, Any]] = field(default_factory=list)


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """A served object without what changes with the reading time or names the zone."""
    out = {k: v for k, v in obj.items() if k not in ("zone_id", "name", *VOLATILE)}
    if isinstance(out.get("quality"), dict):
        out["quality"] = {k: v for k, v in out["quality"].items() if k not in VOLATILE}
    return out


def metric(port: int, name: str) -> float:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert isinstance(body, str)
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines()
               if ln.startswith((name + " ", name + "{")))


def wait_metric(port: int, name: str, at_least: float, *more: str, timeout_s: float = 60.0) -> float:
    """Wait until `name` (plus the metrics `more`) reaches `at_least`."""
    seen: list[float] = [0]

    def enough() -> bool:
        seen[0] = sum(metric(port, n) for n in (name, *more))
        return seen[0] >= at_least

    try:
        wait_for(f"{name} ≥ {at_least}", enough, timeout_s=timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is {seen[0]}") from None
    return seen[0]


def snapshot(stack: Stack, api: str) -> dict[str, Any]:
    """What the store and the API show now: stored bytes per zone and the /live figures."""
    r = stack.redis()
    return {
        "windows": {z: r.zrange(windows_key(z), 0, -1, withscores=True) for z in ZONES},
        "live": {z: r.get(live_key(z)) for z in ZONES},
        "api": {z: strip(http_get(f"{api}/v1/zones/{z}/live")[1]) for z in ZONES},  # type: ignore[arg-type]
    }


def hostile_footfall(base: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of footfall messages carrying identifiers: three accepted, the rest rejected (7 rejections)."""
    st = base + (N + 1) * MIN  # after the gateway's last batch: these readings are new
    side = readings("tt-side", 4, st)
    mac, md5 = "aa:bb:cc:dd:ee:ff", "0123456789abcdef0123456789abcdef"
    digest = hashlib.sha256(mac.encode()).digest()
    b64, b64url = base64.b64encode(digest).decode(), base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]*", b64url)  # a source the schema accepts
    return [
        # accepted: a gateway named by the URL-safe base64 of its MAC's SHA-256 (in a zone of its own: its
        # masked name is the same as the other masked gateways')
        (b"gw-b64", batch(b64url, "b64", st, readings("tt-quiet", 20, st))),
        # rejected (schema: '+', '/' and '=' are not allowed in a source): base64 SHA-256, padded and not
        (b"gw-b64", batch(b64, b64url, st, side)),
        # accepted: a gateway named like a MAC address, a batch id with a hash in it
        (mac.encode(), batch(mac, f"{mac}/{md5}", st, side)),
        # accepted: a Cisco-style MAC as the source (another zone: both sources are masked alike, and the keys
        # differ, so the two batches may be read in either order)
        (b"aabb.ccdd.eeff", batch("aabb.ccdd.eeff", f"batch_{md5}", st, readings("tt-main", 40, st))),
        # rejected (schema): fields that should never be sent, a hash glued to a batch id
        (b"aabbccddeeff", orjson.dumps({"source": "aabbccddeeff", "batch_id": f"batch_{md5}", "sent_at": iso(st),
                                        "device_id": mac, "card": "4111 1111 1111 1111", "readings": side})),
        # rejected (unknown sensor) three times: sensor ids shaped like a MAC, a bare MAC, a card number
        (b"4111111111111111", batch("4111111111111111", "x", st, [
            {**side[0], "sensor_id": "aa-bb-cc-dd-ee-ff"}, {**side[0], "sensor_id": "aabbccddeeff"},
            {**side[0], "sensor_id": "4111111111111111"}])),
        # rejected (schema): a sensor id with colons
        (mac.encode(), batch(SOURCE, "y", st, [{**side[0], "sensor_id": mac}])),
        # rejected (not JSON)
        (mac.encode(), b'{"source": "aa:bb:cc:dd:ee:ff", "card_ref": "4111111111111111", "hash": "' + md5.encode()),
    ]


def hostile_payments(base: int) -> list[tuple[bytes, bytes]]:
    """Payments carrying identifiers: one accepted batch, one card number (rejected), one unknown merchant."""
    ts = base + 2 * MIN
    mac, md5 = "aa:bb:cc:dd:ee:ff", "0123456789abcdef0123456789abcdef"

    def pay(source: str, batch_id: str, txs: list[dict[str, Any]]) -> bytes:
        return orjson.dumps({"source": source, "batch_id": batch_id, "sent_at": iso(ts + MIN),
                             "transactions": txs})

    txs = [{"merchant_id": f"f-{i % 5 + 1}", "ts": iso(ts + i * 1000), "amount_cents": 1000 + i,
            "card_ref": f"tok_{i:02d}{md5[2:]}"} for i in range(20)]
    return [
        (mac.encode(), pay(mac, f"acq_{md5}", txs)),
        (b"acq-1", pay("acq-1", "pan", [{**txs[0], "card_ref": "4111 1111 1111 1111"}])),
        (b"acq-1", pay("acq-1", "who", [{**txs[0], "merchant_id": "aa-bb-cc-dd-ee-ff"}])),
    ]


HTTP_PROBES = ["/v1/zones/aa:bb:cc:dd:ee:ff/live", "/v1/zones/4111111111111111/today",
               "/v1/cities/0123456789abcdef0123456789abcdef/live", "/v1/zones/aabbccddeeff/spending",
               "/v1/zones/tt-main/live?device_id=aa:bb:cc:dd:ee:ff&card=4111111111111111"]


def up(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False


def produce_keyed(stack: Stack, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    for key, value in messages:
        stack.produce([value], key=key, topic=topic)


def play(stack: Stack, session: Session) -> None:
    base = session.base
    asyncio.run(ensure_topics(stack.broker.url, [FOOTFALL, PAYMENTS], 4))
    past = history(base)
    stack.produce(past, key=b"gw-history")
    metrics_port, api_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    # idle 10 min: only the gateway's own readings close windows, one per batch, however slow the auditor is
    stack.spawn("worker", log="worker", DRUKTE_REGISTRY=str(REGISTRY), DRUKTE_METRICS_PORT=str(metrics_port),
                DRUKTE_IDLE_S="600")
    stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_REGISTRY=str(REGISTRY), DRUKTE_STALE_S="3600")
    r = stack.redis()
    wait_for("the API", lambda: up(f"{api}/healthz"))
    # The twins' usual and last week come from the history: it is counted before the first live minute. Sent
    # together, history and live are read in one ingest batch, and a zone whose history reached the windows
    # after its first live window closed published another forecast than its twin (seen once in CI: forecast
    # [] for tt-quiet, one for tt-twin), a difference the walker did not make.
    wait_for("the worker's metrics", lambda: up(f"http://127.0.0.1:{metrics_port}/metrics"))
    wait_metric(metrics_port, "drukte_readings_in_total", sum(len(orjson.loads(b)["readings"]) for b in past),
                "drukte_late_readings_total", "drukte_readings_excluded_total", timeout_s=120)

    def closed(m: int) -> bool:
        for z in ZONES:
            raw = r.get(live_key(z))
            if raw is None or orjson.loads(raw)["as_of_ms"] != base + (m + 1) * MIN:
                return False
            if not r.zrangebyscore(windows_key(z), base + m * MIN, base + m * MIN):
                return False
        return True

    stack.produce([minute(base, 0)])
    for m in range(1, N + 1):
        stack.produce([minute(base, m)])
        wait_for(f"window {m - 1} of every zone", lambda m=m: closed(m - 1), timeout_s=90, every_s=0.1)
        step: dict[str, Any] = {}
        for z in ZONES:
            _, live = http_get(f"{api}/v1/zones/{z}/live")
            _, today = http_get(f"{api}/v1/zones/{z}/today")
            assert isinstance(live, dict)
            assert isinstance(today, dict)
            step[z] = {"live": live, "today": today}
            session.lives.append(live)
        _, city = http_get(f"{api}/v1/cities/testtown/live")
        assert isinstance(city, dict)
        session.lives += city["zones"]
        step["city"] = city
        session.steps.append(step)

    # P9: late +1s for published windows, from the gateway and from a source never seen before
    session.before_late = snapshot(stack, api)
    late = [
        (SOURCE, [{"sensor_id": "tt-main-02", "start": iso(base + 11 * MIN + 30_000), "seconds": 30, "in": 1,
                   "out": 0},  # tt-main 49 → 50: the range would move
                  {"sensor_id": "tt-quiet-02", "start": iso(base + 11 * MIN + 30_000), "seconds": 30, "in": 1,
                   "out": 0},  # the newest window of the lone-walker zone, inside /live
                  {"sensor_id": "tt-quiet-02", "start": iso(base + 6 * MIN + 30_000), "seconds": 30, "in": 1,
                   "out": 0}]),
        ("gw-late-02", [{"sensor_id": "tt-twin-02", "start": iso(base + 10 * MIN + 30_000), "seconds": 30, "in": 1,
                         "out": 0},
                        {"sensor_id": "tt-side-02", "start": iso(base + 9 * MIN + 30_000), "seconds": 30, "in": 1,
                         "out": 0}]),  # tt-side 14 → 15 would cross k
    ]
    read = metric(metrics_port, "drukte_late_readings_total") + metric(metrics_port, "drukte_readings_in_total")
    for source, rows in late:
        stack.produce([batch(source, f"{source}/late", base + 13 * MIN, rows)], key=source.encode())
    # read: counted as late (history only) or, if P9 were broken, as new; the test below tells which
    wait_metric(metrics_port, "drukte_late_readings_total", read + 5, "drukte_readings_in_total")
    # a few clock ticks more: anything the late readings could trigger has had time to happen
    beat = int(r.get("drukte:worker:heartbeat") or 0)
    wait_for("two more heartbeats", lambda: int(r.get("drukte:worker:heartbeat") or 0) > beat + 1000)
    session.late_counted = metric(metrics_port, "drukte_late_readings_total")
    session.after_late = snapshot(stack, api)
    published = [orjson.loads(v) for v in drain(stack.broker.url, [BUSYNESS.name])[BUSYNESS.name][1::2]]
    session.topic = [w for w in published if parse_ts(w["window"]["start"]) >= base]  # not the history weeks
    session.history_windows = len(published) - len(session.topic)

    # P1: hostile input and requests, then scan every place the system writes to
    read = metric(metrics_port, "drukte_readings_in_total")
    produce_keyed(stack, FOOTFALL.name, hostile_footfall(base))
    produce_keyed(stack, PAYMENTS.name, hostile_payments(base))
    session.rejected = stack.consume(REJECTED.name, lambda rs: len(rs) >= 9)
    wait_metric(metrics_port, 'drukte_payments_in_total{kind="transactions"}', 20)
    wait_metric(metrics_port, "drukte_readings_in_total", read + 9)  # the masked gateways' readings
    for path in HTTP_PROBES:
        assert http_get(api + path)[0] in (200, 404, 422), path  # unknown ids, ignored parameters
    topics = non_input_topics(stack.broker.url, [t.name for t in INPUT_TOPICS])
    records = drain(stack.broker.url, topics)
    dump = redis_dump(r)
    texts = {"worker log": stack.log("worker"), "api log": stack.log("api"),
             "worker metrics": str(http_get(f"http://127.0.0.1:{metrics_port}/metrics")[1]),
             "api metrics": str(http_get(f"{api}/metrics")[1])}
    session.scanned = {**{f"topic {t}": len(v) for t, v in records.items()}, "redis": len(dump),
                       **{k: len(v) for k, v in texts.items()}}
    session.leaks = scan({**{f"topic {t}": v for t, v in records.items()}, "redis": dump}, texts)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    stack = start_stack(tmp_path_factory.mktemp("audit-footfall"))
    now = int(time.time() * 1000)
    s = Session(base=now - now % MIN - (N + 3) * MIN)
    try:
        play(stack, s)
        yield s
    finally:
        stop_stack(stack)


def windows_of(obj: dict[str, Any]) -> list[tuple[str, int]]:
    """The (zone, window start) cells a published object covers."""
    start = parse_ts(obj["window"]["start"])
    return [(obj["zone_id"], s) for s in range(start, start + obj["window"]["seconds"] * 1000, MIN)]


def reveals(obj: dict[str, Any] | None) -> bool:
    """Does this object carry a figure (a visitors range, an index or a score) of the cells it covers?"""
    return obj is not None and any(obj.get(k) is not None for k in ("visitors", "index", "score"))


def test_p1_no_identifier_leaves_ingest(session: Session) -> None:
    """No MAC, hash, card number or identifier-named field in any non-input topic, the store, the logs or the
    metrics, after sources, batch ids, sensor ids, keys, payloads and URLs full of them."""
    assert sorted(r["reason"] for r in session.rejected) == sorted(
        ["schema_violation", "schema_violation", "schema_violation", "malformed_json", "unknown_sensor",
         "unknown_sensor", "unknown_sensor", "card_number", "unknown_merchant"])
    where = set(session.scanned)
    # the scanner read the internal topics and changelogs too, not only the public ones
    places = {"topic busyness.zone.v1", "topic ingest.rejected.v1", "topic drukte-footfall-byzone",
              "topic drukte-spending-byzone", "topic drukte-zone-windows-changelog",
              "topic drukte-zone-spending-changelog", "redis", "worker log", "api log", "worker metrics",
              "api metrics"}
    assert places <= where, where
    assert all(session.scanned[p] > 0 for p in places), session.scanned
    assert not session.leaks, "\n".join(sorted({str(leak) for leak in session.leaks}))


def test_lone_walker_is_never_visible(session: Session) -> None:
    """One person at night in a quiet square: the windows with the walker are `quiet`, suppressed below k,
    without any figure, and nothing the topic, /live (zone and city) or /today ever showed of tt-quiet differs
    from tt-twin, which had the same night without the walker."""
    topic = {(r["zone_id"], parse_ts(r["window"]["start"])): r for r in session.topic}
    base = session.base
    for m in WALKER:
        w = topic[("tt-quiet", base + m * MIN)]
        assert (w["level"]["key"], w["privacy"]["suppressed"], w["privacy"]["reason"]) == ("quiet", True, "below_k")
        assert not reveals(w)
        assert (w["vs_usual"], w["usual"]) == (None, None)
    # the usual is known: published windows carry an index and a score, forecasts an index
    busy = [topic[("tt-quiet", base + m * MIN)] for m in range(N) if COUNTS["tt-quiet"][m] >= K_MIN]
    assert all(w["index"] is not None and w["score"] is not None for w in busy), busy
    assert any(f["index"] is not None for w in busy for f in w["forecast"])
    for m in range(N):
        assert strip(topic[("tt-quiet", base + m * MIN)]) == strip(topic[("tt-twin", base + m * MIN)]), m
    for i, step in enumerate(session.steps):
        assert strip(step["tt-quiet"]["live"]) == strip(step["tt-twin"]["live"]), f"/live after window {i}"
        quiet, twin = (next(z for z in step["city"]["zones"] if z["zone_id"] == zone) for zone in ("tt-quiet",
                                                                                                  "tt-twin"))
        assert strip(quiet) == strip(twin), f"city /live after window {i}"
        assert strip(step["tt-quiet"]["today"]) == strip(step["tt-twin"]["today"]), f"/today after window {i}"
    # while the walker is inside the /live span, the span shows nothing either
    for i, step in enumerate(session.steps):
        if any(i - 2 <= m <= i for m in WALKER):
            live = step["tt-quiet"]["live"]
            assert (live["privacy"]["reason"], live["level"]["key"], reveals(live)) == ("below_k", "quiet", False)


def test_differencing_determines_no_suppressed_window(session: Session) -> None:
    """P8: every figure ever published (topic windows, every /live of zones and the city, /today rows) is an
    equation `sum of its windows = value`; solved exactly, no suppressed window's count is determined."""
    unknowns = [(z, session.base + m * MIN) for z in ZONES for m in range(N)]
    rows: list[dict[tuple[str, int], int]] = []
    suppressed: set[tuple[str, int]] = set()
    for w in session.topic:
        [cell] = windows_of(w)
        if w["privacy"]["suppressed"]:
            suppressed.add(cell)
        if reveals(w):
            rows.append({cell: 1})
    for live in session.lives:
        if reveals(live):
            rows.append(dict.fromkeys(windows_of(live), 1))
    for step in session.steps:
        for z in ZONES:
            for row in step[z]["today"]["windows"]:
                if reveals(row["live"]):
                    rows.append({(z, parse_ts(row["start"])): 1})
    published = {c for c in unknowns if c not in suppressed}
    assert len(suppressed) > 10
    found = determined(rows, unknowns)
    assert found >= published  # the solver sees the published windows, so it would see a leak
    assert sorted(found & suppressed) == [], "suppressed windows determined by the published figures"
    # the attack had something to work with: sums of three windows ≥ k over a part below k were served
    # (tt-side 20 + 14 + 20, tt-quiet 20 + 1 + 20), suppressed
    risky = [live for live in session.lives if len(windows_of(live)) == 3
             and sum(COUNTS[live["zone_id"]][(s - session.base) // MIN] for _, s in windows_of(live)) >= K_MIN
             and any(c in suppressed for c in windows_of(live))]
    assert {live["zone_id"] for live in risky} >= {"tt-side", "tt-quiet"}
    shown = [live for live in risky if live["privacy"]["reason"] != "below_k" or reveals(live)]
    assert not shown, shown


def test_late_events_change_nothing_published(session: Session) -> None:
    """P9: five late +1 readings for published windows (one would move tt-main's range, one would lift tt-side
    to k, two land in /live's span) were counted into history, and changed no byte on the topic, in the store
    or in /live."""
    seen: dict[tuple[str, str], int] = {}
    for r in session.topic:
        key = (r["zone_id"], r["window"]["start"])
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == len(ZONES) * N
    assert set(seen.values()) == {1}, "a window was published twice"
    assert session.after_late == session.before_late
    assert session.late_counted >= 5  # and they were read, as late
