"""S3 ↔ S4 in one process on a real Redis and one SQLite file (as two processes would share
it): a decision reaches S4 by both the `orders:intent` stream and REST and results in exactly
one order; a retried decision cannot open twice; an intent S4 refuses (protective brackets,
not yet supported by S4) is reported, alerted and cleared from the in-flight ledger.

The bundle used for the happy path has `brackets.enabled: false` and no TWAP slicing, so S3
emits a plain Maker→Taker intent that this S4 version executes (see the S3 README)."""

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

from s3_strategy.adapters.entries import ENTRIES_KEY
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
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import (
    S3_AUTH,
    S3_TEST_POLL_S,
    S4_AUTH,
    decide_live_until_open,
    publish_bundle,
    start_market_feeder,
)
from tradekit.enums import Market
from tradekit.intents import OrderIntent

DECIDE = {"symbol": "BTCUSDT"}  # live: market data from the simulator's feed only


@dataclass
class Stack:
    s3: httpx.AsyncClient
    s4: httpx.AsyncClient
    s3c: S3Container
    s4c: S4Container


async def wait_for(pred: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    async with asyncio.timeout(within_s):
        while not await pred():  # noqa: ASYNC110 - polls Redis and the store
            await asyncio.sleep(0.02)


@pytest.fixture
async def stack(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    async with AsyncExitStack() as es:

        async def start(*, brackets: bool, protection: bool = True) -> Stack:
            db = tmp_path / "store.sqlite3"
            s4_settings = S4Settings(
                redis_addresses=redis_addresses,
                data_dir=tmp_path,
                fixtures_dir=FIXTURES,
                route_table_path=FIXTURES / "route_table.json",
                market_publish_ms=50,
                stream_block_ms=50,
                maker_max_wait_ms=0,
                protection=protection,
            )
            s4_store = SqliteStore(db)
            es.push_async_callback(s4_store.close)
            s4c = await s4_bootstrap(s4_settings, redis=redis, store=s4_store)
            app4 = s4_app(s4_settings, container=s4c)
            await es.enter_async_context(app4.router.lifespan_context(app4))
            s4 = await es.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app4), base_url="http://s4", headers=S4_AUTH
                )
            )
            s3_store = SqliteStore(db)
            es.push_async_callback(s3_store.close)
            params = json.loads((FIXTURES / "config_bundle.json").read_text())["params"]
            params["brackets"]["enabled"] = brackets
            params["exec_policy"]["FUT"]["twap"] = False
            await publish_bundle(s3_store, "s3s4", params)
            s3_settings = S3Settings(
                redis_addresses=redis_addresses,
                data_dir=tmp_path,
                fixtures_dir=FIXTURES,
                s4_url="http://s4",
                entries_reconcile_ms=100,
                config_poll_sec=S3_TEST_POLL_S,
            )
            rest = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app4), base_url="http://s4", headers=S4_AUTH
            )
            s3c = await s3_bootstrap(s3_settings, redis=redis, store=s3_store, http=rest)
            app3 = s3_app(s3_settings, container=s3c)
            await es.enter_async_context(app3.router.lifespan_context(app3))
            s3 = await es.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app3), base_url="http://s3", headers=S3_AUTH
                )
            )

            async def features() -> bool:
                return bool(await redis.exists(keys.feat_last("BTCUSDT")))

            await start_market_feeder(es, redis, redis_addresses)
            await wait_for(features)
            return Stack(s3, s4, s3c, s4c)

        yield start


# S3 /decide → S4 intake by the stream and by REST, also on a 3-master Redis Cluster.
@pytest.mark.redis_modes
async def test_decide_with_s4_running_reaches_it_by_both_paths_and_opens_one_order(
    stack: Callable[..., Awaitable[Stack]], redis: RedisClient
) -> None:
    st = await stack(brackets=False)
    body = await decide_live_until_open(st.s3, DECIDE)
    assert body["decision"] == "open", body
    intent = body["intent"]
    assert "sl" not in intent and intent["exec_policy"]["type"] == "MAKER_TAKER"
    assert body["publish"]["stream"] == "ok" and body["publish"]["rest"] == "ok"
    assert body["publish"]["s4"]["result"] == "OK"
    coid = intent["client_order_id"]

    async def filled() -> bool:
        doc = await st.s4c.store.get("orders", coid)
        return doc is not None and doc["status"] == "FILLED"

    async def stream_done() -> bool:
        info = await redis.xpending(keys.ORDERS_INTENT, "s4-router")
        return int(info["pending"]) == 0 and await redis.xlen(keys.ORDERS_INTENT) == 1

    async def ledger_empty() -> bool:
        return await redis.hlen(ENTRIES_KEY) == 0

    await wait_for(filled)
    await wait_for(stream_done)
    await wait_for(ledger_empty)
    # Exactly one parent order, whichever path S4 saw first; its fills add up to the intent.
    assert await st.s4c.store.count("orders", {"client_order_id": coid}) == 1
    parent = await st.s4c.store.get("orders", coid)
    assert parent is not None
    assert OrderIntent.model_validate(parent["intent"]) == OrderIntent.model_validate(intent)
    qty = Decimal(intent["qty"])
    trades = await st.s4c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")
    assert sum(t.qty for t in trades if t.client_order_id.startswith(coid)) == qty
    executed = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ORDERS_EXECUTED)]
    assert [e["client_order_id"] for e in executed] == [coid]

    # (A retried decision on the same snapshot hitting idem:order is test_s3_api's: a live
    # decision cannot pin the snapshot here, the feed moves on every 50 ms.)
    replay = (await st.s3.post(f"/decide/replay/{body['signal_id']}")).json()
    assert replay["identical"] is True


async def test_decide_with_brackets_s4_protects_the_fill_with_stop_and_take_profit(
    stack: Callable[..., Awaitable[Stack]], redis: RedisClient
) -> None:
    st = await stack(brackets=True)
    body = await decide_live_until_open(st.s3, DECIDE)
    assert body["decision"] == "open", body
    assert body["intent"]["sl"]["type"] == "STOP_MARKET"
    assert body["publish"]["s4"]["result"] == "OK", body["publish"]
    coid = body["intent"]["client_order_id"]

    async def protected() -> bool:
        algos = await st.s4c.exchange.fetch_open_conditionals("BTCUSDT")
        return {a.type.value for a in algos} == {"STOP_MARKET", "TAKE_PROFIT_MARKET"}

    async with asyncio.timeout(10):
        while not await protected():  # noqa: ASYNC110 - the venue is polled, not an event
            await asyncio.sleep(0.02)
    algos = await st.s4c.exchange.fetch_open_conditionals("BTCUSDT")
    assert {a.client_algo_id.rsplit("-E", 1)[0] for a in algos} == {coid}
    assert all(a.reduce_only and a.working_type == "MARK_PRICE" for a in algos)


async def test_decide_with_brackets_s4_without_protection_is_refused_reported_and_cleared(
    stack: Callable[..., Awaitable[Stack]], redis: RedisClient
) -> None:
    st = await stack(brackets=True, protection=False)
    body = await decide_live_until_open(st.s3, DECIDE)
    assert body["decision"] == "open" and body["intent"]["sl"]["type"] == "STOP_MARKET"
    assert body["publish"]["rest"] == "ok" and body["publish"]["s4"]["result"] == "FAIL"
    assert "protection service" in body["publish"]["s4"]["message"]
    assert await redis.hlen(ENTRIES_KEY) == 0  # nothing in flight: S4 refused it
    kinds = {
        jsonutil.loads(e[1]["data"])["kind"]
        for e in await redis.xrange(keys.ALERTS)
        if jsonutil.loads(e[1]["data"])["source"] == "s3-strategy"
    }
    assert "INTENT_REFUSED" in kinds
    assert not await st.s4c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")


async def test_decide_live_four_times_with_position_open_opens_once_then_skips_position_open(
    stack: Callable[..., Awaitable[Stack]], redis: RedisClient
) -> None:
    """Issue 11: a filled entry whose protection is still working counts toward
    S3_CONCURRENT_ENTRIES_PER_MARKET=1 (the default); it used to open four longs."""
    st = await stack(brackets=True)
    first = await decide_live_until_open(st.s3, DECIDE)
    assert first["decision"] == "open", first
    coid = first["intent"]["client_order_id"]

    async def protected() -> bool:
        doc = await st.s4c.store.get("strategy_events", f"protection:{coid}")
        order = await st.s4c.store.get("orders", coid)
        return (
            doc is not None and doc["active"] and order is not None and order["status"] == "FILLED"
        )

    await wait_for(protected)
    for _ in range(3):
        await asyncio.sleep(1.0)  # a fresh snapshot, the fill long booked
        body = await decide_live_until_open(st.s3, DECIDE)
        assert (body["decision"], body["reason"]) == ("skip", "POSITION_OPEN"), body
        assert "1 open position(s)" in body["message"]
    parents = await st.s4c.store.find("orders", Query(where={"parent_client_order_id": None}))
    assert [p["client_order_id"] for p in parents] == [coid]
