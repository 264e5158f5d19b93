"""Spending cells: P12 as table tests, the insider property, complementary suppression (P8), indices (P13)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.errors import RegistryError
from streams.registry import Registry, SpendRules, parse_registry
from streams.spending import (
    ALL,
    COMPLEMENT,
    DOMINANT,
    FEW_CARDS,
    FEW_MERCHANTS,
    NO_DATA,
    Slot,
    add_cards,
    add_totals,
    add_transactions,
    cell_view,
    close_cell,
    complement,
    distinct_cards,
    empty_cell,
    empty_spending,
    fingerprint,
    merchant_amounts,
    record_late,
    sector_merchants,
    slot_for,
    spend_per_visitor,
    spending_object,
    verdict,
    was_published,
    with_spend_per_visitor,
)

RULES = SpendRules()
SAT_14 = 1_795_870_800_000  # Saturday 2026-11-28 14:00 Europe/Brussels (13:00Z)
WEEK = 7 * 86_400_000
HOUR = 3_600_000


@pytest.mark.parametrize(("amounts", "cards", "reason"), [
    ([], 100, NO_DATA),
    ([0, 0, 0, 0, 0], 100, NO_DATA),
    ([10, 10, 10, 10], 100, FEW_MERCHANTS),
    ([10, 10, 10, 10, 0], 100, FEW_MERCHANTS),  # a merchant that sold nothing does not count
    ([10, 10, 10, 10, 10], 14, FEW_CARDS),
    ([10, 10, 10, 10, 10], 15, None),
    ([425, 425, 50, 50, 50], 100, DOMINANT),  # top two exactly 85 %: not below it
    ([424, 425, 51, 50, 50], 100, None),  # 84.9 %
    ([900, 10, 10, 10, 10], 100, DOMINANT),
])
def test_cell_rules(amounts: list[int], cards: int, reason: str | None) -> None:
    assert verdict(amounts, cards, RULES) == reason


def test_city_rules_are_configurable_and_checked() -> None:
    rules = SpendRules(min_merchants=7, min_cards=30, max_top2_pct=70)
    assert verdict([10] * 6, 100, rules) == FEW_MERCHANTS
    assert verdict([10] * 7, 29, rules) == FEW_CARDS
    assert verdict([600, 600, 100, 100, 100, 100, 100], 100, rules) == DOMINANT  # 70.6 %
    assert verdict([500, 500, 100, 100, 100, 100, 100], 100, rules) is None  # 66.7 %


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=30),
       st.integers(min_value=0, max_value=500))
def test_merchant_two_cannot_estimate_merchant_one_within_17_percent(amounts: list[int], cards: int) -> None:
    """From a published cell total and its own figure, #2's best guess of #1 (total − own) is > 17 % off."""
    if verdict(amounts, cards, RULES) is not None:
        return
    x1, x2 = sorted(amounts, reverse=True)[:2]
    estimate = sum(amounts) - x2
    assert abs(estimate - x1) > 0.17 * x1


@given(st.dictionaries(st.sampled_from(["fashion", "food_and_drink", "groceries", "leisure", "other_retail"]),
                       st.lists(st.integers(min_value=0, max_value=10_000), min_size=0, max_size=9),
                       min_size=1),
       st.integers(min_value=0, max_value=60))
def test_no_suppressed_sector_is_determined_by_the_published_total(sectors: dict[str, list[int]],
                                                                     cards: int) -> None:
    """P8: solve total = Σ sectors for the unknowns; a suppressed cell is found exactly when it is the only
    unknown. The suppressed ones, taken together, must also pass the cell rules."""
    amounts = {**sectors, ALL: [a for v in sectors.values() for a in v]}
    counts = dict.fromkeys(amounts, cards)
    primary = {s: verdict(amounts[s], counts[s], RULES) for s in amounts}
    final = complement(amounts, counts, primary, RULES)
    for s in sectors:
        assert primary[s] is None or final[s] is not None  # primary suppression is never lifted
    if final[ALL] is None:
        hidden = [s for s in sectors if final[s] is not None]
        assert len(hidden) != 1
        if hidden and len(hidden) < len(sectors):
            assert verdict([a for s in hidden for a in amounts[s]], cards, RULES) is None


def test_complement_suppresses_the_smallest_published_sector() -> None:
    amounts = {"fashion": [100] * 6, "food_and_drink": [50] * 5, "groceries": [10, 10], ALL: []}
    amounts[ALL] = [a for s, v in amounts.items() if s != ALL for a in v]
    cards = dict.fromkeys(amounts, 100)
    primary = {s: verdict(amounts[s], cards[s], RULES) for s in amounts}
    assert primary == {"fashion": None, "food_and_drink": None, "groceries": FEW_MERCHANTS, ALL: None}
    final = complement(amounts, cards, primary, RULES)
    assert final == {"fashion": None, "food_and_drink": COMPLEMENT, "groceries": FEW_MERCHANTS, ALL: None}


def test_cell_state_is_idempotent() -> None:
    cell = empty_cell()
    assert add_totals(cell, [["m-1", 0, 5000, 3, 3]]) == 1
    assert add_totals(cell, [["m-1", 0, 5000, 3, 3]]) == 0  # a resent total replaces itself
    assert add_transactions(cell, "b-1", [["m-2", 700, 2]])
    assert not add_transactions(cell, "b-1", [["m-2", 700, 2]])  # a redelivered batch counts once
    add_cards(cell, "acq", [["all", 12], ["fashion", 4]])
    add_cards(cell, "acq", [["all", 9]])  # an older report never lowers the count
    assert merchant_amounts(cell) == {"m-1": 5000, "m-2": 700}
    assert distinct_cards(cell, ALL, ["m-1", "m-2"]) == 12


def test_distinct_cards_is_a_lower_bound_never_a_sum() -> None:
    cell = empty_cell()
    add_totals(cell, [["m-1", 0, 1, 9, 9], ["m-2", 0, 1, 8, 8]])  # the same 8 cards may have paid in both
    add_cards(cell, "acq-a", [["all", 7]])
    add_cards(cell, "acq-b", [["all", 6]])
    assert distinct_cards(cell, ALL, ["m-1", "m-2"]) == 9


REG = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: s-1, kind: street}, {id: s-2, kind: street}, {id: s-3, kind: street}]
merchants:
""" + "".join(f"  - {{id: m-{i}, zone: mechelen-bruul, sector: fashion}}\n" for i in range(6)))
CITY = REG.cities[0]


def filled(amount_each: int, merchants: int = 6, cards: int = 40) -> dict:
    cell = empty_cell()
    add_totals(cell, [[f"m-{i}", 0, amount_each, 5, cards] for i in range(merchants)])
    return cell


def weeks_of(merchants: dict, start_ms: int, weeks: int, amount_each: int, hist: dict | None = None) -> dict:
    hist = hist or {}
    for w in range(weeks, 0, -1):
        _views, hist = close_cell(filled(amount_each), merchants, hist, slot_for(start_ms - w * WEEK, CITY, HOUR),
                                  RULES, 8)
    return hist


def test_index_against_the_usual_of_the_same_day_type_and_hour() -> None:
    merchants = sector_merchants(REG, "mechelen-bruul")
    assert set(merchants) == {"fashion", ALL}
    hist = weeks_of(merchants, SAT_14, 3, 1000)
    views, after = close_cell(filled(1500), merchants, hist, slot_for(SAT_14, CITY, HOUR), RULES, 8)
    by = {v["sector"]: v for v in views}
    assert by[ALL]["index"] == 150  # 9000 now / p50 6000
    assert by["fashion"]["vs_usual"] == "busier"
    assert by[ALL]["usual"] == {"low": 100, "high": 100}
    assert by[ALL]["structural_break"] is False
    assert "amount" not in str(views)  # indices only, never euros (P13)
    # another hour of the same Saturday has no usual yet: no index, not a made-up one
    views, _ = close_cell(filled(1500), merchants, after, slot_for(SAT_14 + HOUR, CITY, HOUR), RULES, 8)
    assert {v["index"] for v in views} == {None}


def test_a_new_merchant_rebases_and_flags_a_structural_break() -> None:
    merchants = sector_merchants(REG, "mechelen-bruul")
    hist = weeks_of(merchants, SAT_14, 3, 1000)
    grown = {"fashion": (*merchants["fashion"], "m-new"), ALL: (*merchants[ALL], "m-new")}
    views, after = close_cell(filled(1000, merchants=7), grown, hist, slot_for(SAT_14, CITY, HOUR), RULES, 8)
    assert [(v["index"], v["structural_break"]) for v in views] == [(None, True), (None, True)]
    assert after[ALL]["fp"] == fingerprint(grown[ALL])
    # three weeks on with the new set, a new usual exists and the flag is down
    later = weeks_of(grown, SAT_14 + 4 * WEEK, 3, 1000, after)
    views, _ = close_cell(filled(1000, merchants=7), grown, later, slot_for(SAT_14 + 4 * WEEK, CITY, HOUR), RULES,
                          8)
    assert [(v["index"], v["structural_break"]) for v in views] == [(100, False), (100, False)]


def test_late_data_completes_history_without_a_view() -> None:
    merchants = sector_merchants(REG, "mechelen-bruul")
    slot = slot_for(SAT_14, CITY, HOUR)
    _views, hist = close_cell(filled(1000), merchants, {}, slot, RULES, 8)
    assert hist[ALL]["d"][slot.key] == {"2026-11-28": 6000}
    cell = filled(1000)
    add_totals(cell, [["m-0", HOUR // 2, 400, 1, 1]])
    assert record_late(cell, merchants, hist, slot, 8)[ALL]["d"][slot.key] == {"2026-11-28": 6400}


def test_slot_follows_local_time_across_the_clock_change() -> None:
    before = slot_for(1_792_238_400_000, CITY, HOUR)  # Sat 2026-10-17 14:00 CEST (12:00Z)
    after = slot_for(1_793_451_600_000, CITY, HOUR)  # Sat 2026-10-31 14:00 CET (13:00Z)
    assert before.key == after.key == "sat|14"
    assert (before.observation, after.observation) == ("2026-10-17", "2026-10-31")
    assert isinstance(before, Slot)


@pytest.mark.parametrize(("spend", "foot", "needed", "expected"), [
    (120, [100, 100, 100], 2, 120),
    (120, [150, 150, None], 2, 80),  # busier street, same spending: passers-by buy less
    (120, [150, None, None], 2, None),  # too few footfall windows with an index in the hour
    (None, [100, 100], 1, None),
    (120, [0, 0], 1, None),
])
def test_spend_per_visitor(spend: int | None, foot: list[int | None], needed: int, expected: int | None) -> None:
    assert spend_per_visitor(spend, foot, needed) == expected


def test_spend_per_visitor_fills_every_cell() -> None:
    obj = {"all": {"sector": ALL, "index": 110}, "sectors": [{"sector": "fashion", "index": None}]}
    out = with_spend_per_visitor(obj, [100] * 12, 12)
    assert out["all"]["spend_per_visitor"] == 110
    assert out["sectors"][0]["spend_per_visitor"] is None


def test_registry_spending_rules_only_get_stricter() -> None:
    base = """
cities:
  - id: leuven
    name: Leuven
    timezone: Europe/Brussels
    country: BE
    spending: {rules}
    zones:
      - id: leuven-x
        name: X
        sensors: [{{id: s-1, kind: street}}, {{id: s-2, kind: street}}, {{id: s-3, kind: street}}]
"""
    city = parse_registry(base.format(rules="{min_merchants: 8, min_cards: 20, max_top2_pct: 70}")).cities[0]
    assert city.spending == SpendRules(8, 20, 70)
    with pytest.raises(RegistryError, match=r"line 7.*max_top2_pct 90 is looser"):
        parse_registry(base.format(rules="{max_top2_pct: 90}"))
    with pytest.raises(RegistryError, match=r"line 7.*min_merchants must be a whole number of merchants ≥ 5"):
        parse_registry(base.format(rules="{min_merchants: 3}"))


def test_a_forgotten_window_is_known_as_published_from_history() -> None:
    merchants = sector_merchants(REG, "mechelen-bruul")
    base = SAT_14 + 9 * WEEK  # Saturday 2027-01-30 14:00 CET; the nine Saturdays before are CET too
    hist = weeks_of(merchants, base, 9, 1000)  # a full history (weeks + 1) for "sat|14"
    assert was_published(hist[ALL], slot_for(base - WEEK, CITY, HOUR), 8)
    assert not was_published(hist[ALL], slot_for(base, CITY, HOUR), 8)  # not yet closed: new
    old = slot_for(1_772_888_400_000, CITY, HOUR)  # Saturday 2026-03-07 14:00 CET: older than all kept
    assert old.key == "sat|14"
    assert was_published(hist[ALL], old, 8)
    assert not was_published(None, old, 8)  # replayed history into an empty state: new


# Every field a published spending object may carry, at every level (streams.spending.cell_view and
# spending_object; CONTRACT.md §3 `spending.zone.v1`, §4 `/spending`): indices, bands and flags, never an amount
# (P13) and nothing per merchant (P14). A new field such as `total_eur` or `merchant_shares` fails here until
# someone decides it reveals neither and writes it in. None marks a leaf: a string, number, boolean or null.
LABEL = {"nl": None, "fr": None, "en": None}
CELL = {"sector": None, "label": LABEL, "index": None, "usual": {"low": None, "high": None}, "vs_usual": None,
        "spend_per_visitor": None, "structural_break": None, "suppressed": None, "reason": None}
SPENDING = {"zone_id": None, "city_id": None, "name": None, "as_of": None,
            "window": {"start": None, "end": None, "seconds": None}, "all": CELL, "sectors": [CELL],
            "privacy": {"min_merchants": None, "min_cards": None, "max_top2_pct": None}}


def off_shape(value: Any, shape: Any, path: str = "$") -> list[str]:
    """Where `value` has a field `shape` does not list, lacks one it lists, or nests where a leaf belongs."""
    if isinstance(shape, dict):
        if value is None:  # no window yet, no usual yet
            return []
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        out = [f"{path}.{k}: not allowed" for k in sorted(value.keys() - shape.keys())]
        out += [f"{path}.{k}: missing" for k in sorted(shape.keys() - value.keys())]
        return out + [p for k in sorted(shape.keys() & value.keys()) for p in off_shape(value[k], shape[k],
                                                                                        f"{path}.{k}")]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [p for i, v in enumerate(value) for p in off_shape(v, shape[0], f"{path}[{i}]")]
    return [] if value is None or isinstance(value, str | int | float) else [f"{path}: not a leaf"]


def merchant_ids_in(obj: Any, registry: Registry) -> list[str]:
    """Registered merchant ids anywhere in `obj`, as a key or inside a value (P14)."""
    text = orjson.dumps(obj).decode()
    return [m.id for m in registry.merchants if re.search(rf"(?<![\w-]){re.escape(m.id)}(?![\w-])", text)]


def published_spending(registry: Registry, zone_id: str, start_ms: int) -> dict[str, Any]:
    """The object the worker publishes for a zone and hour after three weeks of usual (so indices and bands are
    set), every registered merchant of the zone paying; a sector with too few merchants comes out suppressed."""
    zone, city = registry.zones[zone_id], registry.city_of_zone[zone_id]
    merchants = sector_merchants(registry, zone_id)

    def paid(amount_each: int) -> dict[str, Any]:
        cell = empty_cell()
        add_totals(cell, [[m, start_ms, amount_each + 10 * i, 5, 40] for i, m in enumerate(merchants[ALL])])
        return cell

    hist: dict[str, Any] = {}
    for w in (3, 2, 1):
        _views, hist = close_cell(paid(1000), merchants, hist, slot_for(start_ms - w * WEEK, city, HOUR),
                                  city.spending, 8)
    views, _ = close_cell(paid(1500), merchants, hist, slot_for(start_ms, city, HOUR), city.spending, 8)
    return spending_object(zone, city, start_ms, HOUR, views, city.spending)


def test_published_spending_carries_only_the_allowed_fields_and_no_merchant() -> None:
    """P13 and P14 on the builder itself: what the worker publishes, before any data, and as the API fills it."""
    obj = published_spending(REG, "mechelen-bruul", SAT_14)
    # every level of the shape is filled, so none is checked vacuously
    assert obj["all"]["index"] is not None
    assert obj["all"]["usual"] is not None
    assert obj["window"] is not None
    assert [c["sector"] for c in obj["sectors"]] == ["fashion"]
    zone, city = REG.zones["mechelen-bruul"], CITY
    suppressed = spending_object(zone, city, SAT_14, HOUR, [cell_view(ALL, 999_999, FEW_CARDS, None, True)], RULES)
    objects = [obj, suppressed, with_spend_per_visitor(obj, [100] * 12, 12),
               empty_spending(zone, city, sector_merchants(REG, zone.id), RULES)]
    for o in objects:
        assert off_shape(o, SPENDING) == [], o
        assert merchant_ids_in(o, REG) == [], o
    assert "999999" not in orjson.dumps(suppressed).decode()  # the amount went in, and stayed in


@pytest.mark.parametrize(("extra", "where"), [
    ({"total_eur": 90.0}, "$.all.total_eur: not allowed"),  # an amount beside the index (P13)
    ({"merchant_shares": {"m-0": 0.2}}, "$.all.merchant_shares: not allowed"),  # per-merchant output (P14)
    ({"usual": {"low": 80, "high": 120, "p50_cents": 600_000}}, "$.all.usual.p50_cents: not allowed"),  # nested
    ({"index": {"value": 150}}, "$.all.index: not a leaf"),
])
def test_the_shape_check_bites(extra: dict[str, Any], where: str) -> None:
    obj = published_spending(REG, "mechelen-bruul", SAT_14)
    assert where in off_shape({**obj, "all": {**obj["all"], **extra}}, SPENDING)
