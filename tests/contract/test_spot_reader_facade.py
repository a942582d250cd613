"""S3's read-only spot adapter (ccxt) against the simulator's Binance-compatible facade over real
HTTP: balances, ticker and closed 5-minute klines of QRLUSDT, as the rebalance tasks read them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from s3_strategy.adapters.spot_reader import CcxtSpotReader
from tests.contract.facade_harness import API_KEY, API_SECRET, START_MS, SwappableApp, plug
from tests.facade_server import FacadeServer
from tests.tracking_clock import TrackingClock
from tradekit.enums import Market
from venue.defaults import default_venue
from venue.venue import Venue

MINUTE = 60_000


@pytest.fixture
async def setup(
    facade_server: tuple[FacadeServer, SwappableApp],
) -> AsyncIterator[tuple[CcxtSpotReader, Venue]]:
    srv, slot = facade_server
    venue = default_venue(clock=TrackingClock(START_MS), seed=5, step_ms=MINUTE, replay=False)
    venue.advance(151 * MINUTE)  # 151 one-minute steps of QRLUSDT history
    plug(slot, venue)
    reader = CcxtSpotReader(
        "binance", api_key=API_KEY, api_secret=API_SECRET, base_url=srv.url, timeout_ms=2000
    )
    try:
        yield reader, venue
    finally:
        await reader.close()


async def test_reader_reads_balances_ticker_and_closed_5m_klines_from_the_facade(
    setup: tuple[CcxtSpotReader, Venue],
) -> None:
    reader, venue = setup
    bal = await reader.balances(["QRL", "USDT"])
    assert bal["QRL"].free == Decimal(20000) and bal["USDT"].free == Decimal(100000)
    t = await reader.ticker("QRLUSDT")
    assert t.bid is not None and t.ask is not None and 0 < t.bid < t.ask
    assert Decimal("0.3") < t.last < Decimal("0.7")
    closes = await reader.closes("QRLUSDT", "5m", 25)
    # the venue's bars, the newest (still forming) left out by the reader
    bars = venue.klines("QRLUSDT", "5m", limit=100)
    assert len(bars) >= 30
    assert closes == [b.close for b in bars[:-1]][-25:]
    assert venue.ticker(Market.SPOT, "QRLUSDT").symbol == "QRLUSDT"


async def test_klines_aggregate_one_minute_bars_on_epoch_aligned_intervals() -> None:
    venue = default_venue(clock=TrackingClock(START_MS), seed=5, step_ms=MINUTE, replay=False)
    venue.advance(60 * MINUTE)
    ones = venue.klines("QRLUSDT", "1m", limit=1000)
    fives = venue.klines("QRLUSDT", "5m", limit=1000)
    assert all(b.open_time % (5 * MINUTE) == 0 for b in fives)
    for five in fives[1:-1]:
        inside = [b for b in ones if five.open_time <= b.open_time < five.open_time + 5 * MINUTE]
        assert len(inside) == 5
        assert five.open == inside[0].open and five.close == inside[-1].close
        assert five.high == max(b.high for b in inside) and five.low == min(b.low for b in inside)
