"""The window engine: counting, dedupe, watermark, idle advance, final windows (no I/O: a dict is the table)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.footfall import Reading
from streams.overlay import Overlay
from streams.windows import RECENT_CELLS, Cell, WindowConfig, WindowEngine

MIN = 60_000
W = 5 * MIN
CFG = WindowConfig(window_ms=W, grace_ms=2 * MIN, idle_ms=30_000, live_ms=15 * MIN, retention_ms=48 * 60 * MIN)
T0 = 1_795_785_000_000  # 2026-11-27 13:10 UTC, a window start
DAY = 86_400_000


def utc_calendar(zone: str, start: int) -> tuple[str, int]:
    """Days and slots in UTC: enough for the engine; local time has its own tests."""
    return str(start // DAY), (start % DAY) // W


def rd(sensor: str, minute: int, visitors: int, zone: str = "z1", minutes: int = 1) -> Reading:
    return Reading(sensor, zone, T0 + minute * MIN, minutes * MIN, visitors)


class Loop:
    """What the windows agent does per message, minus Kafka and Redis."""

    def __init__(self, cfg: WindowConfig = CFG) -> None:
        self.engine = WindowEngine(cfg, utc_calendar)
        self.state: dict[str, Any] = {}
        self.published: list[Cell] = []

    def data(self, ts: int, readings: list[Reading], partition: int = 0, source: str = "gw") -> None:
        self.engine.ingest(self.state, partition, source, ts, readings)
        self._close(partition, ts)

    def tick(self, ts: int, partition: int = 0) -> None:
        self.engine.tick(self.state, partition, ts)
        self._close(partition, ts)

    def _close(self, partition: int, ts: int) -> None:
        cells = self.engine.due(self.state, partition, ts)
        self.published += cells
        self.engine.finalize(self.state, partition, cells)


def test_counts_sum_per_window_and_sensor() -> None:
    loop = Loop()
    loop.data(T0 + 10 * MIN, [rd("a", 0, 5), rd("b", 0, 7), rd("a", 4, 1), rd("c", 5, 3)])
    w0 = loop.state[f"w|z1|{T0}"]
    assert w0["v"] == 13
    assert w0["s"] == {"a": 2 * MIN, "b": MIN}
    assert loop.state[f"w|z1|{T0 + W}"]["v"] == 3


@pytest.mark.parametrize(
    ("second", "expect_accepted", "expect_dup"),
    [
        (rd("a", 0, 5), 0, 1),  # the same reading again: counted once
        (rd("a", 0, 9), 0, 1),  # same (sensor, start) with another count: first one wins, no revision
        (rd("b", 0, 5), 1, 0),  # another sensor, same minute: new
        (rd("a", 1, 5), 1, 0),  # same sensor, next minute: new
        (rd("a", 0, 5, zone="z2"), 1, 0),  # a sensor id is unique in the registry; zone keeps keys apart
    ],
)
def test_dedupe(second: Reading, expect_accepted: int, expect_dup: int) -> None:
    loop = Loop()
    loop.data(T0, [rd("a", 0, 5)])
    res = loop.engine.ingest(loop.state, 0, "gw", T0, [second])
    assert (res.accepted, res.duplicates) == (expect_accepted, expect_dup)


def test_window_closes_when_sources_moved_on_and_grace_passed() -> None:
    loop = Loop()
    loop.data(T0 + 6 * MIN, [rd(s, m, 10) for m in range(5) for s in "abc"])
    assert loop.published == []  # the source has not moved past the window yet
    loop.data(T0 + 6 * MIN, [rd("a", 5, 1)])  # it has (a reading starts at the end), but grace runs to T0+7
    assert loop.published == []
    loop.data(T0 + 7 * MIN, [rd("b", 6, 1)])  # the log's clock reaches end + grace: closed
    assert loop.published == [Cell("z1", T0, T0 + W, 150, 3, 15 * MIN)]


def test_straggler_within_grace_still_counts() -> None:
    loop = Loop()
    loop.data(T0 + 5 * MIN, [rd(s, m, 10) for m in range(5) for s in "ab"] + [rd("a", 5, 1)])
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 6 * MIN, [rd("c", 4, 10)])  # a minute late: in grace
    assert res.accepted == 1
    loop.tick(T0 + 8 * MIN)
    assert loop.published[0].visitors == 110


def test_long_readings_split_over_messages_all_count() -> None:
    # an export of quarter-hours sent in several messages: readings that start together are never late
    loop = Loop()
    quarter = [rd(s, 0, 30, minutes=15) for s in "abc"]
    loop.data(T0 + 60 * MIN, quarter[:2])
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 60 * MIN, quarter[2:])
    assert (res.late, res.accepted) == (0, 1)
    loop.data(T0 + 60 * MIN, [rd(s, 15, 30, minutes=15) for s in "abc"])
    # 90 people over three 5-minute windows, closed once the next quarter starts (the log is past grace)
    assert [c.visitors for c in loop.published] == [30, 30, 30]


def test_watermark_never_passes_the_message_time() -> None:
    # one sensor with a clock an hour fast must not close everybody's windows
    loop = Loop()
    loop.data(T0 + MIN, [rd("a", 0, 5), rd("fast", 60, 5)])
    assert loop.engine.watermark(loop.state, 0) == T0 + MIN
    assert loop.published == []


@pytest.mark.parametrize(
    ("tick_at", "closes"),
    [
        (T0 + W + 2 * MIN - 1_000, False),  # idle (the source moved past the end by the clock), within grace
        (T0 + W + 2 * MIN, True),  # end + grace: closes
    ],
)
def test_idle_partition_advances_by_clock_ticks(tick_at: int, closes: bool) -> None:
    loop = Loop()
    loop.data(T0 + MIN, [rd(s, 0, 10) for s in "abc"])
    loop.tick(tick_at)
    assert bool(loop.published) is closes


def test_tick_does_not_advance_a_busy_partition() -> None:
    loop = Loop()
    loop.data(T0 + 20 * MIN, [rd("a", 0, 10)])  # data message at T0+20min, reading ends at T0+1min
    loop.tick(T0 + 20 * MIN + 29_000)  # not idle for 30 s yet
    assert loop.published == []
    loop.tick(T0 + 20 * MIN + 30_000)
    assert [c.start_ms for c in loop.published] == [T0]


def test_late_reading_goes_to_history_once_and_is_never_republished() -> None:
    loop = Loop()
    loop.data(T0 + MIN, [rd(s, 0, 10) for s in "abc"])
    loop.tick(T0 + 60 * MIN)
    assert len(loop.published) == 1
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 61 * MIN, [rd("a", 1, 4), rd("a", 1, 4)])
    assert (res.late, res.duplicates, res.accepted) == (1, 1, 0)
    loop.tick(T0 + 120 * MIN)
    assert len(loop.published) == 1  # P9: no second version
    assert loop.state[f"w|z1|{T0}"]["v"] == 34  # history has the late reading, once


@pytest.mark.parametrize(
    ("resent", "late", "dup"),
    [
        (rd("a", 0, 10), 0, 1),  # the first tag of the packed string
        (rd("b", 0, 10), 0, 1),  # a middle one
        (rd("c", 0, 10), 0, 1),  # the last
        (rd("a", 1, 10), 1, 0),  # the same sensor a minute later: new, so late
        (rd("ab", 0, 10), 1, 0),  # another sensor
    ],
)
def test_a_final_window_still_knows_its_readings(resent: Reading, late: int, dup: int) -> None:
    loop = Loop()
    loop.data(T0 + MIN, [rd(s, 0, 10) for s in "abc"])
    loop.tick(T0 + 60 * MIN)
    assert loop.state[f"w|z1|{T0}"]["k"] == {s: [[T0, 0, 1]] for s in "abc"}
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 61 * MIN, [resent])
    assert (res.late, res.duplicates) == (late, dup)
    again = loop.engine.ingest(loop.state, 0, "gw", T0 + 62 * MIN, [resent])
    assert (again.late, again.duplicates) == (0, 1)  # a late reading, once known, is a duplicate next time


@pytest.mark.parametrize("legacy", [[f"a@{T0}", f"b@{T0}"], f"a@{T0} b@{T0}"], ids=["open: a list", "final: a string"])
def test_window_state_written_with_tags_still_dedupes(legacy: list[str] | str) -> None:
    """A changelog written before runs held "sensor@start" tags: its windows still know their readings."""
    loop = Loop()
    loop.data(T0 + MIN, [rd("a", 0, 10), rd("b", 0, 10)])
    loop.state[f"w|z1|{T0}"] = loop.state[f"w|z1|{T0}"] | {"k": legacy}
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + MIN, [rd("a", 0, 10), rd("b", 0, 10), rd("c", 0, 10)])
    assert (res.accepted, res.duplicates) == (1, 2)
    assert loop.state[f"w|z1|{T0}"]["k"] == {s: [[T0, 0, 1]] for s in "abc"}


def test_one_second_readings_keep_one_run_per_sensor() -> None:
    """A window of one-second readings: state stays small (it was a tag per reading, rewritten every batch)."""
    loop = Loop()
    seconds = [Reading(s, "z1", T0 + 1000 * i, 1000, 1) for i in range(300) for s in "ab"]
    for i in range(0, 600, 50):
        loop.data(T0 + 1000 * (i // 2 + 25), seconds[i:i + 50])
    window = loop.state[f"w|z1|{T0}"]
    assert window["v"] == 600
    assert window["k"] == {s: [[T0, 1000, 300]] for s in "ab"}
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 301_000, seconds[100:110])
    assert res.duplicates == 10


def test_late_reading_for_a_window_that_never_had_data() -> None:
    loop = Loop()
    loop.data(T0 + 30 * MIN, [rd("a", 25, 1)])
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 30 * MIN, [rd("a", 0, 3)])
    assert res.late == 1
    loop.tick(T0 + 120 * MIN)
    assert [c.start_ms for c in loop.published] == [T0 + 25 * MIN]


def test_recent_keeps_the_newest_cells() -> None:
    loop = Loop()
    for m in range(400):
        loop.data(T0 + (m + 1) * MIN, [rd(s, m, 1) for s in "abc"])
    loop.tick(T0 + 500 * MIN)
    recent = loop.engine.recent(loop.state, "z1")
    assert len(loop.published) == 80
    assert [c.start_ms for c in recent] == [c.start_ms for c in loop.published[-RECENT_CELLS:]]


def test_expired_keys_only_final_of_own_zones_and_past_retention() -> None:
    engine = WindowEngine(CFG, utc_calendar)
    final, still_open = {"f": True}, {"f": False}
    state = {f"w|z1|{T0}": final, f"w|z2|{T0}": final, f"w|z1|{T0 + CFG.retention_ms}": final,
             f"w|z1|{T0 - W}": still_open, "p|0": {}, "r|z1": [], "d|z1|2020-01-01": {}, "d|z1|2026-11-27": {}}
    assert engine.expired(state, {"z1"}, T0 + CFG.retention_ms + 1) == [f"w|z1|{T0}", "d|z1|2020-01-01"]


def test_a_late_source_does_not_finalise_an_open_window() -> None:
    loop = Loop()
    loop.data(T0 + MIN, [rd(s, 0, 10) for s in "ab"], source="fast")
    loop.data(T0 + 60 * MIN, [rd("x", 30, 1)], source="slow")  # the slow source is far ahead…
    res = loop.engine.ingest(loop.state, 0, "slow", T0 + 60 * MIN, [rd("c", 0, 10)])  # …and sends window 0
    assert (res.accepted, res.late) == (1, 0)  # window 0 is open (the fast source), so it counts
    loop.tick(T0 + 120 * MIN)
    assert loop.published[0].visitors == 30


# -- properties --------------------------------------------------------------------------------------------

readings_st = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 40), st.integers(0, 50),
              st.sampled_from([1, 1, 1, 2, 7])),
    min_size=1, max_size=40, unique_by=lambda t: (t[0], t[1]),
)


@settings(max_examples=150, deadline=None)
@given(readings=readings_st, data=st.data())
def test_no_reading_lost_or_counted_twice(readings: list[tuple[str, int, int, int]], data: st.DataObject) -> None:
    """Any order, any duplication, any clock ticks: every person is in exactly one place, once.

    Each reading's people end up either in a published window or (late) in a final window's history; the
    sum over all window states equals the sum of distinct readings, and no window is published twice.
    """
    distinct = [rd(s, m, v, minutes=n) for s, m, v, n in readings]
    deliveries = data.draw(st.lists(st.sampled_from(distinct), min_size=len(distinct), max_size=3 * len(distinct)))
    deliveries += distinct  # every reading arrives at least once
    deliveries = data.draw(st.permutations(deliveries))
    loop = Loop()
    ts = T0
    for r in deliveries:
        ts += data.draw(st.integers(0, 3 * MIN))
        if data.draw(st.booleans()):
            loop.tick(ts)
        loop.data(ts, [r])
    loop.tick(ts + 10 * 60 * MIN)
    total = sum(r.visitors for r in distinct)
    in_state = sum(v["v"] for k, v in loop.state.items() if k.startswith("w|"))
    assert in_state == total
    starts = [(c.zone_id, c.start_ms) for c in loop.published]
    assert len(starts) == len(set(starts))
    assert all(v["f"] for k, v in loop.state.items() if k.startswith("w|"))


@settings(max_examples=100, deadline=None)
@given(readings=readings_st, data=st.data())
def test_in_order_delivery_publishes_everything(readings: list[tuple[str, int, int, int]], data: st.DataObject) -> None:
    """One-minute readings arriving in time order (within grace) are all published, none late."""
    distinct = sorted((rd(s, m, v) for s, m, v, _ in readings), key=lambda r: r.end_ms)
    loop = Loop()
    late = 0
    for r in distinct:
        late += loop.engine.ingest(loop.state, 0, "gw", r.end_ms, [r]).late
        loop.data(r.end_ms, [])
    loop.tick(distinct[-1].end_ms + 10 * 60 * MIN)
    assert late == 0
    assert sum(c.visitors for c in loop.published) == sum(r.visitors for r in distinct)


def test_a_replay_neither_closes_live_windows_nor_is_closed_by_them() -> None:
    loop = Loop()
    live_t = T0 + 600 * MIN
    loop.data(live_t, [rd(s, 590, 10) for s in "abc"], source="gw")  # live, ten hours after T0
    loop.data(live_t, [rd(s, 0, 10) for s in "abc"], source="replay")  # a replay of T0, same partition
    assert loop.published == []  # neither source has passed the other's windows by its own clock
    loop.data(live_t + 10 * MIN, [rd(s, 8, 10) for s in "abc"], source="replay")  # replay moves on
    assert [c.start_ms for c in loop.published] == [T0]  # its past window is published, the live one waits
    loop.data(live_t + 10 * MIN, [rd(s, 598, 10) for s in "abc"], source="gw")
    assert [c.start_ms for c in loop.published] == [T0, T0 + 590 * MIN]


def test_history_keeps_final_totals_and_remembers_forgotten_windows() -> None:
    loop = Loop()
    loop.data(T0 + MIN, [rd(s, 0, 10) for s in "abc"])
    loop.tick(T0 + 60 * MIN)
    date, slot = utc_calendar("z1", T0)
    assert loop.state[f"d|z1|{date}"] == {str(slot): [30, 3]}
    loop.engine.ingest(loop.state, 0, "gw", T0 + 61 * MIN, [rd("d", 1, 5)])  # late: history completed
    assert loop.state[f"d|z1|{date}"] == {str(slot): [35, 4]}
    del loop.state[f"w|z1|{T0}"]  # past retention
    res = loop.engine.ingest(loop.state, 0, "replay", T0 + 61 * MIN, [rd("e", 2, 5)])
    assert (res.untracked, res.accepted) == (1, 0)  # final once, so never reopened or republished
    loop.tick(T0 + 200 * MIN)
    assert len(loop.published) == 1


def test_silent_sources_are_forgotten_after_retention() -> None:
    loop = Loop()
    loop.data(T0 + MIN, [rd(s, 0, 10) for s in "abc"], source="old-gateway")
    loop.tick(T0 + CFG.retention_ms + 2 * MIN)  # closes its last window, which still waited for it
    assert len(loop.published) == 1
    loop.tick(T0 + CFG.retention_ms + 3 * MIN)
    assert loop.engine.partition(loop.state, 0)["wm"] == {}


# -- ticks vouch for input partitions (issue 6: a worker restarted, or another worker, must not make the sources
#    of unread input look idle) -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("inputs", "advances"),
    [
        (None, True),  # a tick that says nothing about inputs (written before ticks named them)
        ([1], True),  # its writer owns input partition 1 and has read all of it: the source is silent
        ([0, 2], False),  # another worker's partitions: the source may be waiting in unread input
        ([], False),  # its writer is still reading its input (or owns none)
    ],
)
def test_only_a_tick_vouching_for_the_sources_input_advances_it(inputs: list[int] | None, advances: bool) -> None:
    loop = Loop()
    loop.engine.ingest(loop.state, 0, "gw", T0 + MIN, [rd(s, 0, 10) for s in "abc"], input_partition=1)
    loop.engine.tick(loop.state, 0, T0 + 60 * MIN, inputs)
    assert (loop.engine.watermark(loop.state, 0) == T0 + 60 * MIN - CFG.idle_ms) is advances


def test_restart_with_a_backlog_closes_nothing_early() -> None:
    """The state sequence of a worker killed and restarted minutes later: the restored table, ticks of the
    restarted worker while it still reads the input it missed, then that input. Every reading counts live."""
    loop = Loop()
    loop.engine.ingest(loop.state, 0, "gw", T0 + MIN, [rd(s, 0, 10) for s in "abc"], input_partition=1)
    restored = dict(loop.state)  # what the changelog gives the next worker
    loop = Loop()
    loop.state = restored
    for t in range(10 * MIN, 12 * MIN, 500):  # restarted 10 minutes later; its ingest has not caught up yet
        loop.engine.tick(loop.state, 0, T0 + t, [])
        loop._close(0, T0 + t)
    assert loop.published == []
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 12 * MIN, [rd(s, m, 10) for m in range(1, 7) for s in "abc"],
                             input_partition=1)
    assert (res.accepted, res.late) == (18, 0)
    loop.engine.tick(loop.state, 0, T0 + 13 * MIN, [1])  # caught up now: its ticks vouch for partition 1
    loop._close(0, T0 + 13 * MIN)
    assert [c.visitors for c in loop.published] == [150, 60]


@settings(max_examples=150, deadline=None)
@given(readings=readings_st, data=st.data())
def test_a_crash_during_a_batch_write_back_republishes_the_same_windows(
        readings: list[tuple[str, int, int, int]], data: st.DataObject) -> None:
    """The worker applies a batch of messages through an overlay and writes its net changes back in
    `settle_order`; a crash can land any prefix of those writes before the batch is read again. Every window
    must then be published with the content of an undisturbed run, and a window published twice never differs.
    (With the partition record written first, a prefix holding it made readings of the batch late.)"""
    msgs: list[tuple[int, list[Reading]]] = []
    ts = T0
    for s, m, v, _ in sorted(readings, key=lambda t: t[1]):
        ts = max(ts, T0 + (m + 1) * MIN) + data.draw(st.integers(0, MIN))
        msgs.append((ts, [rd(s, m, v)]))
    msgs.append((ts + 60 * MIN, []))  # a tick that closes the rest

    def step(engine: WindowEngine, state: Any, msg: tuple[int, list[Reading]]) -> list[Cell]:
        at, batch = msg
        if batch:
            engine.ingest(state, 0, "gw", at, batch)
        else:
            engine.tick(state, 0, at)
        cells = engine.due(state, 0, at)
        engine.finalize(state, 0, cells)
        return cells

    undisturbed = Loop()
    first: dict[int, Cell] = {}
    for msg in msgs:
        for c in step(undisturbed.engine, undisturbed.state, msg):
            first[c.start_ms] = c

    engine = WindowEngine(CFG, utc_calendar)
    base: dict[str, Any] = {}
    start = data.draw(st.integers(0, len(msgs) - 1))
    end = data.draw(st.integers(start + 1, len(msgs)))
    published: dict[int, Cell] = {}

    def publish(cells: list[Cell]) -> None:
        for c in cells:
            assert published.setdefault(c.start_ms, c) == c, "a window published in two versions"

    for msg in msgs[:start]:
        publish(step(engine, base, msg))
    overlay = Overlay(base)
    for msg in msgs[start:end]:
        publish(step(engine, overlay, msg))
    writes, _ = overlay.changes()
    ordered = list(WindowEngine.settle_order(writes).items())
    base.update(ordered[:data.draw(st.integers(0, len(ordered)))])  # the crash: part of the batch landed
    for msg in msgs[start:]:  # read again from the last commit
        publish(step(engine, base, msg))
    assert published == first


def test_a_window_the_partition_forgot_to_list_reopens_on_a_resend() -> None:
    """A changelog restored in part may hold a window's state but not the partition's list of open windows: a
    resent reading of it puts it back on the list (counting nothing), so it still closes and is published."""
    loop = Loop()
    loop.data(T0 + MIN, [rd(s, 0, 10) for s in "abc"])
    pkey = next(k for k in loop.state if k.startswith("p|"))
    loop.state[pkey] = {**loop.state[pkey], "open": {}}  # the partition record as an older write left it
    res = loop.engine.ingest(loop.state, 0, "gw", T0 + 2 * MIN, [rd("a", 0, 10)])
    assert (res.accepted, res.duplicates) == (0, 1)
    assert loop.state[pkey]["open"] == {"z1": [T0]}
    loop.tick(T0 + 8 * MIN)
    assert loop.published == [Cell("z1", T0, T0 + W, 30, 3, 3 * MIN)]


def test_a_backlog_message_opens_each_window_once() -> None:
    """A message spanning hundreds of windows of a zone (a backlog) lists each once, in order."""
    loop = Loop()
    readings = [rd(s, m, 1) for m in range(0, 600, 3) for s in "abc"]
    loop.engine.ingest(loop.state, 0, "gw", T0, readings)  # the log's clock at the start: nothing closes yet
    pst = loop.state[next(k for k in loop.state if k.startswith("p|"))]
    assert pst["open"] == {"z1": [T0 + i * W for i in range(120)]}
