"""The book pre-trade checks read (liquidity probe, arrival mid, collars, the OCO guardian's
local legs): the one the market-data feeder already publishes, `mkt:depth:{symbol}`, when it is
at most `S4_BOOK_MAX_AGE_MS` old, else the venue's (`GET /depth`: a network round trip and
request weight on every order otherwise).

The published book is used only for the market the feed publishes: the simulator's feed
serves both (its spot and futures books share the levels); a live feed publishes the futures
book where the symbol has one, else spot (the feeder, `md_feeder`), so a spot order on a symbol
with futures always asks the venue.

`allow_stale` (reduce-only closes): the venue's book is asked in the urgent weight lane, and when
the venue cannot answer (a 429 storm, an outage) an older published book is better than
refusing a close; the probe still runs on it and the close goes out in the urgent lane too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from redis import exceptions as redis_exc

from s4_router.adapters.exchange.base import BookTop, ExchangeError
from s4_router.adapters.exchange.weight import urgent_lane
from s4_router.metrics import RouterMetrics
from s4_router.service_layer.venue_ops import VenueOps
from svckit import keys
from svckit.clock import Clock
from svckit.redisio import RedisClient
from tradekit.enums import Market
from tradekit.market import DepthSnapshot

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class BookSource:
    redis: RedisClient
    ops: VenueOps
    clock: Clock
    metrics: RouterMetrics
    max_age_ms: int = 1000
    # symbol → the market `mkt:depth` holds (None: every market)
    published_market: Mapping[str, Market] | None = None
    redis_timeout_s: float = 0.25

    async def published(self, market: Market, symbol: str) -> BookTop | None:
        """The published book of `symbol` whatever its age (None: none, or unreadable)."""
        if self.published_market is not None and self.published_market.get(symbol) is not market:
            return None
        try:
            raw = await asyncio.wait_for(
                self.redis.get(keys.mkt_depth(symbol)), timeout=self.redis_timeout_s
            )
        except (TimeoutError, redis_exc.RedisError, OSError) as exc:
            log.info("%s: published book unreadable (%s); the venue's is used", symbol, exc)
            return None
        if raw is None:
            return None
        try:
            snap = DepthSnapshot.model_validate_json(raw)
        except ValidationError:
            log.warning(
                "%s: malformed %s; the venue's book is used", symbol, keys.mkt_depth(symbol)
            )
            return None
        if snap.symbol != symbol or not snap.bids or not snap.asks:
            return None
        return BookTop(symbol=symbol, ts=snap.ts, bids=tuple(snap.bids), asks=tuple(snap.asks))

    def fresh(self, book: BookTop) -> bool:
        return self.clock.now_ms() - book.ts <= self.max_age_ms

    async def book(self, market: Market, symbol: str, *, allow_stale: bool = False) -> BookTop:
        """The published book when fresh, else the venue's (module doc)."""
        pub = await self.published(market, symbol) if self.max_age_ms > 0 else None
        if pub is not None and self.fresh(pub):
            self.metrics.book_source.labels("published").inc()
            return pub
        try:
            # A close's book is not paced behind entries and polls.
            with urgent_lane() if allow_stale else contextlib.nullcontext():
                book = await self.ops.book(market, symbol)
        except ExchangeError as exc:
            if not allow_stale or pub is None:
                raise
            age = self.clock.now_ms() - pub.ts
            log.warning(
                "%s: venue book unavailable (%s); a reduce-only close uses the published book "
                "(%d ms old)",
                symbol,
                exc,
                age,
            )
            self.metrics.book_source.labels("stale").inc()
            return pub
        self.metrics.book_source.labels("venue").inc()
        return book
