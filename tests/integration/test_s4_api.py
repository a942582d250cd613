"""S4 over HTTP (in-process ASGI) with the in-process venue simulator, a real Redis and SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from s4_router.bootstrap import S4Container, bootstrap
from s4_router.config import Settings
from s4_router.entrypoints.api import create_app
from svckit import jsonutil, keys
from svckit.embedded_redis import EmbeddedRedis
from svckit.redisio import RedisClient, make_redis
from svckit.store.sqlite import SqliteStore
from tests.conftest import FIXTURES
from tests.helpers import S4_AUTH, S4_TEST_PROTECTION_POLL_MS, FreshTransport
from tradekit.enums import Market

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes

FUT: dict[str, Any] = {
    "intent_id": "uuid-1",
    "market": "FUT",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": 0.002,
    "exec_policy": {"type": "MARKET"},
    "client_order_id": "t-btc-1",
}


def s4_settings(redis_addresses: list[str], tmp_path: Path) -> Settings:
    return Settings(
        redis_addresses=redis_addresses,
        data_dir=tmp_path,
        fixtures_dir=FIXTURES,
        route_table_path=FIXTURES / "route_table.json",
        market_publish_ms=50,
        stream_block_ms=50,
        protection_poll_ms=S4_TEST_PROTECTION_POLL_MS,  # stops fast (nothing is protected)
    )


@asynccontextmanager
async def s4_app(
    settings: Settings, redis: RedisClient, store: SqliteStore
) -> AsyncIterator[tuple[httpx.AsyncClient, S4Container]]:
    """S4's app on `redis` and `store` (the caller's), with an authenticated client."""
    container = await bootstrap(settings, redis=redis, store=store)
    app = create_app(settings, container=container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=FreshTransport(app=app), base_url="http://s4", headers=S4_AUTH
        ) as client,
    ):
        yield client, container


@pytest.fixture
async def s4(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, S4Container]]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    async with s4_app(s4_settings(redis_addresses, tmp_path), redis, store) as pair:
        yield pair
    await store.close()


async def test_post_orders_with_market_fut_intent_fills_persists_and_publishes(
    s4: tuple[httpx.AsyncClient, S4Container], redis: RedisClient
) -> None:
    client, c = s4
    r = await client.post("/orders", json=FUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] == "OK" and body["status"] == "FILLED"
    assert body["order_ids"] == ["t-btc-1", "t-btc-1-E1"]
    view = (await client.get("/orders/t-btc-1")).json()
    assert view["order"]["status"] == "FILLED" and view["order"]["filled_qty"] == "0.002"
    assert [h["status"] for h in view["order"]["history"]] == ["NEW", "SUBMITTED", "FILLED"]
    assert [ch["client_order_id"] for ch in view["children"]] == ["t-btc-1-E1"]
    fills = view["fills"]
    assert sum(float(f["qty"]) for f in fills) == pytest.approx(0.002)
    for f in fills:
        assert f["liquidity"] == "TAKER" and f["mid_at_send"] and f["book_top3"]["asks"]
        assert f["slippage_bps"] is not None and float(f["price"]) > 60_000
    entries = await redis.xrange(keys.ORDERS_EXECUTED)
    assert len(entries) == 1
    event = jsonutil.loads(entries[0][1]["data"])
    assert event["client_order_id"] == "t-btc-1" and event["status"] == "FILLED"
    assert (await redis.get(keys.idem_order("t-btc-1"))).startswith("s4:")
    assert c.metrics.submit_latency._sum.get() > 0


async def test_post_orders_resend_with_same_client_order_id_sends_nothing_new(
    s4: tuple[httpx.AsyncClient, S4Container],
) -> None:
    client, c = s4
    assert (await client.post("/orders", json=FUT)).json()["result"] == "OK"
    trades_before = await c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")
    again = await client.post("/orders", json=FUT)
    assert again.status_code == 200
    body = again.json()
    assert body["duplicate"] is True and body["result"] == "OK" and body["status"] == "FILLED"
    trades_after = await c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")
    assert len(trades_after) == len(trades_before)
    assert await c.store.count("orders", {"parent_client_order_id": "t-btc-1"}) == 1
    # The same id with another body is a conflict, never the original's answer.
    other = await client.post("/orders", json={**FUT, "qty": 0.005})
    assert other.status_code == 409 and "qty" in other.json()["message"]


async def test_post_orders_concurrent_resends_execute_exactly_once(
    s4: tuple[httpx.AsyncClient, S4Container],
) -> None:
    client, c = s4
    body = {**FUT, "client_order_id": "t-btc-race"}

    async def post() -> httpx.Response:
        # As S3's publisher does: a 503 ("being accepted by another request", or the request
        # deadline on a loaded machine) is resent as is.
        for _ in range(20):
            r = await client.post("/orders", json=body)
            if r.status_code != 503:
                return r
            await asyncio.sleep(0.1)
        return r

    results = await asyncio.gather(*(post() for _ in range(8)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert sum(1 for r in results if not r.json().get("duplicate")) == 1
    trades = [
        t
        for t in await c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")
        if t.client_order_id.startswith("t-btc-race")
    ]
    assert sum(t.qty for t in trades) == Decimal("0.002")


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"qty": 0}, "qty"),
        ({"qty": -0.1}, "qty"),
        ({"qty": "lots"}, "qty"),
        ({"side": "LONG"}, "side"),
        ({"symbol": "DOGEUSDT"}, "unknown symbol"),
        ({"client_order_id": "has/slash"}, "client_order_id"),
        ({"qty": 0.0001}, "rounds to zero"),
        ({"qty": 0.001, "symbol": "ETHUSDT"}, "minNotional"),
        ({"tp": {"type": "TAKE_PROFIT_MARKET", "price": 70000}}, "without a stop"),
        ({"reduce_only": True, "sl": {"type": "STOP_MARKET", "price": 60000}}, "reduce-only"),
        ({"exec_policy": {"type": "TWAP", "slices": 9, "gap_ms": 100}}, "S4_TWAP_MAX_SLICES"),
    ],
)
async def test_post_orders_with_bad_input_returns_422_naming_the_problem(
    s4: tuple[httpx.AsyncClient, S4Container], patch: dict[str, Any], needle: str
) -> None:
    client, c = s4
    r = await client.post("/orders", json={**FUT, **patch})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["result"] == "FAIL" and needle in body["message"]
    assert await c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT") == []


async def test_post_orders_with_missing_field_or_bad_json_returns_422(
    s4: tuple[httpx.AsyncClient, S4Container],
) -> None:
    client, _ = s4
    body = {k: v for k, v in FUT.items() if k != "client_order_id"}
    r = await client.post("/orders", json=body)
    assert r.status_code == 422 and "client_order_id" in r.json()["message"]
    r = await client.post("/orders", content=b"[1,", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["result"] == "FAIL"


async def test_cancel_with_unknown_finished_or_ambiguous_target_returns_4xx(
    s4: tuple[httpx.AsyncClient, S4Container],
) -> None:
    client, _ = s4
    r = await client.post("/cancel", json={"client_order_id": "nope"})
    assert r.status_code == 404 and "unknown order" in r.json()["message"]
    r = await client.post("/cancel", json={})
    assert r.status_code == 422 and "exactly one" in r.json()["message"]
    r = await client.post("/cancel", json={"client_order_id": "a", "order_id": "1"})
    assert r.status_code == 422
    await client.post("/orders", json=FUT)
    r = await client.post("/cancel", json={"client_order_id": "t-btc-1"})
    assert r.status_code == 409 and "already FILLED" in r.json()["message"]


async def test_get_order_with_unknown_or_invalid_id_returns_4xx(
    s4: tuple[httpx.AsyncClient, S4Container],
) -> None:
    client, _ = s4
    assert (await client.get("/orders/unknown-1")).status_code == 404
    assert (await client.get("/orders/bad{id}")).status_code == 422


async def test_health_with_dependencies_up_reports_route_rev_and_breaker(
    s4: tuple[httpx.AsyncClient, S4Container],
) -> None:
    client, c = s4
    r = await client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["exchange"]["ok"] and h["redis"] and h["store"]["ok"]
    assert h["route_table_rev"] == c.router.route_table.rev and len(h["route_table_rev"]) == 12
    assert h["circuit_breaker"] == "CLOSED"
    assert "router_submit_latency_seconds" in (await client.get("/metrics")).text


async def test_requests_with_redis_down_return_503_and_health_reports_it(
    tmp_path: Path,
) -> None:
    server = EmbeddedRedis().start()
    client_r = make_redis(server.addresses)
    settings = s4_settings(server.addresses, tmp_path)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_app(settings, client_r, store) as (cl, _):
            server.stop()
            h = await cl.get("/health")
            assert h.status_code == 503 and h.json()["redis"] is False
            # liveness is the process alone (no token, like /health): no restart loop
            live = await cl.get("/livez", headers={"Authorization": ""})
            assert live.status_code == 200 and live.json() == {"status": "alive", "ended": []}
            r = await cl.post("/orders", json={**FUT, "client_order_id": "t-down-1"})
            assert r.status_code == 503 and r.json()["result"] == "FAIL"
            assert "unavailable" in r.json()["message"]
    finally:
        server.stop()
        await client_r.aclose()
        await store.close()


async def test_orders_and_cancel_answer_503_within_the_deadline_while_redis_is_stalled(
    tmp_path: Path,
) -> None:
    """Redis SIGSTOPped (no answer, no error): the HTTP deadline (S4_REQUEST_TIMEOUT_MS) holds."""
    with EmbeddedRedis() as server:
        settings = s4_settings(server.addresses, tmp_path).model_copy(
            update={"request_timeout_ms": 500}
        )
        redis = make_redis(server.addresses)
        store = SqliteStore(tmp_path / "store.sqlite3")
        try:
            async with s4_app(settings, redis, store) as (client, _):
                first = await client.post(
                    "/orders", json={**FUT, "exec_policy": {"type": "MAKER_TAKER"}}
                )
                assert first.status_code in (200, 202), first.text
                os.kill(server.pids[0], signal.SIGSTOP)
                try:
                    await _stalled_requests(client)
                finally:
                    os.kill(server.pids[0], signal.SIGCONT)
        finally:
            await store.close()
            await redis.aclose()


async def _stalled_requests(client: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    late = await client.post("/orders", json={**FUT, "client_order_id": "t-btc-2"})
    took = loop.time() - t0
    # Well under redis-py's 5 s socket timeout: the deadline answered, not Redis.
    assert late.status_code == 503 and took < 3.0, (late.status_code, took)
    assert "not answered within 500 ms" in late.json()["message"]
    t0 = loop.time()
    cancel = await client.post("/cancel", json={"client_order_id": "t-btc-1"})
    took = loop.time() - t0
    # The store recorded the cancel (SQLite is not stalled): it is carried out, and the answer
    # says so instead of a 503 that reads "nothing happened".
    assert took < 3.0, took
    assert cancel.status_code == 202, cancel.json()
    assert cancel.json()["status"] == "PENDING_CANCEL"


class StallingStore(SqliteStore):
    """A store whose reads stop answering (a stalled disk or database) once `stalled` is set."""

    stalled = False

    async def find(self, collection: str, query: Any = None) -> list[dict[str, Any]]:
        if self.stalled:
            await asyncio.sleep(30)
        return await super().find(collection, query)


async def test_cancel_by_venue_order_id_answers_503_within_the_deadline_while_the_store_stalls(
    redis: RedisClient, redis_addresses: list[str], tmp_path: Path
) -> None:
    """The venue-id lookup is part of the request: it is bounded by S4_REQUEST_TIMEOUT_MS like
    the cancel itself, and a lookup that did not answer says nothing was recorded."""
    settings = s4_settings(redis_addresses, tmp_path).model_copy(update={"request_timeout_ms": 500})
    store = StallingStore(tmp_path / "store.sqlite3")
    try:
        async with s4_app(settings, redis, store) as (client, _):
            store.stalled = True
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            r = await client.post("/cancel", json={"order_id": "12345"})
            took = loop.time() - t0
            assert r.status_code == 503 and took < 3.0, (r.status_code, took, r.text)
            assert "not recorded" in r.json()["message"], r.json()
            store.stalled = False
    finally:
        await store.close()
