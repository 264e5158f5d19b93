"""Event-time tumbling windows per zone, a watermark per partition and source, grace, dedupe, final windows.

State lives in a `MutableMapping[str, JSON]` (a Faust table at the edge, a dict in tests), always written by
assignment so every change reaches the changelog. Keys:

    p|{partition}        {"wm": {source: ms}, "seen": {source: ms}, "open": {zone: [window starts]},
                          "zones": [zones seen], "in": {source: input partition its data came from}}
    w|{zone}|{start}     {"v": visitors, "s": {sensor: covered ms}, "k": {sensor: [[first, step, count], …]},
                          "f": final?, "src": [sources]}   (kept `retention` for dedupe; "k": the reading starts
                          taken, as runs, `streams.readingset`)
    r|{zone}             [[start, end, visitors, sensors, covered sensor-ms], …]   newest final cells
    d|{zone}|{date}      {slot: [visitors, sensors]}  every final window of a local day: the history that
                          baselines read, and the memory that a window was final after `w|` is gone

Time only comes in through arguments: reading times, and Kafka timestamps of data and clock ticks. Both are in
the log, so replaying the log after a crash closes the same windows at the same places.

Each source (a gateway or a replay; the worker passes "source|zone", as one gateway batch reaches the zones
as separate messages) has its own watermark: the newest reading *start* it sent, capped at the
message's timestamp (a sensor with a fast clock cannot close windows early). The start, not the end: a source
that sends quarter-hour or hourly readings spreads one interval over several messages, and readings that
begin together must all count, however long they are. A window `[s, s+W)` closes when every source that
contributed to it has a watermark ≥ `s + W` and the log's clock (message timestamps) has passed
`s + W + grace`, or when every such watermark is ≥ `s + W + grace` (a replay, far behind the clock). So a
replay of last year neither closes today's live windows early nor sees its own windows closed by the live
gateways, and it publishes the past windows that never existed. When a source sent nothing for `idle` ms, a
clock tick at T moves its watermark to `T - idle`: quiet sensors at night still close their windows. Only a tick
that vouches for the source's input partition may do so: the worker that writes it owns that partition and has
read all of it, so the source is really silent and not just waiting in unread input. A closed
window is final (P9): later readings for it are late, go to its history total once (deduplicated), and are
never published.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from streams import readingset
from streams.footfall import Reading
from streams.timegrid import apportion

State = MutableMapping[str, Any]
# (zone, window start) → (local date "YYYY-MM-DD", slot of the day) in the zone's city
Calendar = Callable[[str, int], tuple[str, int]]
HISTORY_DAYS = 400  # day histories kept: eight weeks of baselines with ample room, and a year of "was final"
RECENT_CELLS = 72  # newest final cells kept per zone: the live span and the forecast's 6-hour look-back


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
    untracked: int = 0  # late beyond retention: cannot be deduplicated, so not counted anywhere
    histories: list[tuple[str, str]] = field(default_factory=list)  # (zone, local date) whose history changed


@dataclass(frozen=True, slots=True)
class WindowConfig:
    window_ms: int
    grace_ms: int
    idle_ms: int
    live_ms: int
    retention_ms: int  # how long window states are kept for late dedupe


def _pkey(partition: int) -> str:
    return f"p|{partition}"


def _wkey(zone: str, start: int) -> str:
    return f"w|{zone}|{start}"


def history_key(zone: str, local_date: str) -> str:
    return f"d|{zone}|{local_date}"


def _zone_and_date(history: str) -> tuple[str, str]:
    """(zone, local date) of a `history_key`."""
    _, zone, local_date = history.split("|")
    return zone, local_date


class WindowEngine:
    def __init__(self, cfg: WindowConfig, calendar: Calendar) -> None:
        self.cfg = cfg
        self.calendar = calendar

    # -- reading ---------------------------------------------------------------------------------------
    def partition(self, state: State, partition: int) -> dict[str, Any]:
        pst = state.get(_pkey(partition))
        if pst is None:
            return {"wm": {}, "seen": {}, "open": {}, "zones": [], "in": {}}
        return {"wm": dict(pst["wm"]), "seen": dict(pst["seen"]), "open": {z: list(v) for z, v in pst["open"].items()},
                "zones": list(pst["zones"]), "in": dict(pst.get("in") or {})}

    def watermark(self, state: State, partition: int) -> int:
        """The partition's newest watermark over its sources (0 before any data)."""
        return max(self.partition(state, partition)["wm"].values(), default=0)

    def recent(self, state: State, zone: str) -> list[Cell]:
        return [Cell.from_row(zone, r) for r in state.get(f"r|{zone}") or []]

    def history(self, state: State, zone: str, local_date: str) -> dict[str, list[int]]:
        return dict(state.get(history_key(zone, local_date)) or {})

    # -- writing ---------------------------------------------------------------------------------------
    def ingest(self, state: State, partition: int, source: str, msg_ts_ms: int,
               readings: Iterable[Reading], input_partition: int | None = None) -> IngestResult:
        """Count readings into their windows: new ones once, re-sent ones not at all, late ones into history.

        `input_partition`: the partition of the input topic the readings were read from (see `tick`)."""
        cfg = self.cfg
        res = IngestResult()
        pst = self.partition(state, partition)
        wm = int(pst["wm"].get(source, 0))
        # sets while the message is counted: a backlog's message holds hundreds of open windows of a zone, and a
        # list scanned per reading grew with them; written back as sorted lists
        opened: dict[str, set[int]] = {z: set(starts) for z, starts in pst["open"].items()}
        touched: dict[str, dict[str, Any]] = {}
        histories: dict[str, dict[str, list[int]]] = {}
        max_start = 0

        def is_open(ws: dict[str, Any], zone: str, w: int) -> bool:
            return bool(ws["src"]) or w in opened.get(zone, ())

        for r in readings:
            max_start = max(max_start, r.start_ms)
            outcome = ""
            for w, people, overlap in apportion(r.start_ms, r.dur_ms, r.visitors, cfg.window_ms):
                key = _wkey(r.zone_id, w)
                ws = touched.get(key)
                if ws is None:
                    old = state.get(key)
                    if old is None and self._was_final(state, histories, r.zone_id, w):
                        outcome = outcome or "untracked"  # final and forgotten: cannot deduplicate
                        continue
                    ws = {"v": 0, "s": {}, "k": {}, "f": False, "src": []} if old is None else {
                        "v": old["v"], "s": dict(old["s"]), "k": readingset.from_state(old["k"]), "f": old["f"],
                        "src": list(old["src"])}
                if readingset.has(ws["k"], r.sensor_id, r.start_ms):
                    if not ws["f"]:  # a restored changelog may hold the window but not yet the partition's list of it
                        opened.setdefault(r.zone_id, set()).add(w)
                    outcome = outcome or "dup"
                    continue
                # late: the window is final, or it never opened and this source has already passed it; an
                # open window takes a reading even from a source that is behind (it cannot close without it)
                final = ws["f"] or (not is_open(ws, r.zone_id, w) and self._closed(w, [wm], msg_ts_ms))
                ws["v"] += people
                ws["s"][r.sensor_id] = ws["s"].get(r.sensor_id, 0) + overlap
                readingset.add(ws["k"], r.sensor_id, r.start_ms)
                if final:
                    ws["f"] = True
                    self._remember(state, histories, r.zone_id, w, ws)
                    outcome = "late" if outcome in ("", "dup", "untracked") else outcome
                else:
                    outcome = "new"
                    if source not in ws["src"]:
                        ws["src"].append(source)
                    opened.setdefault(r.zone_id, set()).add(w)
                touched[key] = ws
            if outcome == "new":
                res.accepted += 1
            elif outcome == "late":
                res.late += 1
            elif outcome == "untracked":
                res.untracked += 1
            else:
                res.duplicates += 1
        for key, ws in touched.items():
            state[key] = ws
        for key, hist in histories.items():
            state[key] = hist
            res.histories.append(_zone_and_date(key))
        pst["wm"][source] = max(wm, min(max_start, msg_ts_ms))
        pst["seen"][source] = max(int(pst["seen"].get(source, 0)), msg_ts_ms)
        if input_partition is not None:
            pst["in"][source] = input_partition
        pst["open"] = {z: sorted(v) for z, v in opened.items() if v}
        pst["zones"] = sorted(set(pst["zones"]) | {k.split("|")[1] for k in touched})
        state[_pkey(partition)] = pst
        return res

    def tick(self, state: State, partition: int, tick_ts_ms: int, inputs: Collection[int] | None = None) -> None:
        """A clock tick: advance the watermark of every source that has been idle for `idle` ms, and forget
        sources silent for longer than retention that no open window waits for.

        `inputs`: the input partitions the tick's writer owns and has read up to their end. Only sources whose
        data came from one of them are idle for sure; a source of another partition may be waiting in input
        nobody has read yet (its worker is down, restarting or catching up), and is left alone. None (a tick
        that says nothing about inputs) vouches for every source."""
        cfg = self.cfg
        pst = self.partition(state, partition)
        changed = False
        waiting = {s for z, starts in pst["open"].items() for w in starts
                   for s in (state.get(_wkey(z, w)) or {}).get("src", [])}
        for src, seen in list(pst["seen"].items()):
            vouched = inputs is None or src not in pst["in"] or pst["in"][src] in inputs
            if (vouched and tick_ts_ms - seen >= cfg.idle_ms
                    and tick_ts_ms - cfg.idle_ms > pst["wm"].get(src, 0)):
                pst["wm"][src] = tick_ts_ms - cfg.idle_ms
                changed = True
            if tick_ts_ms - seen > cfg.retention_ms and src not in waiting:
                del pst["seen"][src]
                pst["wm"].pop(src, None)
                pst["in"].pop(src, None)
                changed = True
        if changed:
            state[_pkey(partition)] = pst

    def _closed(self, start: int, wms: list[int], now_ms: int) -> bool:
        """Is the window at `start` closed for sources at watermarks `wms`, at log time `now_ms`?

        Every source has moved past the window's end (its readings come in start order) and the log's clock
        has passed end + grace, the time stragglers get; or, for replays far behind the clock, every source
        has moved past end + grace in event time."""
        end = start + self.cfg.window_ms
        grace = self.cfg.grace_ms
        return all(wm >= end + grace for wm in wms) or (now_ms >= end + grace and all(wm >= end for wm in wms))

    def due(self, state: State, partition: int, now_ms: int) -> list[Cell]:
        """Windows of this partition that are closed at log time `now_ms` (see `_closed`), oldest first;
        not yet marked final."""
        cfg = self.cfg
        pst = self.partition(state, partition)
        wms: dict[str, int] = pst["wm"]
        cells = []
        for zone, starts in pst["open"].items():
            for s in starts:
                ws = state.get(_wkey(zone, s))
                if ws is None:
                    continue
                if self._closed(s, [wms.get(src, 0) for src in ws["src"]], now_ms):
                    cells.append(Cell(zone, s, s + cfg.window_ms, int(ws["v"]), len(ws["s"]),
                                      sum(ws["s"].values())))
        cells.sort(key=lambda c: (c.start_ms, c.zone_id))
        return cells

    def recent_with(self, state: State, zone: str, cells: list[Cell]) -> list[Cell]:
        """The zone's newest final cells after adding `cells`, oldest first (at most RECENT_CELLS)."""
        return [Cell.from_row(zone, row) for row in self._recent_rows(state, zone, cells)]

    def newest_start(self, state: State, zone: str, cells: list[Cell]) -> int | None:
        """The start of the zone's newest final cell after adding `cells` (`recent_with(…)[-1]`, without it)."""
        rows = state.get(f"r|{zone}") or []
        starts = [c.start_ms for c in cells if c.zone_id == zone] + ([rows[-1][0]] if rows else [])
        return max(starts, default=None)

    def _recent_rows(self, state: State, zone: str, cells: list[Cell]) -> list[list[int]]:
        by_start = {row[0]: row for row in state.get(f"r|{zone}") or []}
        by_start.update({c.start_ms: c.row() for c in cells if c.zone_id == zone})
        return [by_start[s] for s in sorted(by_start)[-RECENT_CELLS:]]

    def finalize(self, state: State, partition: int, cells: list[Cell]) -> list[tuple[str, str]]:
        """Mark published cells final, so they are never published again (P9), and record their history.
        Returns the (zone, local date) pairs whose history changed."""
        if not cells:
            return []
        pst = self.partition(state, partition)
        open_ = pst["open"]
        histories: dict[str, dict[str, list[int]]] = {}
        for zone in sorted({c.zone_id for c in cells}):
            state[f"r|{zone}"] = self._recent_rows(state, zone, cells)
        for c in cells:
            key = _wkey(c.zone_id, c.start_ms)
            ws = dict(state[key])
            ws["f"] = True
            state[key] = ws
            self._remember(state, histories, c.zone_id, c.start_ms, ws)
            if c.start_ms in open_.get(c.zone_id, []):
                open_[c.zone_id].remove(c.start_ms)
        for key, hist in histories.items():
            state[key] = hist
        pst["open"] = {z: v for z, v in open_.items() if v}
        state[_pkey(partition)] = pst
        return [_zone_and_date(key) for key in histories]

    def expired(self, state: State, zones: set[str], wm: int) -> list[str]:
        """Keys of `zones` to forget: final window states older than retention (their totals live on in the
        `d|` history), and day histories older than `HISTORY_DAYS` (past any baseline's reach)."""
        out = []
        oldest_day = _utc_date(wm - HISTORY_DAYS * 86_400_000)
        for key in list(state.keys()):
            kind, zone, rest = [*key.split("|"), "", ""][:3]
            if zone not in zones:
                continue
            old_final = kind == "w" and int(rest) + self.cfg.retention_ms < wm and (state.get(key) or {}).get("f")
            if old_final or (kind == "d" and rest < oldest_day):
                out.append(key)
        return out

    def restore(self, state: State, zone: str, rows: Iterable[list[int]]) -> int:
        """Fill the zone's day history from published windows `[start, visitors, sensors]` (a rebuild after the
        table was lost): only slots it lacks, never over a count this worker made. Returns the slots filled."""
        histories: dict[str, dict[str, list[int]]] = {}
        filled = 0
        for start, visitors, sensors in rows:
            date, slot = self.calendar(zone, start)
            key = history_key(zone, date)
            hist = histories.get(key)
            if hist is None:
                hist = histories[key] = self.history(state, zone, date)
            if str(slot) not in hist:
                hist[str(slot)] = [int(visitors), int(sensors)]
                filled += 1
        for key, hist in histories.items():
            state[key] = hist
        return filled

    @staticmethod
    def settle_order(writes: dict[str, Any]) -> dict[str, Any]:
        """A batch's writes in the order that keeps every prefix of them safe: the partition records last.

        A crash can land part of a batch's writes in the changelog, and the batch's messages are then read again
        on top of them. Window states and histories without their partition record are harmless: readings they
        hold count as duplicates, a window they mark final is closed again from the old open list with the same
        content. A partition record without its windows is not: its watermarks would be past readings the
        windows never got, and those would count as late (seen as a window republished short after a kill)."""
        return dict(sorted(writes.items(), key=lambda kv: kv[0].startswith("p|")))

    # -- history -----------------------------------------------------------------------------------------
    def _was_final(self, state: State, cache: dict[str, dict[str, list[int]]], zone: str, start: int) -> bool:
        date, slot = self.calendar(zone, start)
        key = history_key(zone, date)
        hist = cache.get(key)
        if hist is None:
            hist = self.history(state, zone, date)
        return str(slot) in hist

    def _remember(self, state: State, cache: dict[str, dict[str, list[int]]], zone: str, start: int,
                  ws: dict[str, Any]) -> None:
        date, slot = self.calendar(zone, start)
        key = history_key(zone, date)
        hist = cache.get(key)
        if hist is None:
            hist = self.history(state, zone, date)
            cache[key] = hist
        hist[str(slot)] = [int(ws["v"]), len(ws["s"])]


def _utc_date(ms: int) -> str:
    days = ms // 86_400_000
    return (date(1970, 1, 1) + timedelta(days=days)).isoformat()
