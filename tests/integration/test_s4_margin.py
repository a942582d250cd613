"""FUT margin setup at intake: every entry (bracketed or not) runs on ISOLATED margin at its
leverage, set idempotently and cached per symbol + leverage (one venue call per change, not per
order); a venue that refuses the change because a position exists in another margin mode is a
definitive 409 with a clear reason, nothing sent. Manual clock; no sleeps."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.entrypoints.statuses import http_status
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from tests.chaos.rig import T0, hand_venue, s4_rig
from tradekit.enums import Market, OrderStatus, OrderType, Side
from venue.models import MarginType

S = OrderStatus
SYM = "BTCUSDT"
SL = {"type": "STOP_MARKET", "price": "64000"}
TP = {"type": "TAKE_PROFIT_MARKET", "price": "70000"}


async def test_fut_entry_without_brackets_runs_on_isolated_margin_at_intent_leverage(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(leverage=10)
        assert out.response.status is S.FILLED, out.response
        pos = r.venue.position_risk(SYM)[0]
        assert (pos.qty, pos.margin_type, pos.leverage) == (D("0.002"), MarginType.ISOLATED, 10)


async def test_margin_setup_is_one_venue_call_per_symbol_and_leverage_change(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        for i in range(3):
            out = await r.submit(client_order_id=f"a-{i}", leverage=10)
            assert out.response.status is S.FILLED, out.response
        assert (venue.faults.calls("margin_type"), venue.faults.calls("leverage")) == (1, 1)
        out = await r.submit(client_order_id="b-1", leverage=5, sl=SL, tp=TP)
        assert out.response.status is S.FILLED, out.response
        # A leverage change costs one leverage call; the margin type is already ISOLATED.
        assert venue.faults.calls("leverage") == 2
        assert venue.position_risk(SYM)[0].leverage == 5
        closing = await r.submit(client_order_id="close", side="SELL", reduce_only=True)
        assert closing.response.status is S.FILLED  # a close changes no margin setting
        assert (venue.faults.calls("margin_type"), venue.faults.calls("leverage")) == (1, 2)


async def test_entry_with_position_in_cross_margin_is_refused_409_naming_the_margin_mode(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    # A position opened outside S4 (by hand, or before S4 set margins) in the venue's
    # default CROSSED mode: the venue refuses to switch this symbol to ISOLATED (-4048).
    venue.place_order(Market.FUT, SYM, Side.BUY, OrderType.MARKET, D("0.003"))
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        for coid, extra in (("bracketed", {"sl": SL, "tp": TP}), ("plain", {})):
            out = await r.submit(client_order_id=coid, **extra)
            assert http_status(out) == 409, (coid, out)
            msg = out.response.message or ""
            assert out.response.status is S.REJECTED and "CROSSED" in msg and "ISOLATED" in msg
            assert r.venue_orders(coid) == []  # nothing sent
            doc = await r.c.store.get("orders", coid)
            assert doc is not None and doc["status"] == "REJECTED"
            assert doc["history"][-1]["reason"] == "margin_mode_conflict"
            # The other path's copy of the same intent is the stored refusal, never executed.
            again = await r.submit(client_order_id=coid, **extra)
            assert again.response.duplicate and r.venue_orders(coid) == []
        assert "ENTRY_REFUSED" in await r.events("plain")
        closing = await r.submit(client_order_id="close", side="SELL", reduce_only=True)
        assert closing.response.status is S.FILLED  # closing the position still works
        assert venue.position_risk(SYM)[0].margin_type is MarginType.CROSSED


async def test_concurrent_first_entries_of_a_symbol_share_one_margin_setup(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    exchange = SimExchange(venue, simulate_latency=True)  # each venue call yields: they overlap
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=exchange) as r:
        outs = await asyncio.gather(
            *(r.submit(client_order_id=f"p-{i}", leverage=7) for i in range(4))
        )
        assert all(o.response.status is S.FILLED for o in outs), outs
        assert (venue.faults.calls("margin_type"), venue.faults.calls("leverage")) == (1, 1)
        assert venue.position_risk(SYM)[0].leverage == 7
