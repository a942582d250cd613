"""The simulator's ledger is bounded (issue 15, soak): S4's in-process venue kept every order
and trade it ever saw, so `make run` grew for as long as it traded (~2.8 KB per MARKET order,
found by diffing tracemalloc snapshots around 600 orders through S4's service layer)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from s4_router.adapters.exchange.factory import make_exchange
from s4_router.adapters.exchange.sim_client import SimExchange
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from tests.chaos.rig import INSTRUMENTS, T0, set_book, settings_for
from tradekit.enums import Market, OrderStatus, OrderType, Side
from venue import errors
from venue.market import MarketSimulator
from venue.venue import Venue

D = Decimal


def capped_venue(history_max: int | None) -> Venue:
    v = Venue(
        clock=ManualClock(T0),
        instruments=INSTRUMENTS,
        market=MarketSimulator(),
        futures_wallet=D(100_000),
        history_max=history_max,
    )
    set_book(v)
    return v


def trade_many(v: Venue, n: int) -> None:
    for i in range(n):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        o = v.place_order(
            Market.FUT, "BTCUSDT", side, OrderType.MARKET, D("0.002"), client_order_id=f"h-{i}"
        )
        assert o.status is OrderStatus.FILLED


def test_closed_orders_and_trades_beyond_the_cap_are_forgotten_oldest_first() -> None:
    v = capped_venue(50)
    trade_many(v, 400)
    eng = v.futures
    assert len(eng.orders) <= 50 and len(eng._by_coid) <= 50
    assert len(eng.trades) <= 55  # trimmed in batches of a tenth of the cap
    # The newest are still there, as on a real venue; the oldest are gone ("does not exist").
    assert v.get_order(Market.FUT, "BTCUSDT", client_order_id="h-399").filled_qty == D("0.002")
    assert [t.qty for t in v.my_trades(Market.FUT, "BTCUSDT")][-1] == D("0.002")
    with pytest.raises(errors.VenueError):
        v.get_order(Market.FUT, "BTCUSDT", client_order_id="h-0")


def test_open_orders_are_never_forgotten_whatever_the_cap() -> None:
    v = capped_venue(5)
    resting = v.place_order(
        Market.FUT,
        "BTCUSDT",
        Side.BUY,
        OrderType.LIMIT,
        D("0.002"),
        price=D("60000"),
        client_order_id="rest-1",
    )
    trade_many(v, 40)
    assert v.get_order(Market.FUT, "BTCUSDT", client_order_id="rest-1").order_id == (
        resting.order_id
    )
    assert len(v.futures.orders) <= 6


def test_without_a_cap_the_venue_keeps_everything_as_before() -> None:
    v = capped_venue(None)
    trade_many(v, 120)
    assert len(v.futures.orders) == 120 and len(v.futures.trades) == 120


async def test_s4_sim_venue_takes_its_cap_from_settings(redis: RedisClient, tmp_path: Path) -> None:
    s = settings_for(tmp_path, sim_history_max=123)
    exchange, _ = make_exchange(
        s, instruments={i.symbol: i for i in INSTRUMENTS}, redis=redis, clock=ManualClock(T0)
    )
    assert isinstance(exchange, SimExchange)
    assert exchange.sim.futures.history_max == 123 and exchange.sim.spot.history_max == 123
    default = settings_for(tmp_path)
    assert default.sim_history_max == 10_000


async def test_s4_sim_venue_buffers_no_reports_it_only_delivers_to_subscribers(
    redis: RedisClient, tmp_path: Path
) -> None:
    """S4 takes the venue's execution reports by subscription; nobody drains the feed's
    buffer there, which kept up to 200,000 reports (an order snapshot each, 2+ per order):
    the bulk of S4's growth in the soak (~15 MB a minute at 10 MARKET orders/s)."""
    exchange, _ = make_exchange(
        settings_for(tmp_path),
        instruments={i.symbol: i for i in INSTRUMENTS},
        redis=redis,
        clock=ManualClock(T0),
    )
    assert isinstance(exchange, SimExchange)
    seen: list[str] = []
    exchange.subscribe_order_updates(seen.append)
    v = exchange.sim
    set_book(v)
    trade_many(v, 30)
    assert len(seen) >= 60  # subscribers still get every report
    assert not v.feed._ready  # nothing piles up for drain()
