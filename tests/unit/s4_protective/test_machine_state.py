"""Machine state is persisted one way (pydantic, `model_dump(mode="json")` / `model_validate`),
and a `strategy_events` document written before that change still loads, continues, and dumps
back byte for byte (issue 12 point 4)."""

from __future__ import annotations

import json
from decimal import Decimal as D

from s4_router.policies.brackets import Brackets, BracketState
from s4_router.policies.oco_guardian import GuardianState, Leg, LegMode, OcoGuardian
from s4_router.policies.protective import Place
from tradekit.enums import OrderStatus as S
from tradekit.instrument import Instrument

BTC = Instrument(
    symbol="BTCUSDT", base_asset="BTC", tickSize=D(1), stepSize=D("0.001"), minNotional=D(5)
)
FEES = (D("0.0004"), D("0.0004"))

# Exactly what Brackets.to_state() / OcoGuardian.to_state() (dataclasses + asdict) wrote.
BRACKETS_STATE = json.loads("""{"parent_client_order_id": "s3-btc-9", "position_side": "BUY",
"entry_target_qty": "0.006", "sl_price": "64800", "tp_price": null, "tp_net_profit_usdt": "2",
"working_type": "MARK_PRICE", "next_child": 6, "entry_filled": "0.004",
"entry_notional": "260.5", "exited": "0.001", "orders": [{"kind": "SL",
"client_order_id": "s3-btc-9-E2", "qty": "0.002", "stop_price": "64800", "status": "ACCEPTED",
"filled": "0"}, {"kind": "TP", "client_order_id": "s3-btc-9-E3", "qty": "0.002",
"stop_price": "66053", "status": "PARTIALLY_FILLED", "filled": "0.001"}, {"kind": "SL",
"client_order_id": "s3-btc-9-E4", "qty": "0.004", "stop_price": "64800", "status": null,
"filled": "0"}, {"kind": "TP", "client_order_id": "s3-btc-9-E5", "qty": "0.004",
"stop_price": "65678", "status": null, "filled": "0"}], "state": "PROTECTING",
"first_fill_ms": 10, "protected_ms": 12, "closed_ms": null}""")

GUARDIAN_STATE = json.loads("""{"parent_client_order_id": "s3-eth-7", "position_side": "BUY",
"qty": "0.5", "tp_price": "3100", "sl_price": "2900", "sl_limit_price": "2900",
"tp": {"leg": "TP", "mode": "LOCAL", "qty": "0.4", "client_order_id": null, "status": null,
"filled": "0", "orders": {}, "ended": [], "cancel_sent_ms": null, "pending_resize": false,
"rejects": 0}, "sl": {"leg": "SL", "mode": "RESTING", "qty": "0.5",
"client_order_id": "s3-eth-7-E2", "status": "PARTIALLY_FILLED", "filled": "0.1",
"orders": {"s3-eth-7-E2": "0.1"}, "ended": [], "cancel_sent_ms": 130,
"pending_resize": false, "rejects": 0}, "next_child": 3, "state": "TRIGGERED", "winner": null,
"triggered": "TP", "timings": {"armed_ms": 100, "first_fill_ms": 120, "sl_fill_ms": 120,
"triggered_ms": 130, "cancel_sent_ms": 130}, "cancel_timeout_ms": 2000}""")


def test_brackets_state_in_the_old_shape_loads_typed_and_dumps_identically() -> None:
    b = Brackets.model_validate(BRACKETS_STATE)
    assert b.state is BracketState.PROTECTING and b.position == D("0.003")
    assert b.orders[1].kind is Leg.TP and b.orders[1].status is S.PARTIALLY_FILLED
    assert b.model_dump(mode="json") == BRACKETS_STATE
    # ...and it goes on from there: a flat position cancels every working bracket order.
    cmds = b.on_position(D(0), 30)
    assert b.state is BracketState.CLOSING and len(cmds) == 4


def test_guardian_state_in_the_old_shape_loads_typed_and_dumps_identically() -> None:
    g = OcoGuardian.model_validate(GUARDIAN_STATE)
    assert g.state is GuardianState.TRIGGERED and g.triggered is Leg.TP
    assert g.tp.mode is LegMode.LOCAL and g.sl.orders == {"s3-eth-7-E2": D("0.1")}
    assert g.model_dump(mode="json") == GUARDIAN_STATE
    cmds = g.on_report("s3-eth-7-E2", S.CANCELED, D("0.1"), 140)
    assert [type(c) for c in cmds] == [Place] and g.remaining == D("0.4")


def test_brackets_state_dumps_json_ready_and_round_trips() -> None:
    b = Brackets(
        parent_client_order_id="p",
        position_side="SELL",
        entry_target_qty=D("0.006"),
        sl_price=D(65200),
        tp_price=None,
        tp_net_profit_usdt=D(2),
        working_type="MARK_PRICE",
        next_child=2,
    )
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    state = b.model_dump(mode="json")
    assert json.loads(json.dumps(state)) == state
    assert Brackets.model_validate(state).model_dump(mode="json") == state
