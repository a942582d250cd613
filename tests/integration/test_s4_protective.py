"""Protective orders against the venue simulator: FUT SL/TP brackets (placed on the first
fill, resized on more, replace-before-cancel, closed with the position), the SPOT OCO guardian,
and restarts in each state (a new container on the same store + venue: nothing lost, nothing
doubled). Manual clock; no sleeps."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from s4_router.adapters.exchange.base import (
    ConditionalOrder,
    ExchangeOrder,
    PlaceOrderRequest,
    RateLimited,
)
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.service_layer.protection import ProtectionService, doc_key
from svckit.clock import ManualClock
from svckit.errors import StoreUnavailable
from svckit.redisio import RedisClient
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tests.chaos.rig import T0, Rig, crash, hand_venue, print_at, s4_rig, set_book, step_all
from tradekit.enums import Market, OrderStatus, OrderType, Side

S = OrderStatus
SL = {"type": "STOP_MARKET", "price": "64000"}
TP_TARGET = {"type": "TAKE_PROFIT_MARKET", "target": "net_profit_usdt", "value": "2.0"}


def algos(r: Rig, *, open_only: bool = True) -> list[Any]:
    orders = r.venue.open_algo_orders("BTCUSDT") if open_only else []
    return sorted(orders, key=lambda a: a.algo_id)


def prot(r: Rig) -> ProtectionService:
    assert r.c.protection is not None
    return r.c.protection


async def state(r: Rig, coid: str = "c-1") -> dict[str, Any]:
    doc = await r.c.store.get("strategy_events", doc_key(coid))
    assert doc is not None
    return doc


async def test_fut_entry_with_sl_tp_places_stop_then_take_profit_sized_to_fill(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(sl=SL, tp=TP_TARGET, qty="0.002")
        assert out.response.status is S.FILLED, out.response
        live = algos(r)
        assert [(a.type, a.qty, a.reduce_only) for a in live] == [
            (OrderType.STOP_MARKET, D("0.002"), True),
            (OrderType.TAKE_PROFIT_MARKET, D("0.002"), True),
        ]
        assert [a.client_algo_id for a in live] == ["c-1-E60", "c-1-E61"]
        assert live[0].trigger_price == D("64000")
        # TP solved for 2 USDT net after both legs' taker fees.
        entry = D("65001")
        tp = live[1].trigger_price
        net = (
            D("0.002") * (tp - entry)
            - entry * D("0.002") * D("0.0004")
            - tp * D("0.002") * D("0.0004")
        )
        assert net >= D("2.0")
        pos = r.venue.futures_account.position("BTCUSDT")
        assert pos.qty == D("0.002")
        doc = await state(r)
        assert doc["active"] is True and doc["state"]["state"] == "PROTECTING"
        assert doc["state"]["protected_ms"] is not None
        kids = (await r.c.router.get("c-1") or {})["children"]
        assert {k["role"] for k in kids} >= {"STOP_LOSS", "TAKE_PROFIT"}
        assert "POSITION_PROTECTED" in await r.events("c-1")


class RecordingExchange(SimExchange):
    """The simulator adapter, noting every protective place / cancel in call order; optionally
    dying (`SimulatedCrash`) at the first conditional placement, before or after the venue took
    it."""

    def __init__(self, venue: Any, *, crash_on_conditional: str | None = None) -> None:
        super().__init__(venue)
        self.calls: list[tuple[str, str]] = []
        self.crash_on_conditional = crash_on_conditional

    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        if self.crash_on_conditional == "before_send":
            raise SimulatedCrash(req.client_order_id)
        self.calls.append(("place", req.client_order_id))
        out = await super().place_conditional(req)
        if self.crash_on_conditional == "after_accept":
            raise SimulatedCrash(req.client_order_id)
        return out

    async def cancel_conditional(
        self, symbol: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> ConditionalOrder:
        self.calls.append(("cancel", client_algo_id or ""))
        return await super().cancel_conditional(
            symbol, algo_id=algo_id, client_algo_id=client_algo_id
        )


class SimulatedCrash(Exception):
    pass


def open_algos(r: Rig) -> list[tuple[str, str, D]]:
    return [(a.client_algo_id, a.type.value, a.qty) for a in algos(r)]


async def test_fut_entry_with_partial_fills_resizes_brackets_placing_before_cancelling(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = RecordingExchange(venue)
    set_book(venue, asks=[("65001", "0.004")])  # one level, nothing behind it
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=ex) as r:
        await r.submit(sl=SL, tp={"type": "TAKE_PROFIT_MARKET", "price": "70000"}, qty="0.01")
        first = r.position()
        assert D(0) < first < D("0.01")
        assert open_algos(r) == [
            ("c-1-E60", "STOP_MARKET", first),
            ("c-1-E61", "TAKE_PROFIT_MARKET", first),
        ]
        set_book(venue)  # liquidity back: the execution takes the rest
        await r.until_done("c-1")
        await prot(r).step_all()
        assert r.position() == D("0.01")
        live = open_algos(r)
        assert [(t, q) for _, t, q in live] == [
            ("STOP_MARKET", D("0.01")),
            ("TAKE_PROFIT_MARKET", D("0.01")),
        ]
        superseded = [
            a for a in venue.algo.orders.values() if a.client_algo_id in ("c-1-E60", "c-1-E61")
        ]
        assert [a.status.value for a in superseded] == ["CANCELED", "CANCELED"]
        # Replace-before-cancel: each new order went out before its predecessor was cancelled.
        assert ex.calls.index(("place", "c-1-E62")) < ex.calls.index(("cancel", "c-1-E60"))
        assert ex.calls.index(("place", "c-1-E63")) < ex.calls.index(("cancel", "c-1-E61"))


async def test_fut_stop_triggered_closes_position_cancels_take_profit_and_books_exit_fill(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(sl=SL, tp=TP_TARGET)
        set_book(r.venue, bid="63900", ask="63902")
        r.venue.set_mark_price("BTCUSDT", D("63950"))
        await prot(r).step_all()
        assert r.position() == 0
        assert algos(r) == []  # the TP went with the position: nothing stale
        doc = await state(r)
        assert doc["active"] is False and doc["state"]["state"] == "CLOSED"
        fills = await r.c.store.find("fills", Query(where={"client_order_id": "c-1-E60"}))
        assert sum(D(f["qty"]) for f in fills) == D("0.002")
        assert "BRACKETS_CLOSED" in await r.events("c-1")
        # A later position on the symbol starts clean: no reduce-only order left behind.
        assert await r.c.store.count("strategy_events", {"kind": "PROTECTION", "active": True}) == 0


async def test_fut_position_closed_manually_cancels_both_brackets(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(sl=SL, tp=TP_TARGET)
        await r.submit(client_order_id="c-2", side="SELL", reduce_only=True, intent_id="i-2")
        assert r.position() == 0
        await prot(r).step_all()
        assert algos(r) == []
        assert (await state(r))["state"]["state"] == "CLOSED"


async def test_fut_brackets_with_breaker_open_still_place_and_cancel(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(sl=SL, tp=TP_TARGET)
        breaker = r.c.router.breaker
        for _ in range(50):
            breaker.record(r.clock.now_ms(), error=True)
        assert not breaker.allows_entry(r.clock.now_ms())
        await r.submit(client_order_id="c-2", side="SELL", reduce_only=True, intent_id="i-2")
        await prot(r).step_all()
        assert r.position() == 0 and algos(r) == []


@pytest.mark.parametrize("when", ["before_send", "after_accept", "protecting"])
async def test_restart_with_brackets_in_each_state_rearms_without_loss_or_duplicates(
    redis: RedisClient, tmp_path: Path, when: str
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        crashing = RecordingExchange(
            venue, crash_on_conditional=None if when == "protecting" else when
        )
        async with s4_rig(
            redis, tmp_path, clock=clock, venue=venue, store=store, exchange=crashing
        ) as r1:
            await r1.submit(sl=SL, tp=TP_TARGET)
            assert r1.position() == D("0.002")
            await crash(r1)
            prot(r1).active.clear()
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            assert await prot(r2).recover() == 1
            for _ in range(120):  # ≤ 6 s of manual time (recvWindow for a never-sent stop)
                if len(algos(r2)) == 2:
                    break
                clock.advance(50)
                await prot(r2).step_all()
            assert [(t, q) for _, t, q in open_algos(r2)] == [
                ("STOP_MARKET", D("0.002")),
                ("TAKE_PROFIT_MARKET", D("0.002")),
            ]
            ids = [a.client_algo_id for a in r2.venue.algo.orders.values()]
            assert len(ids) == len(set(ids)) == 2  # nothing doubled, same ids as before
            set_book(venue, bid="63900", ask="63902")
            venue.set_mark_price("BTCUSDT", D("63950"))
            await prot(r2).step_all()
            assert r2.position() == 0 and algos(r2) == []
    finally:
        await store.close()


OCO = {"type": "OCO", "tp_price": "67000", "sl_price": "64500"}


def spot_rig(redis: RedisClient, tmp_path: Path, clock: ManualClock) -> Any:
    venue = hand_venue(clock)
    set_book(venue, market=Market.SPOT)
    return s4_rig(redis, tmp_path, clock=clock, venue=venue, maker_max_wait_ms=0)


def spot_orders(r: Rig) -> dict[str, tuple[str, str]]:
    return {
        o.client_order_id: (o.type.value, o.status.value)
        for o in r.venue_orders("c-1-E6", Market.SPOT)
    }


async def oco_resolve(r: Rig) -> dict[str, Any]:
    doc = await r.c.store.get("strategy_events", "oco_resolve:c-1")
    assert doc is not None
    return doc


async def test_spot_oco_with_take_profit_filled_resolves_and_persists_fills(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    async with spot_rig(redis, tmp_path, clock) as r:
        out = await r.submit(market="SPOT", exec_policy=OCO)
        assert out.response.status is S.FILLED
        await prot(r).step_all()
        # No stand-alone spot stop on this venue: the TP rests, the SL is watched locally.
        assert spot_orders(r) == {"c-1-E60": ("LIMIT_MAKER", "ACCEPTED")}
        set_book(
            r.venue,
            market=Market.SPOT,
            bid="66990",
            ask="67010",
            prints=[print_at(clock, "67000", "1", Side.BUY)],
        )
        await prot(r).step_all()
        assert spot_orders(r) == {"c-1-E60": ("LIMIT_MAKER", "FILLED")}
        ev = await oco_resolve(r)
        assert ev["data"]["winner"] == "TP" and ev["data"]["state"] == "RESOLVED"
        assert "OCO_RESOLVE" in await r.events("c-1")
        fills = await r.c.store.find("fills", Query(where={"client_order_id": "c-1-E60"}))
        assert fills and all(f["role"] == "OCO_ABOVE" for f in fills)
        assert (await state(r))["active"] is False


async def test_spot_oco_with_stop_price_reached_cancels_resting_leg_then_exits(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    async with spot_rig(redis, tmp_path, clock) as r:
        await r.submit(market="SPOT", exec_policy=OCO)
        await prot(r).step_all()
        set_book(r.venue, market=Market.SPOT, bid="64400", ask="64402")
        await prot(r).step_all()
        orders = spot_orders(r)
        assert orders["c-1-E60"] == ("LIMIT_MAKER", "CANCELED")
        assert orders["c-1-E61"] == ("MARKET", "FILLED")
        ev = await oco_resolve(r)
        assert ev["data"]["winner"] == "SL"
        # 100% one leg executed, the other cancelled: nothing left open for the symbol.
        assert r.venue.open_orders(Market.SPOT, "BTCUSDT") == []


async def test_restart_with_spot_oco_armed_rearms_and_still_resolves_once(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    set_book(venue, market=Market.SPOT)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(
            redis, tmp_path, clock=clock, venue=venue, store=store, maker_max_wait_ms=0
        ) as r1:
            await r1.submit(market="SPOT", exec_policy=OCO)
            await crash(r1)
            prot(r1).active.clear()
        async with s4_rig(
            redis, tmp_path, clock=clock, venue=venue, store=store, maker_max_wait_ms=0
        ) as r2:
            assert await prot(r2).recover() == 1
            assert spot_orders(r2) == {"c-1-E60": ("LIMIT_MAKER", "ACCEPTED")}
            set_book(venue, market=Market.SPOT, bid="64400", ask="64402")
            await prot(r2).step_all()
            assert spot_orders(r2)["c-1-E61"] == ("MARKET", "FILLED")
            assert len(spot_orders(r2)) == 2
            assert await store.count("strategy_events", {"kind": "OCO_RESOLVE"}) == 1
    finally:
        await store.close()


class StopsRateLimited(SimExchange):
    """The venue answers 429 to every conditional order (another client of the account used up
    the minute's request weight) until `until_ms`."""

    def __init__(self, venue: Any, clock: ManualClock, until_ms: int) -> None:
        super().__init__(venue)
        self.clock, self.until_ms = clock, until_ms

    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        if self.clock.now_ms() < self.until_ms:
            raise RateLimited("429 Too Many Requests", retry_after=1.0, code=429)
        return await super().place_conditional(req)


async def test_a_filled_entry_whose_stop_the_venue_keeps_refusing_raises_position_unprotected(
    redis: RedisClient, tmp_path: Path
) -> None:
    """The stop cannot be placed while the venue rate-limits everyone: the position is naked
    through no fault of ours, and the desk must hear it once the configured bound has passed
    (S4_UNPROTECTED_ALERT_MS), not only when the stop is finally in place."""
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = StopsRateLimited(venue, clock, until_ms=T0 + 20_000)
    async with s4_rig(
        redis, tmp_path, clock=clock, venue=venue, exchange=ex, unprotected_alert_ms=5_000
    ) as r:
        out = await r.submit(sl=SL, tp=TP_TARGET)
        assert out.response.status is S.FILLED, out.response
        assert algos(r) == []
        # The entry filled at T0 (the submit's own stop retries moved the clock on since).
        while clock.now_ms() < T0 + 4_500:  # inside the bound: nothing yet
            clock.advance(250)
            await prot(r).step_all()
        assert "POSITION_UNPROTECTED" not in await r.alerts()
        while clock.now_ms() < T0 + 8_000:  # past 5 s: one alert, not one per poll
            clock.advance(250)
            await prot(r).step_all()
        assert (await r.alerts()).count("POSITION_UNPROTECTED") == 1
        alert = next(a for a in await r.stream("alerts") if a["kind"] == "POSITION_UNPROTECTED")
        assert "c-1" in alert["message"] and "no stop" in alert["message"], alert
        while clock.now_ms() < T0 + 25_000:  # the venue answers again: the stop goes in
            clock.advance(500)
            await prot(r).step_all()
        assert [a.type for a in algos(r)][:1] == [OrderType.STOP_MARKET]
        assert (await r.alerts()).count("POSITION_UNPROTECTED") == 1
        assert "POSITION_PROTECTED" in await r.events("c-1")


class AckedThenThrottled(SimExchange):
    """The venue acknowledges the MARKET entry as NEW (its fill follows, as on Binance USD-M),
    then answers 429 to everything else until `until_ms` (another client of the account used up
    its weight minute): S4 cannot learn of the fill, and no stop can be placed."""

    def __init__(self, venue: Any, clock: ManualClock, until_ms: int) -> None:
        super().__init__(venue)
        self.clock, self.until_ms = clock, until_ms
        self.throttled = False

    async def _call(self, fn: Any, *, submit: bool = False) -> Any:
        if self.throttled and self.clock.now_ms() < self.until_ms:
            raise RateLimited("429 Too Many Requests", retry_after=1.0, code=429)
        return await super()._call(fn, submit=submit)

    async def server_time_ms(self) -> int:
        return self.sim.server_time_ms()  # the clock probe is not throttled

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        order = await super().place_order(req)
        if req.type is OrderType.MARKET and not req.reduce_only:
            self.throttled = True
            return replace(order, status=S.NEW, filled_qty=D(0), avg_price=None, trades=())
        return order


async def test_a_market_entry_whose_outcome_the_venue_withholds_raises_position_unprotected(
    redis: RedisClient, tmp_path: Path
) -> None:
    """S4 cannot know whether the acknowledged MARKET entry filled (every query is refused),
    but a MARKET entry acknowledged seconds ago has almost surely filled, without its stop:
    the desk hears it past S4_UNPROTECTED_ALERT_MS, not a minute later when the venue answers."""
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = AckedThenThrottled(venue, clock, until_ms=T0 + 30_000)
    async with s4_rig(
        redis, tmp_path, clock=clock, venue=venue, exchange=ex, unprotected_alert_ms=5_000
    ) as r:
        out = await r.submit(sl=SL, tp=TP_TARGET)
        assert out.response.status is not S.FILLED, out.response  # S4 does not know yet
        assert r.venue_filled("c-1") == D("0.002")  # the venue filled it at T0
        while clock.now_ms() < T0 + 4_000:
            clock.advance(250)
            await prot(r).step_all()
        assert "POSITION_UNPROTECTED" not in await r.alerts()
        while clock.now_ms() < T0 + 8_000:
            clock.advance(250)
            await prot(r).step_all()
        assert (await r.alerts()).count("POSITION_UNPROTECTED") == 1
        alert = next(a for a in await r.stream("alerts") if a["kind"] == "POSITION_UNPROTECTED")
        assert "c-1" in alert["message"] and "outcome" in alert["message"], alert
        # The venue answers again: S4 learns of the fill, the stop goes in, and the naked time
        # it reports runs from the venue's fill (T0), not from when S4 heard of it.
        while clock.now_ms() < T0 + 40_000:
            clock.advance(500)
            await step_all(r.c.manager)
            await prot(r).step_all()
        assert [a.type for a in algos(r)][:1] == [OrderType.STOP_MARKET]
        protected = [
            e
            for e in await r.stream("router:events")
            if e["event"] == "POSITION_PROTECTED" and e["client_order_id"] == "c-1"
        ]
        assert len(protected) == 1, protected
        assert protected[0]["data"]["naked_ms"] >= 30_000, protected


async def test_a_stop_placed_late_after_a_crash_reports_protection_late(
    redis: RedisClient, tmp_path: Path
) -> None:
    """The replica driving a bracketed entry dies after the venue filled it; the one that takes
    over learns of the fill and places the stop in one step, 20 s late: nobody could say so
    while it lasted, so it is said once the stop is in (PROTECTION_LATE, from the venue's fill)."""
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = AckedThenThrottled(venue, clock, until_ms=T0 + 20_000)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(
            redis,
            tmp_path,
            clock=clock,
            venue=venue,
            exchange=ex,
            store=store,
            unprotected_alert_ms=5_000,
        ) as r:
            await r.submit(sl=SL, tp=TP_TARGET)
            await crash(r)  # before the bound: no alert from this replica
            prot(r).active.clear()
        assert r.venue_filled("c-1") == D("0.002")
        clock.advance(20_000)
        ex.throttled = False
        async with s4_rig(
            redis, tmp_path, clock=clock, venue=venue, store=store, unprotected_alert_ms=5_000
        ) as r2:
            await r2.c.router.recovery.recover()
            await step_all(r2.c.manager)  # the entry's fill is learnt first, then the stop
            await prot(r2).recover()
            for _ in range(20):
                clock.advance(500)
                await step_all(r2.c.manager)
                await prot(r2).step_all()
            assert [a.type for a in algos(r2)][:1] == [OrderType.STOP_MARKET]
            kinds = await r2.alerts()
            assert kinds.count("PROTECTION_LATE") == 1, kinds
            late = next(a for a in await r2.stream("alerts") if a["kind"] == "PROTECTION_LATE")
            assert "c-1" in late["message"] and "without a stop for 2" in late["message"], late
    finally:
        await store.close()


class OrderListingsFail(SqliteStore):
    """The store answers everything but the listing of live parent orders (a failing query,
    an overloaded shard): the execution half of the orphan sweep fails every round."""

    failing = False

    async def find(self, collection: str, query: Any = None) -> list[dict[str, Any]]:
        if (
            self.failing
            and collection == "orders"
            and query is not None
            and "status" in (query.where or {})
        ):
            raise StoreUnavailable("orders listing unavailable")
        return await super().find(collection, query)


async def test_orphan_sweep_rearms_protections_even_when_resuming_executions_fails(
    redis: RedisClient, tmp_path: Path
) -> None:
    """A replica died with a filled, protected bracket: the survivor's sweep must re-arm that
    protection although its other half (resuming executions) fails every round (chaos seed
    20261209: sweeps failing on Redis kills skipped the protections, whose stop then waited
    80 s)."""
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = OrderListingsFail(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r1:
            await r1.submit(sl=SL, tp=TP_TARGET)
            assert "c-1" in prot(r1).active
            await crash(r1)
            prot(r1).active.clear()
        store.failing = True
        async with s4_rig(
            redis, tmp_path, clock=clock, venue=venue, store=store, recovery_interval_ms=100
        ) as r2:
            stop = asyncio.Event()
            sweep = asyncio.create_task(r2.c._sweep(stop))
            try:
                for _ in range(50):
                    if "c-1" in prot(r2).active:
                        break
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await sweep
            assert "c-1" in prot(r2).active, "the failing execution half skipped the protections"
    finally:
        await store.close()
