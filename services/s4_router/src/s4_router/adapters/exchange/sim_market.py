"""The simulated venue's public market data, on the `sim:market` stream.

With `S4_EXCHANGE=sim` the venue simulator lives inside S4, so its market (books, tape, mark,
funding) can only leave through S4, as a real exchange's public websocket would carry it. This
tap is that channel and nothing more: every market step of every symbol becomes one
:class:`tradekit.market.MarketStep` entry (steps are taken from a listener that bypasses the
request path: no request weight, no injected faults). Features, warm-up and the `mkt:*` /
`feat:last:*` keys are the market-data feeder's (`python -m md_feeder`), a process of its own.

The tap also brings the simulator's market up to the clock every period, so the price process
moves while nobody trades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable

from redis import exceptions as redis_exc

from svckit import keys
from svckit.redisio import RedisClient
from tradekit.enums import Market
from tradekit.market import MarketStep
from venue.market import MarketUpdate
from venue.venue import Venue

log = logging.getLogger(__name__)


class SimMarketTap:
    """Appends the in-process venue's market steps to `sim:market` every `period_ms`."""

    def __init__(
        self,
        *,
        venue: Venue,
        redis: RedisClient,
        symbols: Iterable[str],
        period_ms: int,
        maxlen: int = keys.SIM_MARKET_MAXLEN,
    ) -> None:
        self.venue = venue
        self.redis = redis
        self.symbols = {s for s in symbols if s in venue.instruments}
        self.period_ms = period_ms
        self.maxlen = maxlen
        # Bounded: with Redis away, the oldest steps go first (the feeder wants the latest).
        self._pending: deque[MarketStep] = deque(maxlen=maxlen)
        self._unsubscribe = venue.add_market_listener(self._on_update)

    def _on_update(self, symbol: str, upd: MarketUpdate) -> None:
        if symbol not in self.symbols or not upd.bids or not upd.asks:
            return
        fut = Market.FUT in self.venue.instruments[symbol].markets
        self._pending.append(
            MarketStep(
                symbol=symbol,
                ts=upd.ts,
                bids=list(upd.bids),
                asks=list(upd.asks),
                prints=[(p.ts, p.price, p.qty) for p in upd.prints],
                funding_rate=self.venue.market.funding_rate(symbol) if fut else None,
                mark=self.venue.mark_price(symbol) if fut else None,
            )
        )

    async def publish_once(self) -> int:
        """Step the market to now and append what happened; returns the entries written."""
        self.venue.sync()
        if not self._pending:
            return 0
        steps = list(self._pending)
        pipe = self.redis.pipeline(transaction=False)
        for step in steps:
            pipe.xadd(
                keys.SIM_MARKET,
                {"data": step.model_dump_json()},
                maxlen=self.maxlen,
                approximate=True,
            )
        await pipe.execute()
        for _ in steps:  # only once written: a failed round trip is retried next period
            self._pending.popleft()
        return len(steps)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.publish_once()
                except (redis_exc.RedisError, OSError) as exc:
                    log.warning("sim market: redis unavailable: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.period_ms / 1000)
        finally:
            self._unsubscribe()
