"""Busyness levels: a stable code, a number for ordering, labels in Dutch, French and English."""

from __future__ import annotations

from typing import Any

from streams.registry import Levels

LABELS: dict[str, dict[str, str]] = {
    "quiet": {"nl": "Rustig", "fr": "Calme", "en": "Quiet"},
    "normal": {"nl": "Normaal", "fr": "Normal", "en": "Normal"},
    "busy": {"nl": "Druk", "fr": "Animé", "en": "Busy"},
    "very_busy": {"nl": "Zeer druk", "fr": "Très animé", "en": "Very busy"},
    "unknown": {"nl": "Onbekend", "fr": "Inconnu", "en": "Unknown"},
    "closed": {"nl": "Gesloten", "fr": "Fermé", "en": "Closed"},
}
NUMBERS: dict[str, int | None] = {
    "quiet": 0, "normal": 1, "busy": 2, "very_busy": 3, "unknown": None, "closed": None,
}


def level(key: str) -> dict[str, Any]:
    """The level object of the live payload for a level key."""
    return {"key": key, "nr": NUMBERS[key], "label": dict(LABELS[key])}


def level_for_rate(per_hour: float, thresholds: Levels) -> str:
    """Level key for a flow of `per_hour` visitors per hour against a zone's thresholds."""
    if per_hour >= thresholds.very_busy:
        return "very_busy"
    if per_hour >= thresholds.busy:
        return "busy"
    if per_hour >= thresholds.normal:
        return "normal"
    return "quiet"
