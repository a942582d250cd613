"""The facade's MEXC dialect: its answers carry the fields and JSON types of real MEXC answers
(recorded by the ccxt project: data/ccxt-recorded/mexc.json beside this module), and ccxt's
`mexc` client drives it for the rebalancer's calls: balances, ticker, klines, create / query /
cancel order, my trades (S3's reader included)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from s3_strategy.adapters.spot_reader import CcxtSpotReader
from s4_router.adapters.exchange.base import OrderNotFound, PlaceOrderRequest
from tests.contract.facade_harness import (
    API_KEY,
    API_SECRET,
    START_MS,
    SwappableApp,
    ccxt_exchange,
)
from tests.facade_server import FacadeServer
from tests.tracking_clock import TrackingClock
from tradekit.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from venue.defaults import DEFAULT_INSTRUMENTS, default_venue
from venue.facade import create_facade
from venue.venue import Venue

RECORDED = Path(__file__).resolve().parent / "data" / "ccxt-recorded" / "mexc.json"
MINUTE = 60_000
SYM = "QRLUSDT"
D = Decimal


def recorded(method: str) -> Any:
    data = json.loads(RECORDED.read_text())
    return data["methods"][method][0]["httpResponse"]


@pytest.fixture
def venue(facade_server: tuple[FacadeServer, SwappableApp]) -> Venue:
    _, slot = facade_server
    v = default_venue(clock=TrackingClock(START_MS), seed=7, step_ms=MINUTE, replay=False)
    v.advance(30 * MINUTE)
    slot.app = create_facade(v, api_key=API_KEY, api_secret=API_SECRET, dialect="mexc")
    return v


@pytest.fixture
def url(facade_server: tuple[FacadeServer, SwappableApp]) -> str:
    return facade_server[0].url


def signed(venue: Venue, **params: Any) -> str:
    params["timestamp"] = venue.server_clock_ms()
    query = urlencode(params)
    sig = hmac.new(API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={sig}"


def kinds(value: Any) -> str:
    return type(value).__name__


def assert_same_shape(ours: dict[str, Any], real: dict[str, Any], nullable: set[str]) -> None:
    assert set(ours) == set(real), set(ours) ^ set(real)
    for k, v in real.items():
        if k in nullable and ours[k] is None:
            continue
        if v is None and k in nullable:
            assert ours[k] is None or isinstance(ours[k], str), k
            continue
        assert kinds(ours[k]) == kinds(v), (k, ours[k], v)


async def test_public_answers_match_recorded_mexc_fields_and_types(venue: Venue, url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as h:
        book = (await h.get("/api/v3/depth", params={"symbol": SYM, "limit": 5})).json()
        assert_same_shape(book, recorded("fetchOrderBook"), set())
        assert all(isinstance(x, str) for lvl in book["bids"] for x in lvl)
        tick = (await h.get("/api/v3/ticker/24hr", params={"symbol": SYM})).json()
        assert_same_shape(tick, recorded("fetchTicker"), {"count"})
        rows = (await h.get("/api/v3/klines", params={"symbol": SYM, "interval": "5m"})).json()
        real = recorded("fetchOHLCV")[0]
        assert rows and all([kinds(x) for x in r] == [kinds(x) for x in real] for r in rows)
        assert rows[0][6] - rows[0][0] == 5 * MINUTE
        bad = await h.get("/api/v3/klines", params={"symbol": SYM, "interval": "1h"})
        assert bad.status_code == 400  # MEXC says 60m
        assert (await h.get("/fapi/v1/time")).status_code == 404  # spot-only host


async def test_order_and_trade_answers_match_recorded_mexc_fields_and_types(
    venue: Venue, url: str
) -> None:
    headers = {"X-MEXC-APIKEY": API_KEY}
    async with httpx.AsyncClient(base_url=url, headers=headers) as h:
        ask = venue.ticker(Market.SPOT, SYM).ask
        assert ask is not None
        # a marketable limit without a client id: filled, clientOrderId null
        q = signed(
            venue,
            symbol=SYM,
            side="BUY",
            type="LIMIT",
            quantity="20",
            price=str(ask[0]),
            timeInForce="GTC",
        )
        created = (await h.post(f"/api/v3/order?{q}")).json()
        assert isinstance(created["orderId"], str) and created["orderId"].startswith("C02__")
        assert created["orderListId"] == -1
        got = await h.get(f"/api/v3/order?{signed(venue, symbol=SYM, orderId=created['orderId'])}")
        order = got.json()
        assert_same_shape(order, recorded("fetchOrders")[0], {"clientOrderId"})
        assert order["clientOrderId"] is None and order["status"] == "FILLED"
        trades = (await h.get(f"/api/v3/myTrades?{signed(venue, symbol=SYM)}")).json()
        assert trades
        assert_same_shape(trades[0], recorded("fetchMyTrades")[0], {"clientOrderId"})
        assert trades[0]["orderId"] == created["orderId"] and trades[0]["clientOrderId"] is None
        # the Binance header is not MEXC's
        anon = await h.get(
            f"/api/v3/account?{signed(venue)}",
            headers={"X-MEXC-APIKEY": "", "X-MBX-APIKEY": API_KEY},
        )
        assert anon.status_code in (400, 401)


@pytest.fixture
async def mexc(venue: Venue, url: str) -> AsyncIterator[Any]:
    reader = CcxtSpotReader(
        "mexc", api_key=API_KEY, api_secret=API_SECRET, base_url=url, timeout_ms=2000
    )
    try:
        yield reader
    finally:
        await reader.close()


async def test_ccxt_mexc_reads_and_trades_through_the_facade(venue: Venue, mexc: Any) -> None:
    reader: CcxtSpotReader = mexc
    bal = await reader.balances(["QRL", "USDT"])
    assert bal["QRL"].free == Decimal(20000)
    t = await reader.ticker(SYM)
    assert t.bid is not None and t.ask is not None and t.bid < t.ask
    closes = await reader.closes(SYM, "5m", 4)
    assert closes == [b.close for b in venue.klines(SYM, "5m")[:-1]][-4:]
    client = reader.client
    market = await client.fetch_ticker("QRL/USDT")
    low = round(market["bid"] * 0.8, 4)
    o = await client.create_order(
        "QRL/USDT", "limit", "buy", 100, low, {"newClientOrderId": "rb-test-1"}
    )
    assert o["id"].startswith("C02__")
    got = await client.fetch_order(o["id"], "QRL/USDT")
    assert got["status"] == "open" and got["clientOrderId"] == "rb-test-1"
    gone = await client.cancel_order(o["id"], "QRL/USDT")
    assert gone["id"] == o["id"]
    assert (await client.fetch_order(o["id"], "QRL/USDT"))["status"] == "canceled"
    hi = round(market["ask"] * 1.01, 4)
    f = await client.create_order("QRL/USDT", "limit", "buy", 50, hi)
    mine = await client.fetch_my_trades("QRL/USDT")
    assert mine and mine[-1]["order"] == f["id"] and mine[-1]["amount"] == 50


async def test_s4s_mexc_port_trades_qrlusdt_spot_through_the_facade(venue: Venue, url: str) -> None:
    """S4_EXCHANGE=mexc: the router's own port (ccxt mexc) for what a rebalance order needs:
    markets of a spot-only registry (no futures host, no currency list), book, balances, a
    maker order by client id, query by client and venue id, cancel by client id, a taker fill,
    my trades with their client id."""
    qrl = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == SYM)
    ex = ccxt_exchange(url, "mexc", timeout_ms=2000)
    try:
        await ex.load_markets([qrl.model_copy(update={"markets": ("SPOT",)})])
        book = await ex.fetch_book(Market.SPOT, SYM, 5)
        assert book.best_bid is not None and book.best_bid < book.best_ask
        bal = await ex.fetch_balances(Market.SPOT)
        assert bal["QRL"].free == 20000
        low = (book.best_bid * D("0.9")).quantize(qrl.tickSize)
        maker = PlaceOrderRequest(
            Market.SPOT,
            SYM,
            Side.BUY,
            OrderType.LIMIT,
            D(100),
            "rb-0123456789abcdef-E1",
            price=low,
            time_in_force=TimeInForce.GTC,
            post_only=True,
        )
        placed = await ex.place_order(maker)
        assert placed.venue_order_id.startswith("C02__")
        assert placed.client_order_id == maker.client_order_id
        by_coid = await ex.fetch_order(Market.SPOT, SYM, client_order_id=maker.client_order_id)
        by_id = await ex.fetch_order(Market.SPOT, SYM, venue_order_id=placed.venue_order_id)
        assert by_coid.venue_order_id == by_id.venue_order_id == placed.venue_order_id
        assert (
            by_coid.status is OrderStatus.ACCEPTED
            and by_id.client_order_id == "rb-0123456789abcdef-E1"
        )
        assert [o.client_order_id for o in await ex.fetch_open_orders(Market.SPOT, SYM)] == [
            maker.client_order_id
        ]
        gone = await ex.cancel_order(Market.SPOT, SYM, client_order_id=maker.client_order_id)
        assert gone.status is OrderStatus.CANCELED
        taker = PlaceOrderRequest(
            Market.SPOT, SYM, Side.SELL, OrderType.MARKET, D(50), "rb-0123456789abcdef-E2"
        )
        sold = await ex.place_order(taker)
        filled = await ex.fetch_order(Market.SPOT, SYM, venue_order_id=sold.venue_order_id)
        assert filled.status is OrderStatus.FILLED and filled.filled_qty == 50
        trades = await ex.fetch_my_trades(Market.SPOT, SYM)
        assert [(t.client_order_id, t.qty) for t in trades] == [(taker.client_order_id, 50)]
        with pytest.raises(OrderNotFound):
            await ex.fetch_order(Market.SPOT, SYM, client_order_id="rb-never-sent")
    finally:
        await ex.close()
