"""Exactly-once under concurrency inside one replica (issue #10, points 1–5): one driver per parent,
a child id at the venue at most once, one fill-booking path, one outcome event, 409 on a reused id
with another body. Each test reproduces a defect seen in review; the venue's own records judge.

Manual clock and the hand-driven rig; concurrency is real asyncio interleaving (a venue call held
open while another task of the same replica acts)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest

from s4_router.adapters.exchange.base import BookTop, ExchangeOrder, PlaceOrderRequest
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.adapters.leases import Leases, lease_key
from s4_router.entrypoints.statuses import http_status
from svckit import keys
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from tests.chaos.rig import T0, Rig, hand_venue, s4_rig
from tradekit.enums import Market, OrderStatus, Side
from venue.venue import Venue

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes

S = OrderStatus


class HeldExchange(SimExchange):
    """The first `place_order` of `hold_id` (or, with `hold_book`, the first book request) waits
    for `release` before reaching the venue (a slow network): meanwhile other tasks of the same
    replica run."""

    def __init__(self, venue: Venue, *, hold_id: str, hold_book: bool = False) -> None:
        super().__init__(venue)
        self.hold_id = hold_id
        self.hold_book = hold_book
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self._held = False

    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        if self.hold_book and not self._held:
            self._held = True
            self.entered.set()
            await self.release.wait()
        return await super().fetch_book(market, symbol, depth)

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        if req.client_order_id == self.hold_id and not self._held:
            self._held = True
            self.entered.set()
            await self.release.wait()
        return await super().place_order(req)


def sent(r: Rig, child_id: str) -> int:
    return len(
        [o for o in r.venue_orders(child_id.rsplit("-E", 1)[0]) if o.client_order_id == child_id]
    )


async def test_a_lease_belongs_to_one_acquisition_not_to_the_process(redis: RedisClient) -> None:
    leases = Leases(redis, owner="s4:test", ttl_ms=5_000)
    first = await leases.acquire("p-1")
    second = await leases.acquire("p-1")  # another task of the same replica
    assert first is not None
    assert second is None
    # The loser cannot release the winner's key; the winner can.
    await leases.release(second)
    assert await redis.get(lease_key("p-1")) is not None
    assert await leases.renew(first)
    await leases.release(first)
    assert await redis.get(lease_key("p-1")) is None
    # A released lease is not renewable any more (its holder must stop).
    assert not await leases.renew(first)


async def test_orphan_sweep_does_not_drive_an_order_its_own_intake_is_sending(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = HeldExchange(venue, hold_id="c-1-E1")
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=ex) as r:
        submit = asyncio.create_task(r.submit())
        await ex.entered.wait()  # parent stored, E1 on its way to the venue
        assert await r.c.router.recovery.recover() == 0  # the same replica's sweep must not take it
        await r.drive(6_000)  # past the recv window: a second driver would resend E1 now
        ex.release.set()
        await submit
        view = await r.until_done("c-1")
        assert view["order"]["status"] == "FILLED"
        assert sent(r, "c-1-E1") == 1
        assert r.venue_filled("c-1") == D("0.002") == r.position()


async def test_parallel_posts_of_one_id_send_once_and_the_loser_keeps_its_hands_off(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = HeldExchange(venue, hold_id="", hold_book=True)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=ex) as r:
        maker = {"type": "MAKER_TAKER"}
        first = asyncio.create_task(r.submit(exec_policy=maker))  # held before its lease
        await ex.entered.wait()
        second = await r.submit(exec_policy=maker)  # the parallel POST overtakes and drives it
        assert http_status(second) in (200, 202) and not second.response.duplicate
        holder = await redis.get(lease_key("c-1"))
        ex.release.set()
        late = await first
        assert late.response.duplicate
        assert await redis.get(lease_key("c-1")) == holder  # the winner still holds its lease
        await r.until_done("c-1")
        assert sent(r, "c-1-E1") == 1
        assert r.venue_filled("c-1") <= D("0.002")


async def test_cancel_racing_its_submit_yields_one_driver_and_one_outcome_event(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = HeldExchange(venue, hold_id="c-1-E1")
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=ex) as r:
        submit = asyncio.create_task(r.submit())
        await ex.entered.wait()
        cancel = asyncio.create_task(r.c.router.cancels.cancel(client_order_id="c-1"))
        await asyncio.sleep(0.05)
        ex.release.set()
        await submit
        await cancel
        view = await r.until_done("c-1")
        assert view["order"]["status"] in ("FILLED", "CANCELED")
        assert sent(r, "c-1-E1") == 1
        assert (await r.events("c-1")).count("EXEC_DONE") == 1
        executed = [
            e for e in await r.stream(keys.ORDERS_EXECUTED) if e["client_order_id"] == "c-1"
        ]
        assert len(executed) == 1


async def test_a_deferred_child_is_resolved_from_the_venue_before_any_resend(
    redis: RedisClient, tmp_path: Path
) -> None:
    """A send deferred because `lock:pos` was busy must ask the venue before going out: here a
    copy of that very id already traded and closed there (an earlier driver's send)."""
    async with s4_rig(redis, tmp_path, lock_wait_ms=0) as r:
        await redis.set(keys.lock_pos("BTCUSDT"), "someone-else", px=60_000)
        out = await r.submit()
        assert http_status(out) == 202 and r.venue_orders("c-1") == []  # deferred
        # The earlier copy: same id, traded and closed at the venue.
        r.venue.place_order(
            Market.FUT,
            "BTCUSDT",
            side=Side.BUY,
            type="MARKET",
            qty=D("0.002"),
            client_order_id="c-1-E1",
        )
        await redis.delete(keys.lock_pos("BTCUSDT"))
        view = await r.until_done("c-1")
        assert sent(r, "c-1-E1") == 1
        assert view["order"]["status"] == "FILLED"
        assert r.venue_filled("c-1") == D("0.002") == r.position()


async def test_reused_client_order_id_with_a_different_body_is_409_naming_the_fields(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        assert (await r.submit()).response.status is S.FILLED
        again = await r.submit()
        assert http_status(again) == 200 and again.response.duplicate
        other = await r.submit(qty="0.003", side="SELL")
        assert http_status(other) == 409
        assert other.response.message is not None
        assert "qty" in other.response.message and "side" in other.response.message
        assert "IDEMPOTENCY_CONFLICT" in await r.alerts()
        assert len(r.venue_orders("c-1")) == 1


async def test_parent_filled_qty_equals_the_sum_of_its_stored_fills(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(qty="0.004", exec_policy={"type": "TWAP", "slices": 2, "gap_ms": 1000})
        view = await r.until_done("c-1")
        fills = sum((D(f["qty"]) for f in view["fills"]), D(0))
        assert D(view["order"]["filled_qty"]) == fills == r.venue_filled("c-1")


async def test_a_venue_overfill_is_stored_alerted_and_halts_new_entries_on_the_symbol(
    redis: RedisClient, tmp_path: Path
) -> None:
    """The venue holds a bigger order under our child's id (a stale copy): its fills are real, so
    they are stored (store = venue), a critical OVERFILL is raised and buying stops."""
    async with s4_rig(redis, tmp_path, lock_wait_ms=0) as r:
        await redis.set(keys.lock_pos("BTCUSDT"), "someone-else", px=60_000)
        assert http_status(await r.submit()) == 202  # E1 deferred
        r.venue.place_order(
            Market.FUT,
            "BTCUSDT",
            side=Side.BUY,
            type="MARKET",
            qty=D("0.004"),
            client_order_id="c-1-E1",
        )
        await redis.delete(keys.lock_pos("BTCUSDT"))
        view = await r.until_done("c-1")
        fills = sum((D(f["qty"]) for f in view["fills"]), D(0))
        assert fills == D("0.004") == r.venue_filled("c-1")
        assert D(view["order"]["filled_qty"]) == fills
        assert sent(r, "c-1-E1") == 1  # nothing more went out
        assert "OVERFILL" in await r.alerts()
        assert await redis.get(keys.halt_entries("BTCUSDT")) is not None
        r.clock.advance(2_000)
        refused = await r.submit(client_order_id="c-2", intent_id="i-2")
        assert http_status(refused) == 503 and "halted" in (refused.response.message or "")
        close = await r.submit(
            client_order_id="c-3", intent_id="i-3", side="SELL", reduce_only=True
        )
        assert close.response.status is S.FILLED  # closes still pass
