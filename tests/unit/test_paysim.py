"""Simulated payments: valid batches that follow the simulated footfall, with cards reused within a day."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

import schemas
from streams.payments import PaymentParser
from streams.paysim import history_payments, payment_batches
from streams.registry import parse_registry
from streams.simulation import expected_per_hour

REG = parse_registry((Path(__file__).parents[2] / "deploy" / "registry" / "flanders.yaml").read_text())
SAT_14 = 1_795_870_800_000  # Saturday 2026-11-28 14:00 Brussels
HOUR = 3_600_000
PARSER = PaymentParser(schemas.load("payments.v1"), REG, window_ms=HOUR, max_future_ms=300_000)


def parsed(batches: list[dict]) -> list:
    out = [PARSER.parse(orjson.dumps(b), SAT_14 + 30 * 86_400_000) for b in batches]
    assert [r for p in out for r in p.rejections] == []
    return out


def test_live_minutes_follow_footfall_and_reuse_cards_within_a_day() -> None:
    busy = parsed(payment_batches(REG, "mechelen", SAT_14, SAT_14 + HOUR, 7))
    night = parsed(payment_batches(REG, "mechelen", SAT_14 + 14 * HOUR, SAT_14 + 15 * HOUR, 7))
    n_busy = sum(len(p.transactions) for p in busy)
    n_night = sum(len(p.transactions) for p in night)
    assert n_busy > 200
    assert n_night < n_busy / 10  # 04:00: shops and bars are shut
    by_zone = Counter(t.zone_id for p in busy for t in p.transactions)
    city = REG.city("mechelen")
    assert city is not None
    foot = {z.id: expected_per_hour(city, z, SAT_14, 7) for z in city.zones}
    assert by_zone.most_common(1)[0][0] == max(foot, key=lambda z: foot[z])  # the busiest street sells most
    cards = Counter(t.card_ref for p in busy for t in p.transactions)
    assert max(cards.values()) > 1  # some shoppers pay twice
    assert len(cards) > n_busy / 3


def test_cards_are_not_reused_across_days() -> None:
    day1 = {t.card_ref for p in parsed(payment_batches(REG, "leuven", SAT_14, SAT_14 + 600_000, 7))
            for t in p.transactions}
    day2 = {t.card_ref for p in parsed(payment_batches(REG, "leuven", SAT_14 + 86_400_000,
                                                        SAT_14 + 86_400_000 + 600_000, 7)) for t in p.transactions}
    assert day1
    assert day2
    assert not day1 & day2


def test_history_comes_as_hourly_totals_in_one_spending_window_each() -> None:
    batches = history_payments(REG, "antwerpen", SAT_14 - 24 * HOUR, SAT_14, 7)
    assert len(batches) == 24
    totals = [t for p in parsed(batches) for t in p.totals]
    assert all(t.dur_ms == HOUR and t.start_ms % HOUR == 0 for t in totals)
    assert all(0 < t.cards <= t.tx_count for t in totals)
    assert payment_batches(REG, "antwerpen", SAT_14, SAT_14 + HOUR, 7) == payment_batches(
        REG, "antwerpen", SAT_14, SAT_14 + HOUR, 7)
