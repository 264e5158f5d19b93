"""Distinct cards per zone and window: `streams.pseudonyms.DistinctCounter` with one set per source and cell.

A cell is a sector or "all": one card paying in two sectors of a zone counts in each and once in "all".
"""

from __future__ import annotations

from streams.pseudonyms import DistinctCounter, WindowKey

__all__ = ["DistinctCards", "WindowKey"]


class DistinctCards(DistinctCounter):
    def add(self, source: str, zone_id: str, cells: tuple[str, ...], window_ms: int, card_ref: str,
            now_ms: int) -> None:
        """Count `card_ref` in the sets of `cells` (e.g. its sector and "all") of one zone and window."""
        self.count(zone_id, window_ms, card_ref, [(source, cell) for cell in cells], now_ms)

    def size(self, source: str, zone_id: str, cell: str, window_ms: int) -> int:
        """Distinct cards seen so far in one set."""
        return self.distinct(zone_id, window_ms, (source, cell))
