"""`python -m bench.spending`: a simulated week of payments through the spending core; how often each rule fired.

The shipped registry's four cities, the simulator's payments (`streams.paysim`: single transactions with card
reuse within a day, as the live demo sends them), after three weeks of hourly acquirer totals so usual bands
exist. Every message goes through the same pure code as the worker: `PaymentParser`, `zone_records` with the
in-memory distinct-card sets, the cell state functions and `close_cell` with P12, P8 and P13. Prints, per
outcome (published or a suppression reason), how many zone × sector cells and zone × all cells ended there,
overall and for opening hours (10:00–18:00 local) only.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

import schemas
from streams.cardcount import DistinctCards
from streams.daytype import local_time
from streams.payments import PaymentParser
from streams.paysim import history_payments, payment_batches
from streams.registry import Registry, parse_registry
from streams.spending import (
    ALL,
    add_cards,
    add_totals,
    add_transactions,
    close_cell,
    empty_cell,
    sector_merchants,
    slot_for,
)
from streams.spendingest import zone_records

HOUR = 3_600_000
DAY = 24 * HOUR
REGISTRY = Path(__file__).resolve().parents[1] / "deploy" / "registry" / "flanders.yaml"
START = 1_795_388_400_000  # Monday 2026-11-23 00:00 Europe/Brussels (23:00Z the day before)


def run_week(registry: Registry, seed: int, history_weeks: int, days: int) -> tuple[Counter[str], Counter[str]]:
    parser = PaymentParser(schemas.load("payments.v1"), registry, window_ms=HOUR, max_future_ms=300_000)
    cards = DistinctCards(secrets.token_bytes)
    histories: dict[str, dict[str, Any]] = defaultdict(dict)
    merchants = {z: sector_merchants(registry, z) for z in registry.zones}
    outcomes: Counter[str] = Counter()
    open_hours: Counter[str] = Counter()
    first = START - history_weeks * 7 * DAY
    hours = range(first // HOUR, (START + days * DAY) // HOUR)
    for hour in tqdm(hours, desc="hours", unit="h", mininterval=1.0):
        start = hour * HOUR
        live = start >= START
        cells: dict[str, dict[str, Any]] = defaultdict(empty_cell)
        for city in registry.cities:
            batches = (payment_batches(registry, city.id, start, start + HOUR, seed) if live
                       else history_payments(registry, city.id, start, start + HOUR, seed))
            for batch in batches:
                parsed = parser.parse(orjson.dumps(batch), start + 2 * HOUR)
                assert not parsed.rejections, parsed.rejections[:1]
                recs = zone_records(parsed, batch["source"], batch["batch_id"], HOUR, cards, start + HOUR)
                for (zone_id, _w), rec in recs.items():
                    cell = cells[zone_id]
                    add_totals(cell, rec["t"])
                    if rec["x"]:
                        add_transactions(cell, rec["b"], rec["x"])
                    add_cards(cell, rec["s"], rec["c"])
        cards.forget(start + HOUR, start)
        for zone_id, sectors in merchants.items():
            if not sectors:
                continue
            city = registry.city_of_zone[zone_id]
            slot = slot_for(start, city, HOUR)
            views, hist = close_cell(cells.get(zone_id, empty_cell()), sectors, histories[zone_id], slot,
                                     city.spending, 8)
            histories[zone_id] = hist
            if not live:
                continue
            local_hour = local_time(start, city.timezone).hour
            for view in views:
                kind = "zone × all" if view["sector"] == ALL else "zone × sector"
                outcome = view["reason"] or ("published" if view["index"] is not None else "published, no usual")
                outcomes[f"{kind}: {outcome}"] += 1
                if 10 <= local_hour < 18:
                    open_hours[f"{kind}: {outcome}"] += 1
    return outcomes, open_hours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--history-weeks", type=int, default=3)
    ap.add_argument("--days", type=int, default=7)
    args = ap.parse_args()
    registry = parse_registry(REGISTRY.read_text())
    t0 = time.perf_counter()
    outcomes, open_hours = run_week(registry, args.seed, args.history_weeks, args.days)
    print(f"\nSpending cells in a simulated week ({args.days} days from Monday 2026-11-23, 4 cities, "
          f"{len(registry.merchants)} merchants), {time.perf_counter() - t0:.0f} s")
    print(f"{'cell: outcome':48} {'all hours':>10} {'10–18 h':>10}")
    for key in sorted(outcomes):
        print(f"{key:48} {outcomes[key]:>10} {open_hours[key]:>10}")


if __name__ == "__main__":
    main()
