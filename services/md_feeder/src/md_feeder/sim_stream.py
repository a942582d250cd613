"""The `sim` source: the simulated venue's market steps from the `sim:market` stream.

S4 runs the simulator in-process (`S4_EXCHANGE=sim`) and appends every market step there (see
`s4_router.adapters.exchange.sim_market`); this feed reads on from the stream's tail, feeds the
calculators exactly as the steps happened (book, then the step's prints, then funding) and
publishes after every read. Two things exist for the simulator only:

* a synthetic warm-up (:func:`warm_up`): 3 hours of seeded 1-minute bars ending at a symbol's
  first price, so ATR, the moving averages and the rv percentile exist from the first publish;
* `rho_usdttwd_14` (:func:`synthetic_rho_usdttwd`): the simulator has no USDT/TWD market.

A restarted feeder starts again from the tail (and the warm-up): the stream is the venue's
live feed, not a history to replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import cast

from pydantic import ValidationError
from redis import exceptions as redis_exc

from md_feeder.metrics import FeedMetrics
from md_feeder.publishing import BookSample, publish_snapshots
from svckit import keys
from svckit.redisio import RedisClient
from tradekit.features import MINUTE_MS, Bar, FeatureCalculator, log_returns
from tradekit.market import MarketStep

log = logging.getLogger(__name__)

WARMUP_MINUTES = 180  # ATR(14) on 1-min bars and MA25 on 5-min bars are defined from the start
WARMUP_VOL_PER_MIN = 0.0008  # ≈ 3 % a day, a plausible BTC-like level
SIM_USDTTWD_BETA = -0.4  # the simulator's USDT/TWD returns load negatively on the symbol's
RHO_WINDOW_BARS = 14 * 24 * 60  # 14 days of 1-min bars (less when less history exists)
READ_COUNT = 1000  # entries per XREAD (a backlog is worked through in several)


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


def warm_up(calc: FeatureCalculator, *, end_ts: int, last: Decimal, seed: int) -> None:
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


@dataclass(kw_only=True, eq=False)
class SimStreamFeed:
    """Calculators fed from `sim:market`; one publish per read."""

    redis: RedisClient
    symbols: Collection[str]
    ttl_s: int = 30
    block_ms: int = 1000
    warmup: bool = True
    metrics: FeedMetrics = field(default_factory=FeedMetrics)
    calc: dict[str, FeatureCalculator] = field(default_factory=dict, init=False)
    last: dict[str, MarketStep] = field(default_factory=dict, init=False)
    _rho: dict[str, tuple[int, float | None]] = field(default_factory=dict, init=False)
    # last entry id read; None until the tail is known
    _cursor: str | None = field(default=None, init=False)

    def on_step(self, step: MarketStep) -> None:
        calc = self.calc.get(step.symbol)
        if calc is None:
            calc = self.calc[step.symbol] = FeatureCalculator(step.symbol)
            if self.warmup:
                mid = (step.bids[0][0] + step.asks[0][0]) / 2
                warm_up(calc, end_ts=step.ts, last=mid, seed=zlib.crc32(step.symbol.encode()))
        calc.on_book(step.ts, step.bids, step.asks)
        for ts, price, qty in step.prints:
            calc.on_trade(ts, price, qty)
        if step.funding_rate is not None:
            calc.on_funding(step.ts, step.funding_rate)
        self.last[step.symbol] = step

    async def read_once(self) -> int:
        """Read what was appended since the last read (waiting up to `block_ms`), publish the
        symbols it touched; returns the number of symbols published."""
        if self._cursor is None:  # from the stream's tail on
            newest = await self.redis.xrevrange(keys.SIM_MARKET, count=1)
            self._cursor = str(newest[0][0]) if newest else "0-0"
        answer = cast(
            list[tuple[str, list[tuple[str, dict[str, str]]]]] | None,
            await self.redis.xread(
                {keys.SIM_MARKET: self._cursor}, count=READ_COUNT, block=self.block_ms
            ),
        )
        touched: set[str] = set()
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                self._cursor = str(entry_id)
                try:
                    step = MarketStep.model_validate_json(fields["data"])
                except (KeyError, ValidationError) as exc:
                    self.metrics.error("source")
                    log.warning("sim market: entry %s skipped: %s", entry_id, exc)
                    continue
                if step.symbol in self.symbols and step.bids and step.asks:
                    self.on_step(step)
                    touched.add(step.symbol)
        samples = [self._sample(symbol) for symbol in sorted(touched)]
        return await publish_snapshots(self.redis, samples, self.calc, self.ttl_s, self.metrics)

    def _sample(self, symbol: str) -> BookSample:
        step = self.last[symbol]
        last = step.prints[-1][1] if step.prints else None
        return BookSample(
            symbol, step.ts, step.bids, step.asks, last, step.mark, extra=self._extra(symbol)
        )

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
        while not stop.is_set():
            try:
                await self.read_once()
            except (redis_exc.RedisError, OSError) as exc:
                self.metrics.error("redis")
                log.warning("market feed: redis unavailable: %s", exc)
            except Exception:  # a bug must not end the feed: the next steps still come
                self.metrics.error("internal")
                log.exception("market feed: read failed")
            else:
                continue
            # Not a busy loop after a failure (XREAD BLOCK is what normally waits).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.block_ms / 1000)
