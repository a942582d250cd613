"""Market-data feed: publishes `mkt:tick:{symbol}`, `mkt:depth:{symbol}` and
`feat:last:{symbol}` to Redis.

Features are computed from the data by :class:`venue.features.FeatureCalculator` (mid, spread,
top-N depth, funding, ATR on 1-min bars, realised volatility and its percentile, MA7/MA25 on
5-min bars). In `make run` the source is the in-process venue simulator: every market step
(book + tape) is fed to the calculator through a listener that bypasses the request path, so
publishing costs no request weight and sees no injected faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from redis import exceptions as redis_exc

from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from tradekit.enums import Market
from tradekit.market import DepthSnapshot, Tick
from venue.features import FeatureCalculator
from venue.market import MarketUpdate
from venue.venue import Venue

log = logging.getLogger(__name__)

DEPTH_LEVELS = 20


class SimMarketFeed:
    def __init__(
        self,
        *,
        venue: Venue,
        redis: RedisClient,
        symbols: Iterable[str],
        period_ms: int,
        ttl_s: int = 30,
    ) -> None:
        self.venue = venue
        self.redis = redis
        self.symbols = [s for s in symbols if s in venue.instruments]
        self.period_ms = period_ms
        self.ttl_s = ttl_s  # stale data disappears rather than lingering as "last"
        self.calc = {s: FeatureCalculator(s) for s in self.symbols}
        self.last: dict[str, MarketUpdate] = {}
        self.published = 0
        self._unsubscribe = venue.add_market_listener(self._on_update)

    def _on_update(self, symbol: str, upd: MarketUpdate) -> None:
        calc = self.calc.get(symbol)
        if calc is None or not upd.bids or not upd.asks:
            return
        calc.on_book(upd.ts, upd.bids, upd.asks)
        for p in upd.prints:
            calc.on_trade(p.ts, p.price, p.qty)
        if Market.FUT in self.venue.instruments[symbol].markets:
            calc.on_funding(upd.ts, self.venue.funding_rate(symbol))
        self.last[symbol] = upd

    async def publish_once(self) -> None:
        self.venue.sync()
        pipe = self.redis.pipeline(transaction=False)
        for symbol in self.symbols:
            upd = self.last.get(symbol)
            if upd is None:
                continue
            fut = Market.FUT in self.venue.instruments[symbol].markets
            tick = Tick(
                symbol=symbol,
                ts=upd.ts,
                bid=upd.bids[0][0],
                ask=upd.asks[0][0],
                bid_qty=upd.bids[0][1],
                ask_qty=upd.asks[0][1],
                last=upd.last,
                mark=self.venue.mark_price(symbol) if fut else None,
            )
            depth = DepthSnapshot(
                symbol=symbol,
                ts=upd.ts,
                bids=list(upd.bids[:DEPTH_LEVELS]),
                asks=list(upd.asks[:DEPTH_LEVELS]),
            )
            feats = self.calc[symbol].snapshot()
            pipe.set(keys.mkt_tick(symbol), tick.model_dump_json(), ex=self.ttl_s)
            pipe.set(keys.mkt_depth(symbol), depth.model_dump_json(), ex=self.ttl_s)
            pipe.set(keys.feat_last(symbol), jsonutil.dumps(feats), ex=self.ttl_s)
        await pipe.execute()
        self.published += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.publish_once()
            except (redis_exc.RedisError, OSError) as exc:
                log.warning("market feed: redis unavailable: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.period_ms / 1000)
        self._unsubscribe()
