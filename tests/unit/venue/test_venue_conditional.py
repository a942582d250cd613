"""Futures algo (conditional) orders on the mark price and spot OCO order lists."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradekit.enums import Market, OrderStatus, OrderType, Side
from venue import errors
from venue.models import AlgoStatus, ListStatus, ReportKind, TradePrint, WorkingType
from venue.venue import Venue

D = Decimal
SYM = "TESTUSDT"
FUT, SPOT = Market.FUT, Market.SPOT


@pytest.fixture
def long_1(venue: Venue) -> Venue:
    """A 1-lot long opened at 100.0, mark 100."""
    venue.place_order(FUT, SYM, Side.BUY, OrderType.MARKET, D("1"))
    venue.set_mark_price(SYM, D("100"))
    return venue


def test_stop_market_with_mark_crossing_stop_triggers_market_close(long_1: Venue) -> None:
    algo = long_1.place_algo_order(
        SYM, Side.SELL, OrderType.STOP_MARKET, trigger_price=D("95.0"), close_position=True
    )
    assert algo.algo_id not in long_1.futures.orders  # its own id space
    long_1.set_mark_price(SYM, D("95.1"))
    assert long_1.get_algo_order(algo_id=algo.algo_id).status is AlgoStatus.NEW
    long_1.set_mark_price(SYM, D("94.9"))
    done = long_1.get_algo_order(algo_id=algo.algo_id)
    assert done.status is AlgoStatus.FINISHED
    assert done.triggered_order_id is not None
    order = long_1.get_order(FUT, SYM, order_id=done.triggered_order_id)
    assert (order.type, order.status, order.reduce_only) == (
        OrderType.MARKET,
        OrderStatus.FILLED,
        True,
    )
    assert long_1.position_risk(SYM)[0].qty == 0
    assert long_1.open_algo_orders() == []


def test_take_profit_with_mark_above_trigger_closes_quantity(long_1: Venue) -> None:
    algo = long_1.place_algo_order(
        SYM,
        Side.SELL,
        OrderType.TAKE_PROFIT_MARKET,
        trigger_price=D("104.0"),
        qty=D("1"),
        reduce_only=True,
        client_algo_id="tp-1",
    )
    long_1.set_mark_price(SYM, D("104.0"))
    assert long_1.get_algo_order(client_algo_id="tp-1").status is AlgoStatus.FINISHED
    assert long_1.position_risk(SYM)[0].qty == 0
    assert algo.working_type is WorkingType.MARK_PRICE


def test_stop_with_trigger_already_crossed_rejected_2021(long_1: Venue) -> None:
    with pytest.raises(errors.VenueError) as exc:
        long_1.place_algo_order(
            SYM, Side.SELL, OrderType.STOP_MARKET, trigger_price=D("100.5"), close_position=True
        )
    assert (exc.value.code, exc.value.msg) == (-2021, "Order would immediately trigger.")


def test_stop_with_contract_price_triggers_on_last_trade_not_mark(long_1: Venue) -> None:
    algo = long_1.place_algo_order(
        SYM,
        Side.SELL,
        OrderType.STOP_MARKET,
        trigger_price=D("99.0"),
        qty=D("1"),
        reduce_only=True,
        working_type=WorkingType.CONTRACT_PRICE,
    )
    long_1.set_mark_price(SYM, D("90"))  # mark far below: CONTRACT_PRICE ignores it
    assert long_1.get_algo_order(algo_id=algo.algo_id).status is AlgoStatus.NEW
    long_1.set_book(
        FUT,
        SYM,
        bids=[(D("98.9"), D("5"))],
        asks=[(D("99.1"), D("5"))],
        prints=[TradePrint(ts=1, price=D("98.9"), qty=D("1"), aggressor=Side.SELL)],
    )
    assert long_1.get_algo_order(algo_id=algo.algo_id).status is AlgoStatus.FINISHED
    assert long_1.position_risk(SYM)[0].qty == 0


def test_close_position_stop_with_position_gone_at_trigger_expires(long_1: Venue) -> None:
    algo = long_1.place_algo_order(
        SYM, Side.SELL, OrderType.STOP_MARKET, trigger_price=D("95.0"), close_position=True
    )
    long_1.place_order(FUT, SYM, Side.SELL, OrderType.MARKET, D("1"))
    long_1.set_mark_price(SYM, D("94"))
    assert long_1.get_algo_order(algo_id=algo.algo_id).status is AlgoStatus.EXPIRED


def test_cancel_algo_with_open_order_cancels_then_unknown(long_1: Venue) -> None:
    algo = long_1.place_algo_order(
        SYM, Side.SELL, OrderType.STOP_MARKET, trigger_price=D("90.0"), close_position=True
    )
    assert [a.algo_id for a in long_1.open_algo_orders(SYM)] == [algo.algo_id]
    assert long_1.cancel_algo_order(algo_id=algo.algo_id).status is AlgoStatus.CANCELED
    with pytest.raises(errors.VenueError) as exc:
        long_1.cancel_algo_order(algo_id=algo.algo_id)
    assert exc.value.code == -2011
    with pytest.raises(errors.VenueError) as exc2:
        long_1.get_algo_order(algo_id=1)
    assert exc2.value.code == -2013


def test_algo_reduce_only_with_no_position_rejected_2022(venue: Venue) -> None:
    venue.set_mark_price(SYM, D("100"))
    with pytest.raises(errors.VenueError) as exc:
        venue.place_algo_order(
            SYM,
            Side.SELL,
            OrderType.STOP_MARKET,
            trigger_price=D("95.0"),
            qty=D("1"),
            reduce_only=True,
        )
    assert exc.value.code == -2022


def test_algo_trigger_with_subscriber_reports_triggered_and_finished(long_1: Venue) -> None:
    long_1.feed.drain()
    algo = long_1.place_algo_order(
        SYM, Side.SELL, OrderType.STOP_MARKET, trigger_price=D("95.0"), close_position=True
    )
    long_1.set_mark_price(SYM, D("94"))
    kinds = [e.execution_type for e in long_1.feed.drain() if e.kind is ReportKind.ALGO]
    assert kinds == ["NEW", "TRIGGERED", "FINISHED"]
    assert algo.status is AlgoStatus.NEW  # snapshots never change under the caller


# ---- spot OCO ----------------------------------------------------------------------------------
def sell_oco(venue: Venue, qty: str = "2"):
    return venue.place_oco(
        SYM,
        Side.SELL,
        D(qty),
        limit_price=D("101.0"),
        stop_price=D("98.0"),
        stop_limit_price=D("97.5"),
        list_client_order_id="oco-1",
    )


def legs(venue: Venue, list_id: int):
    lst = venue.get_order_list(list_id)
    above, below = lst.orders
    return lst, above, below


def test_oco_place_with_sell_locks_base_once(venue: Venue) -> None:
    lst = sell_oco(venue)
    assert lst.status is ListStatus.EXEC_STARTED
    assert [o.type for o in lst.orders] == [OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT]
    assert venue.balances()["TEST"].locked == D("2")
    assert len(venue.open_orders(SPOT, SYM)) == 2


def test_oco_with_limit_leg_filled_cancels_stop_leg(venue: Venue) -> None:
    lst = sell_oco(venue)
    venue.set_book(SPOT, SYM, bids=[(D("101.2"), D("5"))], asks=[(D("101.4"), D("5"))])
    lst, above, below = legs(venue, lst.order_list_id)
    assert above.status is OrderStatus.FILLED
    assert above.trades[0].is_maker
    assert above.avg_price == D("101.0")
    assert below.status is OrderStatus.CANCELED
    assert lst.status is ListStatus.ALL_DONE
    bal = venue.balances()["TEST"]
    assert (bal.free, bal.locked) == (D("48"), D("0"))


def test_oco_with_limit_leg_partially_filled_cancels_stop_leg(venue: Venue) -> None:
    lst = sell_oco(venue)
    venue.set_book(SPOT, SYM, bids=[(D("101.0"), D("0.5"))], asks=[(D("101.4"), D("5"))])
    lst, above, below = legs(venue, lst.order_list_id)
    assert above.status is OrderStatus.PARTIALLY_FILLED
    assert below.status is OrderStatus.CANCELED
    assert lst.status is ListStatus.EXEC_STARTED  # the limit leg still works
    # The shared lock stays on the surviving leg.
    assert venue.balances()["TEST"].locked == D("1.5")


def test_oco_with_stop_triggered_cancels_limit_leg_and_sells(venue: Venue) -> None:
    lst = sell_oco(venue)
    venue.set_book(
        SPOT,
        SYM,
        bids=[(D("97.9"), D("1")), (D("97.6"), D("5"))],
        asks=[(D("98.1"), D("5"))],
        prints=[TradePrint(ts=1, price=D("97.9"), qty=D("1"), aggressor=Side.SELL)],
    )
    lst, above, below = legs(venue, lst.order_list_id)
    assert above.status is OrderStatus.CANCELED
    assert below.status is OrderStatus.FILLED
    assert [(t.price, t.qty) for t in below.trades] == [(D("97.9"), D("1")), (D("97.6"), D("1"))]
    assert lst.status is ListStatus.ALL_DONE
    assert venue.balances()["TEST"].locked == 0


def test_oco_with_wrong_price_order_rejected(venue: Venue) -> None:
    with pytest.raises(errors.VenueError) as exc:
        venue.place_oco(SYM, Side.SELL, D("1"), limit_price=D("97.0"), stop_price=D("98.0"))
    assert exc.value.msg == errors.MSG_OCO_PRICES


def test_cancel_with_one_oco_leg_cancels_whole_list(venue: Venue) -> None:
    lst = sell_oco(venue)
    venue.cancel_order(SPOT, SYM, order_id=lst.orders[0].order_id)
    lst, above, below = legs(venue, lst.order_list_id)
    assert (above.status, below.status) == (OrderStatus.CANCELED, OrderStatus.CANCELED)
    assert lst.status is ListStatus.ALL_DONE
    assert venue.balances()["TEST"].locked == 0


def test_buy_oco_with_stop_market_leg_triggered_buys_at_market(venue: Venue) -> None:
    lst = venue.place_oco(SYM, Side.BUY, D("1"), limit_price=D("98.0"), stop_price=D("101.0"))
    venue.set_book(
        SPOT,
        SYM,
        bids=[(D("101.0"), D("5"))],
        asks=[(D("101.2"), D("5"))],
        prints=[TradePrint(ts=1, price=D("101.1"), qty=D("1"), aggressor=Side.BUY)],
    )
    lst, above, below = legs(venue, lst.order_list_id)
    assert above.type is OrderType.STOP_MARKET
    assert above.status is OrderStatus.FILLED
    assert above.avg_price == D("101.2")
    assert below.status is OrderStatus.CANCELED
    assert venue.balances()["USDT"].locked == 0
