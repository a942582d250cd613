"""The pure pre-trade checks (policies.pretrade): boundaries, mirrored sides, reduce-only
exemptions. No I/O; the router-level behaviour is in tests/integration/test_s4_pretrade.py."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from s4_router.policies.pretrade import (
    PretradeLimits,
    Reason,
    check_intake,
    check_market,
)
from tests.chaos.rig import INSTRUMENTS, T0, intent
from tradekit.instrument import Instrument

BTC = next(i for i in INSTRUMENTS if i.symbol == "BTCUSDT")
LIMITS = PretradeLimits(
    max_order_notional_usdt=D(250_000),
    price_collar_bps=D(200),
    min_stop_distance_bps=D(5),
    intent_max_age_ms=10_000,
    intent_max_future_ms=1_000,
)
MID = D(65_000)


def market(inst: Instrument = BTC, mid: D = MID, **over: Any) -> Reason | None:
    i = intent(**over)
    why = check_market(i, inst, i.qty, mid=mid, limits=LIMITS)
    return why.reason if why else None


def intake(inst: Instrument = BTC, now: int = T0, **over: Any) -> Reason | None:
    why = check_intake(intent(**over), inst, now_ms=now, limits=LIMITS)
    return why.reason if why else None


@pytest.mark.parametrize(
    ("age_ms", "reason"),
    [(10_000, None), (10_001, Reason.STALE_INTENT), (-1_000, None), (-1_001, Reason.FUTURE_INTENT)],
)
def test_freshness_boundaries(age_ms: int, reason: Reason | None) -> None:
    assert intake(created_ts=T0 - age_ms) is reason


def test_collar_boundary_is_inclusive_and_reduce_only_is_exempt() -> None:
    edge = MID * (1 + D(200) / 10_000)  # exactly 200 bps
    assert market(ref_price=str(edge)) is None
    assert market(ref_price=str(edge + 1)) is Reason.PRICE_COLLAR
    assert market(ref_price=str(MID * D("0.97"))) is Reason.PRICE_COLLAR  # below as well
    assert market(ref_price="80000", side="SELL", reduce_only=True) is None


def test_notional_uses_the_larger_of_ref_price_and_mid() -> None:
    capped = BTC.model_copy(update={"max_order_notional_usdt": D(1000)})
    # 0.015 × 66,000 = 990 at the ref_price, but 0.015 × 67,000 = 1,005 at the mid.
    assert market(capped, mid=D(67_000), qty="0.015", ref_price="66000") is (
        Reason.MAX_ORDER_NOTIONAL
    )
    assert market(capped, qty="0.015", ref_price="65000") is None
    assert market(capped, qty="1", side="SELL", reduce_only=True) is None


@pytest.mark.parametrize(
    ("side", "sl", "tp", "reason"),
    [
        ("BUY", "64967", "65033", None),  # 5.08 bps either side
        ("BUY", "64968", None, Reason.BRACKET_INVALID),  # 4.9 bps: too close
        ("BUY", "66000", None, Reason.BRACKET_INVALID),
        ("SELL", "65033", "64967", None),
        ("SELL", "64000", None, Reason.BRACKET_INVALID),
        ("SELL", "66000", "65100", Reason.BRACKET_INVALID),  # a short's target above the mid
    ],
)
def test_fut_brackets_against_the_mid_are_mirrored_by_side(
    side: str, sl: str, tp: str | None, reason: Reason | None
) -> None:
    over: dict[str, Any] = {"side": side, "sl": {"type": "STOP_MARKET", "price": sl}}
    if tp is not None:
        over["tp"] = {"type": "TAKE_PROFIT_MARKET", "price": tp}
    assert market(**over) is reason


def test_tp_target_without_a_price_is_checked_after_the_fill_not_here() -> None:
    tp = {"type": "TAKE_PROFIT_MARKET", "target": "net_profit_usdt", "value": "2"}
    assert market(sl={"type": "STOP_MARKET", "price": "64000"}, tp=tp) is None


def test_spot_oco_sell_entry_needs_its_stop_above_and_target_below() -> None:
    ok = {"type": "OCO", "tp_price": "64000", "sl_price": "66000"}
    assert market(market="SPOT", side="SELL", exec_policy=ok) is None
    near = {"type": "OCO", "tp_price": "64000", "sl_price": "65010"}
    assert market(market="SPOT", side="SELL", exec_policy=near) is Reason.OCO_INVALID
    limit = {**ok, "sl_limit_price": "65900"}  # a BUY stop-limit below its trigger
    assert intake(market="SPOT", side="SELL", exec_policy=limit) is Reason.OCO_INVALID


def test_precision_and_quantity_limits() -> None:
    assert intake(qty="0.0021") is Reason.QTY_OFF_STEP
    assert intake(sl={"type": "STOP_MARKET", "price": "64000.5"}) is Reason.PRICE_OFF_TICK
    assert intake(qty="2") is None and intake(qty="2.001") is Reason.MAX_ORDER_QTY
    assert intake(qty="5", side="SELL", reduce_only=True) is None
    exchange_cap = BTC.model_copy(update={"maxQty": D("1"), "max_order_qty": None})
    assert intake(exchange_cap, qty="1.5") is Reason.MAX_ORDER_QTY
