"""Faults and restarts: ambiguous submits resolved from venue evidence, startup recovery,
the circuit breaker, clock skew, and the consumer group (ack after persistence, reclaim,
dead letters). Manual clock; no sleeps."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from s4_router.adapters.exchange.base import ExchangeOrder, PlaceOrderRequest
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.entrypoints.statuses import http_status
from s4_router.entrypoints.stream_consumer import IntentConsumer
from s4_router.service_layer.protection import doc_key
from s4_router.service_layer.resends import IntakeBusy
from svckit import jsonutil, keys
from svckit.clock import ManualClock
from svckit.errors import StoreUnavailable
from svckit.redisio import (
    RedisClient,
    StreamEntry,
    autoclaim,
    ensure_group,
    read_group,
    xadd_json,
)
from svckit.store.sqlite import SqliteStore
from tests.chaos.rig import T0, Rig, crash, hand_venue, intent, s4_rig
from tradekit.enums import OrderStatus
from venue.faults import FaultKind, FaultPlan, ScriptedFault

# Every test that uses Redis runs on a single node and on a 3-master Redis Cluster (conftest).
pytestmark = pytest.mark.redis_modes

S = OrderStatus


class SimulatedCrash(Exception):
    """The process dies at this point (raised where a kill -9 would stop us)."""


class CrashingExchange(SimExchange):
    def __init__(self, *args: object, when: str, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.when = when

    async def place_order(self, req: PlaceOrderRequest) -> ExchangeOrder:
        if self.when == "before_send":
            raise SimulatedCrash(req.client_order_id)
        await super().place_order(req)
        raise SimulatedCrash(req.client_order_id)  # after the venue accepted it


@pytest.mark.parametrize(
    "kind", [FaultKind.TIMEOUT_AFTER_ACCEPT, FaultKind.DROPPED_ACK, FaultKind.RATE_LIMIT]
)
async def test_submit_with_fault_resolves_from_venue_and_trades_exactly_once(
    redis: RedisClient, tmp_path: Path, kind: FaultKind
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock, faults=FaultPlan(scripted=[ScriptedFault("place", kind, 1)]))
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        out = await r.submit()
        assert out.response.status is S.FILLED
        orders = r.venue_orders("c-1")
        assert [o.client_order_id for o in orders] == ["c-1-E1"]  # never under a new id
        assert r.venue_filled("c-1") == D("0.002") == r.position()


@pytest.mark.parametrize("kind", [FaultKind.TIMEOUT_BEFORE_ACCEPT, FaultKind.SERVER_ERROR])
async def test_submit_with_unknown_outcome_resends_same_id_only_after_recv_window(
    redis: RedisClient, tmp_path: Path, kind: FaultKind
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock, faults=FaultPlan(scripted=[ScriptedFault("place", kind, 1)]))
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        out = await r.submit()
        # Not at the venue, but a timed-out / 5xx request could still land until recvWindow.
        assert http_status(out) == 202 and r.venue_orders("c-1") == []
        view = await r.c.router.get("c-1")
        assert view and view["children"][0]["status"] == "AMBIGUOUS"
        await r.drive(4800)
        assert r.venue_orders("c-1") == [] and venue.faults.calls("place") == 1
        view = await r.until_done("c-1")
        assert view["order"]["status"] == "FILLED"
        assert [o.client_order_id for o in r.venue_orders("c-1")] == ["c-1-E1"]
        assert r.venue_filled("c-1") == D("0.002") == r.position()


async def test_submit_with_venue_silent_stays_ambiguous_then_resolves_without_resend(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    faults = FaultPlan(
        scripted=[ScriptedFault("place", FaultKind.TIMEOUT_AFTER_ACCEPT, 1)]
        + [ScriptedFault("query", FaultKind.SERVER_ERROR, None)] * 8
        + [ScriptedFault("trades", FaultKind.SERVER_ERROR, None)] * 8
    )
    venue = hand_venue(clock, faults=faults)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue, retry_attempts=2) as r:
        out = await r.submit()
        assert http_status(out) == 202 and out.response.status is S.SUBMITTED
        view = await r.c.router.get("c-1")
        assert view and view["children"][0]["status"] == "AMBIGUOUS"
        assert "SUBMIT_UNRESOLVED" in await r.alerts()
        view = await r.until_done("c-1")
        assert view["order"]["status"] == "FILLED"
        assert [h["status"] for h in view["children"][0]["history"]] == [
            "NEW",
            "SUBMITTED",
            "AMBIGUOUS",
            "FILLED",
        ]
        assert len(r.venue_orders("c-1")) == 1 and r.venue_filled("c-1") == D("0.002")


@pytest.mark.parametrize("when", ["before_send", "after_accept"])
async def test_restart_with_child_in_flight_resolves_before_sending_the_same_id(
    redis: RedisClient, tmp_path: Path, when: str
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(
            redis,
            tmp_path,
            clock=clock,
            venue=venue,
            store=store,
            exchange=CrashingExchange(venue, when=when),
        ) as r1:
            with pytest.raises(SimulatedCrash):
                await r1.submit()
            await crash(r1)
            assert (await r1.c.router.get("c-1") or {})["children"][0]["status"] == "SUBMITTED"
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            assert await r2.c.router.recovery.recover() == 1
            view = await r2.until_done("c-1")
            assert view["order"]["status"] == "FILLED"
            assert [o.client_order_id for o in r2.venue_orders("c-1")] == ["c-1-E1"]
            assert r2.venue_filled("c-1") == D("0.002") == r2.position()
            assert "EXEC_RESUMED" in await r2.events("c-1")
    finally:
        await store.close()


async def test_restart_with_parent_without_exec_state_is_refused_with_a_critical_alert(
    redis: RedisClient, tmp_path: Path
) -> None:
    """A live parent stored without its execution state (written before the state existed,
    or damaged) is not guessed back into a machine: it stays as stored, nothing is sent, and
    an operator is paged (RECOVERY_FAILED, critical)."""
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(
            redis,
            tmp_path,
            clock=clock,
            venue=venue,
            store=store,
            exchange=CrashingExchange(venue, when="before_send"),
        ) as r1:
            with pytest.raises(SimulatedCrash):
                await r1.submit()
            await crash(r1)
        await store.update("orders", "c-1", {"exec_state": None})
        stored = await store.get("orders", "c-1")
        assert stored is not None and stored["status"] == "SUBMITTED"
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            assert await r2.c.router.recovery.recover() == 0
            assert "c-1" not in r2.c.manager.active
            await r2.drive(2_000)
            assert r2.venue_orders("c-1") == []
            failed = [a for a in await r2.stream(keys.ALERTS) if a["kind"] == "RECOVERY_FAILED"]
            assert len(failed) == 1 and failed[0]["severity"] == "critical"
            assert "c-1" in failed[0]["message"] and "execution state" in failed[0]["message"]
            view = await r2.c.router.get("c-1")
            assert view is not None and view["order"]["status"] == "SUBMITTED"  # as stored
            assert "EXEC_RESUMED" not in await r2.events("c-1")
    finally:
        await store.close()


class CrashingStore(SqliteStore):
    """Dies right before the first child order record is written."""

    async def insert(self, collection: str, doc: dict[str, object]) -> str:
        if collection == "orders" and str(doc.get("_key", "")).endswith("-E1"):
            raise SimulatedCrash("before the child record")
        return await super().insert(collection, doc)


async def test_restart_with_child_allocated_but_never_recorded_sends_it_once(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    crashing = CrashingStore(tmp_path / "store.sqlite3")
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=crashing) as r1:
            with pytest.raises(SimulatedCrash):
                await r1.submit()
            await crash(r1)
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            assert await r2.c.router.recovery.recover() == 1
            view = await r2.until_done("c-1")
            assert view["order"]["status"] == "FILLED"
            assert [o.client_order_id for o in r2.venue_orders("c-1")] == ["c-1-E1"]
            assert r2.venue_filled("c-1") == D("0.002")
            assert "restored" in view["children"][0]["history"][1]["reason"]
    finally:
        await crashing.close()
        await store.close()


class CrashAfterChildFinal(SqliteStore):
    """Dies when the parent is written after its child's record already says FILLED (the
    child record is written first, the parent's execution state second)."""

    async def update(self, collection: str, key: str, patch: dict[str, Any]) -> dict[str, Any]:
        if collection == "orders" and key == "c-1":
            child = await super().get("orders", "c-1-E1")
            if child is not None and child["status"] == "FILLED":
                raise SimulatedCrash("between the child's final record and the parent's")
        return await super().update(collection, key, patch)


async def test_restart_after_the_child_record_is_final_but_the_parent_not_finishes_it(
    redis: RedisClient, tmp_path: Path
) -> None:
    # The resumed machine still holds the child as SUBMITTED while its record is FILLED: the
    # record is the truth it must take (it used to wait forever for a report that never came).
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    crashing = CrashAfterChildFinal(tmp_path / "store.sqlite3")
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=crashing) as r1:
            with pytest.raises(SimulatedCrash):
                await r1.submit()
            await crash(r1)
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            assert await r2.c.router.recovery.recover() == 1
            view = await r2.until_done("c-1", within_ms=5_000)
            assert "c-1" not in r2.c.manager.active
            assert view["order"]["status"] == "FILLED"
            assert view["order"]["filled_qty"] == "0.002"
            assert [o.client_order_id for o in r2.venue_orders("c-1")] == ["c-1-E1"]
            assert r2.venue_filled("c-1") == D("0.002")
            assert len(view["fills"]) == 1
    finally:
        await crashing.close()
        await store.close()


class StaleListing(SqliteStore):
    """Lists the documents of `c-1` as they were first stored, once `stale` names their
    collection: the sweep's query ran before their driver moved them on and let go of the lease.
    Only listings (by `status` or `active`) are stale; reads by id are current."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.first: dict[str, dict[str, Any]] = {}  # collection -> c-1's first document
        self.stale: str | None = None

    async def insert(self, collection: str, doc: dict[str, Any]) -> str:
        key = await super().insert(collection, doc)
        if doc.get("_key") in ("c-1", doc_key("c-1")):
            self.first.setdefault(collection, dict(doc))
        return key

    async def find(self, collection: str, query: Any = None) -> list[dict[str, Any]]:
        where = getattr(query, "where", {}) or {}
        if (
            collection == self.stale
            and collection in self.first
            and ("status" in where or "active" in where)
        ):
            return [self.first[collection]]
        return await super().find(collection, query)


async def test_orphan_sweep_does_not_resume_an_order_that_finished_after_it_was_listed(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = StaleListing(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r:
            await r.submit(qty="0.002")
            snapshot = store.first.get("orders")  # listed while still live
            assert snapshot is not None and snapshot["status"] in ("NEW", "SUBMITTED")
            done = await r.until_done("c-1")
            assert done["order"]["status"] == "FILLED"
            store.stale = "orders"
            assert await r.c.router.recovery.recover() == 0
            assert "c-1" not in r.c.manager.active
            view = await r.c.router.get("c-1")
            assert view is not None and view["order"]["status"] == "FILLED"
            assert "EXEC_RESUMED" not in await r.events("c-1")
    finally:
        await store.close()


async def test_protection_sweep_loads_the_protection_as_stored_now_not_as_listed(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = StaleListing(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r:
            prot = r.c.protection
            assert prot is not None
            await r.submit(sl={"type": "STOP_MARKET", "price": "64000"})
            for _ in range(5):
                clock.advance(50)
                await prot.step_all()
            placed = sorted(a.client_algo_id for a in r.venue.algo.orders.values())
            assert placed and r.position() == D("0.002")
            listed = store.first.get("strategy_events")
            assert listed is not None and not listed["entry_done"]  # listed early
            await prot.shutdown()  # its driver lets go; the sweep's listing predates that
            store.stale = "strategy_events"
            assert await prot.recover() == 1
            assert prot.active["c-1"].entry_done  # the stored state, not the listed one
            for _ in range(5):
                clock.advance(50)
                await prot.step_all()
            again = sorted(a.client_algo_id for a in r.venue.algo.orders.values())
            assert again == placed and r.position() == D("0.002")
    finally:
        await store.close()


async def test_restart_mid_twap_resumes_without_repeating_or_skipping_slices(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    twap = {"type": "TWAP", "slices": 4, "gap_ms": 1000, "jitter_pct": 0.2, "maker_wait_ms": 300}
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r1:
            await r1.submit(qty="0.008", exec_policy=twap)
            await r1.drive(1500)  # slice 0 done (maker timeout → taker), slice 1 under way
            await crash(r1)
        sent_before = {o.client_order_id for o in r1.venue_orders("c-1")}
        clock.advance(5000)  # down for a while: slices 2 and 3 are overdue on restart
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            await r2.c.router.recovery.recover()
            view = await r2.until_done("c-1")
            assert view["order"]["status"] == "FILLED" and r2.venue_filled("c-1") == D("0.008")
            ids = [o.client_order_id for o in r2.venue_orders("c-1")]
            assert len(ids) == len(set(ids)) and sent_before <= set(ids)
            state = view["order"]["exec_state"]
            assert [s["status"] for s in state["slices"]] == ["DONE"] * 4
            per_slice: dict[int, D] = {}
            for c in view["children"]:
                per_slice[c["slice_index"]] = per_slice.get(c["slice_index"], D(0)) + D(
                    c["filled_qty"]
                )
            assert per_slice == {0: D("0.002"), 1: D("0.002"), 2: D("0.002"), 3: D("0.002")}
    finally:
        await store.close()


async def test_restart_with_overdue_twap_slices_replans_them_from_now_keeping_gap(
    redis: RedisClient, tmp_path: Path
) -> None:
    """Down for longer than the rest of the schedule: the remaining slices go `gap_ms` apart
    from the restart, not back to back (they once went out 9 ms apart)."""
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    twap = {"type": "TWAP", "slices": 4, "gap_ms": 1000, "jitter_pct": 0, "maker_wait_ms": 0}
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r1:
            await r1.submit(qty="0.008", exec_policy=twap)
            await r1.drive(1100)  # slices 0 and 1 sent; 2 and 3 pending
            await crash(r1)
        clock.advance(10_000)  # slices 2 and 3 are both overdue on restart
        restart = clock.now_ms()
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store) as r2:
            await r2.c.router.recovery.recover()
            view = await r2.until_done("c-1")
            assert view["order"]["status"] == "FILLED" and r2.venue_filled("c-1") == D("0.008")
            first_sent: dict[int, int] = {}
            for o in sorted(r2.venue_orders("c-1"), key=lambda o: o.created_ts):
                n = int(o.client_order_id.rsplit("-E", 1)[1])
                first_sent.setdefault(n, o.created_ts)
            starts = [first_sent[n] for n in sorted(first_sent)]
            assert len(starts) == 4 and starts[2] >= restart
            assert starts[3] - starts[2] >= 1000  # gap_ms kept after the restart
            dues = [s["due_ms"] for s in view["order"]["exec_state"]["slices"]]
            assert dues[3] == starts[2] + 1000  # the stored plan says so too
            assert "TWAP_REPLANNED" in await r2.events("c-1")
    finally:
        await store.close()


async def test_breaker_with_5xx_burst_opens_refuses_entries_but_passes_reduce_only_and_cancel(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock)
    async with s4_rig(
        redis, tmp_path, clock=clock, venue=venue, cb_min_calls=5, cb_open_ms=2000, retry_attempts=2
    ) as r:
        assert (await r.submit(client_order_id="long")).response.status is S.FILLED
        await r.submit(client_order_id="rest", exec_policy={"maker_wait_ms": 60000}, qty="0.002")
        venue.faults.plan.probabilities["book"] = {FaultKind.SERVER_ERROR: 1.0}
        out = await r.submit(client_order_id="x0")  # 5xx on every book read: refused, 503
        assert http_status(out) == 503 and "venue unavailable" in (out.response.message or "")
        assert r.venue_orders("x0") == []
        assert r.c.metrics.cb_state._value.get() == 2
        assert "CIRCUIT_BREAKER_OPEN" in await r.alerts()
        venue.faults.plan.probabilities.clear()
        refused = await r.submit(client_order_id="new-1")
        assert http_status(refused) == 503 and refused.response.status is S.REJECTED
        assert "circuit breaker OPEN" in (refused.response.message or "")
        assert r.venue_orders("new-1") == []
        # Same intent by the other path later: still refused (stored), never executed.
        assert (await r.submit(client_order_id="new-1")).response.duplicate
        closing = await r.submit(client_order_id="close", side="SELL", reduce_only=True)
        assert closing.response.status is S.FILLED
        cancel = await r.c.router.cancels.cancel(client_order_id="rest")
        assert cancel.response.status is S.CANCELED
        health = await r.c.health()
        assert health.circuit_breaker == "OPEN" and not health.entries_allowed
        clock.advance(2000)
        await r.c.watch.check()  # the half-open probe succeeds
        assert r.c.router.breaker.state(clock.now_ms()).value == "CLOSED"
        assert "CIRCUIT_BREAKER_CLOSED" in await r.alerts()
        assert (await r.submit(client_order_id="new-2")).response.status is S.FILLED


async def test_clock_skew_over_one_second_stops_entries_until_recovered(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = hand_venue(clock, skew_ms=1500)
    async with s4_rig(redis, tmp_path, clock=clock, venue=venue) as r:
        await r.c.watch.check()
        out = await r.submit()
        assert http_status(out) == 503 and "clock skew 1500 ms" in (out.response.message or "")
        assert "CLOCK_SKEW" in await r.alerts()
        venue.server_time_skew_ms = 200
        await r.c.watch.check()
        assert (await r.submit(client_order_id="c-2")).response.status is S.FILLED
        assert "CLOCK_SKEW_RECOVERED" in await r.alerts()


def consumer(redis: RedisClient, r: Rig, **overrides: Any) -> IntentConsumer:
    """The rig's router behind consumer "me" of group "g" (claims at once, 5 deliveries)."""
    kw: dict[str, Any] = {"claim_idle_ms": 0, "max_deliveries": 5, **overrides}
    return IntentConsumer(
        redis=redis, router=r.c.router, clock=r.clock, group="g", consumer="me", **kw
    )


async def test_consumer_with_maker_intent_acks_once_running_and_reclaims_dead_consumers(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        cons = consumer(redis, r, max_deliveries=2, metrics=r.c.metrics, lag_every_s=0)
        body = intent(exec_policy={"maker_wait_ms": 1000}).model_dump(mode="json")
        await ensure_group(redis, keys.ORDERS_INTENT, "g")
        await xadd_json(redis, keys.ORDERS_INTENT, body)
        # A consumer reads it and dies before acknowledging.
        (dead,) = await read_group(redis, keys.ORDERS_INTENT, "g", "dead", block_ms=10)
        (entry,) = await autoclaim(redis, keys.ORDERS_INTENT, "g", "me", min_idle_ms=0)
        assert entry.entry_id == dead.entry_id and entry.deliveries == 2
        await cons.handle(entry)
        pending = await redis.xpending(keys.ORDERS_INTENT, "g")
        assert pending["pending"] == 0 and "c-1" in r.c.manager.active  # acked, still running
        await cons.handle(entry)  # re-delivered copy: a duplicate, nothing sent
        assert len(r.venue_orders("c-1")) == 1
        poison = StreamEntry(keys.ORDERS_INTENT, entry.entry_id, {"qty": "x"}, {}, 1)
        await cons.handle(poison)
        dlq = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ORDERS_INTENT_DLQ)]
        assert dlq and "invalid intent" in dlq[0]["why"]
        assert "INTENT_DEAD_LETTER" in await r.alerts()
        # Counted like every other alert: RouterAlertCritical fires on router_alerts_total.
        assert r.c.metrics.alerts.labels("INTENT_DEAD_LETTER")._value.get() == 1
        await cons._lag()
        assert r.c.metrics.stream_lag._value.get() == 0


async def test_consumer_with_intent_being_accepted_elsewhere_leaves_entry_pending(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        cons = consumer(redis, r)
        await ensure_group(redis, keys.ORDERS_INTENT, "g")
        await xadd_json(redis, keys.ORDERS_INTENT, intent().model_dump(mode="json"))
        (entry,) = await read_group(redis, keys.ORDERS_INTENT, "g", "me", block_ms=10)
        await redis.set("exec:lease:c-1", "another-replica", px=60_000)  # not stored yet
        with pytest.raises(IntakeBusy):
            await cons.handle(entry)
        assert (await redis.xpending(keys.ORDERS_INTENT, "g"))["pending"] == 1
        assert r.venue_orders("c-1") == []
        await redis.delete("exec:lease:c-1")  # the other intake died: its lease ran out
        (again,) = await autoclaim(redis, keys.ORDERS_INTENT, "g", "me", min_idle_ms=0)
        await cons.handle(again)
        assert (await redis.xpending(keys.ORDERS_INTENT, "g"))["pending"] == 0
        assert r.venue_filled("c-1") == D("0.002")


class FlakyFillsStore(SqliteStore):
    """The first write to `fills` fails (store unavailable)."""

    failed = False

    async def insert(self, collection: str, doc: dict[str, object]) -> str:
        if collection == "fills" and not self.failed:
            self.failed = True
            raise StoreUnavailable("disk I/O error (injected)")
        return await super().insert(collection, doc)


async def test_fill_write_failure_is_retried_and_the_fill_stored_once(
    redis: RedisClient, tmp_path: Path
) -> None:
    store = FlakyFillsStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(redis, tmp_path, store=store) as r:
            out = await r.submit()
            assert http_status(out) == 202  # durable and running; the step is retried
            view = await r.until_done("c-1")
            assert view["order"]["status"] == "FILLED"
            assert sum(D(f["qty"]) for f in view["fills"]) == D("0.002") == r.venue_filled("c-1")
            assert len(r.venue_orders("c-1")) == 1
            executed = await r.stream(keys.ORDERS_EXECUTED)
            assert [e["fills"] for e in executed] == [len(view["fills"])]
    finally:
        await store.close()


async def test_consumer_dead_letters_a_stream_intent_refused_with_nothing_stored(
    redis: RedisClient, tmp_path: Path
) -> None:
    """A stale intent read from the stream is refused (nothing stored, nothing sent): without
    a REST caller to read the 4xx, the dead-letter stream and its alert must record it."""
    async with s4_rig(redis, tmp_path) as r:
        cons = consumer(redis, r)
        await ensure_group(redis, keys.ORDERS_INTENT, "g")
        stale = intent().model_dump(mode="json") | {"created_ts": r.clock.now_ms() - 60_000}
        await xadd_json(redis, keys.ORDERS_INTENT, stale)
        (entry,) = await read_group(redis, keys.ORDERS_INTENT, "g", "me", block_ms=10)
        await cons.handle(entry)
        assert (await redis.xpending(keys.ORDERS_INTENT, "g"))["pending"] == 0
        dlq = [jsonutil.loads(e[1]["data"]) for e in await redis.xrange(keys.ORDERS_INTENT_DLQ)]
        assert len(dlq) == 1 and "STALE" in dlq[0]["why"], dlq
        assert "INTENT_DEAD_LETTER" in await r.alerts()
        assert r.venue_orders("c-1") == [] and await r.c.router.get("c-1") is None


async def test_consumer_handles_the_entries_of_one_read_concurrently(
    redis: RedisClient, tmp_path: Path
) -> None:
    """Entries of one read go through the router at once (bounded), so one slow intake does not
    hold up the rest; each is acknowledged on its own."""
    async with s4_rig(redis, tmp_path) as r:
        cons = consumer(redis, r, claim_idle_ms=60_000, block_ms=10, concurrency=4)
        running = 0
        peak = 0
        submit = r.c.router.submit

        async def slow_submit(*args: Any, **kw: Any) -> Any:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            try:
                return await submit(*args, **kw)
            finally:
                running -= 1

        r.c.router.submit = slow_submit  # type: ignore[method-assign]
        await ensure_group(redis, keys.ORDERS_INTENT, "g")
        for i in range(6):
            body = intent(client_order_id=f"c-{i}", intent_id=f"i-{i}").model_dump(mode="json")
            await xadd_json(redis, keys.ORDERS_INTENT, body)
        stop = asyncio.Event()
        task = asyncio.create_task(cons.run(stop))
        for _ in range(200):
            if cons.handled == 6:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
        assert cons.handled == 6 and peak == 4
        assert (await redis.xpending(keys.ORDERS_INTENT, "g"))["pending"] == 0
