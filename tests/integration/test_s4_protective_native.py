"""SPOT OCO through the venue's native order list (S4_OCO_GUARDIAN=false): one list per parent
(client id `{parent}-E60`, legs E61 take profit / E62 stop), followed by polling, leg fills
booked, OCO_RESOLVE with `mode: native`; restarts before and after the acknowledgement leave
exactly one list at the venue; a venue without lists falls back to the guardian. Manual clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s4_router.adapters.exchange.base import (
    AmbiguousSubmit,
    OcoOrderList,
    ProtectionUnsupported,
)
from s4_router.adapters.exchange.sim_client import SimExchange
from s4_router.service_layer.protection import ProtectionService, doc_key
from svckit.clock import ManualClock
from svckit.redisio import RedisClient
from svckit.store.base import Query
from svckit.store.sqlite import SqliteStore
from tests.chaos.rig import T0, Rig, crash, hand_venue, print_at, s4_rig, set_book
from tradekit.enums import Market, OrderStatus, Side
from venue.venue import Venue

S = OrderStatus
OCO = {"type": "OCO", "tp_price": "67000", "sl_price": "64500"}
NATIVE = {"oco_guardian": False, "maker_max_wait_ms": 0}


def prot(r: Rig) -> ProtectionService:
    assert r.c.protection is not None
    return r.c.protection


def lists(venue: Venue) -> list[Any]:
    return list(venue.spot.order_lists.values())


def legs(r: Rig) -> dict[str, tuple[str, str]]:
    return {
        o.client_order_id: (o.type.value, o.status.value)
        for o in r.venue_orders("c-1-E6", Market.SPOT)
    }


async def resolve_event(r: Rig) -> dict[str, Any]:
    doc = await r.c.store.get("strategy_events", "oco_resolve:c-1")
    assert doc is not None
    return doc


def spot_venue(clock: ManualClock) -> Venue:
    venue = hand_venue(clock)
    set_book(venue, market=Market.SPOT)
    return venue


async def test_native_oco_with_take_profit_filled_resolves_with_venue_cancelling_stop(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    async with s4_rig(redis, tmp_path, clock=clock, venue=spot_venue(clock), **NATIVE) as r:
        out = await r.submit(market="SPOT", exec_policy=OCO)
        assert out.response.status is S.FILLED
        await prot(r).step_all()
        assert len(lists(r.venue)) == 1
        assert lists(r.venue)[0].list_client_order_id == "c-1-E60"
        assert legs(r) == {
            "c-1-E61": ("LIMIT_MAKER", "ACCEPTED"),
            "c-1-E62": ("STOP_MARKET", "ACCEPTED"),
        }
        doc = await r.c.store.get("strategy_events", doc_key("c-1"))
        assert doc is not None and doc["machine"] == "OCO_NATIVE"
        assert doc["state"]["order_list_id"] is not None
        set_book(
            r.venue,
            market=Market.SPOT,
            bid="66990",
            ask="67010",
            prints=[print_at(clock, "67000", "1", Side.BUY)],
        )
        await prot(r).step_all()
        assert legs(r) == {
            "c-1-E61": ("LIMIT_MAKER", "FILLED"),
            "c-1-E62": ("STOP_MARKET", "CANCELED"),
        }
        assert lists(r.venue)[0].status.value == "ALL_DONE"
        ev = await resolve_event(r)
        assert ev["data"]["mode"] == "native" and ev["data"]["winner"] == "TP"
        assert ev["data"]["legs"]["SL"]["status"] == "CANCELED"
        assert {"acked", "tp_filled", "resolved"} <= set(ev["data"]["timings"])
        assert "OCO_RESOLVE" in await r.events("c-1")
        fills = await r.c.store.find("fills", Query(where={"client_order_id": "c-1-E61"}))
        assert fills and all(f["role"] == "OCO_ABOVE" for f in fills)
        child = await r.c.store.get("orders", "c-1-E62")
        assert child is not None and child["status"] == "CANCELED"
        assert not prot(r).active
        assert (await r.c.store.get("strategy_events", doc_key("c-1")) or {})["active"] is False


async def test_native_oco_with_stop_triggered_resolves_with_stop_loss_winner(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    async with s4_rig(redis, tmp_path, clock=clock, venue=spot_venue(clock), **NATIVE) as r:
        await r.submit(market="SPOT", exec_policy=OCO)
        await prot(r).step_all()
        set_book(
            r.venue,
            market=Market.SPOT,
            bid="64400",
            ask="64402",
            prints=[print_at(clock, "64400", "1", Side.SELL)],
        )
        await prot(r).step_all()
        orders = legs(r)
        assert orders["c-1-E61"][1] == "CANCELED" and orders["c-1-E62"][1] == "FILLED"
        ev = await resolve_event(r)
        assert ev["data"]["mode"] == "native" and ev["data"]["winner"] == "SL"
        fills = await r.c.store.find("fills", Query(where={"client_order_id": "c-1-E62"}))
        assert fills and all(f["role"] == "OCO_BELOW" for f in fills)
        assert r.venue.open_orders(Market.SPOT, "BTCUSDT") == []


class LostAck(SimExchange):
    """The list reaches the venue (or not, `land=False`) but the answer is lost."""

    def __init__(self, venue: Venue, *, land: bool) -> None:
        super().__init__(venue)
        self.land = land

    async def place_oco(self, *args: Any, **kw: Any) -> OcoOrderList:
        if self.land:
            await super().place_oco(*args, **kw)
        raise AmbiguousSubmit("timeout")


class NoLists(SimExchange):
    async def place_oco(self, *args: Any, **kw: Any) -> OcoOrderList:
        raise ProtectionUnsupported("sim: place_oco")


async def test_restart_with_native_list_sent_but_unacknowledged_adopts_the_one_list(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = spot_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(
            redis,
            tmp_path,
            clock=clock,
            venue=venue,
            store=store,
            exchange=LostAck(venue, land=True),
            **NATIVE,
        ) as r1:
            await r1.submit(market="SPOT", exec_policy=OCO)
            await crash(r1)
            prot(r1).active.clear()
        assert len(lists(venue)) == 1
        clock.advance(10_000)  # past recvWindow: a blind resend would now be "allowed"
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store, **NATIVE) as r2:
            assert await prot(r2).recover() == 1
            assert len(lists(venue)) == 1
            doc = await store.get("strategy_events", doc_key("c-1"))
            assert doc is not None and doc["state"]["status"] == "EXEC_STARTED"
            set_book(
                venue,
                market=Market.SPOT,
                bid="66990",
                ask="67010",
                prints=[print_at(clock, "67000", "1", Side.BUY)],
            )
            await prot(r2).step_all()
            assert (await resolve_event(r2))["data"]["winner"] == "TP"
            assert len(lists(venue)) == 1
    finally:
        await store.close()


async def test_restart_with_native_list_never_landed_resends_same_id_once(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = spot_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(
            redis,
            tmp_path,
            clock=clock,
            venue=venue,
            store=store,
            exchange=LostAck(venue, land=False),
            **NATIVE,
        ) as r1:
            await r1.submit(market="SPOT", exec_policy=OCO)
            await crash(r1)
            prot(r1).active.clear()
        assert lists(venue) == []
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store, **NATIVE) as r2:
            assert await prot(r2).recover() == 1
            assert lists(venue) == []  # inside the landing window: looked up, not resent
            clock.advance(10_000)
            await prot(r2).step_all()
            await prot(r2).step_all()
            assert [lst.list_client_order_id for lst in lists(venue)] == ["c-1-E60"]
    finally:
        await store.close()


async def test_restart_with_native_list_acknowledged_rearms_without_second_list(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = spot_venue(clock)
    store = SqliteStore(tmp_path / "store.sqlite3")
    try:
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store, **NATIVE) as r1:
            await r1.submit(market="SPOT", exec_policy=OCO)
            await prot(r1).step_all()
            await crash(r1)
            prot(r1).active.clear()
        async with s4_rig(redis, tmp_path, clock=clock, venue=venue, store=store, **NATIVE) as r2:
            assert await prot(r2).recover() == 1
            set_book(
                venue,
                market=Market.SPOT,
                bid="64400",
                ask="64402",
                prints=[print_at(clock, "64400", "1", Side.SELL)],
            )
            await prot(r2).step_all()
            assert (await resolve_event(r2))["data"]["winner"] == "SL"
            assert len(lists(venue)) == 1
            assert await store.count("strategy_events", {"kind": "OCO_RESOLVE"}) == 1
    finally:
        await store.close()


async def test_spot_oco_with_guardian_forced_uses_guardian_without_venue_list(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    async with s4_rig(
        redis,
        tmp_path,
        clock=clock,
        venue=spot_venue(clock),
        oco_guardian=True,
        maker_max_wait_ms=0,
    ) as r:
        await r.submit(market="SPOT", exec_policy=OCO)
        await prot(r).step_all()
        assert lists(r.venue) == []
        assert legs(r) == {"c-1-E60": ("LIMIT_MAKER", "ACCEPTED")}
        set_book(
            r.venue,
            market=Market.SPOT,
            bid="66990",
            ask="67010",
            prints=[print_at(clock, "67000", "1", Side.BUY)],
        )
        await prot(r).step_all()
        assert (await resolve_event(r))["data"]["mode"] == "guardian"


async def test_native_oco_with_venue_lacking_lists_falls_back_to_guardian(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    venue = spot_venue(clock)
    async with s4_rig(
        redis, tmp_path, clock=clock, venue=venue, exchange=NoLists(venue), **NATIVE
    ) as r:
        await r.submit(market="SPOT", exec_policy=OCO)
        await prot(r).step_all()
        assert "OCO_GUARDIAN_FALLBACK" in await r.events("c-1")
        assert lists(venue) == []
        assert legs(r) == {"c-1-E63": ("LIMIT_MAKER", "ACCEPTED")}
        doc = await r.c.store.get("strategy_events", doc_key("c-1"))
        assert doc is not None and doc["machine"] == "OCO_GUARDIAN"


async def test_native_oco_with_list_cancelled_outside_s4_alerts_unprotected(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    async with s4_rig(redis, tmp_path, clock=clock, venue=spot_venue(clock), **NATIVE) as r:
        await r.submit(market="SPOT", exec_policy=OCO)
        await prot(r).step_all()
        r.venue.cancel_order_list("BTCUSDT", list_client_order_id="c-1-E60")
        await prot(r).step_all()
        ev = await resolve_event(r)
        assert ev["data"]["winner"] is None and ev["data"]["mode"] == "native"
        assert "OCO_LIST_DONE_UNFILLED" in await r.alerts()
        assert not prot(r).active


async def test_native_oco_with_sell_entry_places_buy_list_stop_above_and_resolves_on_tp(
    redis: RedisClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    async with s4_rig(redis, tmp_path, clock=clock, venue=spot_venue(clock), **NATIVE) as r:
        policy = {"type": "OCO", "tp_price": "63000", "sl_price": "65500"}
        out = await r.submit(market="SPOT", side="SELL", exec_policy=policy)
        assert out.response.status is S.FILLED
        await prot(r).step_all()
        (lst,) = lists(r.venue)
        assert lst.side is Side.BUY
        tp = await r.c.store.get("orders", "c-1-E61")
        sl = await r.c.store.get("orders", "c-1-E62")
        assert tp is not None and sl is not None
        assert (tp["role"], sl["role"]) == ("OCO_BELOW", "OCO_ABOVE")
        set_book(
            r.venue,
            market=Market.SPOT,
            bid="62990",
            ask="63010",
            prints=[print_at(clock, "63000", "1", Side.SELL)],
        )
        await prot(r).step_all()
        ev = await resolve_event(r)
        assert ev["data"]["winner"] == "TP" and ev["data"]["mode"] == "native"
        assert legs(r)["c-1-E62"][1] == "CANCELED"
