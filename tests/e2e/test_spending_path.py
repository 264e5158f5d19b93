"""Payments in, spending indices out, through the real broker, worker, store and API (issue 4, P1, P11–P14).

Four weeks of acquirer totals make the usual; the current hour comes as single transactions with duplicates,
a card number, an unknown merchant and bad JSON mixed in. The cells that come out are checked against figures
worked out by hand, and nothing that identifies a card may appear outside the input topic.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from drukte.embedded import free_port
from drukte.kafka import ensure_topics
from streams.daytype import baseline_day_type
from streams.topics import INPUT_TOPICS, PAYMENTS
from tests.e2e.audit import drain, non_input_topics, redis_dump, scan
from tests.e2e.conftest import Stack, http_get, iso, wait_for

REGISTRY = Path(__file__).with_name("registry-spending.yaml")
HOUR = 3_600_000
TZ = "Europe/Brussels"
PAN = "4111 1111 1111 1111"
SECRET_RE = re.compile(r"tok-|4111|\"card_ref\"|pseudonym")


def weeks_before(start_ms: int, weeks: int) -> int:
    """The same local wall-clock hour `weeks` earlier (also across a clock change)."""
    local = datetime.fromtimestamp(start_ms / 1000, ZoneInfo(TZ))
    return int((local - timedelta(weeks=weeks)).astimezone(UTC).timestamp() * 1000)


def payment(batch_id: str, sent_ms: int, **parts: Any) -> bytes:
    return orjson.dumps({"source": "acq-test", "batch_id": batch_id, "sent_at": iso(sent_ms), **parts})


def history(start: int) -> bytes:
    totals = [{"merchant_id": m, "start": iso(start), "seconds": 3600, "tx_count": 5, "amount_cents": amount,
               "cards": cards}
              for ms, amount, cards in ((range(1, 7), 10_000, 20), (range(1, 6), 4_000, 16))
              for m in [f"{'f' if amount == 10_000 else 'l'}-{i}" for i in ms]]
    totals += [{"merchant_id": f"d-{i}", "start": iso(start), "seconds": 3600, "tx_count": 2, "amount_cents": 3_000,
                "cards": 8} for i in (1, 2)]
    # no epoch ms in the batch id: 13 digits pass Luhn one time in ten, and the batch would be refused whole
    return payment(f"export/{iso(start)}", start + HOUR, totals=totals)


def tx(merchant: str, ts: int, amount: int, card: str) -> dict[str, Any]:
    return {"merchant_id": merchant, "ts": iso(ts), "amount_cents": amount, "card_ref": card}


def current_hour(h: int) -> list[bytes]:
    """The hour `h` as transactions: fashion 6 × 4 × €50 (24 cards), leisure 5 × 4 × €30 (20 cards), food
    2 × 2 × €20 (4 cards); the side street 4 merchants only."""
    fashion = [tx(f"f-{i % 6 + 1}", h + 60_000 * i, 5_000, f"tok-f-{i}") for i in range(24)]
    leisure = [tx(f"l-{i // 4 + 1}", h + 90_000 * i, 3_000, f"tok-l-{i}") for i in range(20)]
    food = [tx(f"d-{i % 2 + 1}", h + 600_000 * i, 2_000, f"tok-d-{i}") for i in range(4)]
    side = [tx(m, h + 120_000 * i, 2_500, f"tok-s-{i}") for i, m in enumerate(["g-1", "g-2", "g-3", "f-7"] * 5)]
    first = payment("live/1", h + 20 * 60_000, transactions=fashion[:12] + leisure[:10])
    second = payment("live/2", h + 40 * 60_000,
                     transactions=[*fashion[12:], *leisure[10:], tx("x-404", h + 1000, 99_999, "tok-x-1")])
    third = payment("live/3", h + 60 * 60_000, transactions=food + side)
    bad = [payment("live/pan", h + 61 * 60_000, transactions=[tx("f-1", h + 5000, 99_999, PAN)]),
           b'{"source": "acq-test", "batch_id": "live/broken", "transactions": [',]
    return [first, second, second, third, *bad]  # the second batch is delivered twice


def expected_index(h: int, now: int, usual: int, weeks: list[int]) -> int | None:
    """Index against the median of the history days of the same day type (a holiday counts as a Sunday)."""
    kind = baseline_day_type(h, TZ, "BE")
    same = [w for w in weeks if baseline_day_type(w, TZ, "BE") == kind]
    return round(100 * now / usual) if len(same) >= 3 else None


def test_payments_in_spending_indices_out(stack: Stack) -> None:
    now = int(time.time() * 1000)
    h = now - now % HOUR - 3 * HOUR
    weeks = [weeks_before(h, w) for w in (4, 3, 2, 1)]
    asyncio.run(ensure_topics(stack.broker.url, [PAYMENTS], 4))
    # everything is in the topic before the worker starts, so no clock tick can fall between two batches
    stack.produce([history(w) for w in weeks] + current_hour(h), key=b"acq-test", topic=PAYMENTS.name)
    metrics_port, api_port = free_port(), free_port()
    env = {"DRUKTE_REGISTRY": str(REGISTRY), "DRUKTE_METRICS_PORT": str(metrics_port)}
    stack.spawn("worker", log="worker", **env)
    stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_REGISTRY=str(REGISTRY))

    def cells(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["zone_id"], r["window"]["start"]): r for r in records}

    current = {("tt-main", iso_local(h)), ("tt-side", iso_local(h))}
    records = stack.consume("spending.zone.v1", lambda rs: current <= set(cells(rs)), timeout_s=120)
    got = cells(records)
    main = got[("tt-main", iso_local(h))]
    fashion, food, leisure = main["sectors"]
    assert [c["sector"] for c in (fashion, food, leisure)] == ["fashion", "food_and_drink", "leisure"]
    # fashion: 6 merchants, 24 cards, €1,200 against a usual €600
    assert (fashion["suppressed"], fashion["index"]) == (False, expected_index(h, 120_000, 60_000, weeks))
    assert (food["suppressed"], food["reason"], food["index"]) == (True, "few_merchants", None)
    # leisure passes on its own but would reveal food by subtraction from the total: suppressed with it (P8)
    assert (leisure["suppressed"], leisure["reason"], leisure["index"]) == (True, "complement", None)
    # all sectors: €1,880 against a usual €860; the duplicate batch, the card number and x-404 counted nothing
    assert (main["all"]["suppressed"], main["all"]["index"]) == (False, expected_index(h, 188_000, 86_000, weeks))
    assert main["privacy"] == {"min_merchants": 5, "min_cards": 15, "max_top2_pct": 85}
    side = got[("tt-side", iso_local(h))]
    assert side["all"]["reason"] == "few_merchants"
    assert {c["sector"]: c["reason"] for c in side["sectors"]} == {"fashion": "few_merchants",
                                                                  "groceries": "few_merchants"}
    assert "amount" not in orjson.dumps(records).decode()  # indices, never euros (P13)
    assert len([r for r in records if r["zone_id"] == "tt-main"]) == 5  # four history hours and this one

    rejected = stack.consume("ingest.rejected.v1", lambda rs: len(rs) >= 4)
    # x-404 is refused in both deliveries of the second batch: each message answers for its own bad parts
    assert sorted(r["reason"] for r in rejected) == ["card_number", "malformed_json", "unknown_merchant",
                                                     "unknown_merchant"]
    assert all(r["topic"] == PAYMENTS.name for r in rejected)

    # a late payment for the final hour: history only, never a second version (P9)
    stack.produce([payment("late/1", h + 2 * HOUR, transactions=[tx("f-1", h + 1000, 700, "tok-late")])],
                  key=b"acq-test", topic=PAYMENTS.name)

    def metric(name: str) -> float:
        status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert isinstance(body, str)
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines() if ln.startswith(name))

    wait_for("the late payment", lambda: metric('drukte_spend_late_total{kind="history"}') >= 1)
    assert metric("drukte_spend_duplicate_batches_total") >= 1
    assert metric('drukte_spend_cells_total{outcome="complement"}') >= 1
    again = stack.consume("spending.zone.v1", lambda rs: len(rs) >= len(records), timeout_s=10)
    assert len(again) == len(records)

    status, body = wait_for("the API", lambda: (r := http_get(
        f"http://127.0.0.1:{api_port}/v1/zones/tt-main/spending"))[0] == 200 and r)
    assert isinstance(body, dict)
    assert body["window"] == main["window"]
    assert body["all"]["index"] == main["all"]["index"]
    assert body["all"]["spend_per_visitor"] is None  # no footfall published for that hour
    status, city = http_get(f"http://127.0.0.1:{api_port}/v1/cities/testtown/spending")
    assert status == 200
    assert isinstance(city, dict)
    quiet = city["zones"][2]
    assert (quiet["zone_id"], quiet["all"]["reason"], quiet["sectors"]) == ("tt-quiet", "no_data", [])
    assert http_get(f"http://127.0.0.1:{api_port}/v1/zones/nowhere/spending")[0] == 404

    # P1: no card_ref, card number or pseudonym outside the input topics: not in any other topic (internal
    # ones and changelogs included), not in the store, not in the logs
    topics = non_input_topics(stack.broker.url, [t.name for t in INPUT_TOPICS])
    assert {"spending.zone.v1", "ingest.rejected.v1"} <= set(topics)
    assert any("spending-byzone" in t for t in topics)
    assert any("zone-spending" in t for t in topics)  # the table's changelog
    seen = drain(stack.broker.url, topics)
    assert sum(len(v) for v in seen.values()) > 2 * (len(records) + len(rejected))  # keys and values
    places = {**{f"topic {t}": v for t, v in seen.items()}, "redis": redis_dump(stack.redis())}
    texts = {"worker log": stack.log("worker"), "api log": stack.log("api")}
    # the auditor's scanner (MACs, hex tokens, card numbers, identifier fields), and this test's own tokens
    leaks = [str(leak) for leak in scan(places, texts)]
    leaks += [f"{where}: {m.group()}" for where, vs in places.items() for v in vs
              for m in SECRET_RE.finditer(v.decode(errors="replace"))]
    leaks += [f"{where}: {m.group()}" for where, text in texts.items() for m in SECRET_RE.finditer(text)]
    assert not leaks, "\n".join(sorted(set(leaks)))


def iso_local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).isoformat()
