"""Reconciliation (venue vs store) against the venue simulator: orphans reported and cancelled
only when configured, stale reduce-only orders of a flat position, a venue trade missing from
the store inserted once, and a consistent state that yields nothing. Manual clock; no sleeps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.adapters.orders_repo import StoreOrdersRepository
from s4_router.domain.reconcile import FindingKind
from s4_router.service_layer.reconciler import Reconciler
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from svckit.store.base import DocumentStore, Query
from tests.chaos.rig import T0, Rig, hand_venue, s4_rig, set_book
from tradekit.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from tradekit.orders import FillRecord

K = FindingKind
SL = {"type": "STOP_MARKET", "price": "64000"}
TP = {"type": "TAKE_PROFIT_MARKET", "price": "70000"}
OCO = {"type": "OCO", "tp_price": "67000", "sl_price": "64500"}


def rec(r: Rig) -> Reconciler:
    assert r.c.reconciler is not None
    return r.c.reconciler


async def kinds(r: Rig) -> list[str]:
    return [f.kind.value for f in (await rec(r).run_once()).findings]


@pytest.mark.parametrize("cancel", [False, True])
async def test_reconcile_with_order_placed_outside_s4_reports_orphan_and_cancels_only_if_set(
    redis: RedisClient, tmp_path: Path, cancel: bool
) -> None:
    async with s4_rig(redis, tmp_path, reconcile_cancel_orphans=cancel) as r:
        r.venue.place_order(
            Market.FUT,
            "BTCUSDT",
            Side.BUY,
            OrderType.LIMIT,
            D("0.001"),
            price=D("60000"),
            time_in_force=TimeInForce.GTC,
            client_order_id="manual-1",
        )
        report = await rec(r).run_once()
        assert [(f.kind, f.client_order_id) for f in report.findings] == [
            (K.ORPHAN_VENUE_ORDER, "manual-1")
        ]
        assert await r.alerts() == ["RECONCILE_ORPHAN_VENUE_ORDER"]
        still_open = [o.client_order_id for o in r.venue.open_orders(Market.FUT, "BTCUSDT")]
        assert still_open == ([] if cancel else ["manual-1"])
        assert report.cancelled == (1 if cancel else 0)
        # Reported once: a second run finds it again (when left open) but does not re-alert.
        await rec(r).run_once()
        assert await r.alerts() == ["RECONCILE_ORPHAN_VENUE_ORDER"]
        summary = await r.c.store.find("strategy_events", Query(where={"kind": "RECONCILE"}))
        assert summary and summary[0]["data"]["by_kind"] == {"ORPHAN_VENUE_ORDER": 1}


async def test_reconcile_with_reduce_only_conditional_and_flat_position_reports_stale_protective(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path, reconcile_cancel_orphans=True) as r:
        await r.submit(sl=SL, tp=TP)
        assert r.position() == D("0.002")
        assert len(r.venue.open_algo_orders("BTCUSDT")) == 2
        # The position is closed at the venue behind S4's back; the brackets stay.
        r.venue.place_order(
            Market.FUT,
            "BTCUSDT",
            Side.SELL,
            OrderType.MARKET,
            D("0.002"),
            reduce_only=True,
            client_order_id="manual-close",
        )
        assert r.position() == 0
        report = await rec(r).run_once()
        stale = sorted(
            f.client_order_id or "" for f in report.findings if f.kind is K.STALE_PROTECTIVE
        )
        assert stale == ["c-1-E60", "c-1-E61"]
        assert "RECONCILE_STALE_PROTECTIVE" in await r.alerts()
        assert r.venue.open_algo_orders("BTCUSDT") == []  # cancelled (setting on)
        # Our fills still net to the position we opened: the venue's flat one is flagged once
        # a second run finds it too (a single run may catch a fill half read).
        assert K.POSITION_MISMATCH not in {f.kind for f in report.findings}
        report = await rec(r).run_once()
        assert K.POSITION_MISMATCH in {f.kind for f in report.findings}


async def test_reconcile_with_venue_trade_missing_from_store_inserts_fill_once(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(qty="0.004")
        fills = await r.c.store.find("fills", Query(where={"parent_client_order_id": "c-1"}))
        assert fills
        lost = fills[0]
        assert await r.c.store.delete("fills", lost["_key"])
        assert K.MISSING_FILL.value in await kinds(r)
        assert await kinds(r) == []  # repaired: the second run finds nothing
        again = await r.c.store.find("fills", Query(where={"parent_client_order_id": "c-1"}))
        assert len(again) == len(fills)
        assert sorted((f["order_id"], f["trade_id"]) for f in again) == sorted(
            (f["order_id"], f["trade_id"]) for f in fills
        )
        assert (await r.alerts()).count("RECONCILE_MISSING_FILL") == 1


async def test_reconcile_with_consistent_fut_and_spot_state_yields_no_findings(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(1_700_000_000_000)
    venue = hand_venue(clock)
    set_book(venue, market=Market.SPOT)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, maker_max_wait_ms=0) as r:
        await r.submit(sl=SL, tp=TP)
        await r.submit(client_order_id="c-2", intent_id="i-2", market="SPOT", exec_policy=OCO)
        assert r.c.protection is not None
        await r.c.protection.step_all()
        clock.advance(10_000)
        assert await kinds(r) == []
        assert await r.alerts() == []
        health = await r.c.health()
        assert health.reconcile["findings"] == 0
        assert health.reconcile["last_ts"] == clock.now_ms()


async def test_reconcile_with_working_order_finished_at_venue_hands_drift_to_recovery(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(qty="0.004")
        # The store is made to lag: the child looks still working although the venue filled it.
        kids = await r.c.store.find("orders", Query(where={"parent_client_order_id": "c-1"}))
        child = kids[0]
        await r.c.store.update("orders", child["_key"], {"status": "ACCEPTED"})
        await r.c.store.update("orders", "c-1", {"status": "PARTIALLY_FILLED"})
        r.clock.advance(10_000)
        report = await rec(r).run_once()
        assert [(f.kind, f.client_order_id) for f in report.findings] == [
            (K.STATUS_DRIFT, child["client_order_id"])
        ]
        await r.until_done("c-1")
        doc = await r.c.store.get("orders", child["_key"])
        assert doc is not None and doc["status"] == OrderStatus.FILLED.value
        assert await kinds(r) == []


class BooksWhileReconciling(SimExchange):
    """While the reconciler fetches the venue's trades (after it read the store's orders), the
    execution finishes booking a fill: the child's record catches up with its fills."""

    def __init__(self, venue: Any) -> None:
        super().__init__(venue)
        self.catch_up: Callable[[], Awaitable[None]] | None = None

    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> Any:
        if self.catch_up is not None:
            catch_up, self.catch_up = self.catch_up, None
            await catch_up()
        return await super().fetch_my_trades(market, symbol, since_ms)


async def test_reconcile_does_not_report_a_fill_booked_while_it_read(
    redis: RedisClient, tmp_path: Path
) -> None:
    """The reconciler's snapshot is not atomic: an order read before its fill was booked and
    the venue's trades read after it disagree for a moment. That is not FILLED_QTY_MISMATCH
    (the soak raised it on every run under steady load); only a mismatch the order's current
    record still shows is."""
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = BooksWhileReconciling(venue)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=ex) as r:
        await r.submit(qty="0.004")
        kids = await r.c.store.find("orders", Query(where={"parent_client_order_id": "c-1"}))
        child = kids[0]
        booked = {k: child[k] for k in ("filled_qty", "avg_price", "updated_ts")}
        # The record as it was just before the booking's last write.
        await r.c.store.update("orders", child["_key"], {"filled_qty": "0", "avg_price": None})

        async def catch_up() -> None:
            clock.advance(1)
            await r.c.store.update(
                "orders", child["_key"], {**booked, "updated_ts": clock.now_ms()}
            )

        ex.catch_up = catch_up
        report = await rec(r).run_once()
        assert K.FILLED_QTY_MISMATCH not in {f.kind for f in report.findings}, report.findings
        assert "RECONCILE_FILLED_QTY_MISMATCH" not in await r.alerts()
        # A mismatch the record keeps is still reported.
        await r.c.store.update("orders", child["_key"], {"filled_qty": "0.001"})
        assert K.FILLED_QTY_MISMATCH.value in await kinds(r)


class CountsHistoryReads(StoreOrdersRepository):
    """The store's repository, counting the reads of a symbol's whole fill history."""

    def __init__(self, store: DocumentStore) -> None:
        super().__init__(store)
        self.history_reads = 0

    async def fills(self, *, sort: Any = None, **where: Any) -> list[FillRecord]:
        self.history_reads += "symbol" in where
        return await super().fills(sort=sort, **where)


async def test_reconcile_reads_a_symbols_fill_history_once_not_every_run(
    redis: RedisClient, tmp_path: Path
) -> None:
    """The position check nets every fill the symbol ever had. Read on every run (every 30 s)
    that history made each run's memory and time grow with every order S4 ever executed (the
    soak's S4 growth). It is read once; orders leaving the window fold their fills into it;
    a mismatch is still confirmed against the whole history before it is reported."""
    async with s4_rig(redis, tmp_path, reconcile_window_ms=60_000) as r:
        counting = CountsHistoryReads(r.c.store)
        rec(r).orders = counting
        for i in range(1, 6):  # BUY, SELL, BUY, SELL, BUY: +0.002 at the venue
            cid = f"c-{i}"
            await r.submit(
                client_order_id=cid, intent_id=f"i-{i}", side="SELL" if i % 2 == 0 else "BUY"
            )
            await r.until_done(cid)
        assert r.position() == D("0.002")
        assert await kinds(r) == []
        assert counting.history_reads == 1  # the first run reads the history
        r.clock.advance(61_000)  # c-1..c-5 leave the window: their fills fold into the history
        await r.submit(client_order_id="c-6", intent_id="i-6", side="SELL")
        await r.until_done("c-6")
        assert r.position() == D(0)
        assert await kinds(r) == []
        r.clock.advance(61_000)  # and c-6 too
        assert await kinds(r) == []
        assert counting.history_reads == 1
        # An old order comes back into the window (its fills are in the folded history too):
        # the doubled net is a suspicion, judged against the whole history, not reported.
        await r.c.store.update("orders", "c-1", {"updated_ts": r.clock.now_ms()})
        await r.submit(client_order_id="c-7", intent_id="i-7", side="BUY")
        await r.until_done("c-7")
        assert await kinds(r) == []
        assert counting.history_reads == 2
        r.clock.advance(61_000)  # c-1 and c-7 fold into the history: +0.002, as at the venue
        assert await kinds(r) == [] and counting.history_reads == 2
        # Behind S4's back the position changes: judged against the whole history read again,
        # and reported when the next run finds it too (one run can catch a fill half read).
        r.venue.place_order(Market.FUT, "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.003"))
        assert await kinds(r) == []
        assert counting.history_reads == 3
        report = await rec(r).run_once()
        assert [(f.kind, D(f.detail["venue"]), D(f.detail["fills"])) for f in report.findings] == [
            (K.POSITION_MISMATCH, D("0.005"), D("0.002"))
        ]
        assert counting.history_reads == 4
        assert await r.alerts() == ["RECONCILE_POSITION_MISMATCH"]


class CountsFillReads(StoreOrdersRepository):
    """The store's repository, counting the reads of orders' fills."""

    def __init__(self, store: DocumentStore) -> None:
        super().__init__(store)
        self.fill_reads = 0

    async def fills(self, *, sort: Any = None, **where: Any) -> list[FillRecord]:
        self.fill_reads += 1
        return await super().fills(sort=sort, **where)


async def test_reconcile_reads_only_the_orders_changed_since_its_last_run(
    redis: RedisClient, tmp_path: Path
) -> None:
    """Each run used to read the whole window again — every order updated in the last hour (up
    to 5,000, ~16 KB each while read) and the fills of each: a run's memory grew with the
    window (the soak's S4 RSS). The orders that did not change, and their fills, are kept from
    the run before as compact views; what changed is read, and judged as before."""
    async with s4_rig(redis, tmp_path) as r:
        counting = CountsFillReads(r.c.store)
        rec(r).orders = counting
        for i in range(1, 13):
            cid = f"c-{i}"
            await r.submit(
                client_order_id=cid, intent_id=f"i-{i}", side="SELL" if i % 2 == 0 else "BUY"
            )
            await r.until_done(cid)
        r.clock.advance(20_000)  # the next run reads back to this one's start, less a margin
        assert await kinds(r) == []
        first = counting.fill_reads
        assert first >= 24  # 12 parents and their children
        await r.submit(client_order_id="c-13", intent_id="i-13", side="BUY")
        await r.until_done("c-13")
        counting.fill_reads = 0
        assert await kinds(r) == []
        assert counting.fill_reads <= 3  # c-13 (its own and its children's) and its child
        # A venue trade the store lacks, of an order that did not change, is still found.
        r.venue.place_order(
            Market.FUT, "BTCUSDT", Side.SELL, OrderType.MARKET, D("0.002"), client_order_id="c-1-E9"
        )
        report = await rec(r).run_once()
        assert [(f.kind, f.client_order_id) for f in report.findings] == [
            (K.MISSING_FILL, "c-1-E9")
        ]
        assert await kinds(r) == []  # repaired, and the repair is seen
