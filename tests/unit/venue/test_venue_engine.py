"""Matching engine against hand-computed books (asks 100.0×1, 100.5×2, 101.0×3; bids 99.5×1,
99.0×2, 98.5×3; maker 2 bp, taker 4 bp)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradekit.enums import OrderStatus, OrderType, Side, TimeInForce
from venue import errors
from venue.accounts import SpotAccount
from venue.engine import MatchingEngine
from venue.models import TradePrint

D = Decimal
SYM = "TESTUSDT"


def buy_market(eng: MatchingEngine, qty: str, coid: str | None = None):
    return eng.place(
        symbol=SYM, side=Side.BUY, type=OrderType.MARKET, qty=D(qty), client_order_id=coid
    )


def limit(eng: MatchingEngine, side: Side, qty: str, price: str, **kw):
    return eng.place(symbol=SYM, side=side, type=OrderType.LIMIT, qty=D(qty), price=D(price), **kw)


def test_market_buy_with_three_levels_walks_book_at_exact_prices_and_fees(
    spot: MatchingEngine, spot_account: SpotAccount
) -> None:
    order = buy_market(spot, "4.5")
    assert order.status is OrderStatus.FILLED
    assert [(t.price, t.qty) for t in order.trades] == [
        (D("100.0"), D("1")),
        (D("100.5"), D("2")),
        (D("101.0"), D("1.5")),
    ]
    assert order.cum_quote == D("452.5")
    assert order.avg_price == D("452.5") / D("4.5")
    # Spot BUY pays the fee in the base asset: 4 bp of each fill's quantity.
    assert order.fee == D("0.0018")
    assert all(not t.is_maker and t.fee_asset == "TEST" for t in order.trades)
    assert spot_account.balance("USDT").free == D("100000") - D("452.5")
    assert spot_account.balance("TEST").free == D("50") + D("4.5") - D("0.0018")
    assert spot_account.balance("USDT").locked == 0


def test_market_buy_with_insufficient_liquidity_fills_partially_then_expires(
    spot: MatchingEngine, spot_account: SpotAccount
) -> None:
    order = buy_market(spot, "10")
    assert order.status is OrderStatus.EXPIRED
    assert order.filled_qty == D("6")
    assert order.cum_quote == D("100") + D("201") + D("303")
    assert spot_account.balance("USDT").locked == 0
    assert spot_account.balance("USDT").free == D("100000") - D("604")


def test_market_sell_with_taker_fee_pays_fee_in_quote(
    spot: MatchingEngine, spot_account: SpotAccount
) -> None:
    order = spot.place(symbol=SYM, side=Side.SELL, type=OrderType.MARKET, qty=D("2"))
    assert [(t.price, t.qty) for t in order.trades] == [(D("99.5"), D("1")), (D("99.0"), D("1"))]
    assert order.fee == D("198.5") * D("0.0004")
    assert spot_account.balance("USDT").free == D("100000") + D("198.5") - D("0.0794")
    assert spot_account.balance("TEST").free == D("48")


def test_limit_buy_with_price_inside_book_takes_then_rests_remainder(
    spot: MatchingEngine, spot_account: SpotAccount
) -> None:
    order = limit(spot, Side.BUY, "2", "100.0")
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_qty == D("1")
    assert order.trades[0].is_maker is False
    # The resting remainder keeps 1 × 100.0 locked.
    assert spot_account.balance("USDT").locked == D("100.0")
    assert [o.order_id for o in spot.open_orders(SYM)] == [order.order_id]
    view = spot.book(SYM).view(ts=0, depth=1)
    assert view.bids[0] == (D("100.0"), D("1"))


def test_limit_buy_with_better_price_refunds_price_improvement(
    spot: MatchingEngine, spot_account: SpotAccount
) -> None:
    order = limit(spot, Side.BUY, "1", "100.5")
    assert order.status is OrderStatus.FILLED
    assert order.avg_price == D("100.0")
    assert spot_account.balance("USDT").locked == 0
    assert spot_account.balance("USDT").free == D("100000") - D("100.0")


def test_post_only_with_crossing_price_rejected_with_binance_code(spot: MatchingEngine) -> None:
    with pytest.raises(errors.VenueError) as exc:
        spot.place(
            symbol=SYM, side=Side.BUY, type=OrderType.LIMIT_MAKER, qty=D("1"), price=D("100.0")
        )
    assert exc.value.code == -2010
    assert exc.value.msg == "Order would immediately match and take."
    assert spot.open_orders() == []


def test_futures_gtx_with_crossing_price_rejected_with_5022(fut: MatchingEngine) -> None:
    with pytest.raises(errors.VenueError) as exc:
        limit(fut, Side.SELL, "1", "99.5", time_in_force=TimeInForce.GTX)
    assert exc.value.code == -5022


def test_post_only_with_passive_price_rests_as_maker(spot: MatchingEngine) -> None:
    order = spot.place(
        symbol=SYM, side=Side.BUY, type=OrderType.LIMIT_MAKER, qty=D("1"), price=D("99.9")
    )
    assert order.status is OrderStatus.ACCEPTED
    assert order.post_only


def test_resting_buy_with_market_moving_through_fills_as_maker_at_limit(
    spot: MatchingEngine, spot_account: SpotAccount
) -> None:
    order = limit(spot, Side.BUY, "2", "99.5")
    assert order.status is OrderStatus.ACCEPTED
    # The market drops: the best ask is now 99.4, through our bid.
    spot.book(SYM).replace_levels(
        [(D("99.0"), D("5"))], [(D("99.4"), D("1.5")), (D("99.6"), D("5"))]
    )
    spot.on_market_step(SYM, [])
    got = spot.get(SYM, order_id=order.order_id)
    assert got.status is OrderStatus.PARTIALLY_FILLED
    assert got.filled_qty == D("1.5")
    assert got.trades[0].price == D("99.5")
    assert got.trades[0].is_maker
    assert got.trades[0].fee == D("1.5") * D("0.0002")
    # Only the crossing level was available; the next step's print at 99.3 finishes it.
    spot.on_market_step(SYM, [TradePrint(ts=1, price=D("99.3"), qty=D("3"), aggressor=Side.SELL)])
    got = spot.get(SYM, order_id=order.order_id)
    assert got.status is OrderStatus.FILLED
    assert spot_account.balance("USDT").locked == 0
    assert spot_account.balance("USDT").free == D("100000") - D("2") * D("99.5")


def test_resting_sell_with_print_at_its_price_waits_for_queue_ahead(spot: MatchingEngine) -> None:
    order = limit(spot, Side.SELL, "1", "100.5")  # 2 already queued at 100.5
    assert order.queue_ahead == D("2")
    spot.on_market_step(SYM, [TradePrint(ts=1, price=D("100.5"), qty=D("1.5"), aggressor=Side.BUY)])
    assert spot.get(SYM, order_id=order.order_id).filled_qty == 0
    spot.on_market_step(SYM, [TradePrint(ts=2, price=D("100.5"), qty=D("1"), aggressor=Side.BUY)])
    got = spot.get(SYM, order_id=order.order_id)
    assert got.filled_qty == D("0.5")
    assert got.status is OrderStatus.PARTIALLY_FILLED


def test_resting_orders_with_same_price_fill_in_time_priority(spot: MatchingEngine) -> None:
    first = limit(spot, Side.BUY, "1", "99.8")
    second = limit(spot, Side.BUY, "1", "99.8")
    spot.on_market_step(SYM, [TradePrint(ts=1, price=D("99.8"), qty=D("1"), aggressor=Side.SELL)])
    assert spot.get(SYM, order_id=first.order_id).status is OrderStatus.FILLED
    assert spot.get(SYM, order_id=second.order_id).filled_qty == 0


def test_ioc_with_partial_liquidity_fills_then_expires_rest(spot: MatchingEngine) -> None:
    order = limit(spot, Side.BUY, "2", "100.0", time_in_force=TimeInForce.IOC)
    assert order.status is OrderStatus.EXPIRED
    assert order.filled_qty == D("1")
    assert spot.open_orders() == []


def test_fok_with_insufficient_liquidity_expires_unfilled_on_spot(spot: MatchingEngine) -> None:
    order = limit(spot, Side.BUY, "4", "100.5", time_in_force=TimeInForce.FOK)
    assert order.status is OrderStatus.EXPIRED
    assert order.filled_qty == 0


def test_fok_with_insufficient_liquidity_rejected_on_futures(fut: MatchingEngine) -> None:
    with pytest.raises(errors.VenueError) as exc:
        limit(fut, Side.BUY, "4", "100.5", time_in_force=TimeInForce.FOK)
    assert exc.value.code == -5021


def test_fok_with_enough_liquidity_fills_entirely(spot: MatchingEngine) -> None:
    order = limit(spot, Side.BUY, "3", "100.5", time_in_force=TimeInForce.FOK)
    assert order.status is OrderStatus.FILLED
    assert order.cum_quote == D("301.0")


def test_cancel_with_open_order_unlocks_balance(
    spot: MatchingEngine, spot_account: SpotAccount
) -> None:
    order = limit(spot, Side.SELL, "3", "102.0")
    assert spot_account.balance("TEST").locked == D("3")
    canceled = spot.cancel(SYM, client_order_id=order.client_order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert spot_account.balance("TEST").locked == 0
    assert spot_account.balance("TEST").free == D("50")


def test_cancel_with_filled_order_rejected_unknown_order(spot: MatchingEngine) -> None:
    order = buy_market(spot, "1")
    with pytest.raises(errors.VenueError) as exc:
        spot.cancel(SYM, order_id=order.order_id)
    assert exc.value.code == -2011


def test_query_with_unknown_ids_rejected_order_does_not_exist(spot: MatchingEngine) -> None:
    with pytest.raises(errors.VenueError) as exc:
        spot.get(SYM, order_id=424242)
    assert exc.value.code == -2013
    with pytest.raises(errors.VenueError):
        spot.get(SYM, client_order_id="nope")


def test_query_with_client_order_id_returns_same_order_as_order_id(spot: MatchingEngine) -> None:
    order = limit(spot, Side.BUY, "1", "99.0", client_order_id="abc-1")
    by_id = spot.get(SYM, order_id=order.order_id)
    by_coid = spot.get(SYM, client_order_id="abc-1")
    assert by_id == by_coid
    assert by_id.status is OrderStatus.ACCEPTED


def test_place_with_duplicate_open_client_order_id_rejected(spot: MatchingEngine) -> None:
    limit(spot, Side.BUY, "1", "99.0", client_order_id="dup-1")
    with pytest.raises(errors.VenueError) as exc:
        limit(spot, Side.BUY, "1", "99.0", client_order_id="dup-1")
    assert (exc.value.code, exc.value.msg) == (-2010, "Duplicate order sent.")


def test_place_with_duplicate_client_order_id_of_closed_order_accepted(
    spot: MatchingEngine,
) -> None:
    first = buy_market(spot, "1", coid="again-1")
    second = buy_market(spot, "1", coid="again-1")
    assert first.order_id != second.order_id
    assert spot.get(SYM, client_order_id="again-1").order_id == second.order_id


def test_futures_place_with_duplicate_client_order_id_rejected_4116(fut: MatchingEngine) -> None:
    limit(fut, Side.BUY, "1", "99.0", client_order_id="fdup")
    with pytest.raises(errors.VenueError) as exc:
        limit(fut, Side.BUY, "1", "99.0", client_order_id="fdup")
    assert (exc.value.code, exc.value.msg) == (-4116, "ClientOrderId is duplicated.")


def test_place_with_off_tick_price_rejected_filter_failure(spot: MatchingEngine) -> None:
    with pytest.raises(errors.VenueError) as exc:
        limit(spot, Side.BUY, "1", "99.05")
    assert exc.value.code == -1013


def test_place_with_notional_below_minimum_rejected(spot: MatchingEngine) -> None:
    with pytest.raises(errors.VenueError) as exc:
        limit(spot, Side.BUY, "0.01", "99.0")
    assert exc.value.msg == "Filter failure: NOTIONAL"


def test_taker_with_own_resting_order_in_the_way_expires_maker(spot: MatchingEngine) -> None:
    own_sell = limit(spot, Side.SELL, "1", "100.2")
    order = limit(spot, Side.BUY, "2", "100.5")
    assert spot.get(SYM, order_id=own_sell.order_id).status is OrderStatus.EXPIRED
    assert order.filled_qty == D("2")  # from the market: 1@100.0 + 1@100.5


def test_engine_reports_with_fills_emit_new_trade_in_order(spot: MatchingEngine, recorder) -> None:
    order = buy_market(spot, "2")
    assert recorder.kinds(order.order_id) == ["NEW", "TRADE", "TRADE"]


def test_limit_with_own_opposite_order_inside_spread_expires_maker_not_crossing_book(
    spot: MatchingEngine,
) -> None:
    own_sell = limit(spot, Side.SELL, "1", "99.8")  # inside the spread, below the market ask
    buy = limit(spot, Side.BUY, "1", "99.9")  # crosses only our own sell
    assert spot.get(SYM, order_id=own_sell.order_id).status is OrderStatus.EXPIRED
    assert buy.status is OrderStatus.ACCEPTED
    assert spot.book(SYM).own(Side.SELL) == []


def test_resting_order_hit_by_odd_sized_prints_fills_whole_lots_only(
    spot: MatchingEngine,
) -> None:
    order = limit(spot, Side.BUY, "1", "99.3")
    spot.on_market_step(
        SYM, [TradePrint(ts=1, price=D("99.3"), qty=D("0.0004567"), aggressor=Side.SELL)]
    )
    assert spot.get(SYM, order_id=order.order_id).filled_qty == 0  # under one lot: nothing
    for i in range(3):
        spot.on_market_step(
            SYM, [TradePrint(ts=2 + i, price=D("99.2"), qty=D("0.2345678"), aggressor=Side.SELL)]
        )
    got = spot.get(SYM, order_id=order.order_id)
    assert got.filled_qty == D("0.702")
    assert all(t.qty % D("0.001") == 0 for t in got.trades)
