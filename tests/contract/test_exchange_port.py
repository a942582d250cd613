"""Contract of the exchange port, run against every adapter.

Each adapter is driven through a :class:`Harness`: the port under test plus the venue
simulator behind it (to set prices and inject faults through its FaultPlan).

* ``sim``: :class:`SimExchange`, the venue in-process;
* ``ccxt``: :class:`CcxtExchange` (``ccxt.binance`` for SPOT, ``ccxt.binanceusdm`` for FUT)
  talking real HTTP on loopback to the venue's Binance-compatible facade: the real ccxt code
  path end to end, faults manifesting as HTTP 429 / 5xx / stalled or cut answers.

Where an adapter cannot observe what the other can, the harness says what to expect (a facade
"connect timeout" is a stalled request: over HTTP a client cannot tell it from a read
timeout, so ccxt reports the submit as ambiguous; a refused connection is tested separately).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from s4_router.adapters.exchange import errors_ccxt
from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    DefinitiveError,
    DuplicateOrder,
    ExchangeError,
    ExchangeNetworkError,
    ExchangePort,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    MarginModeConflict,
    OcoRequest,
    OrderNotFound,
    PlaceOrderRequest,
    PostOnlyRejected,
    RateLimited,
    ReduceOnlyRejected,
    RetryableError,
)
from s4_router.adapters.exchange.ccxt_client import CcxtExchange
from s4_router.adapters.exchange.sim_client import SimExchange
from svckit.clock import Clock, ManualClock
from tests.contract.facade_harness import (
    API_KEY,
    API_SECRET,
    SwappableApp,
    ccxt_exchange,
    closing,
    facade_venue,
    plug,
)
from tests.facade_server import FacadeServer
from tradekit.enums import Liquidity, Market, OrderStatus, OrderType, Side, TimeInForce
from venue.defaults import DEFAULT_INSTRUMENTS, default_venue
from venue.faults import FaultKind
from venue.venue import Venue

D = Decimal
SYM = "BTCUSDT"
SPOT, FUT = Market.SPOT, Market.FUT


@dataclass
class Harness:
    exchange: ExchangePort
    venue: Venue
    clock: Clock
    kind: str
    # What a venue-side "connect timeout" looks like through this adapter.
    connect_fault: type[ExchangeError] = ExchangeNetworkError
    extra: dict[str, Any] = field(default_factory=dict)


def _sim_harness() -> Harness:
    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, seed=11)
    return Harness(SimExchange(venue), venue, clock, "sim")


@pytest.fixture(scope="module")
def facade() -> Iterator[tuple[FacadeServer, SwappableApp]]:
    slot = SwappableApp()
    with FacadeServer(slot, log_level="critical") as server:
        yield server, slot


def _ccxt_harness(server: FacadeServer, slot: SwappableApp) -> Harness:
    venue, clock = facade_venue(seed=11)
    plug(slot, venue)
    exchange = ccxt_exchange(server.url)
    return Harness(exchange, venue, clock, "ccxt", connect_fault=AmbiguousSubmit)


@pytest.fixture(params=["ccxt", "sim"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "sim":
        h = _sim_harness()
    else:
        server, slot = request.getfixturevalue("facade")
        h = _ccxt_harness(server, slot)
    await h.exchange.load_markets(DEFAULT_INSTRUMENTS)
    yield h
    await h.exchange.close()


@pytest.fixture
def exchange(harness: Harness) -> ExchangePort:
    return harness.exchange


async def passive_buy_price(ex: ExchangePort, market: Market = SPOT) -> Decimal:
    """A bid well below the market (never fills during a test)."""
    book = await ex.fetch_book(market, SYM, 5)
    return (book.best_bid * D("0.95")).quantize(D("0.1"))


def limit_req(
    coid: str, price: Decimal, *, market: Market = SPOT, side: Side = Side.BUY, **kw
) -> PlaceOrderRequest:
    return PlaceOrderRequest(
        market=market,
        symbol=SYM,
        side=side,
        type=OrderType.LIMIT,
        qty=kw.pop("qty", D("0.01")),
        client_order_id=coid,
        price=price,
        time_in_force=TimeInForce.GTC,
        **kw,
    )


def market_req(coid: str, qty: str, *, market: Market = SPOT, side: Side = Side.BUY, **kw):
    return PlaceOrderRequest(
        market=market,
        symbol=SYM,
        side=side,
        type=OrderType.MARKET,
        qty=D(qty),
        client_order_id=coid,
        **kw,
    )


def stop_req(coid: str, stop: Decimal, **kw: Any) -> PlaceOrderRequest:
    return PlaceOrderRequest(
        market=FUT,
        symbol=SYM,
        side=kw.pop("side", Side.SELL),
        type=kw.pop("type", OrderType.STOP_MARKET),
        qty=kw.pop("qty", D("0.1")),
        client_order_id=coid,
        stop_price=stop,
        working_type="MARK_PRICE",
        **kw,
    )


# ---- happy paths -------------------------------------------------------------------------------
async def test_server_time_with_skew_reports_venue_clock(harness: Harness) -> None:
    harness.venue.server_time_skew_ms = 250
    before = harness.clock.now_ms()
    server = await harness.exchange.server_time_ms()
    assert before + 250 <= server <= harness.clock.now_ms() + 250


async def test_fetch_book_with_depth_returns_best_first_uncrossed(exchange: ExchangePort) -> None:
    for market in (SPOT, FUT):
        book = await exchange.fetch_book(market, SYM, 5)
        assert len(book.bids) == 5
        assert len(book.asks) == 5
        assert book.best_bid < book.best_ask
        assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
        assert D("60000") < book.mid < D("70000")


@pytest.mark.parametrize("market", [SPOT, FUT])
async def test_place_limit_with_passive_price_rests_and_is_queryable_by_both_ids(
    exchange: ExchangePort, market: Market
) -> None:
    price = await passive_buy_price(exchange, market)
    placed = await exchange.place_order(limit_req(f"c-rest-{market}", price, market=market))
    assert placed.status is OrderStatus.ACCEPTED
    assert placed.client_order_id == f"c-rest-{market}"
    by_id = await exchange.fetch_order(market, SYM, venue_order_id=placed.venue_order_id)
    by_coid = await exchange.fetch_order(market, SYM, client_order_id=f"c-rest-{market}")
    assert by_id == by_coid
    assert (by_id.price, by_id.qty, by_id.filled_qty) == (price, D("0.01"), D("0"))
    assert (by_id.type, by_id.side, by_id.avg_price) == (OrderType.LIMIT, Side.BUY, None)
    opened = await exchange.fetch_open_orders(market, SYM)
    assert [o.client_order_id for o in opened] == [f"c-rest-{market}"]
    assert [o.client_order_id for o in await exchange.fetch_open_orders(market)] == [
        f"c-rest-{market}"
    ]


async def test_cancel_with_venue_id_and_client_id_cancels_then_not_found(
    exchange: ExchangePort,
) -> None:
    price = await passive_buy_price(exchange)
    a = await exchange.place_order(limit_req("c-can-a", price))
    await exchange.place_order(limit_req("c-can-b", price))
    by_id = await exchange.cancel_order(SPOT, SYM, venue_order_id=a.venue_order_id)
    assert (by_id.status, by_id.client_order_id) == (OrderStatus.CANCELED, "c-can-a")
    by_coid = await exchange.cancel_order(SPOT, SYM, client_order_id="c-can-b")
    assert (by_coid.status, by_coid.client_order_id) == (OrderStatus.CANCELED, "c-can-b")
    assert await exchange.fetch_open_orders(SPOT, SYM) == []
    with pytest.raises(OrderNotFound):
        await exchange.cancel_order(SPOT, SYM, venue_order_id=a.venue_order_id)


async def test_cancel_with_both_ids_disagreeing_raises_order_not_found(
    exchange: ExchangePort,
) -> None:
    price = await passive_buy_price(exchange, FUT)
    a = await exchange.place_order(limit_req("c-both-a", price, market=FUT))
    await exchange.place_order(limit_req("c-both-b", price, market=FUT))
    with pytest.raises(OrderNotFound):
        await exchange.cancel_order(
            FUT, SYM, venue_order_id=a.venue_order_id, client_order_id="c-both-b"
        )
    both = await exchange.cancel_order(
        FUT, SYM, venue_order_id=a.venue_order_id, client_order_id="c-both-a"
    )
    assert both.status is OrderStatus.CANCELED


async def test_fetch_order_with_unknown_ids_raises_order_not_found(exchange: ExchangePort) -> None:
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order(SPOT, SYM, client_order_id="never-sent")
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order(SPOT, SYM, venue_order_id="123456789")
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order(FUT, SYM, venue_order_id="not-a-number")


async def test_market_order_with_fills_appears_in_my_trades_as_taker(
    exchange: ExchangePort, harness: Harness
) -> None:
    since = harness.clock.now_ms()
    order = await exchange.place_order(market_req("c-mkt", "0.05"))
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == D("0.05")
    assert order.avg_price is not None
    assert order.trades
    trades = await exchange.fetch_my_trades(SPOT, SYM, since_ms=since)
    assert [t.venue_order_id for t in trades] == [order.venue_order_id] * len(order.trades)
    assert [t.trade_id for t in trades] == [t.trade_id for t in order.trades]
    assert all(t.liquidity is Liquidity.TAKER for t in trades)
    assert sum(t.qty for t in trades) == D("0.05")
    assert all(t.fee > 0 and t.fee_asset == "BTC" for t in trades)
    assert sum(t.price * t.qty for t in trades) / D("0.05") == order.avg_price


async def test_futures_market_order_with_fill_is_reported_and_traded(
    exchange: ExchangePort,
) -> None:
    order = await exchange.place_order(market_req("c-fmkt", "0.1", market=FUT))
    assert (order.status, order.filled_qty) == (OrderStatus.FILLED, D("0.1"))
    trades = await exchange.fetch_my_trades(FUT, SYM)
    assert {t.venue_order_id for t in trades} == {order.venue_order_id}
    assert sum(t.qty for t in trades) == D("0.1")
    assert all(t.fee_asset == "USDT" and t.client_order_id == "c-fmkt" for t in trades)


async def test_post_only_with_passive_price_rests_as_maker(exchange: ExchangePort) -> None:
    for market in (SPOT, FUT):
        price = await passive_buy_price(exchange, market)
        order = await exchange.place_order(
            limit_req(f"c-po-ok-{market}", price, market=market, post_only=True)
        )
        assert order.status is OrderStatus.ACCEPTED
        expected = OrderType.LIMIT_MAKER if market is SPOT else OrderType.LIMIT
        assert order.type is expected


# ---- definitive errors -------------------------------------------------------------------------
@pytest.mark.parametrize("market", [SPOT, FUT])
async def test_post_only_with_crossing_price_raises_post_only_rejected(
    exchange: ExchangePort, market: Market
) -> None:
    book = await exchange.fetch_book(market, SYM, 1)
    with pytest.raises(PostOnlyRejected):
        await exchange.place_order(limit_req("c-po", book.best_ask, market=market, post_only=True))
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order(market, SYM, client_order_id="c-po")


@pytest.mark.parametrize("market", [SPOT, FUT])
async def test_place_with_too_large_notional_raises_insufficient_funds(
    exchange: ExchangePort, market: Market
) -> None:
    price = await passive_buy_price(exchange, market)
    with pytest.raises(InsufficientFunds):
        await exchange.place_order(limit_req("c-poor", price, market=market, qty=D("100")))


async def test_reduce_only_with_no_position_raises_reduce_only_rejected(
    exchange: ExchangePort,
) -> None:
    with pytest.raises(ReduceOnlyRejected):
        await exchange.place_order(
            market_req("c-ro", "0.01", market=FUT, side=Side.SELL, reduce_only=True)
        )


@pytest.mark.parametrize("market", [SPOT, FUT])
async def test_place_with_open_duplicate_client_id_raises_duplicate_order(
    exchange: ExchangePort, market: Market
) -> None:
    price = await passive_buy_price(exchange, market)
    await exchange.place_order(limit_req("c-dup", price, market=market))
    with pytest.raises(DuplicateOrder):
        await exchange.place_order(limit_req("c-dup", price, market=market))


@pytest.mark.parametrize("market", [SPOT, FUT])
async def test_place_with_off_grid_price_or_qty_raises_invalid_order(
    exchange: ExchangePort, market: Market
) -> None:
    price = await passive_buy_price(exchange, market)
    with pytest.raises(InvalidOrder):
        await exchange.place_order(limit_req("c-tick", price + D("0.05"), market=market))
    with pytest.raises(InvalidOrder):
        await exchange.place_order(limit_req("c-step", price, market=market, qty=D("0.0105")))
    assert await exchange.fetch_open_orders(market, SYM) == []


# ---- retryable and ambiguous -------------------------------------------------------------------
async def test_place_with_rate_limit_raises_rate_limited_with_retry_after(
    harness: Harness,
) -> None:
    harness.venue.faults.script("place", FaultKind.RATE_LIMIT)
    with pytest.raises(RateLimited) as exc:
        await harness.exchange.place_order(market_req("c-429", "0.01"))
    assert exc.value.retry_after == 1.0
    assert isinstance(exc.value, RetryableError)
    with pytest.raises(OrderNotFound):
        await harness.exchange.fetch_order(SPOT, SYM, client_order_id="c-429")


async def test_place_over_weight_budget_raises_rate_limited_until_next_minute(
    harness: Harness,
) -> None:
    harness.venue.limiter.limit = 0  # no budget in any minute (the clock may tick over)
    with pytest.raises(RateLimited) as exc:
        await harness.exchange.place_order(market_req("c-budget", "0.01", market=FUT))
    assert exc.value.retry_after is not None
    assert 1 <= exc.value.retry_after <= 60


@pytest.mark.parametrize("market", [SPOT, FUT])
async def test_used_weight_after_calls_is_the_venue_own_count(
    harness: Harness, market: Market
) -> None:
    # ccxt: the X-MBX-USED-WEIGHT-1M header of the latest answer; sim: the venue's limiter.
    await harness.exchange.fetch_book(market, SYM, 5)
    await harness.exchange.fetch_open_orders(market, SYM)
    used = harness.exchange.used_weight_1m(market)
    assert used is not None and used >= 2
    assert used == harness.venue.used_weight()
    limit = harness.exchange.weight_limit_1m(market)
    assert limit is not None and limit > 0


@pytest.mark.parametrize("market", [SPOT, FUT])
async def test_place_with_server_error_raises_exchange_unavailable(
    harness: Harness, market: Market
) -> None:
    harness.venue.faults.script("place", FaultKind.SERVER_ERROR)
    with pytest.raises(ExchangeUnavailable):
        await harness.exchange.place_order(market_req("c-5xx", "0.01", market=market))
    with pytest.raises(OrderNotFound):
        await harness.exchange.fetch_order(market, SYM, client_order_id="c-5xx")


async def test_query_and_book_with_server_error_raise_exchange_unavailable(
    harness: Harness,
) -> None:
    harness.venue.faults.script("query", FaultKind.SERVER_ERROR)
    with pytest.raises(ExchangeUnavailable):
        await harness.exchange.fetch_order(SPOT, SYM, client_order_id="whatever")
    harness.venue.faults.script("book", FaultKind.SERVER_ERROR)
    with pytest.raises(ExchangeUnavailable):
        await harness.exchange.fetch_book(FUT, SYM, 5)


async def test_place_with_connect_timeout_raises_no_answer_and_nothing_exists(
    harness: Harness,
) -> None:
    harness.venue.faults.script("place", FaultKind.CONNECT_TIMEOUT)
    with pytest.raises(harness.connect_fault):
        await harness.exchange.place_order(market_req("c-conn", "0.01"))
    with pytest.raises(OrderNotFound):
        await harness.exchange.fetch_order(SPOT, SYM, client_order_id="c-conn")


@pytest.mark.parametrize(
    ("kind", "exists"),
    [
        (FaultKind.TIMEOUT_BEFORE_ACCEPT, False),
        (FaultKind.TIMEOUT_AFTER_ACCEPT, True),
        (FaultKind.DROPPED_ACK, True),
    ],
)
async def test_place_with_timeout_after_reaching_venue_raises_ambiguous_resolved_by_query(
    harness: Harness, kind: FaultKind, exists: bool
) -> None:
    price = await passive_buy_price(harness.exchange)
    harness.venue.faults.script("place", kind)
    with pytest.raises(AmbiguousSubmit):
        await harness.exchange.place_order(limit_req("c-amb", price))
    if exists:
        found = await harness.exchange.fetch_order(SPOT, SYM, client_order_id="c-amb")
        assert found.status is OrderStatus.ACCEPTED
        # Resending under the same id is answered as a duplicate: it was accepted.
        with pytest.raises(DuplicateOrder):
            await harness.exchange.place_order(limit_req("c-amb", price))
    else:
        with pytest.raises(OrderNotFound):
            await harness.exchange.fetch_order(SPOT, SYM, client_order_id="c-amb")


async def test_futures_market_with_timeout_after_accept_is_ambiguous_and_filled(
    harness: Harness,
) -> None:
    harness.venue.faults.script("place", FaultKind.TIMEOUT_AFTER_ACCEPT)
    with pytest.raises(AmbiguousSubmit):
        await harness.exchange.place_order(market_req("c-famb", "0.1", market=FUT))
    found = await harness.exchange.fetch_order(FUT, SYM, client_order_id="c-famb")
    assert (found.status, found.filled_qty) == (OrderStatus.FILLED, D("0.1"))


async def test_cancel_with_timeout_raises_retryable_and_retry_answers_not_found(
    harness: Harness,
) -> None:
    price = await passive_buy_price(harness.exchange)
    placed = await harness.exchange.place_order(limit_req("c-ct", price))
    harness.venue.faults.script("cancel", FaultKind.TIMEOUT_AFTER_ACCEPT)
    with pytest.raises(RetryableError):
        await harness.exchange.cancel_order(SPOT, SYM, venue_order_id=placed.venue_order_id)
    with pytest.raises(OrderNotFound):
        await harness.exchange.cancel_order(SPOT, SYM, venue_order_id=placed.venue_order_id)
    got = await harness.exchange.fetch_order(SPOT, SYM, venue_order_id=placed.venue_order_id)
    assert got.status is OrderStatus.CANCELED


async def test_query_with_dropped_answer_raises_retryable(harness: Harness) -> None:
    harness.venue.faults.script("open_orders", FaultKind.DROPPED_ACK)
    with pytest.raises(RetryableError):
        await harness.exchange.fetch_open_orders(FUT, SYM)
    assert await harness.exchange.fetch_open_orders(FUT, SYM) == []


# ---- beyond the port: leverage, positions, balances, OCO, conditional orders -----------------
@pytest.fixture
def ext(exchange: ExchangePort) -> Any:
    """The extension methods both adapters share (to be lifted into the port)."""
    assert isinstance(exchange, SimExchange | CcxtExchange)
    return exchange


async def test_leverage_and_margin_type_with_repeats_are_idempotent(ext: Any) -> None:
    assert await ext.set_leverage(SYM, 20) == 20
    assert await ext.set_margin_type(SYM, "ISOLATED") is True
    assert await ext.set_margin_type(SYM, "ISOLATED") is False
    with pytest.raises(InvalidOrder):
        await ext.set_leverage(SYM, 200)


async def test_margin_type_switch_with_position_in_other_mode_raises_margin_mode_conflict(
    ext: Any,
) -> None:
    await ext.place_order(market_req("c-cross", "0.1", market=FUT))  # CROSSED by default
    with pytest.raises(MarginModeConflict) as exc:
        await ext.set_margin_type(SYM, "ISOLATED")
    assert exc.value.code == -4048  # definitive (not retried, not "venue unavailable")


async def test_fetch_positions_and_balances_with_futures_fill_show_position(ext: Any) -> None:
    await ext.set_leverage(SYM, 10)
    await ext.set_margin_type(SYM, "ISOLATED")
    await ext.place_order(market_req("c-pos", "0.1", market=FUT))
    (pos,) = await ext.fetch_positions()
    assert (pos.symbol, pos.qty, pos.leverage, pos.margin_type) == (
        SYM,
        D("0.1"),
        10,
        "ISOLATED",
    )
    assert pos.entry_price > 0
    assert await ext.fetch_positions([SYM]) == [pos]
    usdt = (await ext.fetch_balances(FUT))["USDT"]
    assert usdt.locked > 0
    assert usdt.free < D("100000")
    spot = await ext.fetch_balances(SPOT)
    assert spot["USDT"].free == D("100000")
    assert spot["BTC"].free == D("1")


async def test_place_conditional_with_mark_cross_triggers_and_closes(
    ext: Any, harness: Harness
) -> None:
    await ext.place_order(market_req("c-long", "0.1", market=FUT))
    mark = harness.venue.mark_price(SYM)
    stop = (mark * D("0.98")).quantize(D("0.1"))
    cond = await ext.place_conditional(stop_req("c-sl", stop, close_position=True))
    assert (cond.status, cond.client_algo_id, cond.qty, cond.close_position) == (
        "NEW",
        "c-sl",
        None,
        True,
    )
    assert [c.algo_id for c in await ext.fetch_open_conditionals(SYM)] == [cond.algo_id]
    harness.venue.set_mark_price(SYM, stop - D("1"))
    done = await ext.fetch_conditional(SYM, algo_id=cond.algo_id)
    assert done.status == "FINISHED"
    assert done.triggered_order_id is not None
    assert await ext.fetch_positions() == []
    with pytest.raises(OrderNotFound):
        await ext.cancel_conditional(SYM, algo_id=cond.algo_id)


async def test_conditional_with_cancel_by_client_id_is_canceled_and_listed_no_more(
    ext: Any, harness: Harness
) -> None:
    await ext.place_order(market_req("c-long2", "0.2", market=FUT))
    mark = harness.venue.mark_price(SYM)
    tp = (mark * D("1.05")).quantize(D("0.1"))
    cond = await ext.place_conditional(
        stop_req("c-tp", tp, type=OrderType.TAKE_PROFIT_MARKET, qty=D("0.2"), reduce_only=True)
    )
    assert (cond.type, cond.qty, cond.reduce_only, cond.trigger_price) == (
        OrderType.TAKE_PROFIT_MARKET,
        D("0.2"),
        True,
        tp,
    )
    by_client = await ext.fetch_conditional(SYM, client_algo_id="c-tp")
    assert by_client.algo_id == cond.algo_id
    canceled = await ext.cancel_conditional(SYM, client_algo_id="c-tp")
    assert canceled.status == "CANCELED"
    assert await ext.fetch_open_conditionals() == []


async def test_conditional_with_duplicate_or_crossed_trigger_is_rejected(
    ext: Any, harness: Harness
) -> None:
    await ext.place_order(market_req("c-long3", "0.1", market=FUT))
    mark = harness.venue.mark_price(SYM)
    stop = (mark * D("0.97")).quantize(D("0.1"))
    await ext.place_conditional(stop_req("c-sl-dup", stop, close_position=True))
    with pytest.raises(DuplicateOrder):
        await ext.place_conditional(stop_req("c-sl-dup", stop, close_position=True))
    above = (mark * D("1.01")).quantize(D("0.1"))
    with pytest.raises(InvalidOrder) as crossed:  # -2021: would trigger at once
        await ext.place_conditional(stop_req("c-sl-x", above, close_position=True))
    assert not isinstance(crossed.value, PostOnlyRejected)


async def test_conditional_with_injected_faults_maps_like_orders(
    harness: Harness, ext: Any
) -> None:
    await ext.place_order(market_req("c-long4", "0.1", market=FUT))
    stop = (harness.venue.mark_price(SYM) * D("0.98")).quantize(D("0.1"))
    harness.venue.faults.script("algo_place", FaultKind.TIMEOUT_AFTER_ACCEPT)
    with pytest.raises(AmbiguousSubmit):
        await ext.place_conditional(stop_req("c-sl-amb", stop, close_position=True))
    assert (await ext.fetch_conditional(SYM, client_algo_id="c-sl-amb")).status == "NEW"
    harness.venue.faults.script("algo_cancel", FaultKind.SERVER_ERROR)
    with pytest.raises(ExchangeUnavailable):
        await ext.cancel_conditional(SYM, client_algo_id="c-sl-amb")


async def test_place_oco_with_take_profit_filled_cancels_stop_leg(
    ext: Any, harness: Harness
) -> None:
    book = await ext.fetch_book(SPOT, SYM, 1)
    tp = (book.best_ask * D("1.01")).quantize(D("0.1"))
    sl = (book.best_bid * D("0.99")).quantize(D("0.1"))
    oco = await ext.place_oco(
        OcoRequest(
            SYM, Side.SELL, D("0.1"), limit_price=tp, stop_price=sl, list_client_order_id="oco-1"
        )
    )
    assert (oco.status, oco.list_client_order_id) == ("EXEC_STARTED", "oco-1")
    assert [o.type for o in oco.orders] == [OrderType.LIMIT_MAKER, OrderType.STOP_MARKET]
    assert [o.price for o in oco.orders] == [tp, None]
    assert oco.orders[1].stop_price == sl
    harness.venue.set_book(
        SPOT, SYM, bids=[(tp + D("10"), D("1"))], asks=[(tp + D("10.1"), D("1"))]
    )
    done = await ext.fetch_order_list(oco.order_list_id)
    assert done.status == "ALL_DONE"
    assert [o.status for o in done.orders] == [OrderStatus.FILLED, OrderStatus.CANCELED]


async def test_fetch_order_list_by_client_id_finds_it_and_unknown_raises_not_found(
    ext: Any,
) -> None:
    """The native OCO path looks a list up by its client id before any resend."""
    book = await ext.fetch_book(SPOT, SYM, 1)
    tp = (book.best_ask * D("1.01")).quantize(D("0.1"))
    sl = (book.best_bid * D("0.99")).quantize(D("0.1"))
    oco = await ext.place_oco(
        OcoRequest(
            SYM, Side.SELL, D("0.1"), limit_price=tp, stop_price=sl, list_client_order_id="oco-lk"
        )
    )
    found = await ext.fetch_order_list(symbol=SYM, list_client_order_id="oco-lk")
    assert found.order_list_id == oco.order_list_id and found.status == "EXEC_STARTED"
    with pytest.raises(OrderNotFound):
        await ext.fetch_order_list(symbol=SYM, list_client_order_id="oco-nope")


async def test_place_oco_buy_with_cancel_list_cancels_both_legs(ext: Any) -> None:
    book = await ext.fetch_book(SPOT, SYM, 1)
    tp = (book.best_bid * D("0.99")).quantize(D("0.1"))
    sl = (book.best_ask * D("1.01")).quantize(D("0.1"))
    oco = await ext.place_oco(
        OcoRequest(
            SYM,
            Side.BUY,
            D("0.1"),
            limit_price=tp,
            stop_price=sl,
            stop_limit_price=sl + D("10"),
            limit_client_order_id="oco-b-tp",
            stop_client_order_id="oco-b-sl",
        )
    )
    # BUY: the stop is the above leg, the take-profit the below leg.
    assert [o.client_order_id for o in oco.orders] == ["oco-b-sl", "oco-b-tp"]
    assert oco.orders[0].type is OrderType.STOP_LOSS_LIMIT
    done = await ext.cancel_order_list(SYM, oco.order_list_id)
    assert done.status == "ALL_DONE"
    assert {o.status for o in done.orders} == {OrderStatus.CANCELED}
    with pytest.raises(OrderNotFound):
        await ext.cancel_order_list(SYM, oco.order_list_id)


async def test_place_oco_with_wrong_price_order_raises_invalid_order(ext: Any) -> None:
    book = await ext.fetch_book(SPOT, SYM, 1)
    below = (book.best_bid * D("0.99")).quantize(D("0.1"))
    with pytest.raises(InvalidOrder):
        await ext.place_oco(
            OcoRequest(SYM, Side.SELL, D("0.1"), limit_price=below, stop_price=below)
        )


async def test_place_order_with_conditional_type_points_to_place_conditional(ext: Any) -> None:
    with pytest.raises(InvalidOrder):
        await ext.place_order(stop_req("c-bad", D("1000")))


# ---- SimExchange only ----------------------------------------------------------------------------
async def test_sim_exchange_with_simulated_latency_waits_sampled_time() -> None:
    import time

    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, seed=3)
    ex = SimExchange(venue, simulate_latency=True)
    started = time.perf_counter()
    await ex.server_time_ms()
    assert time.perf_counter() - started >= 0.007  # the latency model's floor is 8 ms
    await ex.close()
    with pytest.raises(ExchangeNetworkError):
        await ex.server_time_ms()


# ---- CcxtExchange only: the HTTP path's own evidence ---------------------------------------------
@pytest.fixture
async def ccxt_harness(facade: tuple[FacadeServer, SwappableApp]) -> AsyncIterator[Harness]:
    h = _ccxt_harness(*facade)
    await h.exchange.load_markets(DEFAULT_INSTRUMENTS)
    yield h
    await h.exchange.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_ccxt_place_with_refused_connection_raises_network_error_not_ambiguous() -> None:
    async with closing(ccxt_exchange(f"http://127.0.0.1:{_closed_port()}")) as ex:
        await ex.load_markets(DEFAULT_INSTRUMENTS)  # the clock sync fails quietly: logged only
        with pytest.raises(ExchangeNetworkError) as exc:
            await ex.place_order(market_req("c-refused", "0.01", market=FUT))
    assert not isinstance(exc.value, AmbiguousSubmit)


async def test_ccxt_trades_of_orders_placed_elsewhere_carry_their_client_id(
    ccxt_harness: Harness,
) -> None:
    harness = ccxt_harness
    # Placed by "another process" (straight at the venue): this adapter never saw the order.
    harness.venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("0.1"), client_order_id="x")
    (trade, *_) = await harness.exchange.fetch_my_trades(FUT, SYM)
    assert trade.client_order_id == "x"


async def test_ccxt_with_wrong_secret_raises_definitive_error(
    facade: tuple[FacadeServer, SwappableApp],
) -> None:
    server, slot = facade
    venue, _ = facade_venue()
    plug(slot, venue)
    async with closing(ccxt_exchange(server.url, api_secret="not-the-secret")) as ex:
        await ex.load_markets(DEFAULT_INSTRUMENTS)
        with pytest.raises(DefinitiveError) as exc:
            await ex.place_order(market_req("c-sig", "0.01"))
    assert exc.value.code == -1022


async def test_ccxt_with_venue_clock_jump_raises_retryable_then_resyncs(
    ccxt_harness: Harness,
) -> None:
    ccxt_harness.venue.server_time_skew_ms = 30_000  # ccxt's timestamps now look 30 s old
    with pytest.raises(RetryableError) as exc:
        await ccxt_harness.exchange.fetch_open_orders(SPOT, SYM)
    assert exc.value.code == -1021
    assert not isinstance(exc.value, ExchangeUnavailable | AmbiguousSubmit)
    assert await ccxt_harness.exchange.fetch_open_orders(SPOT, SYM) == []  # resynced


async def test_ccxt_markets_from_instruments_match_the_venue_exchange_info(
    facade: tuple[FacadeServer, SwappableApp],
) -> None:
    server, slot = facade
    venue, _ = facade_venue()
    plug(slot, venue)
    async with (
        closing(ccxt_exchange(server.url)) as built,
        closing(ccxt_exchange(server.url)) as discovered,
    ):
        await built.load_markets(DEFAULT_INSTRUMENTS)
        await discovered.load_markets([])  # fallback: ccxt's load_markets() against the facade
        for market in (SPOT, FUT):
            a, b = built._clients[market].markets, discovered._clients[market].markets
            assert sorted(a) == sorted(b)
            for symbol in a:
                for key in ("id", "type", "linear", "settle", "precision", "limits"):
                    assert a[symbol][key] == b[symbol][key], (symbol, key)
        # The discovered adapter trades too.
        order = await discovered.place_order(market_req("c-disc", "0.01", market=FUT))
        assert order.status is OrderStatus.FILLED


async def test_ccxt_market_data_and_v2_account_parse_through_ccxt(ccxt_harness: Harness) -> None:
    """Endpoints outside the port, as ccxt's own unified methods read them."""
    ex = ccxt_harness.exchange
    assert isinstance(ex, CcxtExchange)
    spot, fut = ex._clients[SPOT], ex._clients[FUT]
    book = await ex.fetch_book(SPOT, SYM, 1)
    ticker = await spot.fetch_ticker("BTC/USDT")
    assert (D(str(ticker["bid"])), D(str(ticker["ask"]))) == (book.best_bid, book.best_ask)
    fut_ticker = await fut.fetch_ticker("BTC/USDT:USDT")
    assert fut_ticker["last"] > 0
    funding = await fut.fetch_funding_rate("BTC/USDT:USDT")
    mark = ccxt_harness.venue.mark_price(SYM)
    assert D(str(funding["markPrice"])) == mark
    assert funding["fundingRate"] == float(ccxt_harness.venue.market.funding_rate(SYM))
    v2 = await fut.fetch_balance({"useV2": True})
    assert v2["USDT"]["free"] == 100_000.0
    positions_v2 = await fut.fetch_positions(None, {"useV2": True})
    assert positions_v2 == []


def test_ccxt_with_testnet_points_at_binance_sandbox_hosts() -> None:
    ex = CcxtExchange("binanceusdm", api_key=API_KEY, api_secret=API_SECRET, testnet=True)
    spot, fut = ex._clients[SPOT], ex._clients[FUT]
    assert spot.urls["api"]["private"].startswith("https://testnet.binance.vision/")
    assert fut.urls["api"]["fapiPrivate"].startswith("https://testnet.binancefuture.com/")
    assert (ex.venue, ex._primary is fut) == ("binanceusdm", True)


async def test_factory_with_ccxt_exchange_and_base_url_builds_a_working_adapter(
    facade: tuple[FacadeServer, SwappableApp],
) -> None:
    from s4_router.adapters.exchange.factory import make_exchange
    from s4_router.config import Settings
    from svckit.clock import WallClock

    server, slot = facade
    venue, clock = facade_venue()
    plug(slot, venue)
    settings = Settings(
        exchange="binanceusdm",
        binance_key=API_KEY,
        binance_secret=API_SECRET,
        testnet=False,
        recv_window_ms=7_000,
    )
    ex, jobs = make_exchange(
        settings,
        instruments={i.symbol: i for i in DEFAULT_INSTRUMENTS},
        redis=None,  # not used by ccxt exchanges
        clock=WallClock(),
        base_url=server.url,
    )
    assert isinstance(ex, CcxtExchange)
    assert jobs == []
    assert {c.options["recvWindow"] for c in ex._clients.values()} == {7_000}
    async with closing(ex):
        await ex.load_markets(DEFAULT_INSTRUMENTS)
        before = clock.now_ms()
        assert before <= await ex.server_time_ms() <= clock.now_ms()


# ---- ccxt error translation without a venue (URL-independent, exact) -----------------------------
def _ccxt_error(cls: type[BaseException], status: int | None, code: int | None, msg: str = ""):
    exc = cls(f"binance {msg}")
    if status is not None:
        body = {"code": code, "msg": msg} if code is not None else None
        headers = {"Retry-After": "7"} if status == 429 else {}
        errors_ccxt.annotate(exc, http_status=status, headers=headers, response=body)
    return exc


@pytest.mark.parametrize(
    ("exc", "submit", "expected"),
    [
        # ccxt's class differs per URL; the Binance code decides.
        (_ccxt_error(ccxt_async.InvalidOrder, 400, -5022, "Post Only"), True, PostOnlyRejected),
        (_ccxt_error(ccxt_async.OrderNotFillable, 400, -5022, "Post Only"), True, PostOnlyRejected),
        (
            _ccxt_error(ccxt_async.ExchangeError, 400, -4116, "ClientOrderId is duplicated."),
            True,
            DuplicateOrder,
        ),
        (
            _ccxt_error(ccxt_async.InvalidOrder, 400, -2010, "Duplicate order sent."),
            True,
            DuplicateOrder,
        ),
        (
            _ccxt_error(
                ccxt_async.InvalidOrder,
                400,
                -2010,
                "Account has insufficient balance for requested action.",
            ),
            True,
            InsufficientFunds,
        ),
        (
            _ccxt_error(ccxt_async.ExchangeError, 400, -2019, "Margin is insufficient."),
            True,
            InsufficientFunds,
        ),
        (
            _ccxt_error(
                ccxt_async.OrderImmediatelyFillable, 400, -2021, "Order would immediately trigger."
            ),
            True,
            InvalidOrder,
        ),
        (
            _ccxt_error(ccxt_async.InvalidOrder, 400, -2022, "ReduceOnly Order is rejected."),
            True,
            ReduceOnlyRejected,
        ),
        (
            _ccxt_error(ccxt_async.OrderNotFound, 400, -2011, "Unknown order sent."),
            False,
            OrderNotFound,
        ),
        (
            _ccxt_error(
                ccxt_async.BadRequest,
                400,
                -4048,
                "Margin type cannot be changed if there exists position.",
            ),
            False,
            MarginModeConflict,
        ),
        (
            _ccxt_error(
                ccxt_async.BadRequest,
                400,
                -4047,
                "Margin type cannot be changed if there exists open orders.",
            ),
            False,
            MarginModeConflict,
        ),
        (
            _ccxt_error(ccxt_async.OperationFailed, 503, -1001, "Internal error"),
            True,
            ExchangeUnavailable,
        ),
        (_ccxt_error(ccxt_async.ExchangeNotAvailable, 502, None), True, ExchangeUnavailable),
        (
            _ccxt_error(ccxt_async.RequestTimeout, 408, -1007, "Timeout waiting"),
            True,
            AmbiguousSubmit,
        ),
        (
            _ccxt_error(ccxt_async.RequestTimeout, 408, -1007, "Timeout waiting"),
            False,
            ExchangeUnavailable,
        ),
        (_ccxt_error(ccxt_async.InvalidNonce, 400, -1021, "Timestamp"), True, RetryableError),
        (
            _ccxt_error(ccxt_async.AuthenticationError, 401, -2015, "Invalid API-key"),
            False,
            DefinitiveError,
        ),
        (_ccxt_error(ccxt_async.BadSymbol, None, None), True, InvalidOrder),
        (_ccxt_error(ccxt_async.NetworkError, None, None), True, AmbiguousSubmit),
        (_ccxt_error(ccxt_async.NetworkError, None, None), False, ExchangeNetworkError),
    ],
)
def test_ccxt_translate_with_binance_evidence_maps_exactly(
    exc: BaseException, submit: bool, expected: type[ExchangeError]
) -> None:
    got = errors_ccxt.translate(exc, submit=submit)
    assert type(got) is expected


def test_ccxt_translate_with_429_keeps_retry_after() -> None:
    got = errors_ccxt.translate(
        _ccxt_error(ccxt_async.DDoSProtection, 429, -1003, "Too many"), submit=True
    )
    assert isinstance(got, RateLimited)
    assert got.retry_after == 7.0


def test_ccxt_translate_with_timeout_cause_separates_submit_from_query() -> None:
    def timed_out() -> BaseException:
        try:
            try:
                raise TimeoutError
            except TimeoutError as e:
                raise ccxt_async.RequestTimeout("binance POST /order") from e
        except ccxt_async.RequestTimeout as exc:
            caught: BaseException = exc
            return caught

    assert type(errors_ccxt.translate(timed_out(), submit=True)) is AmbiguousSubmit
    assert type(errors_ccxt.translate(timed_out(), submit=False)) is ExchangeUnavailable
