"""The auditor as merchant #2 (PRIVACY.md §D, P12): knowing its own takings per hour, it reads every published
spending cell of its zone and tries to estimate merchant #1, its big neighbour.

The zone tt-main has five fashion shops (tests/e2e/registry-audit.yaml), so the fashion cell and the
all-sectors cell hold the same shops. Four weeks of acquirer totals make the usual of each hour exactly
€1,000 (every week the same). Then seven hours of acquirer totals in which #1 is large, sometimes with #2 (the
insider) beside it, sometimes with a third shop as the other large one; the two largest together stay just
under 85 % in some hours and reach it in others.

The insider's estimator, the best it has without knowing the three small shops: the cell's total is
`index / 100 × usual` (we grant it the usual in euros, which it cannot read anywhere: the strongest insider),
and #1 ≈ total − own. With the two largest below 85 %, the small shops hold more than 15 % of the total and
#1 less than 85 %, so the estimate is off by more than 15/85 ≈ 17.6 % of #1 (index rounding to whole points
can take back up to 0.5 % of the total; the hours here have indices ≥ 100, where that is ≤ 0.6 % of #1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from drukte.embedded import free_port
from drukte.kafka import ensure_topics
from streams.daytype import baseline_day_type
from streams.topics import INPUT_TOPICS, PAYMENTS
from tests.e2e.audit import drain, non_input_topics, redis_dump, scan, start_stack, stop_stack
from tests.e2e.conftest import Stack, http_get, iso, wait_for
from tests.e2e.test_spending_path import iso_local, weeks_before

pytestmark = pytest.mark.e2e

REGISTRY = Path(__file__).with_name("registry-audit.yaml")
HOUR = 3_600_000
TZ = "Europe/Brussels"
USUAL = 100_000  # cents per hour, every history week alike
MERCHANTS = ["f-1", "f-2", "f-3", "f-4", "f-5"]  # f-1 is merchant #1, f-2 the insider (#2)
# amounts in cents per hour for f-1 … f-5, and whether the cell may be published (top two < 85 %)
HOURS: list[tuple[list[int], bool]] = [
    ([50_000, 30_000, 7_000, 7_000, 6_000], True),  # #1 + #2 = 80 %
    ([60_000, 24_000, 6_000, 5_000, 5_000], True),  # 84 %
    ([70_000, 14_500, 5_500, 5_000, 5_000], True),  # 84.5 %: the closest the insider gets
    ([70_000, 15_000, 5_000, 5_000, 5_000], False),  # 85 %: dominant_merchants
    ([80_000, 10_000, 4_000, 3_000, 3_000], False),  # 90 %
    ([84_000, 84_000, 12_000, 10_000, 10_000], True),  # twice the usual, #1 = #2, 84 %
    ([60_000, 5_000, 24_000, 6_000, 5_000], True),  # the insider is small; #1 + #3 = 84 %
]
TOLERANCE = 0.17


def totals_batch(batch_id: str, start: int, amounts: list[int]) -> bytes:
    totals = [{"merchant_id": m, "start": iso(start), "seconds": 3600, "tx_count": 10, "amount_cents": a,
               "cards": 20} for m, a in zip(MERCHANTS, amounts, strict=True)]
    return orjson.dumps({"source": "acq-audit", "batch_id": batch_id, "sent_at": iso(start + HOUR),
                         "totals": totals})


def hours_now() -> list[int]:
    now = int(time.time() * 1000)
    last = now - now % HOUR - 2 * HOUR
    return [last - (len(HOURS) - 1 - i) * HOUR for i in range(len(HOURS))]


def has_usual(h: int) -> bool:
    """At least three of the four history weeks share the hour's day type (a public holiday may not)."""
    kind = baseline_day_type(h, TZ, "BE")
    return sum(baseline_day_type(weeks_before(h, w), TZ, "BE") == kind for w in (1, 2, 3, 4)) >= 3


def estimate_first(index: int, own: int) -> float:
    """Merchant #2's best estimate of merchant #1: the cell's total from its index and the usual, minus its own."""
    return index / 100 * USUAL - own


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[int], dict[str, Any], Stack, int]]:
    stack = start_stack(tmp_path_factory.mktemp("audit-insider"))
    try:
        hours = hours_now()
        asyncio.run(ensure_topics(stack.broker.url, [PAYMENTS], 4))
        # batch ids without epoch ms: 13 digits pass Luhn one time in ten, and a batch with a card number in it
        # is refused whole
        history = [totals_batch(f"hist/{i}/{w}", weeks_before(h, w), [USUAL // 5] * 5)
                   for i, h in enumerate(hours) for w in (4, 3, 2, 1)]
        current = [totals_batch(f"now/{i}", h, amounts) for i, (h, (amounts, _)) in enumerate(zip(hours, HOURS,
                                                                                                strict=True))]
        stack.produce(history + current, key=b"acq-audit", topic=PAYMENTS.name)
        api_port = free_port()
        stack.spawn("worker", log="worker", DRUKTE_REGISTRY=str(REGISTRY))
        stack.spawn("api", "--port", str(api_port), log="api", DRUKTE_REGISTRY=str(REGISTRY))
        wanted = {iso_local(h) for h in hours}

        def mine(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            return {r["window"]["start"]: r for r in records if r["zone_id"] == "tt-main"}

        records = stack.consume("spending.zone.v1", lambda rs: wanted <= set(mine(rs)), timeout_s=120)
        yield hours, mine(records), stack, api_port
    finally:
        stop_stack(stack)


def test_insider_cannot_estimate_the_largest_merchant(cells: tuple[list[int], dict[str, Any], Stack, int]) -> None:
    hours, published, stack, api_port = cells
    estimated = 0
    for h, (amounts, allowed) in zip(hours, HOURS, strict=True):
        obj = published[iso_local(h)]
        first, own = amounts[0], amounts[1]
        top2 = sorted(amounts, reverse=True)[:2]
        for cell in (obj["all"], *obj["sectors"]):
            assert cell["suppressed"] is not allowed, (iso_local(h), cell)
            if not allowed:
                # #1 and the insider hold ≥ 85 % (or #1 and another shop do): nothing to read
                assert 100 * sum(top2) >= 85 * sum(amounts)
                assert (cell["reason"], cell["index"], cell["usual"]) == ("dominant_merchants", None, None)
                continue
            if cell["index"] is None:
                assert not has_usual(h)  # no usual yet: nothing to estimate from
                continue
            assert cell["index"] == round(100 * sum(amounts) / USUAL)
            error = abs(estimate_first(cell["index"], own) - first) / first
            assert error > TOLERANCE, f"{iso_local(h)}: merchant #2 estimates #1 within {error:.1%}"
            estimated += 1
    # two cells (all sectors, fashion) per published hour with a usual; a holiday may take one hour's usual
    expected = sum(2 for h, (_, allowed) in zip(hours, HOURS, strict=True) if allowed and has_usual(h))
    assert estimated == expected >= 6

    # the API serves the newest cell, the same as the topic: no more for the insider there
    _, body = wait_for("the API", lambda: (r := http_get(
        f"http://127.0.0.1:{api_port}/v1/zones/tt-main/spending"))[0] == 200 and r)
    assert isinstance(body, dict)
    newest = published[iso_local(hours[-1])]
    assert body["window"] == newest["window"]
    assert [c["index"] for c in (body["all"], *body["sectors"])] == [c["index"] for c in (newest["all"],
                                                                                        *newest["sectors"])]
    assert "amount" not in orjson.dumps(body).decode()

    # and nothing identifying left ingest on this path either (P1)
    topics = non_input_topics(stack.broker.url, [t.name for t in INPUT_TOPICS])
    records = drain(stack.broker.url, topics)
    leaks = scan({**{f"topic {t}": v for t, v in records.items()}, "redis": redis_dump(stack.redis())},
                 {"worker log": stack.log("worker"), "api log": stack.log("api")})
    assert not leaks, "\n".join(sorted({str(leak) for leak in leaks}))
