"""Spending cells: sums per zone × sector × window, the P12 cell rules, complementary suppression (P8),
indices against the usual (P13) and rebasing when a zone's set of merchants changes.

Cell state is plain JSON-able data the worker keeps in a table (amounts are internal; only indices leave):

    {"t": {"<merchant>|<start ms>": [amount_cents, tx_count, cards]},   acquirer totals, replaced on resend
     "x": {"<merchant>": [amount_cents, tx_count]},                    single transactions, summed
     "b": ["<batch id>", ...],                                          transaction batches already summed
     "c": {"<sector>|<source>": distinct cards},                        the largest count each source reported
     "f": false}                                                        final (published)

Distinct cards are a lower bound on purpose: a count from one source's set, or one merchant's acquirer figure,
never adds across sources or merchants (a card may shop twice), so a cell passes the 15-card rule only when at
least 15 different cards really paid there. Suppressing too often is safe; too rarely is not.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.baseline import Band, history_band, remember, usual_scale, vs_usual
from streams.daytype import baseline_day_type, local_date, observation_key, slot_of_day
from streams.registry import SECTORS, City, Registry, SpendRules, Zone
from streams.timegrid import format_ts

ALL = "all"
FEW_MERCHANTS = "few_merchants"
FEW_CARDS = "few_cards"
DOMINANT = "dominant_merchants"
COMPLEMENT = "complement"  # secondary suppression: would let a suppressed cell be found by subtraction (P8)
NO_DATA = "no_data"
REASONS = (FEW_MERCHANTS, FEW_CARDS, DOMINANT, COMPLEMENT, NO_DATA)

SECTOR_LABELS: dict[str, dict[str, str]] = {
    "fashion": {"nl": "Mode", "fr": "Mode", "en": "Fashion"},
    "food_and_drink": {"nl": "Horeca", "fr": "Restauration", "en": "Food and drink"},
    "groceries": {"nl": "Voeding", "fr": "Alimentation", "en": "Groceries"},
    "personal_care": {"nl": "Verzorging", "fr": "Soins", "en": "Personal care"},
    "leisure": {"nl": "Vrije tijd", "fr": "Loisirs", "en": "Leisure"},
    "other_retail": {"nl": "Andere winkels", "fr": "Autres commerces", "en": "Other retail"},
    ALL: {"nl": "Alle sectoren", "fr": "Tous secteurs", "en": "All sectors"},
}


def empty_cell() -> dict[str, Any]:
    return {"t": {}, "x": {}, "b": [], "c": {}, "f": False}


def add_totals(cell: dict[str, Any], rows: Iterable[Sequence[Any]]) -> int:
    """Acquirer totals `[merchant, start_ms, amount, tx, cards]`: absolute per merchant and interval, so a
    resent total replaces itself. Returns how many were new."""
    new = 0
    for merchant, start, amount, tx, cards in rows:
        key = f"{merchant}|{start}"
        new += key not in cell["t"]
        cell["t"][key] = [int(amount), int(tx), int(cards)]
    return new


def add_transactions(cell: dict[str, Any], batch_id: str, rows: Iterable[Sequence[Any]]) -> bool:
    """Transactions summed per merchant `[merchant, amount, tx]`, once per batch; False for a batch already in."""
    if batch_id in cell["b"]:
        return False
    cell["b"].append(batch_id)
    for merchant, amount, tx in rows:
        got = cell["x"].setdefault(merchant, [0, 0])
        got[0] += int(amount)
        got[1] += int(tx)
    return True


def add_cards(cell: dict[str, Any], source: str, counts: Iterable[Sequence[Any]]) -> None:
    """Distinct-card counts `[sector or "all", n]` a source's set had reached: keep the largest (idempotent)."""
    for sector, n in counts:
        key = f"{sector}|{source}"
        cell["c"][key] = max(int(n), int(cell["c"].get(key, 0)))


def merchant_amounts(cell: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, (amount, _tx, _cards) in cell["t"].items():
        merchant = key.rsplit("|", 1)[0]
        out[merchant] = out.get(merchant, 0) + amount
    for merchant, (amount, _tx) in cell["x"].items():
        out[merchant] = out.get(merchant, 0) + amount
    return out


def distinct_cards(cell: Mapping[str, Any], sector: str, merchants: Iterable[str]) -> int:
    """A lower bound on the distinct cards that paid in `sector` (or ALL): the largest single count."""
    ids = set(merchants)
    from_sets = [n for key, n in cell["c"].items() if key.split("|", 1)[0] == sector]
    from_totals = [cards for key, (_a, _t, cards) in cell["t"].items() if key.rsplit("|", 1)[0] in ids]
    return int(max([0, *from_sets, *from_totals]))


def verdict(amounts: Sequence[int], cards: int, policy: SpendRules) -> str | None:
    """Why a cell with these merchant amounts and distinct cards may not be published (P12), or None."""
    paying = sorted((a for a in amounts if a > 0), reverse=True)
    if not paying:
        return NO_DATA
    if len(paying) < policy.min_merchants:
        return FEW_MERCHANTS
    if cards < policy.min_cards:
        return FEW_CARDS
    if 100 * (paying[0] + (paying[1] if len(paying) > 1 else 0)) >= policy.max_top2_pct * sum(paying):
        return DOMINANT
    return None


def complement(amounts: Mapping[str, Sequence[int]], cards: Mapping[str, int], primary: Mapping[str, str | None],
               policy: SpendRules) -> dict[str, str | None]:
    """Secondary suppression of sector cells under a published all-sectors total (P8).

    The total minus the published sectors is the sum of the suppressed ones. That sum is safe only when it
    would itself pass P12 as one cell; until it does, the smallest published sector joins the suppressed
    ones. When every sector is suppressed the remainder is the total itself, which passed. So a single
    suppressed cell never stands alone beside the total.
    """
    out = dict(primary)
    if out.get(ALL) is not None:
        return out  # no total is published: nothing to subtract from
    sectors = [s for s in out if s != ALL]

    def merged_ok() -> bool:
        hidden = [s for s in sectors if out[s] is not None]
        if not hidden:
            return True
        merged = [a for s in hidden for a in amounts[s]]
        return verdict(merged, max(cards[s] for s in hidden), policy) is None

    while not merged_ok():
        shown = [s for s in sectors if out[s] is None]
        if not shown:
            break
        smallest = min(shown, key=lambda s: (sum(amounts[s]), s))
        out[smallest] = COMPLEMENT
    return out


def fingerprint(merchant_ids: Iterable[str]) -> str:
    """A short, stable tag of a set of merchants: it changes when one joins or leaves (P13 rebase)."""
    ids = sorted(merchant_ids)
    return f"{len(ids)}-{zlib.crc32(' '.join(ids).encode())}"


def sector_merchants(registry: Registry, zone_id: str) -> dict[str, tuple[str, ...]]:
    """The zone's registered merchants per sector (sectors with none are left out) and ALL."""
    out: dict[str, list[str]] = {}
    for m in registry.merchants:
        if m.zone_id == zone_id:
            out.setdefault(m.sector, []).append(m.id)
    by_sector = {s: tuple(sorted(out[s])) for s in SECTORS if s in out}
    if by_sector:
        by_sector[ALL] = tuple(sorted(m for ids in by_sector.values() for m in ids))
    return by_sector


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a window's value goes in a usual history: the day-type-and-hour key and the observation key."""

    key: str  # e.g. "sat|14"
    observation: str  # the local date (streams.daytype.observation_key)
    today: str  # the local date, to keep today's own value out of its usual


def usual_band(history: Mapping[str, Any], fp: str, slot: Slot, weeks: int) -> Band | None:
    """The band of past values of this slot, or None when there are too few since the last rebase."""
    if history.get("fp") != fp:
        return None
    return history_band(history.get("d", {}).get(slot.key, {}), before=slot.today, weeks=weeks)


def remembered(history: Mapping[str, Any], fp: str, slot: Slot, amount: int, weeks: int) -> dict[str, Any]:
    """The history with `amount` recorded for `slot`; a different merchant set starts it afresh (rebase)."""
    days = dict(history.get("d", {})) if history.get("fp") == fp else {}
    days[slot.key] = remember(days.get(slot.key, {}), slot.observation, amount, keep=weeks + 1)
    return {"fp": fp, "d": days}


def cell_view(sector: str, amount: int, reason: str | None, band: Band | None, rebased: bool) -> dict[str, Any]:
    """One published cell: an index against the usual, never an amount (P13)."""
    out: dict[str, Any] = {"sector": sector, "label": dict(SECTOR_LABELS[sector]), "index": None, "usual": None,
                           "vs_usual": None, "spend_per_visitor": None, "structural_break": rebased,
                           "suppressed": reason is not None, "reason": reason}
    if reason is None and band is not None and band.p50 > 0:
        out["index"] = round(100 * amount / band.p50)
        out["usual"] = usual_scale(band)
        out["vs_usual"] = vs_usual(amount, band)
    return out


def spending_object(zone: Zone, city: City, start_ms: int, window_ms: int, cells: list[dict[str, Any]],
                    policy: SpendRules) -> dict[str, Any]:
    """The published spending object of a zone and window (topic `spending.zone.v1` and the store)."""
    end = start_ms + window_ms
    by_sector = {c["sector"]: c for c in cells}
    return {
        "zone_id": zone.id, "city_id": city.id, "name": zone.name, "as_of": format_ts(end, city.timezone),
        "window": {"start": format_ts(start_ms, city.timezone), "end": format_ts(end, city.timezone),
                   "seconds": window_ms // 1000},
        "all": by_sector.get(ALL) or cell_view(ALL, 0, NO_DATA, None, rebased=False),
        "sectors": [c for s, c in by_sector.items() if s != ALL],
        "privacy": {"min_merchants": policy.min_merchants, "min_cards": policy.min_cards,
                    "max_top2_pct": policy.max_top2_pct},
    }


def close_cell(cell: Mapping[str, Any], merchants: Mapping[str, tuple[str, ...]], histories: Mapping[str, Any],
               slot: Slot, policy: SpendRules, weeks: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Published cells (ALL first) for a closed window, and each sector's history with this window added.

    The band is read before this window is remembered, so a window is never part of its own usual.
    """
    paid = merchant_amounts(cell)
    amounts = {s: [paid.get(m, 0) for m in ids] for s, ids in merchants.items()}
    cards = {s: distinct_cards(cell, s, ids) for s, ids in merchants.items()}
    primary = {s: verdict(amounts[s], cards[s], policy) for s in merchants}
    reasons = complement(amounts, cards, primary, policy)
    views, updated = [], {}
    for s in sorted(merchants, key=lambda s: (s != ALL, s)):
        fp = fingerprint(merchants[s])
        hist = histories.get(s) or {}
        band = usual_band(hist, fp, slot, weeks)
        # A changed merchant set starts a new usual; the flag stays up until the new one has a band.
        broke = (bool(hist) and hist.get("fp") != fp) or (bool(hist.get("broke")) and band is None)
        views.append(cell_view(s, sum(amounts[s]), reasons[s], band, broke))
        updated[s] = {**remembered(hist, fp, slot, sum(amounts[s]), weeks), "broke": broke}
    return views, updated


def spend_per_visitor(spend_index: int | None, footfall_indices: Sequence[int | None], needed: int) -> int | None:
    """round(100 × spending index ÷ footfall index) for one zone and hour: "do passers-by buy?".

    The footfall index of the hour is the mean of its published window indices; it needs at least `needed`
    of them (suppressed windows have none), so a half-empty hour yields no figure rather than a wrong one.
    """
    known = [i for i in footfall_indices if i is not None]
    if spend_index is None or len(known) < max(1, needed):
        return None
    foot = sum(known) / len(known)
    return round(100 * spend_index / foot) if foot > 0 else None


def slot_for(start_ms: int, city: City, window_ms: int) -> Slot:
    """The usual-history slot of a spending window in the city's own calendar (holidays count as Sundays)."""
    kind = baseline_day_type(start_ms, city.timezone, city.country)
    return Slot(f"{kind}|{slot_of_day(start_ms, city.timezone, window_ms)}",
                observation_key(start_ms, city.timezone), local_date(start_ms, city.timezone))


def record_late(cell: Mapping[str, Any], merchants: Mapping[str, tuple[str, ...]], histories: Mapping[str, Any],
                slot: Slot, weeks: int) -> dict[str, Any]:
    """Histories with a final window's new totals after late data; the window itself is not republished (P9)."""
    paid = merchant_amounts(cell)
    out: dict[str, Any] = {}
    for s, ids in merchants.items():
        hist = histories.get(s) or {}
        amount = sum(paid.get(m, 0) for m in ids)
        out[s] = {**remembered(hist, fingerprint(ids), slot, amount, weeks), "broke": bool(hist.get("broke"))}
    return out


def empty_spending(zone: Zone, city: City, merchants: Mapping[str, tuple[str, ...]],
                   policy: SpendRules) -> dict[str, Any]:
    """What to serve for a zone before any spending window was published: every cell `no_data`."""
    cells = [cell_view(s, 0, NO_DATA, None, rebased=False) for s in sorted(merchants, key=lambda s: (s != ALL, s))]
    obj = spending_object(zone, city, 0, 1, cells, policy)
    return {**obj, "as_of": None, "window": None}


def with_spend_per_visitor(obj: Mapping[str, Any], footfall_indices: Sequence[int | None],
                           windows_per_cell: int) -> dict[str, Any]:
    """A copy of a spending object with `spend_per_visitor` filled from the footfall windows of its hour.

    Half of the hour's footfall windows at least must carry an index; each cell keeps None otherwise.
    """
    needed = max(1, windows_per_cell // 2)

    def fill(cell: Mapping[str, Any]) -> dict[str, Any]:
        return {**cell, "spend_per_visitor": spend_per_visitor(cell.get("index"), footfall_indices, needed)}

    return {**obj, "all": fill(obj["all"]), "sectors": [fill(c) for c in obj["sectors"]]}


def was_published(history: Mapping[str, Any] | None, slot: Slot, weeks: int) -> bool:
    """Whether a window no longer in state was published before, judged from the zone's all-sectors history.

    A window that was closed left its observation in the history. One older than everything a full history
    still keeps counts as published too: it can no longer be told apart, and a second publication of a
    final window is what P9 forbids, while dropping it costs nothing the usual would still use.
    """
    seen = (history or {}).get("d", {}).get(slot.key, {})
    if slot.observation in seen:
        return True
    return len(seen) >= weeks + 1 and slot.observation < min(seen)
