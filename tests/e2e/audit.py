"""The auditor's tools (PRIVACY.md §D): an identifier scanner (P1), collectors for everything a running stack
exposes (every topic, a Redis dump, logs, metrics), a module-wide stack, and exact linear algebra for the
differencing attack (P8).

The scanner looks for what would identify a person or a card, wherever it may have leaked:

- a MAC address: six hex pairs joined by `:` or `-`, or Cisco's `aabb.ccdd.eeff`;
- a hex token: a run of exactly 12, 16, 32, 40 or 64 hex digits (a bare MAC, a 64-bit id, MD5, SHA-1,
  SHA-256) not glued to other letters or digits (`_`, `-`, `.`, `/`, quotes all separate); not the digits
  after a decimal point, nor the last group of a UUID (Kafka member ids in the worker's log);
- a card number: 13–19 digits (spaces or dashes allowed between them) that pass the Luhn check, any such
  window inside a longer digit run too. One exception, or every Redis dump would fail one time in ten: a
  plain 13-digit run that reads as epoch milliseconds within a year of now is a timestamp (`as_of_ms`,
  window starts). No card network issues 13-digit numbers starting with 1. Nor are the digits after a
  decimal point (`0.003231844999390887` seconds in a metric) a number of their own;
- a base64 digest: 43 or 44 base64 characters (a SHA-256 digest or a 32-byte key, padded or not, standard or
  URL-safe alphabet) mixing upper case, lower case and digits, as a pseudonym or a key would be written;
- a JSON field whose name has the word `mac`, `device`, `card`, `token`, `pan` or `hash` in it (snake_case or
  camelCase words, so `card_ref`, `deviceId` and `hashed_mac` count; `span` and `company` do not). The plural
  `cards` and `devices` are counts when their value is an integer (`min_cards`, a `cards` total) and are
  flagged otherwise. In text that is not JSON (a truncated payload, a log line) a quoted name followed by a
  colon is a field name too. Free words are not: a log may say "card number rejected".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from drukte import embedded
from drukte.kafka import bootstrap
from streams.payments import luhn_ok
from tests.e2e.conftest import Stack

_ALNUM = "0-9A-Za-z"
MAC_RE = re.compile(
    rf"(?<![{_ALNUM}])[0-9A-Fa-f]{{2}}([:-])[0-9A-Fa-f]{{2}}(?:\1[0-9A-Fa-f]{{2}}){{4}}(?![{_ALNUM}])"
    rf"|(?<![{_ALNUM}])[0-9A-Fa-f]{{4}}\.[0-9A-Fa-f]{{4}}\.[0-9A-Fa-f]{{4}}(?![{_ALNUM}])")
HEX_RE = re.compile(rf"(?<![{_ALNUM}])[0-9A-Fa-f]{{12,}}(?![{_ALNUM}])")
HEX_LENGTHS = frozenset({12, 16, 32, 40, 64})
B64_RE = re.compile(r"(?<![0-9A-Za-z+/_-])[0-9A-Za-z+/_-]{43}=?(?![0-9A-Za-z+/_=-])")
DIGITS_RE = re.compile(r"(?<!\d)(?<!\d\.)\d(?:[ -]?\d){12,}")
UUID_RE = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![0-9A-Za-z])")
IDENTIFIER_WORDS = frozenset({"mac", "macs", "device", "card", "token", "tokens", "pan", "hash", "hashes", "hashed"})
COUNT_WORDS = frozenset({"cards", "devices"})  # counts, when their value is an integer
_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
YEAR_MS = 366 * 86_400_000
KEY_RE = re.compile(r'"([A-Za-z][A-Za-z0-9_]{0,63})"\s*:\s*(-?\d)?')


@dataclass(frozen=True)
class Leak:
    where: str  # e.g. "topic drukte-footfall-byzone", "redis", "worker log", "metrics"
    kind: str  # mac | hex | card | field
    found: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.found!r}"


def _timestamp_like(digits: str, now_ms: int) -> bool:
    return len(digits) == 13 and abs(int(digits) - now_ms) <= YEAR_MS


def _not_a_token(text: str, m: re.Match[str]) -> bool:
    """Digits after a decimal point (`0.1021350330011046`, `1.795815676751066e+09`), or the last group of a
    UUID (a Kafka consumer's member id in the worker's log)."""
    before = text[max(0, m.start() - 24):m.start()]
    if re.fullmatch(r"\d+[eE]?", m.group()) and re.search(r"\d\.$", before):
        return True
    return len(m.group()) == 12 and re.search(r"(?<![0-9A-Za-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-$",
                                               before) is not None


def card_numbers(text: str, now_ms: int | None = None) -> list[str]:
    """13–19 digit runs (spaces or dashes between digits allowed) with a Luhn-valid window of 13–19 digits."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    out = []
    # inside a UUID (a Kafka member id in a worker log): its all-digit middle groups can pass Luhn
    uuids = [u.span() for u in UUID_RE.finditer(text)]
    for m in DIGITS_RE.finditer(text):
        if any(a <= m.start() and m.end() <= b for a, b in uuids):
            continue
        digits = re.sub(r"[ -]", "", m.group())
        if digits == m.group() and _timestamp_like(digits, now):
            continue
        if any(luhn_ok(digits[at:at + size]) for size in range(13, min(19, len(digits)) + 1)
               for at in range(len(digits) - size + 1)):
            out.append(m.group())
    return out


def identifier_field(name: str, value: Any) -> bool:
    words = {w.lower() for w in _WORD_RE.findall(name)}
    if words & IDENTIFIER_WORDS:
        return True
    return bool(words & COUNT_WORDS) and (isinstance(value, bool) or not isinstance(value, int))


def field_names(doc: Any) -> Iterator[tuple[str, Any]]:
    """Every (field name, value) of a decoded JSON document, at any depth, also inside JSON-encoded strings."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield str(k), v
            yield from field_names(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from field_names(v)
    elif isinstance(doc, str) and doc[:1] in ("{", "["):
        try:
            inner = orjson.loads(doc)
        except orjson.JSONDecodeError:
            return
        yield from field_names(inner)


def scan_text(where: str, text: str, now_ms: int | None = None) -> list[Leak]:
    """Identifier-shaped values in free text (logs, metrics, or any record's bytes)."""
    leaks = [Leak(where, "mac", m.group()) for m in MAC_RE.finditer(text)]
    leaks += [Leak(where, "hex", m.group()) for m in HEX_RE.finditer(text)
              if len(m.group()) in HEX_LENGTHS and not _not_a_token(text, m)]
    leaks += [Leak(where, "b64", m.group()) for m in B64_RE.finditer(text) if _mixed(m.group())]
    leaks += [Leak(where, "card", n) for n in card_numbers(text, now_ms)]
    return leaks + quoted_fields(where, text)


def _mixed(text: str) -> bool:
    """Upper case, lower case and digits together: random bytes in base64, not a topic or metric name."""
    return bool(re.search(r"[A-Z]", text) and re.search(r"[a-z]", text) and re.search(r"\d", text))


def identifier_forms(address: str) -> dict[str, str]:
    """The forms in which a careless implementation would write a device address: as sent, upper case, bare
    hex, and unkeyed SHA-256 / SHA-1 / MD5 digests of those (hex and base64). A keyed pseudonym cannot be
    listed here (its key is never known outside the process); `scan` finds its hex or base64 shape instead."""
    bare = re.sub(r"[^0-9A-Za-z]", "", address)
    forms = {"as sent": address, "upper": address.upper(), "bare": bare.lower(), "BARE": bare.upper()}
    for name, text in list(forms.items()):
        for algo in ("sha256", "sha1", "md5"):
            digest = hashlib.new(algo, text.encode()).digest()
            forms[f"{algo}({name})"] = digest.hex()
            forms[f"{algo}({name}) b64"] = base64.b64encode(digest).decode().rstrip("=")
    return forms


def find_forms(places: Mapping[str, Iterable[bytes]], texts: Mapping[str, str], address: str) -> list[str]:
    """Where any `identifier_forms` of `address` occurs in records or texts, case-insensitively, as
    `place: form`."""
    forms: dict[str, str] = {}
    for name, form in identifier_forms(address).items():
        if form.lower() not in forms.values():
            forms[name] = form.lower()
    found = []
    for where, values in [*places.items(), *((k, [v.encode()]) for k, v in texts.items())]:
        for v in values:
            text = v.decode("utf-8", errors="replace").lower()
            found += [f"{where}: {address} {name}" for name, form in forms.items() if form in text]
    return sorted(set(found))


def quoted_fields(where: str, text: str) -> list[Leak]:
    """JSON field names inside text that is not JSON itself (a truncated payload, a log line quoting a record)."""
    return [Leak(where, "field", m.group(1)) for m in KEY_RE.finditer(text)
            if identifier_field(m.group(1), 0 if m.group(2) else "")]


def strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for v in doc.values():
            yield from strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from strings(v)
    elif isinstance(doc, str):
        yield doc


def scan_record(where: str, raw: bytes, now_ms: int | None = None) -> list[Leak]:
    """A record (topic key or value, Redis key or member): its text, and its field names when it is JSON."""
    text = raw.decode("utf-8", errors="replace")
    leaks = scan_text(where, text, now_ms)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return leaks
    leaks += [Leak(where, "field", k) for k, v in field_names(doc) if identifier_field(k, v)]
    return leaks + [leak for text in strings(doc) for leak in quoted_fields(where, text)]


def scan(sources: Mapping[str, Iterable[bytes]], texts: Mapping[str, str] | None = None,
         now_ms: int | None = None) -> list[Leak]:
    """Every leak in records (per place: an iterable of raw records) and free texts (per place)."""
    out: list[Leak] = []
    for where, records in sources.items():
        for raw in records:
            out += scan_record(where, raw, now_ms)
    for where, text in (texts or {}).items():
        out += scan_text(where, text, now_ms)
    return out


# -- collecting what a running stack holds ---------------------------------------------------------------
async def all_topics(url: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(url))
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


async def _drain(url: str, topics: list[str], quiet_s: float, most_s: float) -> dict[str, list[bytes]]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap(url), auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: dict[str, list[bytes]] = {t: [] for t in topics}
    try:
        start = last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() - start < most_s:
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                for r in records:
                    out[tp.topic] += [r.key or b"", r.value or b""]
                last = time.monotonic()
    finally:
        await consumer.stop()
    return out


def drain(url: str, topics: list[str], quiet_s: float = 2.0, most_s: float = 15.0) -> dict[str, list[bytes]]:
    """Keys and values of every record of `topics`, per topic, read until nothing new came for `quiet_s` or
    `most_s` passed (clock ticks never stop; Tansu's end offsets are unreliable, so we cannot stop at them)."""
    return asyncio.run(_drain(url, topics, quiet_s, most_s))


def non_input_topics(url: str, inputs: Iterable[str]) -> list[str]:
    skip = set(inputs)
    return [t for t in asyncio.run(all_topics(url)) if t not in skip]


def redis_dump(r: redis.Redis) -> list[bytes]:
    """Every key and everything stored under it (strings, sorted sets, hashes, lists, sets, streams)."""
    out: list[bytes] = []
    for key in r.scan_iter(count=500):
        kind = r.type(key)
        out.append(key)
        if kind == b"string":
            out.append(r.get(key) or b"")
        elif kind == b"zset":
            out += r.zrange(key, 0, -1)
        elif kind == b"hash":
            for f, v in r.hgetall(key).items():
                out += [f, v]
        elif kind == b"list":
            out += r.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(r.smembers(key))
        elif kind == b"stream":
            for _id, fields in r.xrange(key):
                for f, v in fields.items():
                    out += [f, v]
        else:
            out.append(b"unknown type " + kind)
    return out


def start_stack(tmp: Path) -> Stack:
    """A broker and a store for a whole test module (the `stack` fixture's, module-wide)."""
    broker = embedded.start_broker(log=tmp / "broker.log")
    store = embedded.start_store(log=tmp / "store.log")
    return Stack(broker, store, tmp)


def stop_stack(s: Stack) -> None:
    for p in s.procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in s.procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    s.store.stop()
    s.broker.stop()


# -- the differencing attack: which unknowns do the published totals determine? --------------------------
def determined(rows: Sequence[Mapping[Any, int]], unknowns: Sequence[Any]) -> set[Any]:
    """The unknowns whose exact value follows from knowing every row's total, each row being `{unknown:
    coefficient}` (a published window, a sum over windows, …): those whose unit vector lies in the row space.

    Gauss–Jordan elimination in exact rationals to reduced row echelon form; in that form a unit vector e_j
    lies in the row space exactly when the row with pivot j is e_j itself.
    """
    col = {u: i for i, u in enumerate(unknowns)}
    matrix = [[Fraction(0)] * len(unknowns) for _ in rows]
    for r, row in zip(matrix, rows, strict=True):
        for u, c in row.items():
            r[col[u]] += c
    pivots: list[int] = []
    rank = 0
    for j in range(len(unknowns)):
        pivot = next((i for i in range(rank, len(matrix)) if matrix[i][j] != 0), None)
        if pivot is None:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        lead = matrix[rank][j]
        matrix[rank] = [v / lead for v in matrix[rank]]
        for i in range(len(matrix)):
            if i != rank and matrix[i][j] != 0:
                f = matrix[i][j]
                matrix[i] = [a - f * b for a, b in zip(matrix[i], matrix[rank], strict=True)]
        pivots.append(j)
        rank += 1
    out = set()
    for i, j in enumerate(pivots):
        if all(v == 0 for k, v in enumerate(matrix[i]) if k != j):
            out.add(unknowns[j])
    return out
