"""Payment batches: decode, validate, and reduce to what spending needs (P11: minimise at ingest).

A batch becomes per-merchant totals (acquirer figures, kept as they are) and single transactions. A
transaction's `card_ref` stays inside the returned `Tx` only so the caller can feed it to a distinct-card
counter (`streams.cardcount`); nothing here writes it anywhere. A batch in which any text looks like a card
number (13–19 digits passing the Luhn check) is rejected whole: such a source is misconfigured, and the
number is masked before the rejection leaves the process (P1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
import orjson

from streams.footfall import (
    BAD_TIMESTAMP,
    FUTURE_TIMESTAMP,
    MALFORMED_JSON,
    MAX_MESSAGE_BYTES,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    Rejection,
)
from streams.masking import mask_raw, mask_text, mask_value
from streams.registry import Merchant, Registry
from streams.timegrid import parse_ts, window_start

UNKNOWN_MERCHANT = "unknown_merchant"
CARD_NUMBER = "card_number"
SPLIT_INTERVAL = "split_interval"
REASONS = (TOO_LARGE, MALFORMED_JSON, SCHEMA_VIOLATION, BAD_TIMESTAMP, UNKNOWN_MERCHANT, CARD_NUMBER,
           SPLIT_INTERVAL, FUTURE_TIMESTAMP)

_DIGIT_RUN = re.compile(rb"\d(?:[ -]?\d){12,18}")
# A canonical UUID (8-4-4-4-12 hex digits): its middle groups can be all digits and pass Luhn, about once in
# 3,000 random ids (a Kafka member id did in a test log), and acquirers name batches with UUIDs.
_UUID = re.compile(rb"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Za-z])")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number: every second digit from the right doubled, the sum ≡ 0 (mod 10)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_YEAR_MS = 365 * 86_400_000


def timestamp_like(digits: str, now_ms: int) -> bool:
    """A bare run of 13, 16 or 19 digits that reads as epoch milli-, micro- or nanoseconds within ten years
    before and one after `now_ms`: an id made from the clock, not a card (no card scheme starts with 17 or 18)."""
    scale = {13: 1, 16: 1_000, 19: 1_000_000}.get(len(digits))
    return scale is not None and now_ms - 10 * _YEAR_MS <= int(digits) // scale <= now_ms + _YEAR_MS


def has_card_number(raw: bytes, now_ms: int | None = None) -> bool:
    """True when `raw` holds a 13–19 digit run (spaces or dashes allowed between digits) that passes Luhn.

    Every window of 13–19 digits inside a longer run is tried as well: a number glued to other digits
    must not slip through. With `now_ms`, a bare run that is a clock reading (`timestamp_like`) is not a card
    number: one in ten epoch-millisecond ids would pass Luhn and refuse a whole batch. A canonical UUID standing
    on its own (not glued to letters or digits) is an id, not a card number, and is not searched.
    """
    if b"-" in raw:
        raw = _UUID.sub(b"~", raw)
    for m in _DIGIT_RUN.finditer(raw):
        digits = re.sub(rb"[ -]", b"", m.group()).decode()
        if now_ms is not None and digits == m.group().decode() and timestamp_like(digits, now_ms):
            continue
        for size in range(13, min(19, len(digits)) + 1):
            for at in range(len(digits) - size + 1):
                if luhn_ok(digits[at:at + size]):
                    return True
    return False


@dataclass(frozen=True, slots=True)
class Total:
    """An acquirer's figure for one merchant over `[start, start+dur)`; the interval lies in one spend window."""

    merchant_id: str
    zone_id: str
    sector: str
    start_ms: int
    dur_ms: int
    tx_count: int
    amount_cents: int
    cards: int


@dataclass(frozen=True, slots=True)
class Tx:
    merchant_id: str
    zone_id: str
    sector: str
    ts_ms: int
    amount_cents: int
    card_ref: str = field(repr=False)  # never in a repr, so never in a log line by accident


@dataclass(slots=True)
class ParsedPayments:
    source: str | None = None
    batch_id: str | None = None
    totals: list[Total] = field(default_factory=list)
    transactions: list[Tx] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class PaymentParser:
    """Decodes and validates `payments.v1` messages; bad parts become rejections, never exceptions."""

    def __init__(self, schema: dict[str, Any], registry: Registry, *, window_ms: int, max_future_ms: int) -> None:
        self._validate: Callable[[Any], Any] = fastjsonschema.compile(schema)
        self._merchants = registry.merchants_by_id
        self._window_ms = window_ms
        self._max_future_ms = max_future_ms

    def parse(self, raw: bytes, now_ms: int) -> ParsedPayments:
        if len(raw) > MAX_MESSAGE_BYTES:
            return ParsedPayments(rejections=[Rejection(TOO_LARGE, f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}", None)])
        if has_card_number(raw, now_ms):
            # Checked before decoding: a card number must be refused however it arrives (any field, bad JSON).
            # The batch's other `card_ref` tokens must not reach the rejected topic either: fields masked (P1).
            try:
                masked: Any = mask_value(orjson.loads(raw))
            except orjson.JSONDecodeError:
                masked = mask_raw(raw)
            return ParsedPayments(rejections=[Rejection(
                CARD_NUMBER, "the batch holds a value that looks like a card number; send the acquirer's opaque tokens",
                masked)])
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return ParsedPayments(rejections=[Rejection(MALFORMED_JSON, mask_text(str(exc)[:200]), mask_raw(raw))])
        try:
            self._validate(doc)
        except fastjsonschema.JsonSchemaException as exc:
            return ParsedPayments(rejections=[Rejection(SCHEMA_VIOLATION, mask_text(str(exc)[:300]),
                                                        mask_value(doc))])
        out = ParsedPayments(source=doc["source"], batch_id=doc["batch_id"])
        for i, t in enumerate(doc.get("totals") or []):
            self._total(t, i, now_ms, out)
        for i, t in enumerate(doc.get("transactions") or []):
            self._tx(t, i, now_ms, out)
        return out

    def _reject(self, out: ParsedPayments, reason: str, where: str, detail: str, item: dict[str, Any]) -> None:
        out.rejections.append(Rejection(reason, mask_text(f"{where}: {detail}"), mask_value(item)))

    def _located(self, item: dict[str, Any], key: str, end_ms: int, where: str, now_ms: int,
                 out: ParsedPayments) -> tuple[Merchant, int] | None:
        """The item's registered merchant and its time `key` in epoch ms, or None after rejecting it.
        `end_ms` is how far the item reaches past that time (an interval's length, 0 for a transaction)."""
        merchant = self._merchants.get(item["merchant_id"])
        if merchant is None:
            self._reject(out, UNKNOWN_MERCHANT, where, f"merchant {item['merchant_id']!r} is not in the registry",
                         item)
            return None
        try:
            at = parse_ts(item[key])
        except ValueError as exc:
            self._reject(out, BAD_TIMESTAMP, where, str(exc), item)
            return None
        if at + end_ms > now_ms + self._max_future_ms:
            self._reject(out, FUTURE_TIMESTAMP, where, f"{key} + {end_ms // 1000} s is in the future", item)
            return None
        return merchant, at

    def _total(self, t: dict[str, Any], i: int, now_ms: int, out: ParsedPayments) -> None:
        where, dur = f"totals[{i}]", int(t["seconds"]) * 1000
        found = self._located(t, "start", dur, where, now_ms, out)
        if found is None:
            return
        merchant, start = found
        if window_start(start, self._window_ms) != window_start(start + dur - 1, self._window_ms):
            # Amounts and card counts cannot be split by time without inventing figures: one window or none.
            self._reject(out, SPLIT_INTERVAL, where,
                         f"interval crosses a {self._window_ms // 1000} s spending window boundary", t)
            return
        out.totals.append(Total(merchant.id, merchant.zone_id, merchant.sector, start, dur, int(t["tx_count"]),
                                int(t["amount_cents"]), int(t["cards"])))

    def _tx(self, t: dict[str, Any], i: int, now_ms: int, out: ParsedPayments) -> None:
        found = self._located(t, "ts", 0, f"transactions[{i}]", now_ms, out)
        if found is not None:
            merchant, ts = found
            out.transactions.append(Tx(merchant.id, merchant.zone_id, merchant.sector, ts, int(t["amount_cents"]),
                                       str(t["card_ref"])))
