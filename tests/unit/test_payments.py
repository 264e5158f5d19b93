"""Payment ingest: golden examples, card numbers refused and never echoed, every rejection reason (P1, P11)."""

from __future__ import annotations

import pickle
from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from streams.cardcount import DistinctCards, WindowKey
from streams.payments import PaymentParser, has_card_number, luhn_ok
from streams.registry import parse_registry
from streams.spendingest import zone_records

TOPIC = "payments.v1"
NOW = 1_795_785_300_000  # 2026-11-27T13:15:00Z
HOUR = 3_600_000
REGISTRY = parse_registry("""
cities:
  - id: mechelen
    name: Mechelen
    timezone: Europe/Brussels
    country: BE
    zones:
      - id: mechelen-bruul
        name: Bruul
        sensors: [{id: s-1, kind: street}, {id: s-2, kind: street}, {id: s-3, kind: street}]
      - id: mechelen-vismarkt
        name: Vismarkt
        sensors: [{id: s-4, kind: street}, {id: s-5, kind: street}, {id: s-6, kind: street}]
merchants:
  - {id: m-000123, zone: mechelen-bruul, sector: fashion}
  - {id: m-000124, zone: mechelen-bruul, sector: food_and_drink}
  - {id: m-000200, zone: mechelen-vismarkt, sector: food_and_drink}
""")
PAN = "4111 1111 1111 1111"  # the classic Visa test number: Luhn-valid


@pytest.fixture(scope="module")
def parser() -> PaymentParser:
    return PaymentParser(schemas.load(TOPIC), REGISTRY, window_ms=HOUR, max_future_ms=300_000)


def batch(**parts: object) -> bytes:
    return orjson.dumps({"source": "acq-a", "batch_id": "acq-a/1", "sent_at": "2026-11-27T13:15:09Z", **parts})


def tx(merchant: str = "m-000123", ts: str = "2026-11-27T14:03:11+01:00", card: str = "tok-1",
       amount: int = 1250) -> dict[str, object]:
    return {"merchant_id": merchant, "ts": ts, "amount_cents": amount, "card_ref": card}


def total(merchant: str = "m-000123", start: str = "2026-11-27T14:00:00+01:00", seconds: int = 900,
          amount: int = 51230) -> dict[str, object]:
    return {"merchant_id": merchant, "start": start, "seconds": seconds, "tx_count": 14, "amount_cents": amount,
            "cards": 13}


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schemas.load(TOPIC))


@pytest.mark.parametrize("path", schemas.examples(TOPIC, "valid"), ids=lambda p: p.stem)
def test_golden_valid_examples(parser: PaymentParser, path: Path) -> None:
    assert jsonschema.Draft202012Validator(schemas.load(TOPIC)).is_valid(orjson.loads(path.read_bytes()))
    parsed = parser.parse(path.read_bytes(), NOW)
    assert parsed.rejections == []
    assert parsed.source is not None


@pytest.mark.parametrize("path", schemas.examples(TOPIC, "invalid"), ids=lambda p: p.stem)
def test_golden_invalid_examples(parser: PaymentParser, path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    assert not jsonschema.Draft202012Validator(schemas.load(TOPIC)).is_valid(doc)
    parsed = parser.parse(path.read_bytes(), NOW)
    assert parsed.totals == []
    assert parsed.transactions == []
    assert len(parsed.rejections) == 1
    assert parsed.rejections[0].reason in ("schema_violation", "card_number")


def test_contract_example_is_reduced_to_sums(parser: PaymentParser) -> None:
    parsed = parser.parse(schemas.examples(TOPIC, "valid")[0].read_bytes(), NOW)
    assert [(t.merchant_id, t.zone_id, t.sector, t.amount_cents, t.cards) for t in parsed.totals] == [
        ("m-000123", "mechelen-bruul", "fashion", 51230, 13)]
    assert [(t.merchant_id, t.amount_cents) for t in parsed.transactions] == [("m-000123", 1250)]
    assert "opaque" not in repr(parsed.transactions[0])  # a card_ref never reaches a repr (logs)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe not json", "malformed_json"),
    (batch(transactions=[tx(merchant="m-999999")]), "unknown_merchant"),
    (batch(totals=[total(merchant="m-999999")]), "unknown_merchant"),
    (batch(transactions=[tx(ts="2026-13-45T99:03:11+01:00")]), "bad_timestamp"),
    (batch(transactions=[tx(ts="2026-11-28T14:03:11+01:00")]), "future_timestamp"),
    (batch(totals=[total(start="2026-11-27T12:30:00+01:00", seconds=3600)]), "split_interval"),
    (batch(transactions=[tx(card=PAN)]), "card_number"),
    (batch(transactions=[tx(card="4111-1111-1111-1111")]), "card_number"),
    (batch(batch_id=f"acq-a/{PAN.replace(' ', '')}"), "card_number"),
    (b'{"source": "x", "pan": "5555555555554444"', "card_number"),  # not even JSON: still named for what it is
    (b"x" * (4 * 1024 * 1024 + 1), "too_large"),
])
def test_rejection_reasons(parser: PaymentParser, raw: bytes, reason: str) -> None:
    parsed = parser.parse(raw, NOW)
    assert [r.reason for r in parsed.rejections] == [reason]
    assert parsed.transactions == []
    assert parsed.totals == []


def test_a_rejected_card_number_is_never_echoed(parser: PaymentParser) -> None:
    for raw in (batch(transactions=[tx(card=PAN)]), b'{"pan": "5555555555554444"'):
        [rej] = parser.parse(raw, NOW).rejections
        text = orjson.dumps({"detail": rej.detail, "payload": rej.payload}).decode()
        assert "4111" not in text
        assert "5555555555554444" not in text
        assert not has_card_number(text.encode())


def test_a_bad_item_leaves_the_good_ones(parser: PaymentParser) -> None:
    parsed = parser.parse(batch(transactions=[tx(), tx(merchant="m-999999"), tx(card="tok-2")]), NOW)
    assert [r.reason for r in parsed.rejections] == ["unknown_merchant"]
    assert len(parsed.transactions) == 2


@pytest.mark.parametrize(("digits", "ok"), [("4111111111111111", True), ("4111111111111112", False),
                                            ("5555555555554444", True), ("378282246310005", True),
                                            ("0000000000000", True), ("1234567890123", False)])
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


@given(st.integers(min_value=10**12, max_value=10**19 - 1))
def test_every_luhn_valid_number_is_caught(n: int) -> None:
    digits = str(n)
    check = next(d for d in "0123456789" if luhn_ok(digits[:-1] + d))
    card = digits[:-1] + check
    assert has_card_number(f'{{"card_ref": "ref-{card}"}}'.encode())


def test_a_uuid_is_not_a_card_number_but_a_card_next_to_one_is() -> None:
    member = "c0b34125-c014-4895-9479-2544dceba3e2"  # digits 014-4895-9479-2544 hold a Luhn-valid run
    assert not has_card_number(f'{{"batch_id": "{member}"}}'.encode())
    assert not has_card_number(f'{{"batch_id": "faust-0.15.3-{member}"}}'.encode())
    assert has_card_number(b'{"batch_id": "014-4895-9479-2544"}')  # the same digits on their own
    assert has_card_number(f'{{"batch_id": "{member}", "ref": "{PAN}"}}'.encode())
    assert has_card_number(f'{{"batch_id": "{member}{PAN}"}}'.encode())  # glued on: not a UUID on its own
    assert has_card_number(f'{{"batch_id": "{PAN}-{member}"}}'.encode())


@given(st.uuids())
def test_no_uuid_is_a_card_number(u: object) -> None:
    assert not has_card_number(f'{{"batch_id": "{u}", "id": "{str(u).upper()}"}}'.encode())


@given(st.text(alphabet="abcdef-_/: ", max_size=60), st.integers(min_value=0, max_value=10**11))
def test_ordinary_values_are_not_card_numbers(text: str, n: int) -> None:
    assert not has_card_number(f'{{"batch_id": "{text}", "amount_cents": {n}}}'.encode())


def records(parser: PaymentParser, cards: DistinctCards, *txs: dict[str, object]) -> dict[tuple[str, int], dict]:
    parsed = parser.parse(batch(transactions=list(txs)), NOW)
    assert parsed.rejections == []
    return zone_records(parsed, "acq-a", "acq-a/1", HOUR, cards, NOW)


def test_zone_records_carry_sums_and_counts_only(parser: PaymentParser) -> None:
    cards = DistinctCards(lambda n: b"k" * n)
    recs = records(parser, cards, tx(card="tok-1"), tx(card="tok-1", amount=50), tx(card="tok-2"),
                   tx(merchant="m-000124", card="tok-1"), tx(merchant="m-000200", card="tok-9"))
    bruul = recs[("mechelen-bruul", NOW - NOW % HOUR)]
    assert bruul["x"] == [["m-000123", 2550, 3], ["m-000124", 1250, 1]]
    assert bruul["c"] == [["all", 2], ["fashion", 2], ["food_and_drink", 1]]
    assert "tok" not in orjson.dumps(recs[("mechelen-vismarkt", NOW - NOW % HOUR)]).decode()
    assert "tok" not in orjson.dumps(bruul).decode()


def test_pseudonyms_are_per_zone_and_window_and_keys_stay_in_memory() -> None:
    secrets = iter(bytes([i]) * 32 for i in range(1, 100))
    cards = DistinctCards(lambda n: next(secrets))
    a = cards.key("mechelen-bruul", 0).pseudonym("tok-1")
    assert cards.key("mechelen-bruul", 0).pseudonym("tok-1") == a  # same zone and window: same value
    assert cards.key("mechelen-vismarkt", 0).pseudonym("tok-1") != a  # another zone: unrelated
    assert cards.key("mechelen-bruul", HOUR).pseudonym("tok-1") != a  # another window: unrelated
    key = cards.key("mechelen-bruul", 0)
    with pytest.raises(TypeError, match="P2"):
        pickle.dumps(key)
    with pytest.raises(TypeError, match="P2"):
        pickle.dumps(cards)
    assert "\\x01" not in repr(key)
    with pytest.raises(ValueError, match="32 random bytes"):
        WindowKey(b"short")


def test_sets_and_keys_are_forgotten_when_the_window_closes() -> None:
    cards = DistinctCards(lambda n: b"k" * n)
    cards.add("acq", "mechelen-bruul", ("fashion", "all"), 0, "tok-1", now_ms=10)
    cards.add("acq", "mechelen-bruul", ("fashion", "all"), HOUR, "tok-1", now_ms=10)
    cards.add("acq", "mechelen-vismarkt", ("all",), HOUR, "tok-1", now_ms=500)
    assert cards.size("acq", "mechelen-bruul", "all", 0) == 1
    assert cards.forget(HOUR, idle_before_ms=0) == 2  # the two sets (fashion, all) of window 0: over
    assert cards.size("acq", "mechelen-bruul", "all", 0) == 0
    assert cards.size("acq", "mechelen-bruul", "all", HOUR) == 1
    assert cards.open_windows() == 2
    assert cards.forget(HOUR, idle_before_ms=100) == 2  # nothing added to Bruul's window since 10: idle
    assert cards.size("acq", "mechelen-vismarkt", "all", HOUR) == 1
    assert cards.open_windows() == 1


@given(st.integers(min_value=-10 * 365 * 86_400_000 + 1, max_value=365 * 86_400_000 - 1),
       st.sampled_from([1, 1_000, 1_000_000]))
def test_clock_readings_in_ids_are_not_card_numbers(offset_ms: int, scale: int) -> None:
    """An acquirer's batch id made from epoch ms (µs, ns) must not refuse the batch one time in ten."""
    stamp = (NOW + offset_ms) * scale
    raw = f'{{"batch_id": "acq-a/{stamp}", "sent_at": "2026-11-27T13:15:09Z"}}'.encode()
    assert not has_card_number(raw, NOW)
    assert has_card_number(f'{{"card_ref": "{PAN}"}}'.encode(), NOW)


def test_a_batch_id_with_epoch_ms_passing_luhn_is_accepted(parser: PaymentParser) -> None:
    stamp = next(str(NOW - i) for i in range(100) if luhn_ok(str(NOW - i)))
    parsed = parser.parse(batch(batch_id=f"acq-a/{stamp}", transactions=[tx()]), NOW)
    assert parsed.rejections == []
    assert len(parsed.transactions) == 1
