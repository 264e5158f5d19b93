"""The spending path: ingest (validate, count distinct cards in memory, sum, regroup by zone) and cells
(keep sums per zone and window, close them on clock ticks, publish indices that pass the cell rules)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import faust
import orjson

import schemas
from agents.backlog import Backlog
from agents.footfall import send_rejection, wall_ms
from drukte.metrics import WorkerMetrics
from drukte.settings import Settings
from streams.cardcount import DistinctCards
from streams.masking import mask_text
from streams.payments import PaymentParser
from streams.registry import Registry
from streams.spending import (
    ALL,
    add_cards,
    add_totals,
    add_transactions,
    close_cell,
    empty_cell,
    record_late,
    sector_merchants,
    slot_for,
    spending_object,
    was_published,
)
from streams.spendingest import zone_records

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
LIVE_HORIZON_MS = 24 * HOUR_MS  # spending windows older than this are history, not news for the store
RETENTION_MS = 48 * HOUR_MS  # final cells kept this long for dedupe; older ones are judged from history


class SpendingTopics:
    def __init__(self, app: faust.App, settings: Settings, payments: faust.TopicT, spending: faust.TopicT,
                 rejected: faust.TopicT) -> None:
        self.payments, self.spending, self.rejected = payments, spending, rejected
        self.byzone = app.topic(f"{settings.app_id}-spending-byzone", partitions=settings.partitions,
                                internal=True, key_serializer="raw", value_serializer="raw")


class SpendingStore(Protocol):
    """What the spending path needs from the store (`agents.store.RedisStore` has it)."""

    async def publish_spending(self, objects: list[dict[str, Any]]) -> None: ...


class SpendingPath:
    """Wires `streams.payments`, `streams.cardcount` and `streams.spending` into two agents and a timer."""

    def __init__(self, app: faust.App, topics: SpendingTopics, settings: Settings, registry: Registry,
                 store: SpendingStore, metrics: WorkerMetrics, clock: Callable[[], int] = wall_ms) -> None:
        self.app, self.topics, self.registry, self.store, self.metrics = app, topics, registry, store, metrics
        self.clock = clock
        self.window_ms = settings.spend_window_s * 1000
        self.grace_ms = settings.spend_grace_s * 1000
        self.weeks = settings.baseline_weeks
        self.partitions = settings.partitions
        self.tick_ms = int(settings.tick_s * 1000)
        self.parser = PaymentParser(schemas.load("payments.v1"), registry, window_ms=self.window_ms,
                                    max_future_ms=settings.max_future_s * 1000)
        self.cards = DistinctCards(secrets.token_bytes)  # process memory only (P2, P3)
        self.backlog = Backlog(topics.payments.get_topic_name())
        self.data_ms = 0  # the newest payment time this process has read: the card sets' clock
        # zone-topic partition → input partition → newest tick that vouched for it (memory: ticks keep coming)
        self.vouched: dict[int, dict[int, int]] = {}
        self.merchants = {z: sector_merchants(registry, z) for z in registry.zones}
        self.table = app.Table("zone-spending", default=None, partitions=settings.partitions)
        app.agent(topics.payments, name="drukte.spending.ingest")(self.ingest)
        app.agent(topics.byzone, name="drukte.spending.cells")(self.cells)
        app.timer(settings.tick_s, name="drukte.spending.ticks")(self.ticks)

    async def ingest(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        topic = self.topics.payments.get_topic_name()
        async for event in stream.events():
            t0 = time.perf_counter()
            now = self.clock()
            self.backlog.processed(event.message.tp, event.message.offset)
            parsed = self.parser.parse(event.value, now)
            self.metrics.messages_in.labels(topic).inc()
            for rej in parsed.rejections:
                await send_rejection(self.topics.rejected, self.metrics, rej, event.message, now)
            self.metrics.payments_in.labels("totals").inc(len(parsed.totals))
            self.metrics.payments_in.labels("transactions").inc(len(parsed.transactions))
            if parsed.source is not None and parsed.batch_id is not None:
                self.data_ms = max([self.data_ms, *(min(t.ts_ms, now) for t in parsed.transactions)])
                records = zone_records(parsed, mask_text(parsed.source), mask_text(parsed.batch_id), self.window_ms,
                                       self.cards, now)
                for (zone_id, _start), rec in sorted(records.items()):
                    rec["p"] = event.message.partition  # the input partition a tick must vouch for
                    await self.topics.byzone.send(key=zone_id.encode(), value=orjson.dumps(rec), force=True)
            self.forget(now)
            self.metrics.batch_seconds.labels("payments").observe(time.perf_counter() - t0)
            yield None

    def forget(self, now: int) -> None:
        """P3: drop card sets and keys once their window is over by the data's own clock (the newest payment
        seen, so a backlog keeps its sets while it is read), or idle for a window length by the wall clock."""
        self.cards.forget(self.data_ms - self.window_ms - self.grace_ms + 1, now - max(self.window_ms, self.grace_ms))
        self.metrics.card_sets_open.set(self.cards.open_windows())

    def _part(self, partition: int) -> dict[str, Any]:
        state: dict[str, Any] | None = self.table.get(f"p|{partition}")
        return state if state is not None else {"open": [], "final": []}

    async def cells(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            t0 = time.perf_counter()
            msg = event.message
            doc = orjson.loads(event.value)
            if "tick" in doc:
                tick_ms = int(msg.timestamp * 1000)
                seen = self.vouched.setdefault(msg.partition, {})
                for p in doc.get("in", []):
                    seen[p] = max(seen.get(p, 0), tick_ms)
                await self.close_due(msg.partition, tick_ms)
            else:
                self.apply(bytes(event.key).decode(), msg.partition, doc)
            self.metrics.batch_seconds.labels("spending").observe(time.perf_counter() - t0)
            yield None

    def apply(self, zone_id: str, partition: int, rec: dict[str, Any]) -> None:
        start = int(rec["w"])
        key = f"s|{zone_id}|{start}"
        cell: dict[str, Any] | None = self.table.get(key)
        if cell is None:
            city = self.registry.city_of_zone[zone_id]
            slot = slot_for(start, city, self.window_ms)
            if was_published(self.table.get(f"h|{zone_id}|{ALL}"), slot, self.weeks):
                self.metrics.spend_late.labels("untracked").inc()
                return  # final and forgotten: cannot be deduplicated any more, so it is not counted
            cell = empty_cell()
        add_totals(cell, rec["t"])
        if rec["x"] and not add_transactions(cell, rec["b"], rec["x"]):
            self.metrics.spend_duplicates.inc()
        add_cards(cell, rec["s"], rec["c"])
        if "p" in rec and rec["p"] not in cell.setdefault("ps", []):
            cell["ps"].append(rec["p"])
        self.table[key] = cell
        if cell["f"]:
            # P9: a final cell is never republished; late payments only complete the usual's history
            self.metrics.spend_late.labels("history").inc()
            zone = self.registry.zones[zone_id]
            city = self.registry.city_of_zone[zone_id]
            slot = slot_for(start, city, self.window_ms)
            merchants = self.merchants[zone.id]
            hist = record_late(cell, merchants, self._histories(zone_id, merchants), slot, self.weeks)
            for sector, h in hist.items():
                self.table[f"h|{zone_id}|{sector}"] = h
            return
        part = self._part(partition)
        if key not in part["open"]:
            part["open"] = sorted([*part["open"], key], key=lambda k: int(k.rsplit("|", 1)[1]))
            self.table[f"p|{partition}"] = part

    def _histories(self, zone_id: str, merchants: dict[str, tuple[str, ...]]) -> dict[str, Any]:
        return {s: self.table.get(f"h|{zone_id}|{s}") for s in merchants}

    async def close_due(self, partition: int, tick_ms: int) -> None:
        """Close, publish and mark final every open cell of the partition whose end + grace has passed.

        Topic first (awaited), then the store, then final: a crash in between republishes the same cell."""
        part = self._part(partition)
        seen = self.vouched.get(partition, {})

        def over(key: str) -> bool:
            end = int(key.rsplit("|", 1)[1]) + self.window_ms + self.grace_ms
            inputs = self.table[key].get("ps", [])
            return end <= tick_ms and all(seen.get(p, 0) >= end for p in inputs)

        due = [k for k in part["open"] if over(k)]
        if due:
            newest = await self._publish(due)
            await self.store.publish_spending([obj for _start, obj in newest.values()])
            for zone_id, (start, _obj) in newest.items():
                self.table[f"l|{zone_id}"] = start
            for key in due:
                self.table[key] = {**self.table[key], "f": True}
            part["open"] = [k for k in part["open"] if k not in due]
            part["final"] = [*part.get("final", []), *due]
        hourly = tick_ms // HOUR_MS != (tick_ms - self.tick_ms) // HOUR_MS
        if hourly:
            part["final"] = self.purge(part.get("final", []), tick_ms)
        if due or hourly:  # a tick that changes nothing writes nothing to the changelog
            self.table[f"p|{partition}"] = part

    async def _publish(self, due: list[str]) -> dict[str, tuple[int, dict[str, Any]]]:
        """Publish the cells of `due` in time order; returns the newest object per zone newer than the store's."""
        newest: dict[str, tuple[int, dict[str, Any]]] = {}
        for key in due:
            _, zone_id, start_text = key.split("|")
            start = int(start_text)
            zone, city = self.registry.zones[zone_id], self.registry.city_of_zone[zone_id]
            merchants = self.merchants[zone_id]
            views, hist = close_cell(self.table[key], merchants, self._histories(zone_id, merchants),
                                     slot_for(start, city, self.window_ms), city.spending, self.weeks)
            obj = spending_object(zone, city, start, self.window_ms, views, city.spending)
            await (await self.topics.spending.send(key=zone_id.encode(), value=orjson.dumps(obj), force=True))
            for view in views:
                self.metrics.spend_cells.labels(view["reason"] or "published").inc()
            for sector, h in hist.items():
                self.table[f"h|{zone_id}|{sector}"] = h
            # the store shows what is current: a replayed past (older than a day) goes to the topic only
            recent = start + self.window_ms >= self.clock() - LIVE_HORIZON_MS
            if recent and self.table.get(f"l|{zone_id}", -1) <= start:
                newest[zone_id] = (start, obj)
        return newest

    def purge(self, final: list[str], now_ms: int) -> list[str]:
        """Forget final cells past retention (late dedupe and history completion need them only that long)."""
        cutoff = now_ms - RETENTION_MS - self.window_ms
        keep = []
        for key in final:
            if int(key.rsplit("|", 1)[1]) < cutoff:
                self.table.pop(key, None)
            else:
                keep.append(key)
        return keep

    async def ticks(self) -> None:
        """Clock ticks to every partition of the zone topic, vouching for the payments partitions this worker
        owns and has read to the end: a cell closes once every input partition it has data from is vouched for
        past its end + grace, so neither a backlog nor another worker's clock closes it early."""
        self.forget(self.clock())
        ready, _everything = await self.backlog.caught_up(self.app.consumer)
        tick = orjson.dumps({"tick": 1, "in": ready})
        for p in range(self.partitions):
            await self.topics.byzone.send(key=None, value=tick, partition=p, force=True)
