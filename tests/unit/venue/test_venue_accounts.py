"""Spot balances and the futures account: locks, insufficient funds, margin, reduce-only,
leverage/margin-type settings, realised PnL and funding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradekit.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from venue import errors
from venue.models import MarginType
from venue.venue import Venue

D = Decimal
SYM = "TESTUSDT"
FUT, SPOT = Market.FUT, Market.SPOT


def test_spot_buy_with_insufficient_quote_rejected_insufficient_balance(venue: Venue) -> None:
    with pytest.raises(errors.VenueError) as exc:
        venue.place_order(SPOT, SYM, Side.BUY, OrderType.LIMIT, D("1002"), price=D("99.9"))
    assert exc.value.code == -2010
    assert exc.value.msg == "Account has insufficient balance for requested action."
    assert venue.balances()["USDT"].locked == 0


def test_spot_sell_with_insufficient_base_rejected_insufficient_balance(venue: Venue) -> None:
    with pytest.raises(errors.VenueError) as exc:
        venue.place_order(SPOT, SYM, Side.SELL, OrderType.MARKET, D("51"))
    assert exc.value.msg == errors.MSG_INSUFFICIENT_BALANCE


def test_spot_resting_orders_with_both_sides_lock_quote_and_base(venue: Venue) -> None:
    venue.place_order(SPOT, SYM, Side.BUY, OrderType.LIMIT, D("2"), price=D("99.0"))
    venue.place_order(SPOT, SYM, Side.SELL, OrderType.LIMIT, D("3"), price=D("102.0"))
    bal = venue.balances()
    assert (bal["USDT"].free, bal["USDT"].locked) == (D("100000") - D("198.0"), D("198.0"))
    assert (bal["TEST"].free, bal["TEST"].locked) == (D("47"), D("3"))


def test_futures_market_buy_with_leverage_opens_position_and_holds_margin(venue: Venue) -> None:
    venue.set_leverage(SYM, 10)
    order = venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("3"))
    assert order.status is OrderStatus.FILLED
    pos = venue.position_risk(SYM)[0]
    assert pos.qty == D("3")
    assert pos.entry_price == (D("100.0") + D("201.0")) / 3
    assert pos.leverage == 10
    info = venue.futures_account_info()
    # Taker fee 4 bp on 301 USDT notional.
    assert info.wallet_balance == D("10000") - D("301.0") * D("0.0004")
    assert info.position_initial_margin == pos.qty * pos.mark_price / 10


def test_futures_order_with_margin_above_available_rejected_2019(venue: Venue) -> None:
    venue.set_leverage(SYM, 1)
    with pytest.raises(errors.VenueError) as exc:
        venue.place_order(FUT, SYM, Side.BUY, OrderType.LIMIT, D("101"), price=D("99.5"))
    assert (exc.value.code, exc.value.msg) == (-2019, "Margin is insufficient.")


def test_futures_resting_order_with_leverage_holds_notional_over_leverage(venue: Venue) -> None:
    venue.set_leverage(SYM, 20)
    venue.place_order(FUT, SYM, Side.BUY, OrderType.LIMIT, D("10"), price=D("99.0"))
    info = venue.futures_account_info()
    assert info.open_order_initial_margin == D("990.0") / 20
    assert info.available_balance == D("10000") - D("49.5")


def test_reduce_only_with_no_position_rejected_2022(venue: Venue) -> None:
    with pytest.raises(errors.VenueError) as exc:
        venue.place_order(FUT, SYM, Side.SELL, OrderType.MARKET, D("1"), reduce_only=True)
    assert (exc.value.code, exc.value.msg) == (-2022, "ReduceOnly Order is rejected.")


def test_reduce_only_with_same_side_as_position_rejected_2022(venue: Venue) -> None:
    venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("1"))
    with pytest.raises(errors.VenueError) as exc:
        venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("1"), reduce_only=True)
    assert exc.value.code == -2022


def test_reduce_only_with_qty_above_position_closes_only_the_position(venue: Venue) -> None:
    venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("1"))
    order = venue.place_order(FUT, SYM, Side.SELL, OrderType.MARKET, D("3"), reduce_only=True)
    assert order.filled_qty == D("1")
    assert order.status is OrderStatus.EXPIRED
    assert venue.position_risk(SYM)[0].qty == 0


def test_close_long_with_higher_price_realises_pnl_into_wallet(venue: Venue) -> None:
    venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("1"))  # 1 @ 100.0
    venue.set_book(FUT, SYM, bids=[(D("110.0"), D("5"))], asks=[(D("110.5"), D("5"))])
    close = venue.place_order(FUT, SYM, Side.SELL, OrderType.MARKET, D("1"), reduce_only=True)
    assert close.trades[0].realized_pnl == D("10.0")
    fees = D("100.0") * D("0.0004") + D("110.0") * D("0.0004")
    assert venue.futures_account_info().wallet_balance == D("10000") + D("10.0") - fees
    assert venue.positions() == []


def test_resting_reduce_only_with_position_closed_elsewhere_expires(venue: Venue) -> None:
    venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("1"))
    tp = venue.place_order(
        FUT, SYM, Side.SELL, OrderType.LIMIT, D("1"), price=D("105.0"), reduce_only=True
    )
    venue.place_order(FUT, SYM, Side.SELL, OrderType.MARKET, D("1"))
    assert venue.get_order(FUT, SYM, order_id=tp.order_id).status is OrderStatus.EXPIRED


def test_set_margin_type_with_same_value_rejected_no_need_to_change(venue: Venue) -> None:
    venue.set_margin_type(SYM, MarginType.ISOLATED)
    with pytest.raises(errors.VenueError) as exc:
        venue.set_margin_type(SYM, MarginType.ISOLATED)
    assert (exc.value.code, exc.value.msg) == (-4046, "No need to change margin type.")
    assert venue.position_risk(SYM)[0].margin_type is MarginType.ISOLATED


def test_set_margin_type_with_open_position_rejected(venue: Venue) -> None:
    venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("1"))
    with pytest.raises(errors.VenueError) as exc:
        venue.set_margin_type(SYM, MarginType.ISOLATED)
    assert exc.value.code == -4048


def test_set_leverage_with_same_value_again_succeeds(venue: Venue) -> None:
    assert venue.set_leverage(SYM, 20) == 20
    assert venue.set_leverage(SYM, 20) == 20
    with pytest.raises(errors.VenueError) as exc:
        venue.set_leverage(SYM, 126)
    assert exc.value.code == -4028


def test_settle_funding_with_positive_rate_long_pays(venue: Venue) -> None:
    venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("2"))
    venue.set_mark_price(SYM, D("100"))
    venue.market.state(SYM).funding_rate = D("0.0001")
    wallet = venue.futures_account_info().wallet_balance
    paid = venue.settle_funding(SYM)
    assert paid == {SYM: D("-0.0200")}
    assert venue.futures_account_info().wallet_balance == wallet - D("0.02")


def test_spot_reduce_only_flag_rejected_as_not_required(venue: Venue) -> None:
    with pytest.raises(errors.VenueError) as exc:
        venue.place_order(SPOT, SYM, Side.SELL, OrderType.MARKET, D("1"), reduce_only=True)
    assert exc.value.code == -1106


def test_futures_limit_maker_type_rejected_invalid_order_type(venue: Venue) -> None:
    with pytest.raises(errors.VenueError) as exc:
        venue.place_order(FUT, SYM, Side.BUY, OrderType.LIMIT_MAKER, D("1"), price=D("99.0"))
    assert exc.value.code == -1116
    with pytest.raises(errors.VenueError) as exc2:
        venue.place_order(
            SPOT,
            SYM,
            Side.BUY,
            OrderType.LIMIT,
            D("1"),
            price=D("99.0"),
            time_in_force=TimeInForce.GTX,
        )
    assert exc2.value.code == -1115
