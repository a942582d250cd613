"""Protective orders against the venue simulator: FUT SL/TP brackets (placed on the first
fill, resized on more, replace-before-cancel, closed with the position), the SPOT OCO guardian,
and restarts in each state (a new container on the same store + venue: nothing lost, nothing
doubled). Manual clock; no sleeps."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

from s4_router.service_layer.protection import ProtectionService, doc_key
from svckit.redisio import RedisClient
from tests.chaos.rig import Rig, s4_rig
from tradekit.enums import OrderStatus, OrderType

S = OrderStatus
SL = {"type": "STOP_MARKET", "price": "64000"}
TP_TARGET = {"type": "TAKE_PROFIT_MARKET", "target": "net_profit_usdt", "value": "2.0"}


def algos(r: Rig, *, open_only: bool = True) -> list[Any]:
    orders = r.venue.open_algo_orders("BTCUSDT") if open_only else []
    return sorted(orders, key=lambda a: a.algo_id)


def prot(r: Rig) -> ProtectionService:
    assert r.c.protection is not None
    return r.c.protection


async def state(r: Rig, coid: str = "c-1") -> dict[str, Any]:
    doc = await r.c.store.get("strategy_events", doc_key(coid))
    assert doc is not None
    return doc


async def test_fut_entry_with_sl_tp_places_stop_then_take_profit_sized_to_fill(
    redis: RedisClient, tmp_path: Path
) -> None:
    async with s4_rig(redis, tmp_path) as r:
        out = await r.submit(sl=SL, tp=TP_TARGET, qty="0.002")
        assert out.response.status is S.FILLED, out.response
        live = algos(r)
        assert [(a.type, a.qty, a.reduce_only) for a in live] == [
            (OrderType.STOP_MARKET, D("0.002"), True),
            (OrderType.TAKE_PROFIT_MARKET, D("0.002"), True),
        ]
        assert [a.client_algo_id for a in live] == ["c-1-E60", "c-1-E61"]
        assert live[0].trigger_price == D("64000")
        # TP solved for 2 USDT net after both legs' taker fees.
        entry = D("65001")
        tp = live[1].trigger_price
        net = (
            D("0.002") * (tp - entry)
            - entry * D("0.002") * D("0.0004")
            - tp * D("0.002") * D("0.0004")
        )
        assert net >= D("2.0")
        pos = r.venue.futures_account.position("BTCUSDT")
        assert pos.qty == D("0.002")
        doc = await state(r)
        assert doc["active"] is True and doc["state"]["state"] == "PROTECTING"
        assert doc["state"]["protected_ms"] is not None
        kids = (await r.c.router.get("c-1") or {})["children"]
        assert {k["role"] for k in kids} >= {"STOP_LOSS", "TAKE_PROFIT"}
        assert "POSITION_PROTECTED" in await r.events("c-1")
