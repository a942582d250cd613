"""Market-data feed: publishes `mkt:tick:{symbol}`, `mkt:depth:{symbol}` and
`feat:last:{symbol}` to Redis.

Features are computed from the data by :class:`venue.features.FeatureCalculator` (mid, spread,
top-N depth, funding, ATR on 1-min bars, realised volatility and its percentile, MA7/MA25 on
5-min bars). Two sources share one publishing path (:func:`publish_snapshots`):

* :class:`SimMarketFeed` (`make run`, tests): every step of the in-process venue simulator (book
  and tape) reaches the calculator through a listener that bypasses the request path, so
  publishing costs no request weight and sees no injected faults;
* :class:`PollingMarketFeed` (any exchange adapter, e.g. ccxt on a real venue): polls the order
  book through the exchange port every period; bars are built from the sampled mid (the port
  has no public tape), and there is no synthetic warm-up: history-based features appear once
  enough live bars exist (14 minutes for ATR(14), about two hours for MA25 on 5-min bars).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from redis import exceptions as redis_exc

from s4_router.adapters.exchange.base import ExchangeError, ExchangePort
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from tradekit.enums import Market
from tradekit.market import DepthSnapshot, Tick
from venue.features import MINUTE_MS, MINUTES_PER_YEAR, Bar, FeatureCalculator, log_returns
from venue.market import MarketUpdate
from venue.venue import Venue

log = logging.getLogger(__name__)

DEPTH_LEVELS = 20
ZERO_QTY = Decimal(0)
WARMUP_MINUTES = 180  # ATR(14) on 1-min bars and MA25 on 5-min bars are defined from the start
WARMUP_VOL_PER_MIN = 0.0008  # ≈ 3 % a day, a plausible BTC-like level


def derive(values: dict[str, float]) -> dict[str, float]:
    """Names the factor registry whitelists, derived from the calculator's output."""
    out = dict(values)
    if "rv_60m" in out:
        # The registry's rv_1h is the hour's volatility, not annualised (the calculator's is).
        out["rv_1h"] = out["rv_60m"] * math.sqrt(60 / MINUTES_PER_YEAR)
    if "mid" in out:
        out.setdefault("price", out["mid"])
    if "funding_rate" in out:
        out["funding_next_abs"] = abs(out["funding_rate"])
    if "ma7_5m" in out and "ma25_5m" in out:
        diff = out["ma7_5m"] - out["ma25_5m"]
        out["ma_cross"] = float((diff > 0) - (diff < 0))
    return out


SIM_USDTTWD_BETA = -0.4  # the simulator's USDT/TWD returns load negatively on the symbol's
RHO_WINDOW_BARS = 14 * 24 * 60  # 14 days of 1-min bars (less when less history exists)


def synthetic_rho_usdttwd(bars: Sequence[Bar], seed: int) -> float | None:
    """`rho_usdttwd_14` for the simulator, which has no USDT/TWD market: a seeded synthetic
    USDT/TWD return series r_twd = β·z + √(1−β²)·ε (z the symbol's standardised 1-min returns,
    ε seeded noise per bar) and the sample correlation over the available window. Live feeds
    must take this factor from real FX data; this exists so the spec's rules can fire in dev."""
    closes = [b.close for b in bars[-(RHO_WINDOW_BARS + 1) :]]
    rets = log_returns(closes)
    if len(rets) < 10:
        return None
    mean = sum(rets) / len(rets)
    sd = math.sqrt(sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)) or 1.0
    twd = []
    for bar, r in zip(bars[-len(rets) :], rets, strict=True):
        eps = random.Random(seed ^ bar.open_ts).gauss(0.0, 1.0)
        twd.append(SIM_USDTTWD_BETA * (r - mean) / sd + math.sqrt(1 - SIM_USDTTWD_BETA**2) * eps)
    tm = sum(twd) / len(twd)
    cov = sum((a - mean) * (b - tm) for a, b in zip(rets, twd, strict=True))
    var_t = sum((b - tm) ** 2 for b in twd)
    var_r = sum((a - mean) ** 2 for a in rets)
    return cov / math.sqrt(var_r * var_t) if var_r > 0 and var_t > 0 else None


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


@dataclass(frozen=True, slots=True)
class BookSample:
    symbol: str
    ts: int
    bids: Sequence[tuple[Decimal, Decimal]]
    asks: Sequence[tuple[Decimal, Decimal]]
    last: Decimal | None = None
    mark: Decimal | None = None
    extra: Mapping[str, float] | None = None  # features the calculator does not compute


async def publish_snapshots(
    redis: RedisClient,
    samples: Iterable[BookSample],
    calcs: Mapping[str, FeatureCalculator],
    ttl_s: int,
) -> int:
    """SET mkt:tick, mkt:depth and feat:last for every sample in one pipeline round trip;
    keys expire after `ttl_s` so stale data disappears rather than lingering as "last"."""
    pipe = redis.pipeline(transaction=False)
    n = 0
    for smp in samples:
        if not smp.bids or not smp.asks:
            continue
        tick = Tick(
            symbol=smp.symbol, ts=smp.ts, bid=smp.bids[0][0], ask=smp.asks[0][0],
            bid_qty=smp.bids[0][1], ask_qty=smp.asks[0][1], last=smp.last, mark=smp.mark,
        )  # fmt: skip
        depth = DepthSnapshot(
            symbol=smp.symbol, ts=smp.ts,
            bids=list(smp.bids[:DEPTH_LEVELS]), asks=list(smp.asks[:DEPTH_LEVELS]),
        )  # fmt: skip
        feats = {
            "symbol": smp.symbol,
            "ts": smp.ts,
            **derive(calcs[smp.symbol].values()),
            **(smp.extra or {}),
        }
        pipe.set(keys.mkt_tick(smp.symbol), tick.model_dump_json(), ex=ttl_s)
        pipe.set(keys.mkt_depth(smp.symbol), depth.model_dump_json(), ex=ttl_s)
        pipe.set(keys.feat_last(smp.symbol), jsonutil.dumps(feats), ex=ttl_s)
        n += 1
    if n:
        await pipe.execute()
    return n


async def _every(period_ms: int, stop: asyncio.Event, step: Callable[[], Awaitable[None]]) -> None:
    while not stop.is_set():
        try:
            await step()
        except (redis_exc.RedisError, OSError) as exc:
            log.warning("market feed: redis unavailable: %s", exc)
        except ExchangeError as exc:
            log.warning("market feed: exchange error: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period_ms / 1000)


class SimMarketFeed:
    """Feeds the calculators from the in-process venue's market steps."""

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
        self.ttl_s = ttl_s
        self.calc = {s: FeatureCalculator(s) for s in self.symbols}
        self.last: dict[str, MarketUpdate] = {}
        self.published = 0
        self._rho: dict[str, tuple[int, float | None]] = {}
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
        samples = []
        for symbol in self.symbols:
            upd = self.last.get(symbol)
            if upd is None:
                continue
            fut = Market.FUT in self.venue.instruments[symbol].markets
            samples.append(
                BookSample(
                    symbol,
                    upd.ts,
                    upd.bids,
                    upd.asks,
                    upd.last,
                    self.venue.mark_price(symbol) if fut else None,
                    extra=self._extra(symbol),
                )
            )
        await publish_snapshots(self.redis, samples, self.calc, self.ttl_s)
        self.published += 1

    def _extra(self, symbol: str) -> dict[str, float]:
        """Simulator-only factors (recomputed once per closed bar: O(window) work)."""
        bars = self.calc[symbol].bars_1m()
        if not bars:
            return {}
        cached = self._rho.get(symbol)
        if cached is None or cached[0] != bars[-1].open_ts:
            rho = synthetic_rho_usdttwd(bars, zlib.crc32(symbol.encode()))
            cached = (bars[-1].open_ts, rho)
            self._rho[symbol] = cached
        return {} if cached[1] is None else {"rho_usdttwd_14": cached[1]}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await _every(self.period_ms, stop, self.publish_once)
        finally:
            self._unsubscribe()


class PollingMarketFeed:
    """Feeds the calculators by polling the order book through any exchange adapter."""

    def __init__(
        self,
        *,
        exchange: ExchangePort,
        redis: RedisClient,
        symbols: Iterable[tuple[str, Market]],
        period_ms: int,
        ttl_s: int = 30,
    ) -> None:
        self.exchange = exchange
        self.redis = redis
        self.symbols = list(symbols)
        self.period_ms = period_ms
        self.ttl_s = ttl_s
        self.calc = {s: FeatureCalculator(s) for s, _ in self.symbols}
        self.published = 0

    async def publish_once(self) -> None:
        samples = []
        for symbol, market in self.symbols:
            book = await self.exchange.fetch_book(market, symbol, depth=DEPTH_LEVELS)
            if not book.bids or not book.asks:
                continue
            calc = self.calc[symbol]
            calc.on_book(book.ts, book.bids, book.asks)
            calc.on_trade(book.ts, book.mid, ZERO_QTY)  # a mid sample builds the 1-min bars
            samples.append(BookSample(symbol, book.ts, book.bids, book.asks, book.mid))
        await publish_snapshots(self.redis, samples, self.calc, self.ttl_s)
        self.published += 1

    async def run(self, stop: asyncio.Event) -> None:
        await _every(self.period_ms, stop, self.publish_once)
