"""Spec 004 §F acceptance scenarios, end to end on a real Redis: S3 and S4 in-process (ASGI),
one SQLite file, the venue simulator with its price process. S3 runs its default config bundle,
which emits SL/TP brackets for FUT and an OCO exit for SPOT."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from s3_strategy.bootstrap import bootstrap as s3_bootstrap
from s3_strategy.config import Settings as S3Settings
from s3_strategy.entrypoints.api import create_app as s3_app
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.bootstrap import S4Container
from s4_router.bootstrap import bootstrap as s4_bootstrap
from s4_router.config import Settings as S4Settings
from s4_router.entrypoints.api import create_app as s4_app
from svckit import jsonutil, keys
from svckit.redisio import RedisClient
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S3_AUTH, S4_AUTH, decide_live_until_open, start_market_feeder
from tradekit.enums import Market
from venue.faults import FaultKind

BACKGROUND = {"intents", "venue-watch", "orphan-sweep", "protection"}


async def wait_for(pred: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    async with asyncio.timeout(within_s):
        while not await pred():  # noqa: ASYNC110 - polls state in Redis, the store, the venue
            await asyncio.sleep(0.02)


class F:
    def __init__(self, s3: httpx.AsyncClient, s4: httpx.AsyncClient, c: S4Container) -> None:
        self.s3, self.s4, self.c = s3, s4, c

    @property
    def sim(self) -> Any:
        assert isinstance(self.c.exchange, SimExchange)
        return self.c.exchange.sim

    async def decide(self, market: str = "FUT") -> dict[str, Any]:
        body = {"symbol": "BTCUSDT", "context": {"market": market}}
        out = await decide_live_until_open(self.s3, body)
        assert out["decision"] == "open", out
        return out

    async def order(self, coid: str) -> dict[str, Any] | None:
        return await self.c.store.get("orders", coid)

    def freeze_market(self) -> None:
        """Stop the simulator's price process so a test can set the book by hand."""
        for t in self.c.tasks:
            if t.get_name() not in BACKGROUND:
                t.cancel()


@pytest.fixture
async def f(redis: RedisClient, redis_addresses: list[str], tmp_path: Path) -> AsyncIterator[F]:
    async with AsyncExitStack() as es:
        db = tmp_path / "store.sqlite3"
        s4_settings = S4Settings(
            redis_addresses=redis_addresses,
            data_dir=tmp_path,
            fixtures_dir=FIXTURES,
            route_table_path=FIXTURES / "route_table.json",
            market_publish_ms=50,
            stream_block_ms=50,
            maker_max_wait_ms=0,
            protection_poll_ms=20,
        )
        s4_store = SqliteStore(db)
        es.push_async_callback(s4_store.close)
        c = await s4_bootstrap(s4_settings, redis=redis, store=s4_store)
        app4 = s4_app(s4_settings, container=c)
        await es.enter_async_context(app4.router.lifespan_context(app4))
        s4 = await es.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app4), base_url="http://s4", headers=S4_AUTH
            )
        )
        s3_store = SqliteStore(db)
        es.push_async_callback(s3_store.close)
        s3_settings = S3Settings(
            redis_addresses=redis_addresses,
            data_dir=tmp_path,
            fixtures_dir=FIXTURES,
            s4_url="http://s4",
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
        yield F(s3, s4, c)


async def _filled_and_protected(f: F, coid: str) -> bool:
    """Entry FILLED and exactly one stop + one take profit open, both sized to the position
    (a resize in flight briefly shows the replacement beside the order it replaces)."""
    doc = await f.order(coid)
    if doc is None or doc["status"] != "FILLED":
        return False
    algos = await f.c.exchange.fetch_open_conditionals("BTCUSDT")
    pos = await f.c.exchange.fetch_positions(["BTCUSDT"])
    kids = await f.c.store.find("orders", Query(where={"parent_client_order_id": coid}))
    settled = all(k["status"] != "SUBMITTED" for k in kids)
    return (
        settled
        and sorted(a.type.value for a in algos) == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]
        and all(a.qty == abs(pos[0].qty) for a in algos)
    )


async def stream(redis: RedisClient, name: str) -> list[dict[str, Any]]:
    return [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(name)]


async def test_fut_happy_with_decide_fills_entry_then_places_stop_then_take_profit(
    f: F, redis: RedisClient
) -> None:
    body = await f.decide()
    intent = body["intent"]
    assert intent["sl"]["type"] == "STOP_MARKET" and intent["tp"] is not None
    coid = intent["client_order_id"]

    await wait_for(lambda: _filled_and_protected(f, coid))
    kids = await f.c.store.find("orders", Query(where={"parent_client_order_id": coid}))
    live = {k["role"] for k in kids if k["status"] == "ACCEPTED"}
    assert live == {"STOP_LOSS", "TAKE_PROFIT"}
    algos = await f.c.exchange.fetch_open_conditionals("BTCUSDT")
    # The stop first.
    assert [a.type.value for a in sorted(algos, key=lambda a: a.algo_id)] == [
        "STOP_MARKET",
        "TAKE_PROFIT_MARKET",
    ]
    assert all(a.reduce_only and a.working_type == "MARK_PRICE" for a in algos)
    pos = await f.c.exchange.fetch_positions(["BTCUSDT"])
    assert pos[0].margin_type == "ISOLATED" and pos[0].leverage == (intent.get("leverage") or 20)
    assert all(a.qty == abs(pos[0].qty) for a in algos)
    fills = await f.c.store.find("fills", Query(where={"parent_client_order_id": coid}))
    assert sum(Decimal(x["qty"]) for x in fills) == Decimal(intent["qty"])

    async def executed() -> bool:
        return any(e["client_order_id"] == coid for e in await stream(redis, keys.ORDERS_EXECUTED))

    await wait_for(executed)
    hist = f.c.metrics.naked.collect()[0].samples
    count = next(s.value for s in hist if s.name.endswith("_count"))
    assert count >= 1


async def test_fut_edge_with_venue_5xx_retries_then_fails_with_alert(
    f: F, redis: RedisClient
) -> None:
    # The pre-trade book must come from the venue here (no published mkt:depth is fresh
    # enough), so the venue's 5xx on it is what the intake meets.
    f.c.router.books.max_age_ms = 0
    for _ in range(40):
        f.sim.faults.script("book", FaultKind.SERVER_ERROR)
    body = {
        "intent_id": "i-edge",
        "market": "FUT",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "qty": "0.002",
        "exec_policy": {"type": "MARKET"},
        "client_order_id": "f-edge-1",
        "sl": {"type": "STOP_MARKET", "price": "1000"},
        "created_ts": int(time.time() * 1000),
    }
    r = await f.s4.post("/orders", json=body)
    assert r.status_code == 503 and r.json()["result"] == "FAIL"
    assert "after retries" in r.json()["message"]
    kinds = {a["kind"] for a in await stream(redis, keys.ALERTS)}
    assert "ENTRY_REFUSED" in kinds
    assert f.sim.faults.calls("book") > 1  # retried before giving up
    assert await f.c.exchange.fetch_open_conditionals("BTCUSDT") == []


async def _oco_legs(f: F, coid: str) -> dict[str, str]:
    kids = await f.c.store.find("orders", Query(where={"parent_client_order_id": coid}))
    return {k["client_order_id"]: k["status"] for k in kids if k["role"].startswith("OCO")}


async def _spot_oco_entry(f: F) -> str:
    body = await f.decide("SPOT")
    intent = body["intent"]
    assert intent["exec_policy"]["type"] == "OCO"
    coid: str = intent["client_order_id"]

    async def armed() -> bool:
        return bool(await _oco_legs(f, coid))

    await wait_for(armed)
    return coid


async def _stop_through(f: F, coid: str) -> None:
    doc = await f.order(coid)
    assert doc is not None
    sl = Decimal(str(doc["intent"]["exec_policy"]["sl_price"]))
    f.freeze_market()
    await asyncio.sleep(0.1)
    bid = sl - 50
    f.sim.set_book(
        Market.SPOT,
        "BTCUSDT",
        bids=[(bid - i, Decimal(5)) for i in range(5)],
        asks=[(bid + 2 + i, Decimal(5)) for i in range(5)],
    )


@pytest.mark.parametrize("feed", ["events", "polling_only"])
async def test_spot_oco_with_one_leg_executed_cancels_the_other_and_writes_oco_resolve(
    f: F, redis: RedisClient, feed: str
) -> None:
    coid = await _spot_oco_entry(f)
    if feed == "polling_only":
        assert f.c.unsubscribe is not None
        f.c.unsubscribe()  # the venue's event feed is down: the guardian's polling still acts
        f.c.unsubscribe = None
    await _stop_through(f, coid)

    async def resolved() -> bool:
        return await f.c.store.get("strategy_events", f"oco_resolve:{coid}") is not None

    await wait_for(resolved)
    legs = await _oco_legs(f, coid)
    assert sorted(legs.values()) == ["CANCELED", "FILLED"]
    ev = await f.c.store.get("strategy_events", f"oco_resolve:{coid}")
    assert ev is not None and ev["data"]["winner"] == "SL"
    assert "timings" in ev["data"]
    assert any(
        e["event"] == "OCO_RESOLVE" and e["client_order_id"] == coid
        for e in await stream(redis, keys.ROUTER_EVENTS)
    )
    fills = await f.c.store.find("fills", Query(where={"parent_client_order_id": coid}))
    assert {x["role"] for x in fills} >= {"OCO_BELOW"}
    assert f.sim.open_orders(Market.SPOT, "BTCUSDT") == []


async def test_orders_with_same_client_order_id_resent_is_answered_without_a_duplicate(
    f: F,
) -> None:
    body = await f.decide()
    intent = body["intent"]
    coid = intent["client_order_id"]
    r = await f.s4.post("/orders", json=intent)
    assert r.status_code == 200 and r.json()["duplicate"] is True

    await wait_for(lambda: _filled_and_protected(f, coid))
    assert await f.c.store.count("orders", {"client_order_id": coid}) == 1
    assert await f.c.store.count("strategy_events", {"kind": "PROTECTION"}) == 1
    trades = await f.c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")
    assert sum(t.qty for t in trades) == Decimal(intent["qty"])
