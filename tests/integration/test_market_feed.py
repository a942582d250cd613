"""The polling market-data feed over an exchange port (what runs against ccxt on a real venue),
driven here by the in-process simulator with a manual clock."""

from __future__ import annotations

import random
from decimal import Decimal as D

from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.adapters.market_feed import (
    SIM_USDTTWD_BETA,
    PollingMarketFeed,
    synthetic_rho_usdttwd,
)
from svckit import jsonutil, keys
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from tradekit.enums import Market
from venue.defaults import default_venue
from venue.features import Bar


async def test_polling_feed_with_exchange_port_publishes_and_builds_history(
    redis: RedisClient,
) -> None:
    clock = ManualClock(1_700_000_000_000)
    venue = default_venue(clock=clock, seed=3)
    feed = PollingMarketFeed(
        exchange=SimExchange(venue), redis=redis, symbols=[("BTCUSDT", Market.FUT)], period_ms=1000
    )
    await feed.publish_once()
    feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
    assert 55_000 < feats["mid"] < 75_000 and feats["spread_bps"] >= 0
    assert "atr_14" not in feats  # no synthetic warm-up on a live venue: history first
    tick = jsonutil.loads(await redis.get(keys.mkt_tick("BTCUSDT")))
    assert float(tick["bid"]) < float(tick["ask"])
    assert 0 < await redis.ttl(keys.feat_last("BTCUSDT")) <= 30
    for _ in range(16 * 6):  # 16 minutes of 10-second polls
        venue.advance(10_000)
        await feed.publish_once()
    feats = jsonutil.loads(await redis.get(keys.feat_last("BTCUSDT")))
    assert feats["atr_14"] > 0 and feats["ts"] == venue.clock.now_ms()


def test_synthetic_rho_with_long_history_is_deterministic_and_near_its_beta() -> None:
    calc_bars = []
    price = 65000.0
    rng = random.Random(1)
    for i in range(3000):
        nxt = price * (1 + rng.gauss(0, 0.001))
        calc_bars.append(Bar(i * 60_000, D(f"{price:.2f}"), D(f"{max(price, nxt):.2f}"),
                             D(f"{min(price, nxt):.2f}"), D(f"{nxt:.2f}")))  # fmt: skip
        price = nxt
    rho = synthetic_rho_usdttwd(calc_bars, seed=42)
    assert rho == synthetic_rho_usdttwd(calc_bars, seed=42)
    assert rho is not None and abs(rho - SIM_USDTTWD_BETA) < 0.1
    assert synthetic_rho_usdttwd(calc_bars[:5], seed=42) is None
