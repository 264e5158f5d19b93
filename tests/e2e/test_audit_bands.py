"""The auditor attacks the usual bands (PRIVACY.md §D, P6): one passage in a suppressed window of the past
must not move anything published later, through the bands, the weekly peak, last week or the day profile.

Two twin zones, bb-quiet and bb-twin, get the same four weeks of history and the same evening today, in
one-minute windows (k_min = 15). The only difference: two weeks ago, in minute `P`, bb-quiet had 14 passages
and bb-twin 13, a window published without numbers in both. Minute `P` is where the attack bites hardest if
exact counts fed the bands: its history is 5, 13|14, 40 and 60, so the median interpolates between the
suppressed value and 40, the slot's median is the zone's weekly peak (every other minute has 3 to 6 people,
below k), and today the zone shows published windows around it. With exact counts the passage would move
the index of today's window in minute P, the score of every published window (the peak), the forecasts'
indices and the usual curve of /today. The test reads every published window of both zones (history and
today), their final /live and /today, and the windows view, and asks that everything be the same.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from drukte.embedded import free_port
from streams.storekeys import live_key
from streams.timegrid import parse_ts
from tests.e2e.conftest import MIN, Stack, http_get, iso, wait_for
from tests.e2e.test_spending_path import weeks_before

pytestmark = pytest.mark.e2e

REGISTRY = """
cities:
  - id: bandtown
    name: Bandtown
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: bb-quiet
        name: Stil
        sensors: [{id: bb-quiet-01, kind: street}, {id: bb-quiet-02, kind: street}, {id: bb-quiet-03, kind: street}]
      - id: bb-twin
        name: Tweeling
        sensors: [{id: bb-twin-01, kind: street}, {id: bb-twin-02, kind: street}, {id: bb-twin-03, kind: street}]
"""
ZONES = ("bb-quiet", "bb-twin")
K_MIN = 15
WEEKS = 4
N = 10  # today's windows 0 … 9
SLOTS = N + 6  # history minutes: today's and a few ahead, for the forecast's curve
P = 4  # the minute whose history holds the attacker's passage
BUSIER = {1: 24, 2: 18, 3: 22, 4: 20}  # week → passages: a busier block around P, so forecasts there reach k
HISTORY = {P: {1: 40, 2: 13, 3: 60, 4: 5}, P - 1: BUSIER, P + 1: BUSIER, P + 2: BUSIER}  # week 2 of P: the passage
TODAY = [20, 4, 30, 16, 25, 21, 18, 40, 22, 3]
VOLATILE = ("age_s", "next_update_in_s", "stale")


def history_count(m: int, week: int) -> int:
    return HISTORY.get(m, {}).get(week, 3 + (m + week) % 4)  # elsewhere 3 to 6 people: below k


def readings(zone: str, n: int, start: int) -> list[dict[str, Any]]:
    """`n` passages over the zone's three sensors, each getting at least one (n ≥ 3), so sensor health sees
    no sensor stuck at zero beside counting neighbours."""
    parts = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    return [{"sensor_id": f"{zone}-0{i + 1}", "start": iso(start), "seconds": 60, "in": p - p // 2, "out": p // 2}
            for i, p in enumerate(parts)]


def batch(source: str, batch_id: str, sent: int, rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"source": source, "batch_id": batch_id, "sent_at": iso(sent), "readings": rows})


def history(base: int) -> list[bytes]:
    out = []
    for week in range(WEEKS, 0, -1):
        for m in range(SLOTS):
            st = weeks_before(base, week) + m * MIN
            v = history_count(m, week)
            extra = 1 if (m, week) == (P, 2) else 0  # the passage
            rows = readings("bb-quiet", v + extra, st) + readings("bb-twin", v, st)
            out.append(batch("gw-history", f"h/{week}/{m}", st + MIN, rows))
    return out


def today(base: int) -> list[bytes]:
    return [batch("gw-bandtown", f"t/{m}", base + (m + 1) * MIN + 3000,
                  [r for z in ZONES for r in readings(z, n, base + m * MIN)]) for m, n in enumerate(TODAY)]


def strip(obj: Any) -> Any:
    """A served object without what names the zone or changes with the time it is read."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in ("zone_id", "name", *VOLATILE)}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def test_one_passage_in_a_suppressed_window_moves_no_band(stack: Stack, tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    now = int(time.time() * 1000)
    base = now - now % MIN - (N + 3) * MIN
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    stack.spawn("worker", log="worker", DRUKTE_REGISTRY=str(registry))
    stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_REGISTRY=str(registry), DRUKTE_STALE_S="3600")

    def by_window(rs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["zone_id"], parse_ts(r["window"]["start"])): r for r in rs}

    # the history first, all of it closed, so today's windows see complete bands
    stack.produce(history(base), key=b"gw-history")
    stack.consume("busyness.zone.v1", lambda rs: len(by_window(rs)) >= 2 * WEEKS * SLOTS, timeout_s=120)
    stack.produce(today(base), key=b"gw-bandtown")
    r = stack.redis()
    last_end = base + N * MIN

    def done() -> bool:
        raws = [r.get(live_key(z)) for z in ZONES]
        return all(raw is not None and orjson.loads(raw)["as_of_ms"] == last_end for raw in raws)

    wait_for("today's last window in both zones", done, timeout_s=90)
    published = by_window(stack.consume("busyness.zone.v1",
                                        lambda rs: len(by_window(rs)) >= 2 * (WEEKS * SLOTS + N)))
    starts = sorted({s for _, s in published})
    assert len(starts) == WEEKS * SLOTS + N
    differ = []
    for s in starts:  # every window ever published, history and today
        quiet, twin = strip(published[("bb-quiet", s)]), strip(published[("bb-twin", s)])
        differ += [f"window {iso(s)} {k}: {str(quiet[k])[:80]} vs {str(twin[k])[:80]}"
                   for k in quiet if quiet[k] != twin[k]]
    for path in ("live", "today", "windows?hours=1"):
        _, quiet = http_get(f"{api}/v1/zones/bb-quiet/{path}")
        _, twin = http_get(f"{api}/v1/zones/bb-twin/{path}")
        assert isinstance(quiet, dict), quiet
        assert isinstance(twin, dict), twin
        differ += [f"/{path} {k}" for k in strip(quiet) if strip(quiet)[k] != strip(twin).get(k)]
    assert not differ, "the passage shows:\n" + "\n".join(differ)

    # the attack had something to read: the suppressed window, and figures from the bands it would move
    two_weeks = weeks_before(base, 2) + P * MIN
    assert published[("bb-quiet", two_weeks)]["privacy"]["reason"] == "below_k"
    mine = [published[("bb-quiet", base + m * MIN)] for m in range(N)]
    shown = [w for w, n in zip(mine, TODAY, strict=True) if n >= K_MIN]
    assert all(w["index"] is not None and w["score"] is not None and w["usual"] is not None for w in shown), shown
    assert mine[P]["index"] is not None
    assert any(f["index"] is not None for w in shown for f in w["forecast"])
    _, view = http_get(f"{api}/v1/zones/bb-quiet/today")
    assert isinstance(view, dict)
    usual = {parse_ts(row["start"]): row["usual"] for row in view["windows"]}
    assert usual[base + P * MIN] is not None
