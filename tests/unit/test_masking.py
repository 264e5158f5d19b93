"""Masking at ingest (P1): base64 digests and keys go, whatever their alphabet or padding; honest text stays."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from streams.footfall import FootfallParser, IngestPolicy
from streams.masking import MASK, mask_raw, mask_text, mask_value
from streams.registry import parse_registry
from tests.e2e.audit import scan_record, scan_text

NOW = 1_795_785_300_000  # 2026-11-27T13:15:00Z
MAC = "aa:bb:cc:dd:ee:ff"
SHA256 = hashlib.sha256(MAC.encode()).digest()
MD5 = hashlib.md5(MAC.encode()).digest()  # a careless pseudonym, 16 bytes


@pytest.mark.parametrize("token", [
    base64.b64encode(SHA256).decode(),  # SHA-256, standard alphabet, padded: 44 characters ending '='
    base64.b64encode(SHA256).decode().rstrip("="),  # unpadded: 43
    base64.urlsafe_b64encode(SHA256).decode().rstrip("="),  # URL-safe, unpadded
    base64.b64encode(MD5).decode(),  # 16 bytes (MD5), padded: 24 characters ending '=='
    base64.urlsafe_b64encode(MD5).decode().rstrip("="),  # 16 bytes, URL-safe, unpadded: 22 characters
    base64.b64encode(hashlib.sha1(MAC.encode()).digest()).decode(),  # SHA-1, 20 bytes
    base64.b64encode(bytes(range(7, 71))).decode(),  # 64 bytes: longer than any digest
])
def test_base64_of_16_bytes_or_more_is_masked(token: str) -> None:
    for text in (token, f"source {token}/x", f"id={token};", f'"k": "{token}"'):
        masked = mask_text(text)
        assert token.rstrip("=") not in masked, text
        assert MASK in masked
    assert token.rstrip("=") not in orjson.dumps(mask_value({"source": token, "ids": [token]})).decode()


@pytest.mark.parametrize("honest", [
    "mech-bruul-01",  # a sensor id
    "mechelen-onze-lieve-vrouwestraat",  # a zone id
    "2026-11-27T14:15:00Z",  # ISO timestamps
    "2026-11-27T14:14:00+01:00",
    "gw-mechelen-01/2026-11-27T14:15:00Z",  # a batch id (CONTRACT.md §3)
    "acquirer-a/2026-11-27/0007",
    "gw-antwerpen-meir-noord-02/2026-11-27T14:15:00.123456+01:00",
    "readings[3]: sensor 'mech-bruul-99' is not in the registry",  # a rejection detail
    "data.source must match pattern ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",  # a schema complaint
    "Onze-Lieve-Vrouwestraat_Grote-Markt_IJzerenleen",  # names, words, acronyms
    "the_quick_brown_fox_jumps_over_the_lazy_dog_42",
    "K8S-WORKER-POOL-eu-west-1b/node-17",
])
def test_honest_text_stays_readable(honest: str) -> None:
    assert mask_text(honest) == honest
    assert mask_value({"batch_id": honest}) == {"batch_id": honest}


@given(st.binary(min_size=32, max_size=32), st.booleans(), st.booleans())
def test_every_base64_digest_the_scanner_would_flag_is_masked(digest: bytes, urlsafe: bool, padded: bool) -> None:
    """The auditor flags any 43-character base64 run mixing cases and digits: masking never leaves one."""
    token = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(digest).decode()
    token = token if padded else token.rstrip("=")
    raw = orjson.dumps({"source": token, "batch_id": f"{token}/2026-11-27T14:15:00Z"})
    assert scan_text("masked", mask_text(f"source {token} sent"), NOW) == []
    assert scan_record("masked", orjson.dumps(mask_value(orjson.loads(raw))), NOW) == []
    assert scan_text("masked", mask_raw(raw[:-3]), NOW) == []


def test_a_batch_from_a_base64_pseudonym_is_rejected_without_it() -> None:
    """The reproduced leak: a gateway named by base64(sha256(mac)) fails the schema ('+', '/', '=' are not
    allowed in a source), and the rejected payload and detail must not carry the name."""
    registry = parse_registry((Path(__file__).parents[1] / "e2e" / "registry-audit.yaml").read_text())
    parser = FootfallParser(schemas.load("footfall.counts.v1"), registry, IngestPolicy(300_000, 50))
    token = base64.b64encode(SHA256).decode()
    doc = {"source": token, "batch_id": f"{token}/1", "sent_at": "2026-11-27T13:15:00Z",
           "readings": [{"sensor_id": "tt-main-01", "start": "2026-11-27T14:14:00+01:00", "seconds": 60, "in": 1,
                         "out": 0}]}
    [rejection] = parser.parse(orjson.dumps(doc), NOW).rejections
    assert rejection.reason == "schema_violation"
    text = orjson.dumps({"detail": rejection.detail, "payload": rejection.payload}).decode()
    assert token.rstrip("=") not in text
    assert scan_record("rejected", text.encode(), NOW) == []
