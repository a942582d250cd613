"""The polling market-data feed over an exchange port (what runs against ccxt on a real venue),
driven here by the in-process simulator with a manual clock."""

from __future__ import annotations

from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.adapters.market_feed import PollingMarketFeed
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from tradekit.enums import Market
from venue.clock import ManualClock
from venue.defaults import default_venue


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
