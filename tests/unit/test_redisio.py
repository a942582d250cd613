"""Idempotency claims, locks and streams on a real Redis (single node and Cluster)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from svckit import keys
from svckit.embedded_redis import free_port
from svckit.errors import RedisUnavailable
from svckit.redisio import (
    ONCE_TTL_S,
    LockNotAcquired,
    LockQueue,
    RedisClient,
    ack,
    autoclaim,
    claim_for_execution,
    claim_once,
    ensure_group,
    hold_lock,
    make_redis,
    once_key,
    read_group,
    release_claim,
    xadd_json,
    xadd_once,
)
from tests.helpers import CrossSlotWatch

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes


async def test_claim_once_with_fresh_key_is_won_then_refused_to_others(redis: RedisClient) -> None:
    key = keys.idem_order("s3-btc-1")
    assert await claim_once(redis, key, "s3:a", 60)
    assert not await claim_once(redis, key, "s3:b", 60)
    assert 0 < await redis.ttl(key) <= 60


async def test_claim_once_with_own_retried_write_is_not_read_as_duplicate(
    redis: RedisClient,
) -> None:
    # redis-py re-sends a command whose reply was lost; the first write already landed.
    key = keys.idem_order("s3-btc-2")
    await redis.set(key, "s3:mine", nx=True, ex=60)
    assert await claim_once(redis, key, "s3:mine", 60)


async def test_release_claim_with_foreign_token_keeps_the_key(redis: RedisClient) -> None:
    key = keys.idem_order("x1")
    assert await claim_once(redis, key, "t1", 60)
    assert not await release_claim(redis, key, "t2")
    assert await redis.get(key) == "t1"
    assert await release_claim(redis, key, "t1")
    assert await redis.get(key) is None


async def test_claim_for_execution_with_s3_mark_is_taken_over_once(redis: RedisClient) -> None:
    key = keys.idem_order("s3-btc-3")
    assert await claim_once(redis, key, "s3:decision", 3600)
    assert await claim_for_execution(redis, key, "s4:replica-a", 3600)
    assert await claim_for_execution(redis, key, "s4:replica-a", 3600)  # retry-safe
    assert not await claim_for_execution(redis, key, "s4:replica-b", 3600)


async def test_hold_lock_with_contention_serialises_and_times_out(redis: RedisClient) -> None:
    key = keys.lock_pos("BTCUSDT")
    async with hold_lock(redis, key, ttl_ms=3000, wait_ms=10):
        with pytest.raises(LockNotAcquired):
            async with hold_lock(redis, key, ttl_ms=3000, wait_ms=30):
                pass
    async with hold_lock(redis, key, ttl_ms=3000, wait_ms=10):
        assert 0 < await redis.pttl(key) <= 3000
    assert await redis.get(key) is None


async def test_hold_lock_through_a_local_queue_hands_over_in_order_at_once(
    redis: RedisClient,
) -> None:
    # Waiters of one process used to poll Redis with a back-off growing to 50 ms: after each
    # release the lock sat idle until some waiter woke, in no particular order (ten concurrent
    # orders on one symbol went 3x slower than one at a time).
    key = keys.lock_pos("BTCUSDT")
    queue = LockQueue()
    order: list[int] = []
    gaps: list[float] = []
    released = [0.0]
    loop = asyncio.get_running_loop()

    async def one(i: int) -> None:
        await asyncio.sleep(i * 0.01)  # they queue up in index order
        async with hold_lock(redis, key, ttl_ms=3000, wait_ms=5000, queue=queue):
            if order:
                gaps.append(loop.time() - released[0])
            order.append(i)
            await asyncio.sleep(0.06 if i == 0 else 0.02)
        released[0] = loop.time()

    await asyncio.gather(*(one(i) for i in range(6)))
    assert order == list(range(6))
    assert max(gaps) < 0.015, gaps
    assert await redis.get(key) is None

    # The line has its own bound (a place in it costs nothing); wait_ms bounds Redis alone.
    async def holder() -> None:
        async with hold_lock(redis, key, ttl_ms=3000, wait_ms=10, queue=queue):
            await asyncio.sleep(0.2)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    with pytest.raises(LockNotAcquired):
        async with hold_lock(redis, key, ttl_ms=3000, wait_ms=30, queue=queue):
            pass
    async with hold_lock(redis, key, ttl_ms=3000, wait_ms=30, queue=queue, queue_wait_ms=2000):
        assert first.done()


async def test_hold_lock_with_crashed_holder_expires_after_ttl(redis: RedisClient) -> None:
    key = keys.lock_pos("ETHUSDT")
    await redis.set(key, "dead-holder", px=50)
    async with hold_lock(redis, key, ttl_ms=3000, wait_ms=1000) as token:
        assert await redis.get(key) == token


async def test_stream_group_with_unacked_entry_is_reclaimed_by_another_consumer(
    redis: RedisClient,
) -> None:
    stream, group = "orders:intent", "s4-router"
    await xadd_json(redis, stream, {"client_order_id": "early"})  # before the group exists
    await ensure_group(redis, stream, group)
    await ensure_group(redis, stream, group)  # idempotent
    first = await read_group(redis, stream, group, "a", block_ms=100)
    assert [e.payload for e in first] == [{"client_order_id": "early"}]
    await asyncio.sleep(0.03)
    taken = await autoclaim(redis, stream, group, "b", min_idle_ms=10)
    assert [e.entry_id for e in taken] == [first[0].entry_id]
    assert taken[0].deliveries == 2
    assert await ack(redis, stream, group, taken[0].entry_id) == 1
    assert await autoclaim(redis, stream, group, "b", min_idle_ms=0) == []


async def test_stream_entry_with_invalid_json_is_surfaced_as_poison(redis: RedisClient) -> None:
    stream, group = "orders:intent", "g"
    await ensure_group(redis, stream, group)
    await redis.xadd(stream, {"data": "{not json"})
    entries = await read_group(redis, stream, group, "c", block_ms=100)
    assert entries[0].payload is None and entries[0].raw == {"data": "{not json"}


async def test_claims_streams_and_locks_with_keys_spread_over_every_master(
    redis: RedisClient, redis_mode: str
) -> None:
    if redis_mode == "cluster":
        assert isinstance(redis, RedisCluster)  # three addresses ⇒ the cluster client
    for i in range(20):  # on the cluster: keys on all three masters
        assert await claim_once(redis, keys.idem_order(f"c-{i}"), "s3:t", 60)
    assert not await claim_once(redis, keys.idem_order("c-7"), "s3:u", 60)
    await ensure_group(redis, "orders:intent", "s4-router")
    entry = await xadd_json(redis, "orders:intent", {"n": 1})
    got = await read_group(redis, "orders:intent", "s4-router", "x", block_ms=100)
    assert [e.entry_id for e in got] == [entry]
    async with hold_lock(redis, keys.lock_pos("BTCUSDT"), ttl_ms=1000, wait_ms=10):
        pass


async def test_claim_once_with_millisecond_ttl_sets_pttl_and_rejects_both_units(
    redis: RedisClient,
) -> None:
    assert await claim_once(redis, "exec:lease:x", "s4:a", ttl_ms=1500)
    assert 0 < await redis.pttl("exec:lease:x") <= 1500
    with pytest.raises(ValueError, match="exactly one"):
        await claim_once(redis, "k", "t", 1, ttl_ms=1)


@pytest.mark.cluster
async def test_cross_slot_watch_records_refusals_the_code_swallowed(
    redis_cluster_addresses: list[str],
) -> None:
    # The detector of the cluster runs (tests/conftest.py): a publisher that logs and goes on
    # must still fail its test when a command spans two slots ("a" and "b" do).
    assert key_slot(b"a") != key_slot(b"b")
    host, _, port = redis_cluster_addresses[0].rpartition(":")
    sync = SyncRedisCluster(host=host, port=int(port))
    client = make_redis(redis_cluster_addresses)
    assert isinstance(client, RedisCluster)
    try:
        # Initialised: redis-py checks slots only once it knows the cluster (a fresh client's
        # first command goes unchecked to some node, which refuses it: the server-side count).
        await client.initialize()
        with CrossSlotWatch(sync) as watch:
            with contextlib.suppress(RedisClusterException):  # refused by the client
                await client.eval("return 1", 2, "a", "b")
            with contextlib.suppress(ResponseError):  # refused by the server
                await client.execute_command(
                    "MGET", "a", "b", target_nodes=client.get_node_from_key("a")
                )
            await client.eval("return 1", 2, "{a}:x", "{a}:y")  # one slot: fine
        assert len(watch.refused) == 2, watch.refused
        assert "EVAL" in watch.refused[0] and "1 CROSSSLOT" in watch.refused[1]
        with CrossSlotWatch(sync) as clean:
            await client.eval("return 1", 2, "{a}:x", "{a}:y")
        assert clean.refused == []
    finally:
        await client.aclose()
        sync.close()


async def test_xadd_once_publishes_a_name_once_with_its_marker_in_the_streams_slot(
    redis: RedisClient,
) -> None:
    # Marker and entry are written by one script: on a cluster both keys must share a slot
    # (the marker carries the stream's name as its hash tag; the stream keeps its spec name).
    stream = keys.ORDERS_EXECUTED
    assert key_slot(once_key(stream, "c-1").encode()) == key_slot(stream.encode())
    first = await xadd_once(redis, stream, "c-1", {"client_order_id": "c-1"})
    again = await xadd_once(redis, stream, "c-1", {"client_order_id": "c-1", "n": 2})
    other = await xadd_once(redis, stream, "c-2", {"client_order_id": "c-2"})
    assert first is not None and again is None and other is not None
    assert [e[0] for e in await redis.xrange(stream)] == [first, other]
    assert 0 < await redis.ttl(once_key(stream, "c-1")) <= ONCE_TTL_S


@pytest.mark.parametrize(
    "call",
    [
        lambda r: claim_once(r, "k", "t", ttl_s=1),
        lambda r: release_claim(r, "k", "t"),
        lambda r: claim_for_execution(r, "k", "t", 1),
        lambda r: xadd_json(r, "s", {"a": 1}),
        lambda r: xadd_once(r, "s", "n", {"a": 1}),
    ],
)
async def test_unreachable_redis_is_reported_as_redis_unavailable(call: Any) -> None:
    # Nothing listens there: a connection error leaves as the infrastructure error the
    # services answer 503 to (not redis-py's own exception).
    r = Redis(port=free_port(), retry=Retry(NoBackoff(), 0), decode_responses=True)
    try:
        with pytest.raises(RedisUnavailable, match="redis unavailable"):
            await call(r)
    finally:
        await r.aclose()
