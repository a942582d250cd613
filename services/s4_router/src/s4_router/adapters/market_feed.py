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
import math
import random
import zlib
from collections.abc import Iterable
from decimal import Decimal

from redis import exceptions as redis_exc

from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from tradekit.enums import Market
from tradekit.market import DepthSnapshot, Tick
from venue.features import MINUTE_MS, Bar, FeatureCalculator
from venue.market import MarketUpdate
from venue.venue import Venue

log = logging.getLogger(__name__)

DEPTH_LEVELS = 20
WARMUP_MINUTES = 180  # ATR(14) on 1-min bars and MA25 on 5-min bars are defined from the start
WARMUP_VOL_PER_MIN = 0.0008  # ≈ 3 % a day, a plausible BTC-like level


def derive(values: dict[str, float]) -> dict[str, float]:
    """Names the factor registry whitelists, derived from the calculator's output."""
    out = dict(values)
    if "mid" in out:
        out.setdefault("price", out["mid"])
    if "funding_rate" in out:
        out["funding_next_abs"] = abs(out["funding_rate"])
    if "rv_60m" in out:
        out["rv_1h"] = out["rv_60m"]
    if "ma7_5m" in out and "ma25_5m" in out:
        diff = out["ma7_5m"] - out["ma25_5m"]
        out["ma_cross"] = float((diff > 0) - (diff < 0))
    return out


def warm_up(calc: FeatureCalculator, *, end_ts: int, last: Decimal, seed: int) -> int:
    """Backfill `WARMUP_MINUTES` of 1-minute bars ending at `last` (a seeded random walk,
    walked backwards from the current price) so history-based features exist from the first
    publish. This is synthetic history for the simulator only; a live feed backfills klines."""
    rng = random.Random(seed)
    closes = [float(last)]
    for _ in range(WARMUP_MINUTES):
        closes.append(closes[-1] * math.exp(-rng.gauss(0.0, WARMUP_VOL_PER_MIN)))
    closes.reverse()
    start = (end_ts // MINUTE_MS - WARMUP_MINUTES) * MINUTE_MS
    for i in range(1, len(closes)):
        o, c = closes[i - 1], closes[i]
        wick = abs(rng.gauss(0.0, WARMUP_VOL_PER_MIN / 2)) * c
        bar = Bar(
            open_ts=start + (i - 1) * MINUTE_MS,
            open=Decimal(f"{o:.8f}"),
            high=Decimal(f"{max(o, c) + wick:.8f}"),
            low=Decimal(f"{min(o, c) - wick:.8f}"),
            close=Decimal(f"{c:.8f}"),
        )
        calc.on_bar(bar)
    return WARMUP_MINUTES


class SimMarketFeed:
    def __init__(
        self,
        *,
        venue: Venue,
        redis: RedisClient,
        symbols: Iterable[str],
        period_ms: int,
        ttl_s: int = 30,
        warmup: bool = True,
    ) -> None:
        self.warmup = warmup
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
        if symbol not in self.last and self.warmup:
            mid = (upd.bids[0][0] + upd.asks[0][0]) / 2
            warm_up(calc, end_ts=upd.ts, last=mid, seed=zlib.crc32(symbol.encode()))
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
            feats = {"symbol": symbol, "ts": upd.ts, **derive(self.calc[symbol].values())}
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
