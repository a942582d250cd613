"""One publishing path for every source: `mkt:tick`, `mkt:depth` and `feat:last` per symbol.

Each sample becomes three SETs in one pipeline round trip; the keys expire after `ttl_s`, so a
stopped feeder's data disappears rather than lingering as "last".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from md_feeder.metrics import FeedMetrics
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from tradekit.features import MINUTES_PER_YEAR, FeatureCalculator
from tradekit.market import DepthSnapshot, Tick

DEPTH_LEVELS = 20


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
    metrics: FeedMetrics,
) -> int:
    """SET mkt:tick, mkt:depth and feat:last for every sample with both sides of a book;
    returns how many were published."""
    pipe = redis.pipeline(transaction=False)
    published: list[str] = []
    for smp in samples:
        if not smp.bids or not smp.asks:
            continue
        tick = Tick(
            symbol=smp.symbol,
            ts=smp.ts,
            bid=smp.bids[0][0],
            ask=smp.asks[0][0],
            bid_qty=smp.bids[0][1],
            ask_qty=smp.asks[0][1],
            last=smp.last,
            mark=smp.mark,
        )
        depth = DepthSnapshot(
            symbol=smp.symbol,
            ts=smp.ts,
            bids=list(smp.bids[:DEPTH_LEVELS]),
            asks=list(smp.asks[:DEPTH_LEVELS]),
        )
        feats = {
            "symbol": smp.symbol,
            "ts": smp.ts,
            **derive(calcs[smp.symbol].values()),
            **(smp.extra or {}),
        }
        pipe.set(keys.mkt_tick(smp.symbol), tick.model_dump_json(), ex=ttl_s)
        pipe.set(keys.mkt_depth(smp.symbol), depth.model_dump_json(), ex=ttl_s)
        pipe.set(keys.feat_last(smp.symbol), jsonutil.dumps(feats), ex=ttl_s)
        published.append(smp.symbol)
    if published:
        await pipe.execute()
        metrics.published(s.symbol for s in samples)  # every symbol polled in the round
    return len(published)
