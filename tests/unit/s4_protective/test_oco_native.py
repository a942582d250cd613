"""Native SPOT OCO list machine: ids, acknowledgement, the venue ending the list, and the stored
state (a document written before the machine was typed still loads and writes back the same)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from s4_router.policies.oco_native import LegReport, ListStatus, NativeOco
from s4_router.policies.protective import Alert, Event, Leg, PlaceList
from tradekit.enums import OrderStatus as S
from tradekit.enums import Side

P = "s3-btc-7-x"


def native(*, sl_limit: D | None = None) -> NativeOco:
    return NativeOco.new(
        parent_client_order_id=P,
        position_side=Side.BUY,
        qty=D("0.002"),
        filled=D("0.002"),
        tp_price=D(67000),
        sl_price=D(64500),
        sl_limit_price=sl_limit,
        first_child=60,
        now_ms=5,
    )


def legs(tp: tuple[S, str], sl: tuple[S, str]) -> list[LegReport]:
    return [
        LegReport(client_order_id=f"{P}-E61", status=tp[0], filled=D(tp[1])),
        LegReport(client_order_id=f"{P}-E62", status=sl[0], filled=D(sl[1])),
    ]


def test_new_list_exits_on_the_other_side_under_deterministic_ids() -> None:
    n = native(sl_limit=D(64400))
    assert n.place() == PlaceList(
        list_client_order_id=f"{P}-E60",
        side=Side.SELL,
        qty=D("0.002"),
        tp_price=D(67000),
        sl_price=D(64500),
        sl_limit_price=D(64400),
        tp_client_order_id=f"{P}-E61",
        sl_client_order_id=f"{P}-E62",
    )
    assert n.status is ListStatus.PENDING and not n.acked and not n.final
    assert n.parent == P and n.timings == {"armed": 5}


def test_acknowledged_list_is_unchanged_until_a_leg_moves() -> None:
    n = native()
    open_legs = legs((S.ACCEPTED, "0"), (S.ACCEPTED, "0"))
    assert n.on_list("L1", False, open_legs, 7) == []
    assert (n.order_list_id, n.status, n.timings["acked"]) == ("L1", ListStatus.EXEC_STARTED, 7)
    snapshot = {x.client_order_id: (x.status, x.filled) for x in open_legs}
    assert n.unchanged(snapshot)
    assert not n.unchanged({**snapshot, f"{P}-E61": (S.PARTIALLY_FILLED, D("0.001"))})
    assert not n.unchanged({f"{P}-E62": (S.ACCEPTED, D(0))})  # the take profit left the list


def test_list_done_by_the_take_profit_resolves_with_its_winner_and_timings() -> None:
    n = native()
    n.on_list("L1", False, legs((S.ACCEPTED, "0"), (S.ACCEPTED, "0")), 7)
    cmds = n.on_list("L1", True, legs((S.FILLED, "0.002"), (S.CANCELED, "0")), 9)
    assert n.final and n.winner is Leg.TP
    (ev,) = cmds
    assert isinstance(ev, Event) and ev.name == "OCO_RESOLVE"
    assert ev.data["winner"] == "TP" and ev.data["mode"] == "native"
    assert ev.data["parent_client_order_id"] == P and ev.data["order_list_id"] == "L1"
    assert ev.data["legs"]["SL"] == {
        "mode": "VENUE",
        "client_order_id": f"{P}-E62",
        "status": "CANCELED",
        "filled": "0",
    }
    assert ev.data["timings"] == {
        "armed": 5,
        "acked": 7,
        "tp_filled": 9,
        "sl_cancelled": 9,
        "resolved": 9,
    }


def test_list_done_with_no_leg_filled_alerts_before_resolving_without_winner() -> None:
    n = native()
    cmds = n.on_list("L1", True, legs((S.CANCELED, "0"), (S.EXPIRED, "0")), 9)
    assert [type(c) for c in cmds] == [Alert, Event]
    assert isinstance(cmds[0], Alert) and cmds[0].kind == "OCO_LIST_DONE_UNFILLED"
    assert isinstance(cmds[1], Event) and cmds[1].data["winner"] is None


def test_stop_filled_more_than_take_profit_wins() -> None:
    n = native()
    n.on_list("L1", True, legs((S.CANCELED, "0.0005"), (S.FILLED, "0.0015")), 9)
    assert n.winner is Leg.SL


def test_state_stored_as_an_untyped_document_loads_and_writes_back_identically() -> None:
    stored: dict[str, Any] = {
        "list_client_order_id": f"{P}-E60",
        "order_list_id": "12",
        "status": "EXEC_STARTED",
        "side": "SELL",
        "qty": "0.0019",
        "filled": "0.002",
        "tp_price": "67000",
        "sl_price": "64500",
        "sl_limit_price": None,
        "legs": {
            "TP": {"client_order_id": f"{P}-E61", "status": "ACCEPTED", "filled": "0"},
            "SL": {"client_order_id": f"{P}-E62", "status": None, "filled": "0"},
        },
        "winner": None,
        "timings": {"armed": 1, "acked": 2},
    }
    n = NativeOco.model_validate(stored)
    assert n.legs[Leg.TP].status is S.ACCEPTED and n.qty == D("0.0019") and n.acked
    assert n.model_dump(mode="json") == stored
