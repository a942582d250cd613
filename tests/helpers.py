"""Test helpers shared by integration and e2e tests."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.exceptions import RedisClusterException

from md_feeder.app import Feeder, start_feeder
from md_feeder.config import Settings as MDSettings
from s3_strategy.adapters.configstore import ConfigStore, bundle_rev
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from svckit.store import body_of
from svckit.store.base import DocumentStore
from svckit.store.seed import CONFIG_ACTIVE_KEY

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
# Every feature the default bundle reads, as md_feeder publishes them (`feat:last:BTCUSDT`).
FULL_BTC_FEATURES: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "mid": 65000.5,
    "price": 65000.5,
    "spread_bps": 0.15,
    "depth_top1_usdt": 50_000.0,
    "funding_rate": 0.0001,
    "funding_next_abs": 0.0001,
    "atr_14": 120.0,
    "rv_1h": 0.01,
    "rv_pctile_30d": 0.4,
    "ma7_5m": 65010.0,
    "ma25_5m": 64990.0,
    "ma_cross": 1.0,
    "rho_usdttwd_14": 0.1,
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

# S3_CONFIG_POLL_SEC for tests that do not test hot reload: S3's config watcher blocks on
# cfg:events for min(poll, 1 s) and stopping S3 waits that read out, which made ~0.7 s of a
# typical S3 test's ~1 s (its teardown). S4's tests set stream_block_ms=50 for the same reason.
S3_TEST_POLL_S = 0.2
# S4_PROTECTION_POLL_MS for tests that protect nothing: the protection loop sleeps a poll period
# between rounds (default 1 s) and stopping S4 waits that sleep out.
S4_TEST_PROTECTION_POLL_MS = 50


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def publish_bundle(
    store: DocumentStore,
    bundle_id: str,
    params: dict[str, Any],
    *,
    rule_ids: list[str] | None = None,
) -> str:
    """Activate a bundle of `params` over `rule_ids` (default: every rule in `strategy_rules`),
    for a test running with another bundle than the seed's (e.g. brackets disabled): its
    document in the layout that predates revisioned bundles, its revisioned copy, and
    `config_active`. Returns its rev."""
    rules = [body_of(d) for d in await store.find("strategy_rules")]
    if rule_ids is not None:
        rules = [r for r in rules if r["rule_id"] in rule_ids]
        assert len(rules) == len(rule_ids), f"rules missing from strategy_rules: {rule_ids}"
    rev = bundle_rev(params, rules)
    ids = sorted(str(r["rule_id"]) for r in rules)
    doc = {"bundle_id": bundle_id, "rev": rev, "rules": ids, "params": dict(params)}
    await store.upsert("config_bundles", bundle_id, doc)
    await ConfigStore(store).put_bundle(
        bundle_id=bundle_id, params=params, rules=rules, note=None, actor="tests", now_ms=0
    )
    await store.upsert("config_active", CONFIG_ACTIVE_KEY, {"bundle_id": bundle_id, "rev": rev})
    return rev


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
                    request.method,
                    request.url,
                    json=body,
                    headers={
                        k: v for k, v in request.headers.items() if k.lower() != "content-length"
                    },
                )
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


class CrossSlotWatch:
    """Records every command that a Redis Cluster refuses because its keys span several hash
    slots, so a test fails on one even when the code under test swallows the error (the
    publishers log and go on, by design). Two detectors, because the refusal happens in two
    places:

    * redis-py's cluster client refuses a multi-key command (EVAL with several KEYS, MGET, ...)
      before sending it (`RedisClusterException: ... all keys must map to the same key slot`):
      the watch wraps the client's slot lookup and records each refusal.
    * the servers refuse what reaches them anyway: redis-py 8.1 sends the first command of a
      fresh cluster client unchecked to some node, a command may be routed by hand, or sent by
      a subprocess the wrapper does not reach:
      `INFO errorstats` counts `CROSSSLOT` replies per master; the watch compares the counts at
      start and end.

    Not covered: a Lua script touching a key it did not declare in KEYS (Redis 6.2 lets it
    through when the key's slot is on the same node): every script here declares its keys.
    """

    def __init__(self, client: SyncRedisCluster) -> None:
        self.client = client
        self.refused: list[str] = []
        self._before = 0
        self._original: Any = None

    def _crossslot_replies(self) -> int:
        per_node: Any = self.client.info("errorstats", target_nodes=SyncRedisCluster.PRIMARIES)
        # One master answers with its own section, several with one section per address.
        flat = any(str(k).startswith("errorstat_") for k in per_node)
        stats = [per_node] if flat else list(per_node.values())
        return sum(int(s.get("errorstat_CROSSSLOT", {}).get("count", 0)) for s in stats)

    def __enter__(self) -> CrossSlotWatch:
        self._before = self._crossslot_replies()
        original = self._original = AsyncRedisCluster._determine_slot
        refused = self.refused

        async def determine_slot(self: AsyncRedisCluster, command: str, *args: Any) -> int:
            try:
                return await original(self, command, *args)
            except RedisClusterException as exc:
                if "same key slot" in str(exc):
                    refused.append(f"{command} {args[:4]!r}: {exc}")
                raise

        AsyncRedisCluster._determine_slot = determine_slot  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        AsyncRedisCluster._determine_slot = self._original  # type: ignore[method-assign]
        replies = self._crossslot_replies() - self._before
        if replies:
            self.refused.append(f"{replies} CROSSSLOT replies from the cluster's masters")
