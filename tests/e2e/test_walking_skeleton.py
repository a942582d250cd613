"""End to end on a real Redis: POST /decide → orders:intent + REST → S4 → venue → fill persisted
→ orders:executed. S3 and S4 run in-process (ASGI), each with its own store handle on one SQLite
file, exactly as two processes would share it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from s3_strategy.bootstrap import S3Container
from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s3_strategy.entrypoints.api import create_app as s3_app
from s4_router.bootstrap import S4Container
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app as s4_app
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import (
    S3_AUTH,
    S4_AUTH,
    decide_live_until_open,
    publish_bundle,
    start_market_feeder,
)
from tradekit.enums import Market


@dataclass
class Stack:
    s3: httpx.AsyncClient
    s4: httpx.AsyncClient
    s3c: S3Container
    s4c: S4Container


async def wait_for(pred: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    async with asyncio.timeout(within_s):
        while not await pred():  # noqa: ASYNC110 - polls state in Redis and the store
            await asyncio.sleep(0.02)


async def start_stack(
    stack: AsyncExitStack,
    redis: RedisClient,
    addresses: list[str],
    tmp_path: Path,
    *,
    rest: str | None,
) -> Stack:
    db = tmp_path / "store.sqlite3"
    s4_settings = S4Settings(
        redis_addresses=addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
        # Maker legs capped to 0: the pipeline is under test here, not Maker→Taker timing
        # (tests/integration/test_s4_execution.py covers that with a manual clock).
        maker_max_wait_ms=0,
    )
    s4_store = SqliteStore(db)
    stack.push_async_callback(s4_store.close)
    s4c = await s4_bootstrap(s4_settings, redis=redis, store=s4_store)
    app4 = s4_app(s4_settings, container=s4c)
    await stack.enter_async_context(app4.router.lifespan_context(app4))
    s4 = await stack.enter_async_context(
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app4), base_url="http://s4", headers=S4_AUTH
        )
    )
    # S3's REST path: in-process to S4, or to a dead address (REST down).
    http = None
    if rest == "in-process":
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app4), base_url="http://s4", headers=S4_AUTH
        )
    elif rest == "down":
        http = httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=0.2)
    s3_settings = S3Settings(
        redis_addresses=addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        s4_url=None if rest is None else "http://s4",
    )
    s3_store = SqliteStore(db)
    stack.push_async_callback(s3_store.close)
    await _activate_bundle_without_brackets(s3_store)
    s3c = await s3_bootstrap(s3_settings, redis=redis, store=s3_store, http=http)
    app3 = s3_app(s3_settings, container=s3c)
    await stack.enter_async_context(app3.router.lifespan_context(app3))
    s3 = await stack.enter_async_context(
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app3), base_url="http://s3", headers=S3_AUTH
        )
    )
    # Features come from the market-data feeder (the simulator's steps), not from the test.
    await start_market_feeder(stack, redis, addresses)
    await wait_for(lambda: _exists(redis, keys.feat_last("BTCUSDT")))
    return Stack(s3, s4, s3c, s4c)


async def _activate_bundle_without_brackets(store: SqliteStore) -> None:
    """S4 refuses SL/TP brackets and TWAP slicing until it implements them, so this end-to-end
    run promotes the fixture bundle with brackets off and no slicing (a plain Maker→Taker)."""
    params = json.loads((FIXTURES / "config_bundle.json").read_text())["params"]
    params["brackets"]["enabled"] = False
    params["exec_policy"]["FUT"]["twap"] = False
    await publish_bundle(store, "e2e-no-brackets", params)


# A live decision reads the simulator's published market data only (what-if features are for
# dry runs): the feed publishes every feature the default bundle's rules read.
DECIDE_BTC = {"symbol": "BTCUSDT"}


async def _exists(redis: RedisClient, key: str) -> bool:
    return bool(await redis.exists(key))


@pytest.fixture
async def stacks(redis: RedisClient) -> AsyncIterator[AsyncExitStack]:
    # Depends on `redis` so the services stop (and stop using it) before the client closes;
    # otherwise their last commands open fresh connections nobody closes.
    async with AsyncExitStack() as stack:
        yield stack


async def _order_filled(st: Stack, coid: str) -> bool:
    doc = await st.s4c.store.get("orders", coid)
    return doc is not None and doc["status"] == "FILLED"


async def _no_pending(redis: RedisClient) -> bool:
    info = await redis.xpending(keys.ORDERS_INTENT, "s4-router")
    return int(info["pending"]) == 0


async def test_decide_with_both_paths_executes_once_and_persists_the_fill(
    stacks: AsyncExitStack, redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    st = await start_stack(stacks, redis, redis_addresses, tmp_path, rest="in-process")
    body = await decide_live_until_open(st.s3, DECIDE_BTC)
    assert body["decision"] == "open", body
    assert body["publish"]["stream"] == "ok" and body["publish"]["rest"] == "ok"
    assert body["publish"]["s4"]["result"] == "OK"
    coid = body["intent"]["client_order_id"]
    await wait_for(lambda: _order_filled(st, coid))
    # The stream copy reaches S4 too and is answered from the store, then acknowledged.
    await wait_for(lambda: _no_pending(redis))
    await wait_for(lambda: _async_true(st.s4c.consumer.handled >= 1))
    assert await st.s4c.store.count("orders", {"client_order_id": coid}) == 1
    view = (await st.s4.get(f"/orders/{coid}")).json()
    qty = Decimal(body["intent"]["qty"])
    assert Decimal(view["order"]["filled_qty"]) == qty
    assert sum(Decimal(f["qty"]) for f in view["fills"]) == qty
    venue_qty = sum(
        t.qty
        for t in await st.s4c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")
        if t.client_order_id.startswith(coid)
    )
    assert venue_qty == qty  # executed exactly once at the venue
    executed = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ORDERS_EXECUTED)]
    assert [e["client_order_id"] for e in executed] == [coid]
    signal = await st.s3c.store.get("signals", body["signal_id"])
    assert signal is not None and signal["publish"]["stream"] == "ok"
    assert signal["config_rev"] == body["config_rev"]


async def _async_true(value: bool) -> bool:
    return value


async def test_decide_with_stream_only_is_executed_by_the_consumer_group(
    stacks: AsyncExitStack, redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    st = await start_stack(stacks, redis, redis_addresses, tmp_path, rest=None)
    body = await decide_live_until_open(st.s3, DECIDE_BTC)
    assert body["decision"] == "open" and body["publish"]["rest"] == "skipped"
    coid = body["intent"]["client_order_id"]
    await wait_for(lambda: _order_filled(st, coid))
    await wait_for(lambda: _no_pending(redis))
    fills = await st.s4c.store.find("fills")
    assert fills and all(f["parent_client_order_id"] == coid for f in fills)


async def test_decide_with_rest_path_down_alerts_and_still_executes_via_stream(
    stacks: AsyncExitStack, redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    st = await start_stack(stacks, redis, redis_addresses, tmp_path, rest="down")
    body = await decide_live_until_open(st.s3, DECIDE_BTC)
    assert body["decision"] == "open"
    assert body["publish"]["stream"] == "ok" and body["publish"]["rest"] == "failed"
    alerts = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ALERTS)]
    assert [a["kind"] for a in alerts] == ["PUBLISH_DEGRADED"]
    await wait_for(lambda: _order_filled(st, body["intent"]["client_order_id"]))
