"""S4 executions end to end against the venue simulator with hand-set books and one manual
clock: Maker→Taker, TWAP, the liquidity probe, cancels, idempotency, insufficient balance.
No sleeps: time moves only when a test advances it."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import httpx

from s4_router.adapters.exchange.base import BookTop
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.entrypoints.api import create_app
from s4_router.entrypoints.statuses import http_status
from svckit import keys
from svckit.redisio import RedisClient
from tests.chaos.rig import hand_venue, intent, s4_rig, set_book, step_all
from tests.helpers import S4_AUTH
from tradekit.enums import Market, OrderStatus
from venue.faults import FaultKind

S = OrderStatus
MT = {"type": "MAKER_TAKER", "maker_wait_ms": 1000}


async def test_maker_with_fill_before_timeout_fills_as_maker_and_reports_once(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(exec_policy=MT)
        assert http_status(out) == 202 and out.response.status is S.ACCEPTED
        assert out.response.order_ids == ["c-1", "c-1-E1"]
        (child,) = r.venue_orders("c-1")
        assert child.post_only and child.price == D(64999) and child.status is S.ACCEPTED
        r.clock.advance(300)
        set_book(r.venue, bid="64998", asks=[("64999", "5"), ("65000", "5")])
        view = await r.until_done("c-1")
        order, fills = view["order"], view["fills"]
        assert order["status"] == "FILLED" and D(order["filled_qty"]) == D("0.002")
        assert [h["status"] for h in order["history"]] == ["NEW", "SUBMITTED", "ACCEPTED", "FILLED"]
        assert [f["liquidity"] for f in fills] == ["MAKER"]
        assert D(fills[0]["slippage_bps"]) < 0  # bought below the arrival mid
        assert fills[0]["arrival_mid"] == "65000" and fills[0]["role"] == "MAKER"
        assert fills[0]["book_top3"]["bids"][0] == ["64999", "5"]
        executed = await r.stream(keys.ORDERS_EXECUTED)
        assert [(e["client_order_id"], e["status"], e["policy"]) for e in executed] == [
            ("c-1", "FILLED", "MAKER_TAKER")
        ]
        assert r.c.metrics.maker_fill_ratio._value.get() == 1.0


async def test_maker_with_timeout_and_partial_fill_cancels_then_sends_remainder_as_market(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(exec_policy=MT, qty="0.003")
        r.clock.advance(200)
        set_book(r.venue, bids=[("64998", "5")], asks=[("64999", "0.001"), ("65001", "5")])
        await step_all(r.c.manager)
        view = await r.c.router.get("c-1")
        assert view and view["order"]["status"] == "PARTIALLY_FILLED"
        set_book(r.venue)
        # The cancel fails at the venue (5xx on every retry): no taker may go before the ack.
        for _ in range(4):
            r.venue.faults.script("cancel", FaultKind.SERVER_ERROR)
        await r.drive(900)
        assert [o.client_order_id for o in r.venue_orders("c-1")] == ["c-1-E1"]
        view = await r.c.router.get("c-1")
        assert view and view["children"][0]["status"] == "PENDING_CANCEL"
        await r.drive(2100)  # cancel retried after cancel_retry_ms: ack, then the remainder
        view = await r.until_done("c-1")
        kids = {c["client_order_id"]: c for c in view["children"]}
        assert kids["c-1-E1"]["status"] == "CANCELED" and kids["c-1-E1"]["filled_qty"] == "0.001"
        assert kids["c-1-E2"]["type"] == "MARKET" and kids["c-1-E2"]["qty"] == "0.002"
        assert view["order"]["status"] == "FILLED" and r.venue_filled("c-1") == D("0.003")
        assert sorted(f["liquidity"] for f in view["fills"]) == ["MAKER", "TAKER"]
        ev = await r.events("c-1")
        assert ev.index("MAKER_TIMEOUT") < ev.index("CANCEL_ACK") < ev.index("TAKER_FALLBACK")


async def test_maker_with_post_only_reject_reprices_at_the_new_best(
    redis: RedisClient, tmp_path: Path
) -> None:
    class StaleBook(SimExchange):
        """The first book read is stale (the market moved before our order arrived)."""

        stale = True

        async def fetch_book(self, market: Market, symbol: str, depth: int = 5) -> BookTop:
            book = await super().fetch_book(market, symbol, depth)
            if self.stale:
                self.stale = False
                return BookTop(symbol, book.ts, ((D(65005), D(1)),), ((D(65007), D(1)),))
            return book

    async with s4_rig(redis, tmp_path) as base:
        venue = base.venue
    async with s4_rig(redis, tmp_path / "b", venue=venue, exchange=StaleBook(venue)) as r:
        out = await r.submit(exec_policy=MT)
        assert http_status(out) == 202
        view = await r.c.router.get("c-1")
        assert view is not None
        kids = view["children"]
        assert [c["status"] for c in kids] == ["REJECTED", "ACCEPTED"]
        assert kids[0]["price"] == "65005" and kids[1]["price"] == "64999"
        assert "REPRICE" in await r.events("c-1")
        # A rejected post-only order never existed at the venue: only the re-priced one does.
        assert [(o.client_order_id, o.price) for o in r.venue_orders("c-1")] == [
            ("c-1-E2", D(64999))
        ]


async def test_twap_with_market_slices_sends_each_slice_once_at_its_time(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(
            qty="0.006",
            exec_policy={"type": "TWAP", "slices": 3, "gap_ms": 1000, "jitter_pct": 0},
        )
        assert http_status(out) == 202 and [o.client_order_id for o in r.venue_orders("c-1")] == [
            "c-1-E1"
        ]
        await r.drive(999)
        assert len(r.venue_orders("c-1")) == 1
        await r.drive(1)
        assert len(r.venue_orders("c-1")) == 2
        view = await r.until_done("c-1")
        assert view["order"]["status"] == "FILLED"
        assert [(c["slice_index"], c["qty"]) for c in view["children"]] == [
            (0, "0.002"),
            (1, "0.002"),
            (2, "0.002"),
        ]
        assert r.c.metrics.twap_slice_fill_ratio._value.get() == 1.0
        assert (await r.events("c-1")).count("SLICE_START") == 3


async def test_maker_taker_with_route_table_band_uses_band_wait_and_twap(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(qty="0.005", exec_policy={})  # 325 USDT: band 2 (2000 ms, 2 x 600)
        assert http_status(out) == 202
        view = await r.c.router.get("c-1")
        assert view is not None
        state = view["order"]["exec_state"]
        assert (
            state["config"]["route_band"] == 1 and state["config"]["maker"]["maker_wait_ms"] == 2000
        )
        assert [s["qty"] for s in state["slices"]] == ["0.003", "0.002"]
        view = await r.until_done("c-1")
        assert view["order"]["status"] == "FILLED" and r.venue_filled("c-1") == D("0.005")


async def test_liquidity_probe_with_thin_book_splits_taker_children_under_depth_fraction(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        set_book(r.venue, qty="0.004")
        await r.submit(qty="0.006")
        while "c-1" in r.c.manager.active:
            set_book(r.venue, qty="0.004")  # the book refills between our children
            r.clock.advance(50)
            await step_all(r.c.manager)
        view = await r.until_done("c-1")
        assert view["order"]["status"] == "FILLED" and r.venue_filled("c-1") == D("0.006")
        kids = view["children"]
        assert [k["qty"] for k in kids] == ["0.002", "0.002", "0.002"]
        for k in kids:
            top_qty = D(k["book_top3"]["asks"][0][1])
            assert D(k["qty"]) <= top_qty * D("0.5")
        probes = [e for e in await r.stream(keys.ROUTER_EVENTS) if e["event"] == "LIQUIDITY_PROBE"]
        assert probes[0]["data"]["action"] == "SPLIT"


async def test_liquidity_probe_with_wide_spread_delays_bounded_then_sends_degraded(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        set_book(r.venue, bid="64950", ask="65050")  # ~15 bps > 3 bps limit
        out = await r.submit()
        assert http_status(out) == 202 and r.venue_orders("c-1") == []
        await r.drive(1900)
        assert r.venue_orders("c-1") == []
        view = await r.until_done("c-1")
        assert view["order"]["status"] == "FILLED"
        probes = [
            e["data"] for e in await r.stream(keys.ROUTER_EVENTS) if e["event"] == "LIQUIDITY_PROBE"
        ]
        assert [p["action"] for p in probes].count("DELAY") == 8
        assert probes[-1]["action"] == "GO" and probes[-1]["degraded"] is True


async def test_cancel_with_resting_maker_cancels_child_and_ends_canceled(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(exec_policy=MT)
        (child,) = r.venue_orders("c-1")
        out = await r.c.router.cancels.cancel(
            order_id=str(child.order_id)
        )  # a child names its parent
        assert http_status(out) == 200 and out.response.status is S.CANCELED
        assert r.venue_orders("c-1")[0].status is S.CANCELED
        await r.drive(3000)
        assert len(r.venue_orders("c-1")) == 1  # no taker after a cancel
        again = await r.c.router.cancels.cancel(client_order_id="c-1")
        assert http_status(again) == 409 and "already CANCELED" in (again.response.message or "")
        executed = await r.stream(keys.ORDERS_EXECUTED)
        assert [e["status"] for e in executed] == ["CANCELED"]


async def test_resend_with_same_client_order_id_while_running_and_after_sends_nothing(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(exec_policy=MT)
        dup = await r.submit(source="stream", exec_policy=MT)
        assert dup.response.duplicate and dup.response.status is S.ACCEPTED
        assert len(r.venue_orders("c-1")) == 1
        await r.until_done("c-1")
        n = len(r.venue_orders("c-1"))
        dup = await r.submit(exec_policy=MT)
        assert dup.response.duplicate and dup.response.status is S.FILLED
        assert len(r.venue_orders("c-1")) == n


async def test_insufficient_balance_with_room_for_half_downsizes_once(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as base:
        clock = base.clock
    venue = hand_venue(clock, futures_wallet=D(20))  # 0.01 BTC needs 32.5 USDT margin at 20x
    async with s4_rig(redis, tmp_path / "b", clock=clock, venue=venue) as r:
        out = await r.submit(qty="0.01")
        assert out.response.status is S.EXPIRED and out.response.filled_qty == D("0.005")
        assert "DOWNSIZE" in await r.events("c-1")
        kids = (await r.c.router.get("c-1") or {})["children"]
        assert [(k["status"], D(k["qty"])) for k in kids] == [
            ("REJECTED", D("0.01")),
            ("FILLED", D("0.005")),
        ]


async def test_insufficient_balance_repeated_alerts_and_fails(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as base:
        clock = base.clock
    venue = hand_venue(clock, futures_wallet=D(5))
    async with s4_rig(
        redis, tmp_path / "b", clock=clock, venue=venue, insufficient_balance_alert_count=2
    ) as r:
        out = await r.submit(qty="0.01")
        assert out.response.result.value == "FAIL" and out.response.status is S.REJECTED
        alerts = await r.alerts()
        assert "INSUFFICIENT_BALANCE" in alerts and "INSUFFICIENT_BALANCE_RATE_HIGH" in alerts
        assert r.venue_orders("c-1") == []


async def test_reduce_only_below_min_notional_is_allowed_and_spot_validation_refuses(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(qty="0.002")
        out = await r.submit(client_order_id="c-2", side="SELL", qty="0.001", reduce_only=True)
        assert out.response.status is S.FILLED
        assert r.position() == D("0.001")
        bad = await r.submit(client_order_id="c-3", qty="0.00001")
        assert http_status(bad) == 422 and "rounds to zero" in (bad.response.message or "")


async def test_http_with_maker_intent_answers_202_then_view_cancel_health_and_metrics(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        app = create_app(r.c.settings, container=r.c)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://s4", headers=S4_AUTH
            ) as cl,
        ):
            body = intent(exec_policy={"maker_wait_ms": 2000}).model_dump(mode="json")
            resp = await cl.post("/orders", json=body)
            assert resp.status_code == 202, resp.text
            reply = resp.json()
            assert (reply["result"], reply["status"]) == ("OK", "ACCEPTED")
            assert "background" in reply["message"]
            view = (await cl.get("/orders/c-1")).json()
            assert [c["client_order_id"] for c in view["children"]] == ["c-1-E1"]
            assert view["children"][0]["post_only"] is True
            assert view["order"]["exec_state"]["config"]["policy"] == "MAKER_TAKER"
            resp = await cl.post("/cancel", json={"client_order_id": "c-1-E1"})
            assert resp.status_code == 200 and resp.json()["status"] == "CANCELED"
            health = (await cl.get("/health")).json()
            assert health["circuit_breaker"] == "CLOSED" and health["entries_allowed"] is True
            assert health["clock"]["ok"] is True and health["route_table_rev"]
            metrics = (await cl.get("/metrics")).text
            for name in (
                "router_maker_fill_ratio",
                "router_taker_rate",
                "router_slippage_bps",
                "router_fees_usdt_total",
                "router_circuit_breaker_state",
                "router_stream_lag",
                "router_twap_slice_fill_ratio",
                "router_submit_latency_seconds",
            ):
                assert f"# TYPE {name} " in metrics, name


async def test_cancel_from_another_replica_stops_the_owner_without_a_taker(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        await r.submit(exec_policy=MT)
        # Another replica's /cancel: flag in the store, child cancelled at the venue directly.
        await r.c.store.update("orders", "c-1", {"cancel_requested": True})
        await r.exchange.cancel_order(Market.FUT, "BTCUSDT", client_order_id="c-1-E1")
        await r.drive(3000)
        view = await r.c.router.get("c-1")
        assert view is not None and view["order"]["status"] == "CANCELED"
        assert [o.client_order_id for o in r.venue_orders("c-1")] == ["c-1-E1"]


async def test_refusals_with_one_reason_alert_once_a_minute_and_each_reason_on_its_own(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        skew = r.c.router.skew
        skew.ok, skew.skew_ms = False, 5000
        for coid in ("c-1", "c-2"):
            out = await r.submit(client_order_id=coid)
            assert http_status(out) == 503 and out.response.reason == "clock_skew"
        await redis.set(keys.halt_entries("BTCUSDT"), "OVERFILL c-0 t-0")
        r.clock.advance(1_000)  # the halt is read at most once a second
        assert (await r.submit(client_order_id="c-3")).response.reason == "entries_halted"
        r.clock.advance(58_000)
        await redis.delete(keys.halt_entries("BTCUSDT"))
        await r.submit(client_order_id="c-4")  # clock_skew again within the minute: no alert
        r.clock.advance(1_000)
        await r.submit(client_order_id="c-5")
        alerts = [a for a in await r.stream(keys.ALERTS) if a["kind"] == "ENTRY_REFUSED"]
        assert [(a["message"].split(":")[0], a["data"]["reason"]) for a in alerts] == [
            ("c-1", "clock_skew"),
            ("c-3", "entries_halted"),
            ("c-5", "clock_skew"),
        ]
        assert (await r.events()).count("ENTRY_REFUSED") == 5  # every refusal is on the stream
