"""Rebuilding day histories from published windows: the rows, and that a rebuild never overwrites."""

from __future__ import annotations

from typing import Any

import pytest

from streams.publication import visitors_range
from streams.rebuild import history_row
from streams.windows import WindowConfig, WindowEngine

W = 300_000
START = 1_795_785_000_000  # 2026-11-27 13:10 UTC
DAY = 86_400_000


def window(visitors: int | None, sensors: int = 4, seconds: int = 300, noise: str = "none") -> dict[str, Any]:
    return {"zone_id": "z1", "window": {"start": "2026-11-27T14:10:00+01:00", "seconds": seconds},
            "visitors": None if visitors is None else visitors_range(visitors),
            "quality": {"sensors_reporting": sensors}, "privacy": {"noise": noise}}


@pytest.mark.parametrize(("obj", "row"), [
    (window(233), [START, 235, 4]),           # the middle of 230-240
    (window(None), [START, 0, 4]),            # below k: counts as k_min / 2 in the bands
    (window(None, sensors=2), [START, 0, 2]),  # too few sensors: the bands skip it
])
def test_rows_of_published_windows(obj: dict[str, Any], row: list[int]) -> None:
    assert history_row(obj, W) == ("z1", row)


@pytest.mark.parametrize("obj", [window(100, seconds=900), window(100, noise="dp"), {"zone_id": "z1"}])
def test_what_cannot_be_restored(obj: dict[str, Any]) -> None:
    assert history_row(obj, W) is None


def test_restore_fills_only_missing_slots() -> None:
    engine = WindowEngine(WindowConfig(W, 120_000, 30_000, 900_000, 2 * DAY),
                          lambda zone, start: (str(start // DAY), (start % DAY) // W))
    state: dict[str, Any] = {}
    day, slot = str(START // DAY), str((START % DAY) // W)
    state[f"d|z1|{day}"] = {slot: [233, 4]}  # counted by this worker: exact
    filled = engine.restore(state, "z1", [[START, 235, 4], [START + W, 100, 4], [START + W, 999, 4]])
    assert filled == 1
    assert state[f"d|z1|{day}"] == {slot: [233, 4], str(int(slot) + 1): [100, 4]}
