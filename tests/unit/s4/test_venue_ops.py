"""Exactly-once submit rules and breaker accounting, against a scripted fake venue port."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal as D

import pytest

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    BookTop,
    DuplicateOrder,
    ExchangeError,
    ExchangeNetworkError,
    ExchangeOrder,
    ExchangePort,
    ExchangeTrade,
    ExchangeUnavailable,
    InvalidOrder,
    OrderNotFound,
    PlaceOrderRequest,
    RateLimited,
)
from s4_router.adapters.exchange.guard import GuardedExchange
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.metrics import RouterMetrics
from s4_router.policies.circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from s4_router.service_layer.venue_ops import RetryPolicy, Unresolved, VenueOps
from svckit.clock import ManualClock
from tradekit.enums import Liquidity, Market, OrderStatus, OrderType, Side
from tradekit.instrument import Instrument
from venue.defaults import DEFAULT_INSTRUMENTS, default_venue

REQ = PlaceOrderRequest(Market.FUT, "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.002"), "p-E1")


class ScriptedVenue(ExchangePort):
    """Each place call pops an outcome: an exception to raise, or "ok" / "land" (the order
    exists afterwards; "land" also raises the next scripted exception, like a lost ack)."""

    venue = "fake"

    def __init__(self, script: list[object], *, trades: bool = False) -> None:
        self.script = list(script)
        self.placed: list[str] = []
        self.orders: dict[str, ExchangeOrder] = {}
        self.queries = 0
        self.trades_only = trades

    def _order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        return ExchangeOrder(
            "1",
            req.client_order_id,
            req.market,
            req.symbol,
            req.side,
            req.type,
            OrderStatus.FILLED,
            req.qty,
            req.qty,
            D(65000),
        )

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        step = self.script.pop(0)
        if step == "land":
            self.placed.append(req.client_order_id)
            self.orders[req.client_order_id] = self._order(req)
            exc = self.script.pop(0)
            assert isinstance(exc, ExchangeError)
            raise exc
        if isinstance(step, ExchangeError):
            raise step
        self.placed.append(req.client_order_id)
        self.orders[req.client_order_id] = self._order(req)
        return self.orders[req.client_order_id]

    async def fetch_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        self.queries += 1
        if self.trades_only or client_order_id not in self.orders:
            raise OrderNotFound("no such order")
        return self.orders[client_order_id]

    async def fetch_my_trades(
        self, market: Market, symbol: str, since_ms: int | None = None
    ) -> list[ExchangeTrade]:
        return [
            ExchangeTrade(
                "t1",
                o.venue_order_id,
                o.client_order_id,
                symbol,
                o.side,
                D(65000),
                o.qty,
                D(0),
                "USDT",
                Liquidity.TAKER,
                1,
            )
            for o in self.orders.values()
        ]

    async def load_markets(self, instruments: Sequence[Instrument]) -> None: ...

    async def server_time_ms(self) -> int:
        return 0

    async def cancel_order(
        self,
        market: Market,
        symbol: str,
        *,
        venue_order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> ExchangeOrder:
        raise OrderNotFound("x")

    async def fetch_open_orders(
        self, market: Market, symbol: str | None = None
    ) -> list[ExchangeOrder]:
        return []

    async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
        return BookTop(symbol, 0, ((D(1), D(1)),), ((D(2), D(1)),))

    async def close(self) -> None: ...


def ops(venue: ScriptedVenue, clock: ManualClock, attempts: int = 4) -> VenueOps:
    async def sleep(s: float) -> None:
        clock.advance(int(s * 1000))

    return VenueOps(
        venue,
        metrics=RouterMetrics(),
        clock=clock,
        sleep=sleep,
        retry=RetryPolicy(attempts=attempts, base_s=0.05, max_s=1.0),
        recv_window_ms=5000,
    )


async def test_send_with_rate_limits_resends_same_id_without_waiting_for_window() -> None:
    clock = ManualClock(0)
    v = ScriptedVenue([RateLimited("429", retry_after=0.5), ExchangeNetworkError("refused"), "ok"])
    order = await ops(v, clock).send(REQ, since_ms=0)
    assert order.client_order_id == "p-E1" and v.placed == ["p-E1"]
    assert clock.now_ms() == 600  # Retry-After (500 ms) honoured, then 100 ms of back-off


async def test_send_with_lost_ack_finds_the_order_and_never_resends() -> None:
    clock = ManualClock(0)
    v = ScriptedVenue(["land", AmbiguousSubmit("timeout after accept")])
    order = await ops(v, clock).send(REQ, since_ms=0)
    assert order.status is OrderStatus.FILLED and v.placed == ["p-E1"] and v.queries == 1


async def test_send_with_5xx_and_nothing_found_stays_unresolved_inside_recv_window() -> None:
    clock = ManualClock(0)
    v = ScriptedVenue([ExchangeUnavailable("503")])
    with pytest.raises(Unresolved) as err:
        await ops(v, clock).send(REQ, since_ms=0)
    assert err.value.sent_at_ms == 0 and v.placed == [] and v.queries == 3


async def test_send_with_window_elapsed_and_no_evidence_resends_same_id_once() -> None:
    clock = ManualClock(10_000)
    v = ScriptedVenue(["ok"])
    order = await ops(v, clock).send(REQ, since_ms=0, sent_at_ms=4_000)
    assert order.client_order_id == "p-E1" and v.placed == ["p-E1"]


async def test_send_with_order_only_in_trades_returns_it_from_trades() -> None:
    clock = ManualClock(10_000)
    v = ScriptedVenue([], trades=True)
    v.orders["p-E1"] = v._order(REQ)
    order = await ops(v, clock).send(REQ, since_ms=0, sent_at_ms=1_000)
    assert order.filled_qty == D("0.002") and order.status is OrderStatus.FILLED
    assert v.placed == []


async def test_send_with_duplicate_id_adopts_the_live_order() -> None:
    clock = ManualClock(0)
    v = ScriptedVenue(["land", DuplicateOrder("dup")])
    order = await ops(v, clock).send(REQ, since_ms=0)
    assert order.client_order_id == "p-E1" and v.placed == ["p-E1"]


async def test_send_with_definitive_reject_raises_at_once() -> None:
    v = ScriptedVenue([InvalidOrder("bad")])
    with pytest.raises(InvalidOrder):
        await ops(v, ManualClock(0)).send(REQ, since_ms=0)


async def test_guard_with_5xx_and_429_counts_errors_but_not_rejects_or_timeouts() -> None:
    clock = ManualClock(0)
    seen: list[str] = []
    cb = CircuitBreaker(CircuitBreakerConfig(min_calls=3, threshold=0.5))

    async def on_transition(t: object) -> None:
        seen.append(str(getattr(t, "dst", "")))

    v = ScriptedVenue(
        [
            InvalidOrder("4xx"),
            AmbiguousSubmit("t/o"),
            ExchangeUnavailable("5xx"),
            RateLimited("429"),
            ExchangeUnavailable("5xx"),
        ]
    )
    g = GuardedExchange(
        v, breaker=cb, clock=clock, metrics=RouterMetrics(), on_transition=on_transition
    )
    for _ in range(5):
        with pytest.raises(ExchangeError):
            await g.place_order(REQ)
    assert cb.error_rate(0) == (0.75, 4)
    assert seen == ["OPEN"]


async def test_trades_of_finds_a_fill_the_venue_stamped_before_our_clocks_send_time() -> None:
    """A venue whose clock is behind ours (tens of ms is common; S4 accepts up to its skew
    limit) stamps a fill *earlier* than the child's created_ts on our clock. Asking for trades
    since that created_ts must still find it: on a venue whose create answer carries no fills
    (MEXC) this query is the only way a fill gets booked."""
    venue_clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=venue_clock, seed=3)
    ours = ManualClock(venue_clock.now_ms() + 40)  # our clock 40 ms ahead of the venue's
    ex = SimExchange(venue)
    await ex.load_markets(DEFAULT_INSTRUMENTS)
    created_ts = ours.now_ms()
    req = PlaceOrderRequest(Market.SPOT, "QRLUSDT", Side.SELL, OrderType.MARKET, D(100), "p-E1")
    await ex.place_order(req)
    o = VenueOps(ex, metrics=RouterMetrics(), clock=ours, recv_window_ms=5000)
    trades = await o.trades_of(Market.SPOT, "QRLUSDT", client_order_id="p-E1", since_ms=created_ts)
    assert sum(t.qty for t in trades) == 100
    assert all(t.ts < created_ts for t in trades)  # stamped before "since" on our clock
