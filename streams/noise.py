"""Differential privacy for published footfall (P10): discrete Laplace noise per window, a daily budget per zone.

For a city whose registry entry has `privacy: {dp: …}`, every final zone window that would be published gets one
noisy count, drawn once: `exact + Z` with Z discrete-Laplace of scale `1/ε` (sensitivity 1: adding or removing one
passage changes a window's count by 1). Everything published about the window (the P6 decision, level, index,
score, visitors range, the /live sums, the forecast's recent values) is computed from that noisy count only,
and so are the baselines that later windows are compared with (`history`).

Each draw spends ε from the zone's budget for the window's local day (`daily_budget`); once the next draw would
exceed it, the zone's windows carry no number for the rest of that day (`withheld`). Windows with too few sensors
(P7) are published without numbers anyway, so they draw nothing and spend nothing.

State lives in the footfall table (`streams.windows` layout, written by assignment so it reaches the changelog):

    n|{zone}|{start}   [noisy count or null, budget left in µε after the window, ε in µε]  one per published
                       window, so a window republished after a crash carries the same values (P9), even if
                       the registry's ε changed in between; kept 48 h
    b|{zone}|{date}    µε spent on the zone's local day (integers: no rounding drift; autumn's repeated hour
                       belongs to the same day); kept 400 days
    h|{zone}|{day}     {slot: noisy count} of the windows that drew, per history day key (`d|`'s `day`, `date.2`
                       included): the noisy twin of the `d|` history, so usual bands, the weekly peak, the usual
                       day curve and last week's forecast read published (noisy) counts only (`history`); kept
                       400 days

The random draw is injected (`Draw`), so tests are deterministic; production uses OpenDP's `make_laplace` over
`atom_domain(T=int)` with `absolute_distance(T=int)`, which samples with the operating system's secure randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from streams.registry import DpRules, Registry
from streams.windows import Calendar, Cell

State = MutableMapping[str, Any]
# (exact count, scale) → noisy count
Draw = Callable[[int, float], int]
SENSITIVITY = 1  # one passage changes one window's count by one
MICRO = 1_000_000  # budgets are kept in µε
NOISE_KEEP_MS = 48 * 3_600_000  # noisy counts kept this long (a republish, the /live span, the forecast's 6 h)
BUDGET_KEEP_DAYS = 400


@dataclass(frozen=True, slots=True)
class NoisyCell(Cell):
    """A final window as published under DP: `visitors` is the noisy count (0 when `withheld`)."""

    epsilon: float = 0.0
    budget_left: float = 0.0  # ε the zone has left on the window's local day, after this window
    withheld: bool = False  # no number: the day's budget is spent (or the window predates DP for the zone)


def scale_for(epsilon: float) -> float:
    """The Laplace scale that gives `epsilon`-DP for a count of sensitivity 1."""
    return SENSITIVITY / epsilon


def opendp_draw() -> Draw:
    """The production draw: OpenDP's discrete Laplace (`make_laplace` on integers), one measurement per scale."""
    import opendp.prelude as dp  # a heavy import, only where noise is really drawn

    dp.enable_features("contrib")
    measurements: dict[float, Any] = {}

    def draw(exact: int, scale: float) -> int:
        m = measurements.get(scale)
        if m is None:
            m = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
            measurements[scale] = m
        return int(m(exact))

    return draw


def is_noise_key(key: str) -> bool:
    """Is `key` one of this module's records (drawn count, budget spent, noisy history)? A batch writes them to
    the changelog before it publishes the windows they serve (P9)."""
    return key[:2] in ("n|", "b|", "h|")


def noise_key(zone: str, start_ms: int) -> str:
    return f"n|{zone}|{start_ms}"


def budget_key(zone: str, local_date: str) -> str:
    return f"b|{zone}|{local_date}"


def history_key(zone: str, day: str) -> str:
    return f"h|{zone}|{day}"


def micro(eps: float) -> int:
    return round(eps * MICRO)


class Noise:
    """Turns exact final cells of DP cities into `NoisyCell`s, drawing each window's noise once."""

    def __init__(self, rules: Mapping[str, DpRules], calendar: Calendar, min_sensors: int,
                 draw: Draw | None = None) -> None:
        self.rules = dict(rules)  # zone id → its city's DP rules; zones absent here get no noise
        self.calendar = calendar
        self.min_sensors = min_sensors
        # the production draw is built here for DP cities (OpenDP's import is slow: not on the first window's
        # publish), never for a worker without them
        self._draw_fn: Draw | None = draw if draw is not None or not self.rules else opendp_draw()

    @classmethod
    def for_registry(cls, registry: Registry, calendar: Calendar, min_sensors: int,
                     draw: Draw | None = None) -> Noise:
        rules = {z.id: c.dp for c in registry.cities if c.dp is not None for z in c.zones}
        return cls(rules, calendar, min_sensors, draw)

    def draw(self, exact: int, scale: float) -> int:
        if self._draw_fn is None:
            self._draw_fn = opendp_draw()
        return self._draw_fn(exact, scale)

    def day(self, zone: str, start_ms: int) -> str:
        """The local date whose budget a window spends from (the repeated autumn hour's `date.2` is that date)."""
        return self.calendar(zone, start_ms)[0].split(".")[0]

    def publishable(self, state: State, cells: list[Cell]) -> tuple[list[Cell], bool]:
        """`cells` as they may be published: unchanged for zones without DP, noisy for the others.

        A window seen for the first time draws its noise (if it has enough sensors and the day's budget allows)
        and records it; a window seen again (republished after a crash) reads its record back. The flag says
        whether anything was recorded: the caller must get those writes into the changelog before it publishes,
        or a crash could publish a second version (P9).
        """
        out: list[Cell] = []
        wrote = False
        oldest: dict[str, int] = {}  # per zone, the oldest window of this batch: nothing of the batch is forgotten
        for c in cells:
            oldest[c.zone_id] = min(oldest.get(c.zone_id, c.start_ms), c.start_ms)
        for c in cells:
            rules = self.rules.get(c.zone_id)
            if rules is None:
                out.append(c)
                continue
            key = noise_key(c.zone_id, c.start_ms)
            rec = state.get(key)
            if rec is None:
                self._forget(state, c.zone_id, c.start_ms, oldest[c.zone_id])
                rec = self._record(state, c, rules)
                state[key] = rec
                wrote = True
            out.append(_noisy(c, rec, rules))
        return out, wrote

    def recall(self, state: State, cells: list[Cell]) -> list[Cell]:
        """Past cells (a zone's recent windows) as they were published: their recorded noisy count, or withheld
        when none was recorded (published before DP was switched on, or forgotten). Never draws."""
        out: list[Cell] = []
        for c in cells:
            rules = self.rules.get(c.zone_id)
            if rules is None or isinstance(c, NoisyCell):
                out.append(c)
                continue
            rec = state.get(noise_key(c.zone_id, c.start_ms))
            out.append(_noisy(c, rec if rec is not None else [None, 0, micro(rules.epsilon)], rules))
        return out

    def _record(self, state: State, c: Cell, rules: DpRules) -> list[int | None]:
        """Spend ε and draw, or not; the record `n|` keeps."""
        bkey = budget_key(c.zone_id, self.day(c.zone_id, c.start_ms))
        spent = int(state.get(bkey) or 0)
        eps, budget = micro(rules.epsilon), micro(rules.daily_budget)
        if c.sensors < self.min_sensors or spent + eps > budget:
            return [None, budget - spent, eps]  # nothing to publish (P7) or nothing left to spend: no draw
        spent += eps
        state[bkey] = spent  # spent before the count is recorded: a crash in between overspends, never under
        noisy = self.draw(c.visitors, scale_for(rules.epsilon))
        day, slot = self.calendar(c.zone_id, c.start_ms)
        hkey = history_key(c.zone_id, day)
        state[hkey] = {**(state.get(hkey) or {}), str(slot): noisy}
        return [noisy, budget - spent, eps]

    def history(self, state: State, zone: str, day: str, exact: dict[str, list[int]]) -> dict[str, list[int]]:
        """The day history that baselines read (`streams.windows` `d|`: {slot: [visitors, sensors]}), for a DP
        zone with each window's published noisy count instead of its exact one. A window without a noisy count
        is left out (withheld by the budget, or published before DP was switched on), except those with too few
        sensors, which baselines skip anyway. Without DP: `exact` as it is."""
        if zone not in self.rules:
            return exact
        noisy = state.get(history_key(zone, day)) or {}
        out: dict[str, list[int]] = {}
        for slot, (_visitors, sensors) in exact.items():
            if noisy.get(slot) is not None:
                out[slot] = [int(noisy[slot]), sensors]
            elif sensors < self.min_sensors:
                out[slot] = [0, sensors]
        return out

    def _forget(self, state: State, zone: str, start_ms: int, oldest_ms: int) -> None:
        """When the window at `start_ms` is the zone's first of a new local day: drop the zone's noisy counts
        48 h older than `oldest_ms` (the batch's oldest window) and budgets 400 days older than the day (a scan of
        the table, once per zone and day)."""
        day = self.day(zone, start_ms)
        if state.get(budget_key(zone, day)) is not None:
            return
        state[budget_key(zone, day)] = 0  # the day has begun: scan once, even if it never draws
        oldest_day = (date.fromisoformat(day) - timedelta(days=BUDGET_KEEP_DAYS)).isoformat()
        for key in list(state.keys()):
            kind, kzone, rest = [*str(key).split("|"), "", ""][:3]
            if kzone != zone:
                continue
            if (kind == "n" and rest.lstrip("-").isdigit() and int(rest) < oldest_ms - NOISE_KEEP_MS) or (
                    kind in ("b", "h") and rest < oldest_day):
                del state[key]


def _noisy(c: Cell, rec: list[int | None], rules: DpRules) -> NoisyCell:
    value, left = rec[0], rec[1]
    eps = rec[2] / MICRO if len(rec) > 2 and rec[2] is not None else rules.epsilon
    return NoisyCell(c.zone_id, c.start_ms, c.end_ms, 0 if value is None else int(value), c.sensors, c.sensor_ms,
                     epsilon=eps, budget_left=round(int(left or 0) / MICRO, 6),
                     withheld=value is None)
