"""S3's hot-path read (s3_strategy.adapters.state.StateReader: features + entries ledger in one
redis-py pipeline, the tick as fallback) on a single Redis node and on a Redis Cluster — the
path production runs (deploy/k8s configures a cluster), where the keys live on different
nodes and the cluster pipeline routes each command to its slot's node."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from s3_strategy.adapters.entries import ENTRIES_KEY, POSITION, encode
from s3_strategy.adapters.state import StateReader
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from tests.helpers import BTC_FEATURES

# Runs on a single node and on a 3-master Redis Cluster (tests/conftest.py redis_mode).
pytestmark = pytest.mark.redis_modes


async def test_read_with_snapshot_and_ledger_gives_features_and_tallies(
    redis: RedisClient,
) -> None:
    # On a cluster the two keys of the pipeline are on different slots: it must route them.
    assert key_slot(keys.feat_last("BTCUSDT").encode()) != key_slot(ENTRIES_KEY.encode())
    snapshot = {"symbol": "BTCUSDT", "ts": 1_700_000_000_000, **BTC_FEATURES}
    await redis.set(keys.feat_last("BTCUSDT"), jsonutil.dumps(snapshot))
    await redis.hset(
        ENTRIES_KEY,
        mapping={
            "c-1": encode("BTCUSDT", "FUT", "20", 1, "E"),
            "c-2": encode("BTCUSDT", "FUT", "30", 2, POSITION),
            "c-3": encode("ETHUSDT", "FUT", "5", 3, "E"),
        },
    )
    state = await StateReader(redis).read("BTCUSDT", "FUT")
    assert state.error is None
    assert state.sources == ["feat:last"]
    assert state.ts == 1_700_000_000_000
    assert state.features["mid"] == BTC_FEATURES["mid"]
    assert (state.open_entries, state.open_positions) == (1, 1)
    assert (state.margin_in_flight, state.margin_positions) == (25.0, 30.0)


async def test_read_without_snapshot_falls_back_to_the_tick(redis: RedisClient) -> None:
    tick = {"bid": 3000.0, "ask": 3001.0, "bid_qty": 2.0, "ask_qty": 3.0, "ts": 1_700_000_000_500}
    await redis.set(keys.mkt_tick("ETHUSDT"), jsonutil.dumps(tick))
    state = await StateReader(redis).read("ETHUSDT", "SPOT")
    assert state.error is None
    assert state.sources == ["mkt:tick"]
    assert state.features["mid"] == 3000.5
    assert state.features["depth_top1_usdt"] == 6000.0
    assert state.ts == 1_700_000_000_500
    assert (state.open_entries, state.margin_in_flight) == (0, 0.0)
