"""S4 pre-trade safety (issue 11 points 9-14): what a risk desk refuses is refused with 422 and
a reason before anything is sent or stored as executable; protection that fails after the fill
closes the position (S4_NAKED_POLICY). Hand-driven rig (manual clock, venue simulator, real
Redis and SQLite) and the HTTP app on top of the same container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest

from s4_router.adapters.exchange.base import (
    AssetBalance,
    ConditionalOrder,
    ExchangeOrder,
    PlaceOrderRequest,
)
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.entrypoints.api import create_app
from s4_router.entrypoints.statuses import http_status
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from svckit.store.sqlite import SqliteStore
from tests.chaos.rig import T0, Rig, crash, hand_venue, s4_rig, set_book, settings_for
from tests.helpers import S4_AUTH
from tradekit.enums import Market, OrderStatus, OrderType
from tradekit.intents import OrderIntent

S = OrderStatus
SL = {"type": "STOP_MARKET", "price": "64000"}
OCO = {"type": "OCO", "tp_price": "66000", "sl_price": "64000"}
BODY: dict[str, Any] = {
    "intent_id": "i-1",
    "market": "FUT",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": "0.002",
    "exec_policy": {"type": "MARKET"},
    "client_order_id": "c-1",
}


async def nothing_sent(r: Rig, coid: str = "c-1") -> bool:
    fut = r.venue_orders(coid, Market.FUT) + r.venue_orders(coid, Market.SPOT)
    return not fut and not r.venue.open_algo_orders("BTCUSDT")


async def not_executable(r: Rig, coid: str = "c-1") -> bool:
    doc = await r.c.store.get("orders", coid)
    return doc is None or doc["status"] == S.REJECTED.value


@asynccontextmanager
async def http(r: Rig, tmp_path: Path, **over: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(tmp_path, **over), container=r.c)
    app.state.container = r.c  # no lifespan: the rig owns the container
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://s4", headers=S4_AUTH
    ) as client:
        yield client


# ---- 9: size limits and price collar ---------------------------------------------------------
async def test_fat_finger_qty_over_instrument_max_order_qty_is_refused_before_anything_is_sent(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(qty="100")
        assert http_status(out) == 422, out.response
        assert out.response.reason == "MAX_ORDER_QTY" and "max_order_qty" in str(
            out.response.message
        )
        assert await nothing_sent(r) and await not_executable(r)
        assert r.position() == 0


async def test_notional_over_instrument_or_global_cap_is_refused_and_recorded_rejected(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path, max_order_notional_usdt=D(100)) as r:
        out = await r.submit(qty="0.002")  # ≈ 130 USDT at the mid 65,000
        assert http_status(out) == 422 and out.response.reason == "MAX_ORDER_NOTIONAL"
        assert "S4_MAX_ORDER_NOTIONAL_USDT" in str(out.response.message)
        assert await nothing_sent(r) and await not_executable(r)
        # Recorded REJECTED: the stream copy of the same intent cannot execute it later.
        again = await r.submit(source="stream", qty="0.002")
        assert again.response.duplicate and again.response.result.value == "FAIL"
    async with s4_rig(redis, tmp_path / "eth") as r:
        set_book(r.venue, bid="3399", ask="3401", qty="100", symbol="ETHUSDT")
        # 45 ETH ≈ 153,000 USDT: under max_order_qty 50, over ETHUSDT's 150,000 notional cap.
        out = await r.submit(symbol="ETHUSDT", qty="45", client_order_id="c-2")
        assert http_status(out) == 422 and out.response.reason == "MAX_ORDER_NOTIONAL"
        assert "ETHUSDT max_order_notional_usdt" in str(out.response.message)
        assert not r.venue_orders("c-2")


async def test_ref_price_outside_the_collar_of_the_live_mid_is_refused(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(ref_price="70000")  # 769 bps above the 65,000 mid
        assert http_status(out) == 422 and out.response.reason == "PRICE_COLLAR"
        assert await nothing_sent(r) and await not_executable(r)
        ok = await r.submit(ref_price="65100", client_order_id="c-2")
        assert ok.response.status is S.FILLED, ok.response


# ---- 10: SL / TP sanity against the side and the market ---------------------------------------
@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"sl": {"type": "STOP_MARKET", "price": "66000"}}, "sl.price"),  # BUY, stop above
        ({"sl": {"type": "STOP_MARKET", "price": "64990"}}, "sl.price"),  # 1.5 bps: too close
        (
            {"sl": SL, "tp": {"type": "TAKE_PROFIT_MARKET", "price": "64500"}},
            "tp.price",  # schema: tp > sl holds, but the target is below the market
        ),
        ({"side": "SELL", "sl": SL}, "sl.price"),  # SELL, stop below the market
    ],
)
async def test_fut_bracket_on_the_wrong_side_of_the_market_refuses_the_whole_intent(
    redis: RedisClient, tmp_path: Path, over: dict[str, Any], field: str
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(**over)
        assert http_status(out) == 422, out.response
        assert out.response.reason == "BRACKET_INVALID" and field in str(out.response.message)
        assert await nothing_sent(r) and await not_executable(r)
        assert r.position() == 0


async def test_spot_oco_with_stop_above_the_market_is_refused_before_the_entry(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        r.venue.set_book(
            Market.SPOT, "BTCUSDT", bids=[(D("64999"), D("5"))], asks=[(D("65001"), D("5"))]
        )
        bad = {"type": "OCO", "tp_price": "67000", "sl_price": "65500"}
        out = await r.submit(market="SPOT", exec_policy=bad)
        assert http_status(out) == 422 and out.response.reason == "OCO_INVALID"
        assert await nothing_sent(r) and await not_executable(r)
        # A stop-limit price on the wrong side of its own trigger.
        odd = {**OCO, "sl_limit_price": "64500"}
        out = await r.submit(market="SPOT", exec_policy=odd, client_order_id="c-2")
        assert http_status(out) == 422 and out.response.reason == "OCO_INVALID"
        assert await nothing_sent(r, "c-2")


class StopAfterCrash(SimExchange):
    """The market falls through the stop between the entry fill and the stop placement: the
    venue itself then rejects the stop ("would immediately trigger")."""

    async def place_conditional(self, req: PlaceOrderRequest) -> ConditionalOrder:
        if req.type is OrderType.STOP_MARKET:
            self.sim.set_mark_price("BTCUSDT", D("63000"))
        return await super().place_conditional(req)


@pytest.mark.parametrize("policy", ["close", "alert"])
async def test_stop_rejected_after_the_fill_closes_reduce_only_or_alerts_per_naked_policy(
    redis: RedisClient, tmp_path: Path, policy: str
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = StopAfterCrash(venue)
    async with s4_rig(
        redis, tmp_path, clock=clock, venue=venue, exchange=ex, naked_policy=policy
    ) as r:
        out = await r.submit(sl=SL)
        assert out.response.status is S.FILLED, out.response
        assert r.c.protection is not None
        for _ in range(5):
            clock.advance(200)
            await r.c.protection.step_all()
        assert "POSITION_NAKED" in await r.alerts()
        closes = [o for o in r.venue_orders("c-1-E") if o.reduce_only]
        naked = r.c.metrics.registry.get_sample_value("router_naked_seconds_count")
        if policy == "close":
            assert r.position() == 0
            assert [(o.type, o.qty, o.filled_qty) for o in closes] == [
                (OrderType.MARKET, D("0.002"), D("0.002"))
            ]
            assert "NAKED_CLOSE" in await r.events("c-1")
            assert naked == 1  # first fill -> flat, measured
        else:
            assert r.position() == D("0.002") and closes == []
            assert "NAKED_CLOSE" not in await r.events("c-1")


class SimulatedCrash(Exception):
    pass


class CrashOnClose(StopAfterCrash):
    """The process dies right before the naked close reaches the venue."""

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        if req.reduce_only and req.type is OrderType.MARKET:
            raise SimulatedCrash(req.client_order_id)
        return await super().place_order(req)


async def test_naked_close_interrupted_by_a_crash_is_sent_once_after_restart(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(
            redis, tmp_path, clock=clock, venue=venue, store=store, exchange=CrashOnClose(venue)
        ) as r1:
            await r1.submit(sl=SL)
            assert r1.position() == D("0.002")
            await crash(r1)
            assert r1.c.protection is not None
            r1.c.protection.active.clear()
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            assert r2.c.protection is not None
            assert await r2.c.protection.recover() == 1
            for _ in range(150):  # past the recvWindow: the unsent close is provably absent
                if r2.position() == 0:
                    break
                clock.advance(50)
                await r2.c.protection.step_all()
            assert r2.position() == 0
            closes = [o for o in r2.venue_orders("c-1-E") if o.reduce_only]
            assert [o.client_order_id for o in closes] == ["c-1-E61"]  # once, the same id
    finally:
        await store.close()


# ---- 11: OCO legs cover the fill net of fees ---------------------------------------------------
async def test_spot_oco_legs_cover_the_whole_fill_net_of_fees_to_the_step(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path, maker_max_wait_ms=0) as r:
        set_book(r.venue, market=Market.SPOT)
        out = await r.submit(market="SPOT", exec_policy=OCO, qty="0.002")
        assert out.response.status is S.FILLED, out.response
        legs = r.venue_orders("c-1-E6", Market.SPOT)
        assert legs and {o.qty for o in legs} == {D("0.002")}, [(o.type, o.qty) for o in legs]
        assert "OCO_LEG_SHORTFALL" not in await r.alerts()


class SpentElsewhere(SimExchange):
    """Another desk sells the base asset while our entry fills: only `left` BTC is free when
    the legs are sized."""

    def __init__(self, venue: Any, left: str) -> None:
        super().__init__(venue)
        self.left = D(left)

    async def fetch_balances(self, market: Market) -> dict[str, AssetBalance]:
        if market is Market.SPOT:
            self.sim.spot_account._free["BTC"] = self.left
        return await super().fetch_balances(market)


@pytest.mark.parametrize(("left", "qty", "legs"), [("0.001", "0.003", "0.001"), ("0", "0.001", "")])
async def test_spot_oco_legs_short_by_more_than_a_step_or_skipped_raise_an_alert(
    redis: RedisClient, tmp_path: Path, left: str, qty: str, legs: str
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    ex = SpentElsewhere(venue, left)
    async with s4_rig(
        redis, tmp_path, clock=clock, venue=venue, exchange=ex, maker_max_wait_ms=0
    ) as r:
        set_book(r.venue, market=Market.SPOT)
        out = await r.submit(market="SPOT", exec_policy=OCO, qty=qty)
        assert out.response.status is S.FILLED, out.response
        placed = r.venue_orders("c-1-E6", Market.SPOT)
        assert {o.qty for o in placed} == ({D(legs)} if legs else set())
        assert "OCO_LEG_SHORTFALL" in await r.alerts()


# ---- 12: freshness -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("created", "reason"),
    [(T0 - 10_001, "STALE_INTENT"), (T0 + 5_000, "FUTURE_INTENT"), (None, "MISSING_CREATED_TS")],
)
async def test_stale_future_or_undated_intent_is_refused(
    redis: RedisClient, tmp_path: Path, created: int | None, reason: str
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        body = dict(BODY)
        if created is not None:
            body["created_ts"] = created
        out = await r.c.router.submit(OrderIntent.model_validate(body), source="rest")
        assert http_status(out) == 422 and out.response.reason == reason, out.response
        assert await nothing_sent(r) and await not_executable(r)
        fresh = await r.submit(created_ts=T0 - 9_000, client_order_id="c-2")
        assert fresh.response.status is S.FILLED


# ---- 13 / 14 over HTTP: numbers, ids, body size, fields that do not apply, caps reported --------
@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"qty": 1e308}, "qty"),
        ({"qty": "1e308"}, "qty"),
        ({"qty": "NaN"}, "qty"),
        ({"qty": "Infinity"}, "qty"),
        ({"ref_price": "1e400"}, "ref_price"),
        ({"qty": "0.0025"}, "QTY_OFF_STEP"),
        ({"sl": {"type": "STOP_MARKET", "price": "64000.5"}}, "PRICE_OFF_TICK"),
        ({"created_ts": 10**15}, "created_ts"),
        ({"created_ts": 10**30}, "created_ts"),
        ({"intent_id": "x" * 65}, "intent_id"),
        ({"intent_id": "bad id\n"}, "intent_id"),
        ({"signal_id": "<script>"}, "signal_id"),
        ({"config_rev": "r" * 200}, "config_rev"),
        ({"market": "SPOT", "leverage": 5}, "leverage"),
        (
            {
                "sl": SL,
                "tp": {
                    "type": "TAKE_PROFIT_MARKET",
                    "price": "66000",
                    "target": "net_profit_usdt",
                    "value": "2",
                },
            },
            "tp",
        ),
    ],
)
async def test_post_orders_with_unsafe_numbers_ids_or_fields_answers_422_never_500(
    redis: RedisClient, tmp_path: Path, patch: dict[str, Any], needle: str
) -> None:
    async with s4_rig(redis, tmp_path) as r, http(r, tmp_path) as client:
        resp = await client.post("/orders", json={**BODY, "created_ts": T0, **patch})
        assert resp.status_code == 422, resp.text
        assert needle in resp.json()["message"]
        assert await nothing_sent(r) and await not_executable(r)


async def test_post_orders_with_body_over_64_kb_answers_413(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r, http(r, tmp_path) as client:
        big = {**BODY, "created_ts": T0, "config_rev": "x" * 70_000}
        resp = await client.post("/orders", json=big)
        assert resp.status_code == 413, resp.text

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(20):
                yield b" " * 5_000

        resp = await client.post(
            "/orders", content=chunks(), headers={"content-type": "application/json"}
        )
        assert resp.status_code == 413, resp.text
        assert await nothing_sent(r) and await r.c.store.get("orders", "c-1") is None


async def test_capped_maker_wait_is_reported_in_the_answer_not_silently_changed(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r, http(r, tmp_path) as client:
        body = {
            **BODY,
            "created_ts": T0,
            "exec_policy": {"type": "MAKER_TAKER", "maker_wait_ms": 10_000},
        }
        resp = await client.post("/orders", json=body)
        assert resp.status_code in (200, 202), resp.text
        assert resp.json()["adjustments"] == [
            {
                "field": "exec_policy.maker_wait_ms",
                "requested": "10000",
                "applied": "3000",
                "reason": "S4_MAKER_MAX_WAIT_MS",
            },
        ]
        doc = await r.c.store.get("orders", "c-1")
        assert doc is not None and doc["adjustments"][0]["applied"] == "3000"


@pytest.mark.parametrize("order_id", ["1 OR 1=1", "x" * 65, "id\n", "../../etc"])
async def test_cancel_with_unsafe_venue_order_id_answers_422(
    redis: RedisClient, tmp_path: Path, order_id: str
) -> None:
    async with s4_rig(redis, tmp_path) as r, http(r, tmp_path) as client:
        resp = await client.post("/cancel", json={"order_id": order_id})
        assert resp.status_code == 422, resp.text
        assert "order_id" in resp.json()["message"]


async def test_leverage_of_a_fut_entry_without_brackets_is_applied_not_ignored(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(leverage=7)
        assert out.response.status is S.FILLED, out.response
        assert r.venue.futures_account.leverage("BTCUSDT") == 7
        assert r.venue.futures_account.margin_type("BTCUSDT").upper() == "ISOLATED"


async def test_leverage_on_a_reduce_only_close_answers_422(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r, http(r, tmp_path) as client:
        body = {**BODY, "created_ts": T0, "side": "SELL", "reduce_only": True, "leverage": 5}
        resp = await client.post("/orders", json=body)
        assert resp.status_code == 422 and "leverage" in resp.json()["message"], resp.text
        assert await nothing_sent(r)
