"""The venue's request weight as a budget (issue 10 point 7), measured against the simulator's
own `WeightLimiter` (what its Binance facade reports as ``X-MBX-USED-WEIGHT-1M``):

* live brackets share one batched poll per symbol: steady polling stays under 20 % of the
  venue's limit with 1, 3 or 50 live brackets, and does not grow with their number;
* S4 paces its normal calls under the limit and keeps headroom for reduce-only closes;
* pre-trade checks read the published `mkt:depth:{symbol}` and call the venue only when it is
  stale; a reduce-only close passes with the breaker OPEN and the venue answering 429;
* the clock-skew guard discards samples whose round trip exceeds its bound.

Manual clock shared by S4 and the venue; no sleeps."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from s4_router.adapters.exchange.base import ExchangeOrder, ExchangeTrade, PlaceOrderRequest
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.adapters.exchange.weight import URGENT
from s4_router.entrypoints.statuses import http_status
from s4_router.service_layer.protection import ProtectionService
from svckit import keys
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from tests.chaos.rig import T0, Rig, hand_venue, s4_rig, set_book
from tradekit.enums import Market, OrderStatus
from tradekit.market import DepthSnapshot
from venue.faults import FaultKind
from venue.venue import Venue

S = OrderStatus
SL = {"type": "STOP_MARKET", "price": "64000"}
TP = {"type": "TAKE_PROFIT_MARKET", "price": "70000"}
MINUTE = 60_000


def prot(r: Rig) -> ProtectionService:
    assert r.c.protection is not None
    return r.c.protection


async def open_brackets(r: Rig, n: int) -> None:
    for i in range(n):
        out = await r.submit(client_order_id=f"w-{i}", intent_id=f"i-{i}", sl=SL, tp=TP)
        assert out.response.status is S.FILLED, out.response
    await prot(r).step_all()
    assert len(r.venue.open_algo_orders("BTCUSDT")) == 2 * n
    assert len(prot(r).active) == n


async def polling_weight_one_minute(r: Rig, *, stop_above: int) -> int:
    """Venue weight used by one clock minute of steady protective polling: the protection
    loop's batched round every `poll_ms`, exactly as `run()` schedules it."""
    p = prot(r)
    r.clock.advance(MINUTE - r.clock.now_ms() % MINUTE)  # a fresh venue minute
    start = r.clock.now_ms()
    while r.clock.now_ms() + p.poll_ms < start + MINUTE:
        r.clock.advance(p.poll_ms)
        await p.step_all()
        if r.venue.limiter.used(r.clock.now_ms()) > stop_above:
            break  # already over the bound: no need to spend the whole minute
    return r.venue.limiter.used(r.clock.now_ms())


@pytest.mark.parametrize("brackets", [1, 3, 50])
async def test_live_brackets_steady_polling_stays_under_a_fifth_of_the_venue_limit(
    redis: RedisClient, tmp_path: Path, brackets: int
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await open_brackets(r, brackets)
        bound = r.venue.limiter.limit // 5
        used = await polling_weight_one_minute(r, stop_above=bound)
        assert used < bound, f"{brackets} brackets used {used}/min of {r.venue.limiter.limit}"
        # Batched per symbol: the cost does not scale with the number of brackets.
        assert used <= 60 * 2 + 20 * 12 + 4 * brackets, used
        # Still watched: every bracket is live and its stop and take profit rest at the venue.
        assert len(prot(r).active) == brackets
        assert len(r.venue.open_algo_orders("BTCUSDT")) == 2 * brackets
        assert not r.venue.faults.history  # no 429 on the way


OCO = {"type": "OCO", "tp_price": "67000", "sl_price": "64500"}


async def test_spot_oco_guardians_share_one_poll_and_one_book_per_symbol(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    set_book(venue, market=Market.SPOT)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, maker_max_wait_ms=0) as r:
        n = 10
        for i in range(n):
            out = await r.submit(
                client_order_id=f"g-{i}", intent_id=f"ig-{i}", market="SPOT", exec_policy=OCO
            )
            assert out.response.status is S.FILLED, out.response
        await prot(r).step_all()
        # Each guardian: the take profit rests at the venue, the stop is watched locally.
        assert len(venue.open_orders(Market.SPOT, "BTCUSDT")) == n
        bound = venue.limiter.limit // 5
        used = await polling_weight_one_minute(r, stop_above=bound)
        assert used < bound, f"{n} guardians used {used}/min of {venue.limiter.limit}"
        # One open-orders call (6) and one venue book (5) per round, whatever the count.
        rounds = MINUTE // prot(r).poll_ms
        assert used <= rounds * 11 + 4 * n, used
        assert len(prot(r).active) == n
        # The round's one book still drives every local stop: the price falls through 64500.
        set_book(venue, market=Market.SPOT, bid="64400", ask="64402")
        await prot(r).step_all()
        await prot(r).step_all()
        assert prot(r).active == {}
        assert venue.open_orders(Market.SPOT, "BTCUSDT") == []


async def test_guardian_local_stop_fires_from_the_published_book_between_rounds(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    set_book(venue, market=Market.SPOT)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, maker_max_wait_ms=0) as r:
        out = await r.submit(market="SPOT", exec_policy=OCO)
        assert out.response.status is S.FILLED
        await prot(r).step_all()
        books, polls = venue.faults.calls("book"), venue.faults.calls("open_orders")
        await prot(r).price_tick()  # nothing reached: no venue call, nothing sent
        assert prot(r).active and venue.faults.calls("book") == books
        set_book(venue, market=Market.SPOT, bid="64400", ask="64402")
        await publish_depth(r, bid="64400", ask="64402")
        await prot(r).price_tick()
        # The stop fired from the feed's book alone: resting TP cancelled, then a market exit.
        assert venue.faults.calls("book") == books
        assert venue.faults.calls("open_orders") == polls
        assert prot(r).active == {}
        doc = await r.c.store.get("strategy_events", "oco_resolve:c-1")
        assert doc is not None and doc["data"]["winner"] == "SL"
        assert venue.open_orders(Market.SPOT, "BTCUSDT") == []


async def test_batched_poll_still_sees_a_triggered_stop_and_a_manual_close(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await open_brackets(r, 3)
        # w-0's stop triggers at the venue; the others are closed by a manual reduce-only sell.
        r.venue.set_mark_price("BTCUSDT", D("63950"))
        await prot(r).step_all()
        assert r.position() == 0
        r.clock.advance(prot(r).position_poll_ms)
        await prot(r).step_all()
        await prot(r).step_all()
        assert prot(r).active == {}
        assert r.venue.open_algo_orders("BTCUSDT") == []


# ---- pacing: entries stop short of the venue's limit, closes still go -------------------------
async def test_entry_flood_is_paced_under_the_venue_limit_and_a_close_still_passes(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0 - T0 % MINUTE)
    venue = hand_venue(clock)
    limit = 120  # a small venue: the flood reaches it within a few dozen orders
    venue.limiter.limit = limit
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        results = []
        for i in range(60):
            out = await r.submit(client_order_id=f"e-{i}", intent_id=f"ie-{i}")
            results.append(out.response.status)
        assert results[0] is S.FILLED
        refused = [s for s in results if s is not S.FILLED]
        assert refused, "the budget never paced the flood"
        # Paced by S4 itself: the venue never had to answer 429 (nothing fed to the breaker).
        rate, _ = r.c.router.breaker.error_rate(clock.now_ms())
        assert rate == 0
        assert venue.limiter.used(clock.now_ms()) <= limit * 0.8 + 6
        used = venue.limiter.used(clock.now_ms())
        health = (await r.c.health()).weight["SPOT"]  # the simulator has one pool
        assert health["limit"] == limit and health["refused"] > 0 and health["used"] == used
        # The headroom is there for what reduces risk: a reduce-only close goes now.
        out = await r.submit(
            client_order_id="close-1", intent_id="ic-1", side="SELL", reduce_only=True
        )
        assert out.response.status is S.FILLED, out.response


# ---- the pre-trade book: published mkt:depth first ----------------------------------------
async def publish_depth(r: Rig, *, age_ms: int = 0, bid: str = "64999", ask: str = "65001") -> None:
    snap = DepthSnapshot(
        symbol="BTCUSDT",
        ts=r.clock.now_ms() - age_ms,
        bids=[(D(bid) - i, D("5")) for i in range(5)],
        asks=[(D(ask) + i, D("5")) for i in range(5)],
    )
    await r.redis.set(keys.mkt_depth("BTCUSDT"), snap.model_dump_json())


async def test_fresh_published_depth_means_no_venue_book_call_before_the_send(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await publish_depth(r, age_ms=200)
        out = await r.submit()
        assert out.response.status is S.FILLED, out.response
        assert r.venue.faults.calls("book") == 0
        parent = await r.c.store.get("orders", "c-1")
        assert parent is not None and D(parent["arrival_mid"]) == D("65000")


async def test_stale_published_depth_falls_back_to_the_venue_book(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await publish_depth(r, age_ms=5_000, bid="60000", ask="60002")  # older than the bound
        out = await r.submit()
        assert out.response.status is S.FILLED, out.response
        assert r.venue.faults.calls("book") == 1
        parent = await r.c.store.get("orders", "c-1")
        assert parent is not None and D(parent["arrival_mid"]) == D("65000")  # the venue's


def storm(r: Rig) -> None:
    """Breaker OPEN and every venue book request answered 429."""
    breaker = r.c.router.breaker
    for _ in range(50):
        breaker.record(r.clock.now_ms(), error=True)
    assert not breaker.allows_entry(r.clock.now_ms())
    r.venue.faults.plan.probabilities["book"] = {FaultKind.RATE_LIMIT: 1.0}


@pytest.mark.parametrize("age_ms", [100, 30_000])
async def test_reduce_only_close_passes_with_breaker_open_and_venue_answering_429_to_books(
    redis: RedisClient, tmp_path: Path, age_ms: int
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        assert (await r.submit()).response.status is S.FILLED
        storm(r)
        await publish_depth(r, age_ms=age_ms)  # fresh, or only an old one
        entry = await r.submit(client_order_id="c-2", intent_id="i-2")
        assert entry.response.status is S.REJECTED  # new entries stay refused
        out = await r.submit(client_order_id="c-3", intent_id="i-3", side="SELL", reduce_only=True)
        assert out.response.status is S.FILLED, out.response
        assert r.position() == 0


async def test_reduce_only_close_without_any_book_is_refused_with_the_reason(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        assert (await r.submit()).response.status is S.FILLED
        storm(r)
        out = await r.submit(client_order_id="c-3", intent_id="i-3", side="SELL", reduce_only=True)
        assert out.response.status is S.REJECTED
        assert "venue unavailable" in (out.response.message or "")


# ---- the clock-skew guard: a throttled request is not skew -----------------------------------
class ThrottledTimeExchange(SimExchange):
    """The simulator adapter whose first server-time requests sit `held_ms` in a client-side
    throttle queue before going out (as ccxt's rate limiter did under exhausted weight)."""

    def __init__(self, venue: Venue, clock: ManualClock, *, held: int, held_ms: int) -> None:
        super().__init__(venue)
        self.clock = clock
        self.held = held
        self.held_ms = held_ms

    async def server_time_ms(self) -> int:
        if self.held > 0:
            self.held -= 1
            self.clock.advance(self.held_ms)  # queued before the request is sent...
            return await super().server_time_ms()  # ...then answered at once
        return await super().server_time_ms()


async def test_clock_skew_guard_discards_a_throttled_15_s_sample_and_entries_continue(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = ThrottledTimeExchange(venue, clock, held=1, held_ms=15_000)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=ex) as r:
        await r.c.watch.check()
        skew = r.c.router.skew
        assert skew.ok and skew.discarded == 1
        assert skew.skew_ms is not None and abs(skew.skew_ms) < 1000  # the retried sample
        assert (await r.submit()).response.status is S.FILLED
        assert "CLOCK_SKEW" not in await r.alerts()


async def test_clock_skew_guard_still_stops_entries_on_real_skew(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock, skew_ms=1500)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        await r.c.watch.check()
        assert not r.c.router.skew.ok and r.c.router.skew.discarded == 0
        out = await r.submit()
        assert http_status(out) == 503


class LaneRecorder(SimExchange):
    """Records which weight lane each venue call was made in."""

    lanes: list[tuple[str, bool]]

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        self.lanes.append(("place", URGENT.get()))
        return await super().place_order(req)

    async def fetch_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        self.lanes.append(("query", URGENT.get()))
        return await super().fetch_order(
            market, symbol, venue_order_id=venue_order_id, client_order_id=client_order_id
        )

    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> list[ExchangeTrade]:
        self.lanes.append(("trades", URGENT.get()))
        return await super().fetch_my_trades(market, symbol, since_ms)


async def test_orders_already_out_are_watched_in_the_urgent_lane_new_entries_are_not(
    redis: RedisClient, tmp_path: Path
) -> None:
    # With the minute's budget past the pace point, polls of children already at the venue were
    # deferred like new entries: a filled entry went unseen (no fill booked, no stop placed) for
    # minutes in the chaos campaign's weight-starved stretches. Watching what is out reduces
    # risk, as a cancel does; only new risk waits for the budget.
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    exchange = LaneRecorder(venue)
    exchange.lanes = []
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, exchange=exchange) as r:
        await r.submit(exec_policy={"type": "MAKER_TAKER", "maker_wait_ms": 5_000})
        await r.drive(400)
        await r.until_done("c-1")
    places = [urgent for kind, urgent in exchange.lanes if kind == "place"]
    watches = [urgent for kind, urgent in exchange.lanes if kind in ("query", "trades")]
    assert places and not any(places)  # the entry's children: the normal lane
    assert watches and all(watches), exchange.lanes
