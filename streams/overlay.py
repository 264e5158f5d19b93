"""A write-back view over a state mapping: a batch reads and writes it like the state itself, and its changes
reach the state once, at the end, one write per key however often the batch changed it.

The worker's state is a Faust table, where every assignment is a changelog record. A batch of a thousand
messages touches the same partition record and window records over and over; through an overlay each of them
costs one record per batch instead of one per message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

_GONE = object()


class Overlay(MutableMapping[str, Any]):
    """Reads through to `base` until a key is written or deleted here; `changes` hands over what to apply."""

    def __init__(self, base: Mapping[str, Any]) -> None:
        self._base = base
        self._changed: dict[str, Any] = {}  # key → new value, or _GONE when deleted

    def __getitem__(self, key: str) -> Any:
        value = self._changed.get(key, self)
        if value is self:
            return self._base[key]
        if value is _GONE:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._changed.get(key, self)
        if value is self:
            return self._base.get(key, default)
        return default if value is _GONE else value

    def __setitem__(self, key: str, value: Any) -> None:
        self._changed[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._changed[key] = _GONE

    def __contains__(self, key: object) -> bool:
        value = self._changed.get(key, self) if isinstance(key, str) else self
        return key in self._base if value is self else value is not _GONE

    def __iter__(self) -> Iterator[str]:
        for key in self._base:
            if self._changed.get(key, self) is not _GONE:
                yield key
        for key, value in self._changed.items():
            if value is not _GONE and key not in self._base:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """(keys to set with their values, keys to delete), each key once: the batch's net effect."""
        writes = {k: v for k, v in self._changed.items() if v is not _GONE}
        deletes = [k for k, v in self._changed.items() if v is _GONE and k in self._base]
        return writes, deletes
