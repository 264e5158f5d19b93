"""Event-time tumbling windows per zone with a watermark per partition, grace, dedupe and final windows.

State lives in a `MutableMapping[str, JSON]` (a Faust table at the edge, a dict in tests), always written by
assignment so every change reaches the changelog. Keys:

    p|{partition}        {"wm": ms, "seen": ms, "open": {zone: [window starts]}, "zones": [zones seen]}
    w|{zone}|{start}     {"v": visitors, "s": {sensor: covered ms}, "k": ["sensor@start", …], "f": final?}
    r|{zone}             [[start, end, visitors, sensors reporting, covered sensor-ms], …] recent final cells

Time only comes in through arguments: reading times, and Kafka message timestamps of data and clock ticks.
Both are in the log, so replaying the log after a crash closes the same windows at the same places.

A window `[s, s+W)` closes when the partition watermark reaches `s + W + grace`. The watermark is the newest
reading end seen (capped at the message's timestamp, so one sensor with a fast clock cannot close everyone's
windows), and when no data arrived for `idle` ms, a clock tick at T moves it to `T - idle`: quiet sensors at
night still close their windows. A closed window is final (P9): later readings for it count as late, go to
its history total once (deduplicated), and are never published.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from streams.footfall import Reading
from streams.timegrid import apportion

State = MutableMapping[str, Any]


@dataclass(frozen=True, slots=True)
class Cell:
    """A final zone window with exact (internal, never published as is) figures."""

    zone_id: str
    start_ms: int
    end_ms: int
    visitors: int
    sensors: int
    sensor_ms: int

    def row(self) -> list[int]:
        return [self.start_ms, self.end_ms, self.visitors, self.sensors, self.sensor_ms]

    @classmethod
    def from_row(cls, zone_id: str, row: list[int]) -> Cell:
        return cls(zone_id, *row)


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    late: int = 0


@dataclass(frozen=True, slots=True)
class WindowConfig:
    window_ms: int
    grace_ms: int
    idle_ms: int
    live_ms: int
    retention_ms: int  # how long final windows are kept for late dedupe and history


def _pkey(partition: int) -> str:
    return f"p|{partition}"


def _wkey(zone: str, start: int) -> str:
    return f"w|{zone}|{start}"


class WindowEngine:
    def __init__(self, cfg: WindowConfig) -> None:
        self.cfg = cfg

    # -- reading ---------------------------------------------------------------------------------------
    def partition(self, state: State, partition: int) -> dict[str, Any]:
        return dict(state.get(_pkey(partition)) or {"wm": 0, "seen": 0, "open": {}, "zones": []})

    def watermark(self, state: State, partition: int) -> int:
        return int(self.partition(state, partition)["wm"])

    def recent(self, state: State, zone: str) -> list[Cell]:
        return [Cell.from_row(zone, r) for r in state.get(f"r|{zone}") or []]

    # -- writing ---------------------------------------------------------------------------------------
    def ingest(self, state: State, partition: int, msg_ts_ms: int, readings: Iterable[Reading]) -> IngestResult:
        """Count readings into their windows: new ones once, re-sent ones not at all, late ones into history."""
        cfg = self.cfg
        res = IngestResult()
        pst = self.partition(state, partition)
        wm = int(pst["wm"])
        open_: dict[str, list[int]] = {z: list(v) for z, v in pst["open"].items()}
        touched: dict[str, dict[str, Any]] = {}
        max_end = 0
        for r in readings:
            max_end = max(max_end, r.end_ms)
            tag = f"{r.sensor_id}@{r.start_ms}"
            new_any = dup_any = late_any = False
            for w, people, overlap in apportion(r.start_ms, r.dur_ms, r.visitors, cfg.window_ms):
                key = _wkey(r.zone_id, w)
                ws = touched.get(key)
                if ws is None:
                    old = state.get(key)
                    ws = {"v": 0, "s": {}, "k": [], "f": False} if old is None else {
                        "v": old["v"], "s": dict(old["s"]), "k": list(old["k"]), "f": old["f"]}
                if tag in ws["k"]:
                    dup_any = True
                    if not ws["f"] and w not in open_.setdefault(r.zone_id, []):
                        # a restored changelog may hold the window but not yet the partition's list of it
                        open_[r.zone_id].append(w)
                    continue
                final = ws["f"] or w + cfg.window_ms + cfg.grace_ms <= wm
                if final and w + cfg.retention_ms < wm:
                    late_any = True  # beyond retention: too old to deduplicate, so not kept
                    continue
                ws["v"] += people
                ws["s"][r.sensor_id] = ws["s"].get(r.sensor_id, 0) + overlap
                ws["k"].append(tag)
                if final:
                    ws["f"] = True
                    late_any = True
                else:
                    new_any = True
                    if w not in open_.setdefault(r.zone_id, []):
                        open_[r.zone_id].append(w)
                touched[key] = ws
            if new_any:
                res.accepted += 1
            elif late_any:
                res.late += 1
            elif dup_any:
                res.duplicates += 1
        for key, ws in touched.items():
            state[key] = ws
        pst["wm"] = max(wm, min(max_end, msg_ts_ms))
        pst["seen"] = max(int(pst["seen"]), msg_ts_ms)
        pst["open"] = {z: sorted(v) for z, v in open_.items() if v}
        pst["zones"] = sorted(set(pst.get("zones", [])) | {k.split("|")[1] for k in touched})
        state[_pkey(partition)] = pst
        return res

    def tick(self, state: State, partition: int, tick_ts_ms: int) -> None:
        """A clock tick: advance the watermark of a partition that has been idle for `idle` ms."""
        pst = self.partition(state, partition)
        if tick_ts_ms - int(pst["seen"]) >= self.cfg.idle_ms and tick_ts_ms - self.cfg.idle_ms > pst["wm"]:
            pst["wm"] = tick_ts_ms - self.cfg.idle_ms
            state[_pkey(partition)] = pst

    def due(self, state: State, partition: int) -> list[Cell]:
        """Windows of this partition that the watermark has closed, oldest first; not yet marked final."""
        cfg = self.cfg
        pst = self.partition(state, partition)
        wm = int(pst["wm"])
        cells = []
        for zone, starts in pst["open"].items():
            for s in starts:
                ws = state.get(_wkey(zone, s))
                if ws is not None and s + cfg.window_ms + cfg.grace_ms <= wm:
                    cells.append(Cell(zone, s, s + cfg.window_ms, int(ws["v"]), len(ws["s"]),
                                      sum(ws["s"].values())))
        cells.sort(key=lambda c: (c.start_ms, c.zone_id))
        return cells

    def recent_with(self, state: State, zone: str, cells: list[Cell]) -> list[Cell]:
        """The zone's final cells inside the live span after adding `cells`, oldest first."""
        by_start = {c.start_ms: c for c in self.recent(state, zone)}
        by_start.update({c.start_ms: c for c in cells if c.zone_id == zone})
        newest = max(by_start.values(), key=lambda c: c.end_ms).end_ms if by_start else 0
        return sorted((c for c in by_start.values() if c.start_ms >= newest - self.cfg.live_ms),
                      key=lambda c: c.start_ms)

    def finalize(self, state: State, partition: int, cells: list[Cell]) -> None:
        """Mark published cells final, so they are never published again (P9)."""
        if not cells:
            return
        pst = self.partition(state, partition)
        open_ = {z: list(v) for z, v in pst["open"].items()}
        for zone in sorted({c.zone_id for c in cells}):
            state[f"r|{zone}"] = [c.row() for c in self.recent_with(state, zone, cells)]
        for c in cells:
            key = _wkey(c.zone_id, c.start_ms)
            ws = dict(state[key])
            ws["f"] = True
            state[key] = ws
            if c.start_ms in open_.get(c.zone_id, []):
                open_[c.zone_id].remove(c.start_ms)
        pst["open"] = {z: v for z, v in open_.items() if v}
        state[_pkey(partition)] = pst

    def expired(self, keys: Iterable[str], zones: set[str], wm: int) -> list[str]:
        """Keys of final windows of `zones` older than retention: safe to delete."""
        out = []
        for key in keys:
            if key.startswith("w|"):
                _, zone, start = key.split("|")
                if zone in zones and int(start) + self.cfg.retention_ms < wm:
                    out.append(key)
        return out
