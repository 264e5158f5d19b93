"""WiFi/BLE detections in, distinct-device ranges out, through the real broker, worker, store and API (issue 5:
P1–P3, P6, P7, P9). The counts are worked out by hand below; nothing that identifies a phone may appear outside
the input topic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.models import DevicesLive, ZoneLive
from drukte.embedded import free_port
from drukte.kafka import ensure_topics
from streams.timegrid import parse_ts
from streams.topics import DEVICES, INPUT_TOPICS
from tests.e2e.audit import drain, find_forms, non_input_topics, redis_dump, scan
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for

pytestmark = pytest.mark.e2e
REGISTRY = Path(__file__).with_name("registry-devices.yaml")
PHONE = "a4:5e:60:d2:1f:07"  # the test phone: in both zones and both windows


def mac(kind: int, i: int) -> str:
    return f"02:00:5e:{kind:02x}:00:{i:02x}"


def batch(sensor: str, n: int, detections: list[tuple[str, int]]) -> bytes:
    sent = iso(max(t for _, t in detections))
    return orjson.dumps({"sensor_id": sensor, "batch_id": f"{sensor}/{n}", "sent_at": sent,
                         "detections": [{"device_address": a, "ts": iso(t), "rssi": -70} for a, t in detections]})


def scenario(w1: int) -> tuple[list[tuple[bytes, bytes]], dict[tuple[str, int], tuple[Any, str | None]]]:
    """(key, message) pairs and the expected `(visitors, reason)` per (zone, window start).

    tt-main, window 1: phones m0..m19 each seen by two of the three scanners (40 sightings) and the test phone
    by w1 and w3: 21 distinct → 20–30 (42 if sightings were counted). w1's batch is delivered twice.
    tt-main, window 2: m0..m9 over the three scanners and the test phone: 11 distinct → below_k (P6).
    tt-side, window 1: the test phone and s0..s15, one scanner each: 17 → 10–20.
    tt-side, window 2: the test phone and s0..s19 on two scanners only: few_sensors (P7).
    """
    w2 = w1 + MIN
    main: dict[str, list[tuple[str, int]]] = {f"tt-main-w{k}": [] for k in (1, 2, 3)}
    for i in range(20):
        for k in (i % 3, (i + 1) % 3):
            main[f"tt-main-w{k + 1}"].append((mac(1, i), w1 + 1000 * (i + 1)))
    main["tt-main-w1"].append((PHONE, w1 + 30_000))
    main["tt-main-w3"].append((PHONE, w1 + 31_000))
    msgs = [(s.encode(), batch(s, 1, d)) for s, d in main.items()]
    msgs.append(msgs[0])
    msgs += [(f"tt-main-w{k + 1}".encode(), batch(f"tt-main-w{k + 1}", 2, [(mac(1, i), w2 + 1000 * i)
                                                                          for i in range(k, 10, 3)]))
             for k in range(3)]
    msgs.append((b"tt-main-w2", batch("tt-main-w2", 3, [(PHONE, w2 + 20_000)])))
    side: dict[str, list[tuple[str, int]]] = {f"tt-side-w{k}": [] for k in (1, 2, 3)}
    for i in range(16):
        side[f"tt-side-w{i % 3 + 1}"].append((mac(2, i), w1 + 2000 * i + 500))
    side["tt-side-w2"].append((PHONE, w1 + 45_000))
    msgs += [(s.encode(), batch(s, 1, d)) for s, d in side.items()]
    msgs += [(b"tt-side-w1", batch("tt-side-w1", 2, [(mac(2, i), w2 + 1000 * i) for i in range(10)] + [(PHONE, w2)])),
             (b"tt-side-w2", batch("tt-side-w2", 2, [(mac(2, i), w2 + 1000 * i) for i in range(10, 20)]))]
    # refused: a people counter is no scanner; a detection an hour and a half old; broken JSON with a MAC in it
    msgs += [(b"tt-main-01", batch("tt-main-01", 1, [(PHONE, w1)])),
             (b"tt-main-w1", batch("tt-main-w1", 9, [(PHONE, w1 - 90 * MIN)])),
             (b"tt-main-w2", b'{"sensor_id": "tt-main-w2", "detections": [{"device_address": "' + PHONE.encode())]
    expected = {("tt-main", w1): ({"min": 20, "max": 30}, None), ("tt-main", w2): (None, "below_k"),
                ("tt-side", w1): ({"min": 10, "max": 20}, None), ("tt-side", w2): (None, "few_sensors")}
    return msgs, expected


def produce(stack: Stack, msgs: list[tuple[bytes, bytes]]) -> None:
    for key, value in msgs:
        stack.produce([value], key=key, topic=DEVICES.name)


def test_detections_in_distinct_device_ranges_out(stack: Stack) -> None:
    now = int(time.time() * 1000)
    w1 = now - now % MIN - 4 * MIN
    asyncio.run(ensure_topics(stack.broker.url, [DEVICES], 4))
    msgs, expected = scenario(w1)
    produce(stack, msgs)  # all in before the worker starts: no clock tick falls between two batches
    metrics_port, api_port = free_port(), free_port()
    stack.spawn("worker", log="worker", DRUKTE_REGISTRY=str(REGISTRY), DRUKTE_METRICS_PORT=str(metrics_port))
    stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_REGISTRY=str(REGISTRY))

    records = stack.consume("devices.zone.v1", lambda rs: len(rs) >= 4, timeout_s=120)
    got = {(r["zone_id"], parse_ts(r["window"]["start"])): (r["visitors"], r["privacy"]["reason"]) for r in records}
    assert got == expected
    assert all("as_of_ms" not in r for r in records)
    assert [r["quality"]["sensors_reporting"] for r in records if r["zone_id"] == "tt-side"] == [3, 2]

    rejected = stack.consume("ingest.rejected.v1", lambda rs: len(rs) >= 3)
    assert sorted(r["reason"] for r in rejected) == ["malformed_json", "too_old", "unknown_sensor"]

    # a late detection for a published window: no second version (P9)
    produce(stack, [(b"tt-main-w2", batch("tt-main-w2", 3, [(mac(9, 1), w1 + 59_000)]))])

    def metric(name: str) -> float:
        _status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert isinstance(body, str)
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines() if ln.startswith(name))

    wait_for("the late count", lambda: metric("drukte_device_late_total") >= 1)
    # tt-main 42 + w1's 14 again + 11; tt-side 17 + 11 + 10; the late one
    assert metric("drukte_device_detections_in_total") == 42 + 14 + 11 + 17 + 11 + 10 + 1

    _status, body = wait_for("the API", lambda: (r := http_get(
        f"http://127.0.0.1:{api_port}/v1/zones/tt-main/live"))[0] == 200 and r)
    assert isinstance(body, dict)
    devices = DevicesLive.model_validate(body["devices"])
    assert (devices.visitors, devices.suppressed, devices.reason) == (None, True, "below_k")  # the newest window
    assert devices.window is not None
    assert parse_ts(devices.window.start.isoformat()) == w1 + MIN
    _status, city = http_get(f"http://127.0.0.1:{api_port}/v1/cities/testtown/live")
    assert isinstance(city, dict)
    side, quiet = city["zones"][1], city["zones"][2]
    assert (side["devices"]["reason"], side["devices"]["visitors"]) == ("few_sensors", None)
    assert "devices" not in quiet  # no scanners: the contract's object as it was
    ZoneLive.model_validate(quiet)
    again = stack.consume("devices.zone.v1", lambda rs: len(rs) >= len(records), timeout_s=5)
    assert len(again) == len(records)

    # P1: no address, in any form, and nothing shaped like an identifier outside the input topics
    topics = non_input_topics(stack.broker.url, [t.name for t in INPUT_TOPICS])
    assert any("devices-byzone" in t for t in topics)
    assert any("zone-devices" in t for t in topics)  # the table's changelog
    seen = drain(stack.broker.url, topics)
    places = {**{f"topic {t}": v for t, v in seen.items()}, "redis": redis_dump(stack.redis())}
    texts = {"worker log": stack.log("worker"), "api log": stack.log("api"),
             "worker metrics": str(http_get(f"http://127.0.0.1:{metrics_port}/metrics")[1])}
    leaks = [str(leak) for leak in scan(places, texts)]
    for address in (PHONE, mac(1, 0), mac(2, 15)):
        leaks += find_forms(places, texts, address)
    assert not leaks, "\n".join(sorted(set(leaks)))
