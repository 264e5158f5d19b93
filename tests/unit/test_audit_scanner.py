"""The auditor's scanner and solver bite: planted identifiers are found, honest records pass (PRIVACY.md §D)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import orjson
import pytest

import schemas
from streams.masking import mask_raw, mask_text, mask_value
from streams.payments import PaymentParser
from streams.registry import parse_registry
from tests.e2e.audit import determined, identifier_field, scan, scan_record, scan_text

NOW = 1_764_250_800_000  # 2025-11-27 13:40 UTC, epoch ms
_DIGEST = hashlib.sha256(b"aa:bb:cc:dd:ee:ff").digest()
B64_SHA256 = base64.b64encode(_DIGEST).decode()  # 44 characters ending '='
B64URL_SHA256 = base64.urlsafe_b64encode(_DIGEST).decode().rstrip("=")


@pytest.mark.parametrize(("planted", "kind"), [
    ("gateway aa:bb:cc:dd:ee:ff said hi", "mac"),  # colon MAC
    ("AA-BB-CC-DD-EE-0F", "mac"),  # dash MAC, upper case
    ("sensor aabb.ccdd.eeff", "mac"),  # Cisco dotted MAC
    ("src=aabbccddeeff;", "hex"),  # bare MAC: 12 hex
    ("id 0011223344556677", "hex"),  # 64-bit id
    ("batch_0123456789abcdef0123456789abcdef", "hex"),  # MD5 glued with an underscore
    ('"k":"' + "ab" * 32 + '"', "hex"),  # SHA-256
    ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "hex"),  # SHA-1
    ("card 4111 1111 1111 1111 paid", "card"),  # Visa with spaces
    ("4111-1111-1111-1111", "card"),  # with dashes
    ("378282246310005", "card"),  # Amex, 15 digits
    ("4222222222222", "card"),  # 13-digit Visa
    ("x9994111111111111111x", "card"),  # glued inside a longer digit run
    ("3000000000007", "card"),  # 13 digits, Luhn-valid, epoch ms but years from NOW
    ("member x014-4895-9479-2544", "card"),  # the digits of the member id below, not inside a UUID
    (f"src {B64_SHA256}", "b64"),  # base64 SHA-256 of a MAC, padded
    (f"k={B64URL_SHA256};", "b64"),  # URL-safe, unpadded
])
def test_planted_identifiers_are_found(planted: str, kind: str) -> None:
    assert kind in {leak.kind for leak in scan_text("planted", planted, NOW)}


@pytest.mark.parametrize("honest", [
    "2026-11-27T14:15:00+01:00",  # times
    "gw-testtown-01/2026-11-27T14:15:00Z",  # a batch id
    '{"as_of_ms": 1764250800000, "start": 1764250860000}',  # epoch ms near NOW (Luhn-valid or not)
    "tt-main|1764250860000",
    "drukte_windows_published_total{zone=\"tt-main\"} 12.0",
    "abcdef12345",  # 11 hex: too short for a token
    "deadbeefcafe0",  # 13 hex: no identifier length
    "readings[3]: sensor '***' is not in the registry",  # a masked detail
    "21:30:15 and 1.0.3",  # a clock time, a version
    "drukte_batch_seconds_sum 0.003231844999390887",  # digits after a decimal point
    "le=\"0.1\"} 0.1021350330011046",  # 16 of them
    # a Kafka member id: the UUID's middle digits 014-4895-9479-2544 hold a Luhn-valid run (seen in a CI log)
    "Joined group 'drukte' (generation 0) with member_id faust-0.15.3-c0b34125-c014-4895-9479-2544dceba3e2",
])
def test_honest_text_passes(honest: str) -> None:
    assert scan_text("honest", honest, NOW) == []


@pytest.mark.parametrize(("name", "value", "flagged"), [
    ("card_ref", "x", True),
    ("deviceId", "x", True),
    ("mac", "x", True),
    ("hashed_mac", "x", True),
    ("PAN", "x", True),
    ("token", "x", True),
    ("hash", "x", True),
    ("cards", 13, False),  # a count
    ("min_cards", 15, False),  # a threshold
    ("devices", 42, False),  # a count
    ("cards", ["tok-1"], True),  # a list of cards is not a count
    ("span", "x", False),  # contains "pan", is not it
    ("company", "x", False),
    ("masked_0", "***", False),
])
def test_identifier_field_names(name: str, value: object, flagged: bool) -> None:
    assert identifier_field(name, value) is flagged


def test_field_names_are_found_at_any_depth_and_inside_json_strings() -> None:
    nested = orjson.dumps({"a": [{"b": {"card_ref": "opaque"}}]})
    inner = orjson.dumps({"payload": orjson.dumps({"device_id": "x"}).decode()})
    assert {leak.found for leak in scan_record("t", nested, NOW)} == {"card_ref"}
    assert {leak.found for leak in scan_record("t", inner, NOW)} == {"device_id"}
    assert scan_record("t", orjson.dumps({"privacy": {"min_cards": 15}, "span": 3}), NOW) == []


def test_field_names_are_found_in_text_that_is_not_json() -> None:
    truncated = orjson.dumps({"reason": "malformed_json", "payload": '{"source": "***", "card_ref": "tok-1'})
    assert {leak.found for leak in scan_record("t", truncated, NOW)} == {"card_ref"}
    assert [leak.found for leak in scan_text("log", 'got {"deviceId": "x"', NOW)] == ["deviceId"]
    assert scan_text("log", 'the card number was rejected; "cards": 15', NOW) == []


@pytest.mark.parametrize("planted", [
    "aa:bb:cc:dd:ee:ff", "aabb.ccdd.eeff", "gw.aabbccddeeff", "batch_0123456789abcdef0123456789abcdef",
    "4111 1111 1111 1111", "x9994111111111111111x", "acq_" + "ab" * 32,
    B64_SHA256, B64URL_SHA256, B64_SHA256.rstrip("="),
])
def test_masked_text_passes_the_scanner(planted: str) -> None:
    """What ingest masks (streams.masking) is what the auditor looks for: nothing survives masking."""
    assert scan_text("planted", planted, NOW)
    assert scan_text("masked", mask_text(f"source {planted}/x"), NOW) == []
    raw = orjson.dumps({"source": planted, "card_ref": "tok-1", "readings": [{"device_id": planted}]})
    assert scan_text("masked", mask_raw(raw[:-5]), NOW) == []  # truncated: not JSON any more
    assert scan_record("masked", orjson.dumps(mask_value(orjson.loads(raw))), NOW) == []


@pytest.mark.parametrize("broken", [False, True])
def test_a_card_number_rejection_carries_no_other_card_ref(broken: bool) -> None:
    """A batch refused for one card number must not take its other transactions' tokens to the rejected topic."""
    registry = parse_registry((Path(__file__).parents[1] / "e2e" / "registry-audit.yaml").read_text())
    parser = PaymentParser(schemas.load("payments.v1"), registry, window_ms=3_600_000, max_future_ms=300_000)
    txs = [{"merchant_id": "f-1", "ts": "2026-11-27T14:03:11+01:00", "amount_cents": 1250, "card_ref": ref}
           for ref in ("tok-secret-1", "4111 1111 1111 1111", "tok-secret-2")]
    raw = orjson.dumps({"source": "acq", "batch_id": "b", "sent_at": "2026-11-27T14:15:09Z", "transactions": txs})
    [rejection] = parser.parse(raw[:-3] if broken else raw, 1_795_800_000_000).rejections
    text = orjson.dumps(rejection.payload).decode()
    assert rejection.reason == "card_number"
    assert "tok-secret" not in text
    assert scan_record("rejected", orjson.dumps({"payload": rejection.payload}), NOW) == []


def test_scan_names_the_place() -> None:
    leaks = scan({"redis": [b"ok", b"aa:bb:cc:dd:ee:ff"]}, {"worker log": "token 4111111111111111"}, NOW)
    # the card number is also a 16-digit hex token
    assert {(leak.where, leak.kind) for leak in leaks} == {("redis", "mac"), ("worker log", "card"),
                                                           ("worker log", "hex")}


# The solver: unknowns a, b, c; each row is a published total.
@pytest.mark.parametrize(("rows", "expected"), [
    ([{"a": 1}, {"c": 1}, {"a": 1, "b": 1, "c": 1}], {"a", "b", "c"}),  # a sum beside its parts reveals b
    ([{"a": 1}, {"c": 1}], {"a", "c"}),  # parts alone: b unknown
    ([{"a": 1, "b": 1}, {"b": 1, "c": 1}], set()),  # overlapping sums: nothing alone
    ([{"a": 1, "b": 1}, {"b": 1, "c": 1}, {"a": 1, "c": 1}], {"a", "b", "c"}),  # three sums, three unknowns
    ([{"a": 1, "b": 1}, {"a": 1, "b": 1, "c": 1}], {"c"}),  # a difference of two sums
    ([{"a": 100}, {"a": 1, "b": 1}], {"a", "b"}),  # an index is a multiple of its count
    ([], set()),
])
def test_determined(rows: list[dict[str, int]], expected: set[str]) -> None:
    assert determined(rows, ["a", "b", "c"]) == expected
