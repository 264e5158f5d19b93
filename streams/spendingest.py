"""A parsed payment batch reduced to one record per zone and spending window: what leaves the ingest process.

The record carries sums per merchant and integer distinct-card counts, never a `card_ref` or pseudonym (P1,
P11). Transactions feed the in-memory distinct-card sets (P2) on their way through and are then dropped.
"""

from __future__ import annotations

from typing import Any

from streams.cardcount import DistinctCards
from streams.payments import ParsedPayments
from streams.spending import ALL
from streams.timegrid import window_start


def zone_records(parsed: ParsedPayments, source: str, batch_id: str, window_ms: int, cards: DistinctCards,
                 now_ms: int) -> dict[tuple[str, int], dict[str, Any]]:
    """`{(zone, window start): {"s", "b", "w", "t": [[merchant, start, amount, tx, cards]],
    "x": [[merchant, amount, tx]], "c": [[sector or "all", distinct cards]]}}` for one batch.

    `source` and `batch_id` are passed in already masked; `c` holds the size each touched set has reached,
    which the cell keeps as a maximum, so a redelivered batch changes nothing.
    """
    out: dict[tuple[str, int], dict[str, Any]] = {}

    def record(zone_id: str, start: int) -> dict[str, Any]:
        rec = out.get((zone_id, start))
        if rec is None:
            rec = out[(zone_id, start)] = {"s": source, "b": batch_id, "w": start, "t": [], "x": {}, "c": set()}
        return rec

    for t in parsed.totals:
        record(t.zone_id, window_start(t.start_ms, window_ms))["t"].append(
            [t.merchant_id, t.start_ms, t.amount_cents, t.tx_count, t.cards])
    for tx in parsed.transactions:
        start = window_start(tx.ts_ms, window_ms)
        rec = record(tx.zone_id, start)
        got = rec["x"].setdefault(tx.merchant_id, [tx.merchant_id, 0, 0])
        got[1] += tx.amount_cents
        got[2] += 1
        cards.add(source, tx.zone_id, (tx.sector, ALL), start, tx.card_ref, now_ms)
        rec["c"].update((tx.sector, ALL))
    for (zone_id, start), rec in out.items():
        rec["x"] = sorted(rec["x"].values())
        rec["c"] = [[cell, cards.size(source, zone_id, cell, start)] for cell in sorted(rec["c"])]
    return out
