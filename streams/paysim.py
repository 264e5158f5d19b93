"""Simulated payments that agree with the simulated footfall: the demo's acquirer for each city.

Each merchant converts a share of its zone's passers-by into card payments (a rate per sector, times a weight
per merchant so there are big and small shops) with ticket sizes per sector. A simulated shopper pays with one
card all day, and may pay in several shops: `card_ref` tokens repeat within a city and day, never across days.
Live minutes carry single transactions; history comes as hourly acquirer totals per merchant. Deterministic in
the seed, like `streams.simulation`.
"""

from __future__ import annotations

import math
import random
from typing import Any

from streams.daytype import local_time
from streams.registry import City, Merchant, Registry
from streams.simulation import MINUTE_MS, SEND_DELAY_MS, _poisson, _utc_iso, city_of, expected_per_hour

HOUR_MS = 60 * MINUTE_MS
# Payments per passer-by of the zone, per merchant of the sector, and the mean ticket in cents.
CONVERSION = {"fashion": 0.005, "food_and_drink": 0.008, "groceries": 0.006, "personal_care": 0.004,
              "leisure": 0.003, "other_retail": 0.004}
TICKET_CENTS = {"fashion": 5500, "food_and_drink": 1400, "groceries": 2200, "personal_care": 2500,
                "leisure": 3000, "other_retail": 3500}
TICKET_SHAPE = 3.0  # gamma shape of a ticket: most near the mean, a few large ones
SHOPPERS_PER_PAYMENT = 0.6  # distinct cards per payment over a day: shoppers pay in more than one shop


def acquirer(city_id: str) -> str:
    """The simulated acquirer (`source`) of a city's payments."""
    return f"acq-{city_id}"


def _weight(seed: int, merchant_id: str) -> float:
    """A merchant's size relative to its sector's average: lognormal, fixed per merchant."""
    return math.exp(random.Random(f"{seed}:size:{merchant_id}").gauss(0.0, 0.45) - 0.1)  # noqa: S311


def _merchants(registry: Registry, city: City) -> list[Merchant]:
    zones = {z.id for z in city.zones}
    return [m for m in registry.merchants if m.zone_id in zones]


def _rate_per_ms(registry: Registry, city: City, m: Merchant, ts_ms: int, seed: int) -> float:
    zone = registry.zones[m.zone_id]
    return expected_per_hour(city, zone, ts_ms, seed) * CONVERSION[m.sector] * _weight(seed, m.id) / HOUR_MS


def _ticket(rng: random.Random, sector: str) -> int:
    return max(50, round(rng.gammavariate(TICKET_SHAPE, TICKET_CENTS[sector] / TICKET_SHAPE)))


def payment_batches(registry: Registry, city_id: str, start_ms: int, end_ms: int, seed: int) -> list[dict[str, Any]]:
    """One `payments.v1` batch of single transactions per whole minute in `[start_ms, end_ms)` with sales."""
    city = city_of(registry, city_id)
    merchants = _merchants(registry, city)
    source = acquirer(city.id)
    out: list[dict[str, Any]] = []
    pools: dict[str, int] = {}
    for minute in range(-(-start_ms // MINUTE_MS), end_ms // MINUTE_MS):
        m_start = minute * MINUTE_MS
        rng = random.Random(f"{seed}:pay:{city.id}:{minute}")  # noqa: S311
        day = local_time(m_start, city.timezone).date().isoformat()
        if day not in pools:
            pools[day] = _shoppers(registry, city, seed, m_start)
        txs: list[dict[str, Any]] = []
        for m in merchants:
            lam = _rate_per_ms(registry, city, m, m_start + MINUTE_MS // 2, seed) * MINUTE_MS
            for _ in range(_poisson(rng, lam)):
                ts = m_start + rng.randrange(MINUTE_MS)
                shopper = rng.randrange(pools[day])
                txs.append({"merchant_id": m.id, "ts": _utc_iso(ts), "amount_cents": _ticket(rng, m.sector),
                            "card_ref": f"tok_{seed}_{city.id}_{day}_{shopper}"})
        if not txs:
            continue  # nothing sold this minute in the whole city: the acquirer sends nothing
        end = m_start + MINUTE_MS
        out.append({"source": source, "batch_id": f"{source}/{_utc_iso(end)}",
                    "sent_at": _utc_iso(end + SEND_DELAY_MS), "transactions": sorted(txs, key=lambda t: str(t["ts"]))})
    return out


def _shoppers(registry: Registry, city: City, seed: int, ts_ms: int) -> int:
    """Size of a day's pool of shoppers in the city: about the day's payments × `SHOPPERS_PER_PAYMENT`."""
    noon = ts_ms - ts_ms % (24 * HOUR_MS) + 12 * HOUR_MS
    per_hour = sum(_rate_per_ms(registry, city, m, noon, seed) * HOUR_MS for m in _merchants(registry, city))
    return max(50, round(per_hour * 10 * SHOPPERS_PER_PAYMENT))


def history_payments(registry: Registry, city_id: str, start_ms: int, end_ms: int, seed: int) -> list[dict[str, Any]]:
    """Past weeks as an acquirer exports them: one batch per hour with a total per merchant that sold."""
    city = city_of(registry, city_id)
    merchants = _merchants(registry, city)
    source = acquirer(city.id)
    out: list[dict[str, Any]] = []
    for hour in range(-(-start_ms // HOUR_MS), end_ms // HOUR_MS):
        h_start = hour * HOUR_MS
        rng = random.Random(f"{seed}:payhist:{city.id}:{hour}")  # noqa: S311
        totals = []
        for m in merchants:
            n = _poisson(rng, _rate_per_ms(registry, city, m, h_start + HOUR_MS // 2, seed) * HOUR_MS)
            if n == 0:
                continue
            amount = sum(_ticket(rng, m.sector) for _ in range(n))
            cards = n - sum(rng.random() < 0.05 for _ in range(n))
            totals.append({"merchant_id": m.id, "start": _utc_iso(h_start), "seconds": 3600, "tx_count": n,
                           "amount_cents": amount, "cards": max(1, cards)})
        end = h_start + HOUR_MS
        out.append({"source": f"{source}-export", "batch_id": f"{source}-export/{_utc_iso(end)}",
                    "sent_at": _utc_iso(end + SEND_DELAY_MS), "totals": totals})
    return out
