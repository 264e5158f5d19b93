"""Distinct things per zone and window, with keyed short-lived pseudonyms (PRIVACY.md P2, P3).

One counter serves payment cards (`card_ref`) and WiFi/BLE devices (a device address): an identifier is turned
into HMAC-SHA256(key, identifier) with a key made for one zone and one window, held in this object only. The
pseudonyms sit in named sets while the window is open; `forget` drops sets and keys once a window is past, and
only the integer sizes ever leave. The same card or phone gets unrelated pseudonyms in two zones or two windows,
so nothing here can link it across them, and neither the key nor the counter can be pickled, copied or printed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import NoReturn

SetName = tuple[str, ...]  # which set of a zone window, e.g. (source, sector) for cards, ("all",) for devices


class _ProcessOnly:
    """Refuses pickling, copying and deep-copying: what it holds must not leave the process (P2, P3)."""

    __slots__ = ()
    _refusal = "process memory only"

    def __reduce__(self) -> NoReturn:
        raise TypeError(self._refusal)

    def __copy__(self) -> NoReturn:
        self.__reduce__()

    def __deepcopy__(self, memo: object) -> NoReturn:
        self.__reduce__()


class WindowKey(_ProcessOnly):
    """An HMAC key that cannot leave the process: no pickling, no copying, no repr of its bytes."""

    __slots__ = ("_secret",)
    _refusal = "a window key is process memory only (P2); it cannot be pickled or serialised"

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            msg = "a window key needs at least 32 random bytes"
            raise ValueError(msg)
        self._secret = secret

    def pseudonym(self, ref: str) -> bytes:
        return hmac.new(self._secret, ref.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "WindowKey(<secret>)"


class DistinctCounter(_ProcessOnly):
    """Sets of pseudonyms per (zone, window start, set name); one key per (zone, window start), shared by the
    zone window's sets, so one identifier is one pseudonym in all of them and in none elsewhere.

    `new_secret` gives fresh random bytes (the worker passes `secrets.token_bytes`); injected so the core
    stays free of I/O and tests can be deterministic.
    """

    _refusal = "pseudonym sets are process memory only (P2, P3); they cannot be pickled or serialised"

    def __init__(self, new_secret: Callable[[int], bytes]) -> None:
        self._new_secret = new_secret
        self._keys: dict[tuple[str, int], WindowKey] = {}
        self._sets: dict[tuple[str, int, SetName], set[bytes]] = {}
        self._touched: dict[tuple[str, int], int] = {}  # (zone, window) → when an identifier was last added

    def key(self, zone_id: str, window_ms: int) -> WindowKey:
        k = self._keys.get((zone_id, window_ms))
        if k is None:
            k = self._keys[(zone_id, window_ms)] = WindowKey(self._new_secret(32))
        return k

    def count(self, zone_id: str, window_ms: int, ref: str, sets: Iterable[SetName], now_ms: int) -> None:
        """Count the identifier `ref` in the named `sets` of one zone and window."""
        pseudonym = self.key(zone_id, window_ms).pseudonym(ref)
        self._touched[(zone_id, window_ms)] = now_ms
        for name in sets:
            self._sets.setdefault((zone_id, window_ms, name), set()).add(pseudonym)

    def distinct(self, zone_id: str, window_ms: int, name: SetName) -> int:
        """Distinct identifiers seen so far in one set."""
        return len(self._sets.get((zone_id, window_ms, name), ()))

    def forget(self, before_ms: int, idle_before_ms: int) -> int:
        """Drop the keys and sets of windows starting before `before_ms` (closed by the data's own time), and
        of windows nobody added to since `idle_before_ms` (the data stopped). Returns how many sets went."""
        done = {zk for zk, touched in self._touched.items() if zk[1] < before_ms or touched < idle_before_ms}
        gone = [k for k in self._sets if (k[0], k[1]) in done]
        for k in gone:
            del self._sets[k]
        for zk in done:
            self._keys.pop(zk, None)
            del self._touched[zk]
        return len(gone)

    def open_windows(self) -> int:
        return len(self._keys)
