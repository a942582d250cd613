"""Test helpers shared by integration and e2e tests."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx

from md_feeder.app import Feeder, start_feeder
from md_feeder.config import Settings as MDSettings
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


# Bearer tokens of the test suite: tests/conftest.py puts them in the environment (S3_API_TOKEN,
# S3_ADMIN_TOKEN, S3_S4_API_TOKEN, S4_API_TOKEN), so every Settings() the tests build has them.
S3_TOKEN = "test-s3-api-token-0123456789abcdef"
S3_ADMIN_TOKEN = "test-s3-admin-token-0123456789abcdef"
S4_TOKEN = "test-s4-api-token-0123456789abcdef"
TOKEN_ENV = {
    "S3_API_TOKEN": S3_TOKEN,
    "S3_ADMIN_TOKEN": S3_ADMIN_TOKEN,
    "S3_S4_API_TOKEN": S4_TOKEN,
    "S4_API_TOKEN": S4_TOKEN,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


S3_AUTH = bearer(S3_TOKEN)
S4_AUTH = bearer(S4_TOKEN)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def put_features(redis: RedisClient, symbol: str = "BTCUSDT", **over: Any) -> int:
    ts = int(over.pop("ts", now_ms()))
    data = {"symbol": symbol, "ts": ts, **BTC_FEATURES, **over}
    await redis.set(keys.feat_last(symbol), jsonutil.dumps(data))
    return ts


class FreshTransport(httpx.ASGITransport):
    """Stamps `created_ts` (now) on `POST /orders` bodies that lack one, as S3 does when it
    decides: the bodies above are written once, S4 refuses stale or undated intents."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/orders":
            try:
                body = jsonutil.loads(await request.aread())
            except ValueError:
                body = None
            if isinstance(body, dict) and "created_ts" not in body:
                body["created_ts"] = int(time.time() * 1000)
                request = httpx.Request(
                    request.method, request.url, json=body,
                    headers={k: v for k, v in request.headers.items()
                             if k.lower() != "content-length"},
                )  # fmt: skip
        return await super().handle_async_request(request)


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


async def start_market_feeder(
    stack: AsyncExitStack, redis: RedisClient, addresses: list[str]
) -> Feeder:
    """The market-data feeder in-process (as `python -m md_feeder` runs it), reading what the
    simulated venue inside S4 appends to sim:market; `stack` stops it."""
    settings = MDSettings(redis_addresses=addresses, sim_block_ms=50)
    return await start_feeder(stack, settings, redis=redis)
