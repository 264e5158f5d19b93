"""The auditor's devices attacks (issue 5, PRIVACY.md P1–P3) against a real broker, store and worker.

#2 Test phone: one phone is seen in two zones and in two windows each, among crowds of other phones; a control
window per zone has the crowd only. Every record any topic (internal ones and changelogs included) or the store
holds is tied to the zone window it speaks of, and no value may occur in two of the test phone's zone windows
unless the control windows have it too (names, the process id, small counts): a pseudonym under one key per
phone, per zone or per window would be such a value. The phone's address in any usual form is nowhere.

#3 Key hygiene: the worker is stopped while a window is open and started again. The window's count then adds
what the new process saw to what the old one counted (the phone twice): a key or set that survived the
restart (in a changelog, a file, Redis) would have deduplicated it. Afterwards no key- or pseudonym-shaped
value is in any topic, the store, the worker's environment or the logs, and the data dir holds no file. (The
hasher refusing to pickle is `tests/unit/test_devices.py::test_the_hasher_and_its_sets_refuse_to_leave_the_process`.)
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from drukte.embedded import free_port
from drukte.kafka import ensure_topics
from streams.registry import parse_registry
from streams.storekeys import devices_key
from streams.timegrid import format_ts, parse_ts
from streams.topics import DEVICES, INPUT_TOPICS
from tests.e2e.audit import drain, find_forms, non_input_topics, redis_dump, scan, start_stack, stop_stack
from tests.e2e.conftest import Stack, http_get, wait_for
from tests.e2e.test_devices_path import PHONE, REGISTRY, batch, mac

pytestmark = pytest.mark.e2e
W = 20_000  # window length in this module (DRUKTE_WINDOW_S=20)
ZONES = ("tt-main", "tt-side")
_REG = parse_registry(REGISTRY.read_text())
SENSORS = set(_REG.sensors) | set(_REG.device_sensors)
YEAR_MS = 366 * 86_400_000


@dataclass
class Session:
    stack: Stack
    w1: int
    metrics_port: int = 0
    open_w: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    after_restart: dict[str, Any] = field(default_factory=dict)


def crowd(zone: str, start: int, tag: int, n: int, phone: bool) -> list[tuple[bytes, bytes]]:
    """n phones of their own (and the test phone) in one zone window, each seen by one of the three scanners."""
    seen: dict[str, list[tuple[str, int]]] = {f"{zone}-w{k}": [] for k in (1, 2, 3)}
    for i in range(n):
        seen[f"{zone}-w{i % 3 + 1}"].append((mac(tag, i), start + 500 * i + 100))
    if phone:
        seen[f"{zone}-w2"].append((PHONE, start + 9_000))
    return [(s.encode(), batch(s, start, d)) for s, d in seen.items() if d]


def produce(stack: Stack, msgs: list[tuple[bytes, bytes]]) -> None:
    for key, value in msgs:
        stack.produce([value], key=key, topic=DEVICES.name)


def metric(port: int, name: str) -> float:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert isinstance(body, str)
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines() if ln.startswith((name + " ", name + "{")))


def worker(s: Session) -> int:
    s.metrics_port = free_port()
    s.stack.spawn("worker", log="worker", DRUKTE_REGISTRY=str(REGISTRY), DRUKTE_METRICS_PORT=str(s.metrics_port),
                  DRUKTE_WINDOW_S=str(W // 1000), DRUKTE_GRACE_S="5")
    return s.stack.procs[-1].pid


def wait_detections(s: Session, at_least: int) -> None:
    def read() -> bool:
        try:
            return metric(s.metrics_port, "drukte_device_detections_in_total") >= at_least
        except OSError:
            return False

    wait_for(f"{at_least} detections read", read, timeout_s=60, every_s=0.2)


def windows_of(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["zone_id"], parse_ts(r["window"]["start"])): r for r in records}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    stack = start_stack(tmp_path_factory.mktemp("audit-devices"))
    try:
        now = int(time.time() * 1000)
        s = Session(stack, now - now % W - 6 * W)
        asyncio.run(ensure_topics(stack.broker.url, [DEVICES], 4))
        # windows 1 and 2: the test phone in both zones among 16 others; window 3: the crowd only (control)
        for z, zone in enumerate(ZONES):
            for k in range(3):
                produce(stack, crowd(zone, s.w1 + k * W, 10 * z + k + 1, 16, phone=k < 2))
        pid = worker(s)
        s.records = stack.consume("devices.zone.v1", lambda rs: len(rs) >= 6, timeout_s=90)

        # a window still to come when the worker stops: 14 phones and the test phone, then after the restart
        # 5 others and the test phone again
        s.open_w = (int(time.time() * 1000) + 35_000) // W * W
        first = crowd("tt-main", s.open_w, 40, 14, phone=True)
        produce(stack, first)
        wait_detections(s, 6 * 16 + 4 * 1 + 15)
        stack.procs[-1].send_signal(signal.SIGTERM)
        assert stack.procs[-1].wait(30) == 0
        pid = worker(s)
        produce(stack, crowd("tt-main", s.open_w, 41, 5, phone=True))
        wait_detections(s, 6)
        assert int(time.time() * 1000) < s.open_w + W, "the restart took longer than the window: no test"
        s.records = stack.consume("devices.zone.v1", lambda rs: ("tt-main", s.open_w) in windows_of(rs),
                                  timeout_s=90)
        s.after_restart = {"pid": pid, "environ": Path(f"/proc/{pid}/environ").read_bytes()}
        yield s
    finally:
        stop_stack(stack)


def atoms(raw: bytes) -> set[str]:
    """The values of a record: every JSON key and scalar (also inside JSON text), or its word-like tokens."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return set(re.findall(r"[0-9A-Za-z+/=_:.|-]{6,}", raw.decode("utf-8", errors="replace")))
    out: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                out.add(f"key:{k}")
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v[:1] in "{[":
            out.update(atoms(v.encode()))
        else:
            out.add(f"{type(v).__name__}:{v}")

    walk(doc)
    return out


def innocent(atom: str, now_ms: int) -> bool:
    """Values that are the same for any phone: field names that are words, small counts, times, ISO timestamps,
    zone and sensor ids."""
    kind, _, value = atom.partition(":")
    if kind == "key" and re.fullmatch(r"[a-z_]{1,16}", value):
        return True
    if kind in ("int", "float", "bool", "NoneType"):
        return kind != "int" or abs(int(value)) < 2**20 or abs(int(value) - now_ms) < YEAR_MS
    if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", value):
        return True
    return any(part in SENSORS or part in ZONES for part in re.split(r"[|/]", value))


def zone_window(key: bytes, value: bytes, starts: list[int], tz: str) -> tuple[str, int] | None:
    """The one zone window a record speaks of (its zone id, its window's start as ms or as `"start"`), or None."""
    text = (key + b" " + value).decode("utf-8", errors="replace")
    zones = [z for z in ZONES if z in text]
    ws = [w for w in starts if re.search(rf"(?<!\d){w}(?!\d)", text) or f'"start":"{format_ts(w, tz)}"' in text]
    return (zones[0], ws[0]) if len(zones) == 1 and len(ws) == 1 else None


def test_the_test_phone_is_not_linkable_across_zones_or_windows(session: Session) -> None:
    s = session
    got = windows_of(s.records)
    # 17 distinct in the phone's windows, 16 in the controls: 10–20 each, published
    for zone in ZONES:
        for k in range(3):
            assert got[(zone, s.w1 + k * W)]["visitors"] == {"min": 10, "max": 20}, got[(zone, s.w1 + k * W)]
    topics = non_input_topics(s.stack.broker.url, [t.name for t in INPUT_TOPICS])
    seen = drain(s.stack.broker.url, topics)
    r = s.stack.redis()
    pairs = [(k, v) for values in seen.values() for k, v in zip(values[::2], values[1::2], strict=True)]
    pairs += [(devices_key(z).encode(), r.get(devices_key(z)) or b"") for z in ZONES]
    starts = [s.w1, s.w1 + W, s.w1 + 2 * W]
    phone_groups = {(z, w) for z in ZONES for w in starts[:2]}
    by_group: dict[tuple[str, int], set[str]] = {}
    for k, v in pairs:
        group = zone_window(k, v, starts, "Europe/Brussels")
        if group is not None:
            by_group.setdefault(group, set()).update(atoms(k) | atoms(v))
    assert set(by_group) == phone_groups | {(z, starts[2]) for z in ZONES}, "every zone window has records"
    control = by_group[("tt-main", starts[2])] | by_group[("tt-side", starts[2])]
    now = int(time.time() * 1000)
    links: dict[str, list[tuple[str, int]]] = {}
    for group in sorted(phone_groups):
        for atom in by_group[group] - control:
            if not innocent(atom, now):
                links.setdefault(atom, []).append(group)
    linking = {a: g for a, g in links.items() if len(g) > 1}
    assert not linking, f"values shared by the test phone's zone windows only: {linking}"
    places = {**{f"topic {t}": v for t, v in seen.items()}, "redis": redis_dump(r)}
    texts = {"worker log": s.stack.log("worker")}
    leaks = [str(leak) for leak in scan(places, texts)] + find_forms(places, texts, PHONE)
    assert not leaks, "\n".join(sorted(set(leaks)))


def test_no_key_or_set_survives_a_restart(session: Session) -> None:
    s = session
    # the old process counted 15 (14 and the phone), the new one 6 (five and the phone again): 21 → 20–30.
    # Had the set survived the restart (or the new process re-read the old one's input), the new process would
    # have counted 20 and the window 35 → 30–40; one count per window instead of one per process: 15 → 10–20.
    restarted = windows_of(s.records)[("tt-main", s.open_w)]
    assert restarted["visitors"] == {"min": 20, "max": 30}
    assert restarted["quality"]["sensors_reporting"] == 3
    # Files: the worker keeps its tables in memory (store memory://) and writes none under its data dir, so there
    # is nothing to scan; a key or set written to disk would first show up here as a file.
    files = [p for p in (s.stack.tmp / "data").rglob("*") if p.is_file()]
    assert files == [], f"the worker wrote files, which the scan below must then read: {files}"
    topics = non_input_topics(s.stack.broker.url, [t.name for t in INPUT_TOPICS])
    seen = drain(s.stack.broker.url, topics)
    places: dict[str, list[bytes]] = {**{f"topic {t}": v for t, v in seen.items()},
                                      "redis": redis_dump(s.stack.redis()),
                                      "worker environment": s.after_restart["environ"].split(b"\0")}
    texts = {"worker log": s.stack.log("worker")}
    # the scan reads what the worker really wrote, not empty places: both processes' logs, the counts they
    # published and their table's changelog, the store's objects, the new process's settings
    assert texts["worker log"].strip(), "no worker log captured"
    assert len(seen.get("devices.zone.v1", [])) >= 2 * 7, "7 published windows (3 per zone, the restarted one)"
    assert any(t.endswith("-changelog") and v for t, v in seen.items()), sorted(seen)
    assert places["redis"], "the store"
    assert b"DRUKTE_REGISTRY=" + str(REGISTRY).encode() in places["worker environment"]
    leaks = [str(leak) for leak in scan(places, texts)] + find_forms(places, texts, PHONE)
    assert not leaks, "\n".join(sorted(set(leaks)))
    assert metric(s.metrics_port, "drukte_device_sets_open") <= 1  # only a window still open holds a set (P3)
