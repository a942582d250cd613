"""Test helpers shared by integration and e2e tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from svckit import jsonutil, keys
from svckit.redisio import RedisClient

BTC_FEATURES: dict[str, Any] = {
    "mid": 65000.5,
    "spread_bps": 0.15,
    "depth_top1_usdt": 50_000.0,
    "funding_rate": 0.0001,
    "atr_14": 120.0,
    "rv_pctile_30d": 0.4,
    "ma7_5m": 65010.0,
    "ma25_5m": 64990.0,
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def put_features(redis: RedisClient, symbol: str = "BTCUSDT", **over: Any) -> int:
    ts = int(over.pop("ts", now_ms()))
    data = {"symbol": symbol, "ts": ts, **BTC_FEATURES, **over}
    await redis.set(keys.feat_last(symbol), jsonutil.dumps(data))
    return ts


# Skips the simulated market itself causes now and then (the replayed BTCUSDT book is wider
# than R-001's 2.5 bps in ≈ 6 % of its quotes): a live decision on the feed is retried on a
# fresh snapshot, as a desk would, never with what-if features (live decisions refuse them).
MARKET_SKIPS = frozenset({"SPREAD_TOO_WIDE", "DEPTH_TOO_THIN", "RULE_SKIP", "FEATURE_STALE"})


async def decide_live_until_open(
    client: httpx.AsyncClient, body: dict[str, Any], *, attempts: int = 10, gap_s: float = 0.2
) -> dict[str, Any]:
    """POST /decide until it opens (≤ `attempts`, `gap_s` apart); the last answer otherwise."""
    out: dict[str, Any] = {}
    for _ in range(attempts):
        r = await client.post("/decide", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        if out["decision"] == "open" or out["reason"] not in MARKET_SKIPS:
            return out
        await asyncio.sleep(gap_s)
    return out
