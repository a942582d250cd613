"""Futures SL/TP brackets: placement on first fill, resize with replace-before-cancel, close-out,
naked time, TP solved for net profit after fees."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s4_router.policies.brackets import Brackets, BracketState, solve_tp_price
from s4_router.policies.protective import Alert, Cancel, Command, Event, Leg, Place
from tradekit.enums import OrderStatus as S
from tradekit.enums import OrderType, Side
from tradekit.instrument import Instrument

BTC = Instrument(
    symbol="BTCUSDT", base_asset="BTC", tickSize=D(1), stepSize=D("0.001"), minNotional=D(5)
)
FEES = (D("0.0004"), D("0.0004"))
P = "s3-btc-9"


def brackets(side: Side = Side.BUY, *, tp_price: D | None = None) -> Brackets:
    return Brackets(
        parent_client_order_id=P,
        position_side=side,
        entry_target_qty=D("0.006"),
        sl_price=D(64800) if side is Side.BUY else D(65200),
        tp_price=tp_price,
        tp_net_profit_usdt=D(2) if tp_price is None else None,
        working_type="MARK_PRICE",
        next_child=2,
    )


def places(cmds: list[Command]) -> list[Place]:
    return [c for c in cmds if isinstance(c, Place)]


def cancels(cmds: list[Command]) -> list[str]:
    return [c.client_order_id for c in cmds if isinstance(c, Cancel)]


def net_profit(side: Side, entry: D, tp: D, qty: D) -> D:
    gross = (tp - entry) * qty if side is Side.BUY else (entry - tp) * qty
    return gross - entry * qty * FEES[0] - tp * qty * FEES[1]


def test_solve_tp_with_spec_target_yields_at_least_the_net_profit() -> None:
    tp = solve_tp_price(
        BTC,
        side=Side.BUY,
        entry=D(65000),
        qty=D("0.002"),
        net_profit_usdt=D(2),
        entry_fee_rate=FEES[0],
        exit_fee_rate=FEES[1],
    )
    # (2/0.002 + 65000·1.0004) / 0.9996 = 66052.02… → up to tick 66053
    assert tp == D(66053)
    assert net_profit(Side.BUY, D(65000), tp, D("0.002")) >= D(2)
    assert net_profit(Side.BUY, D(65000), tp - 1, D("0.002")) < D(2)


@given(
    entry=st.decimals(min_value=D(1000), max_value=D(100000), places=1),
    qty=st.decimals(min_value=D("0.001"), max_value=D(2), places=3),
    target=st.decimals(min_value=D("0.1"), max_value=D(50), places=2),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_solve_tp_with_any_input_meets_target_after_rounding(
    entry: D, qty: D, target: D, side: Side
) -> None:
    try:
        tp = solve_tp_price(
            BTC,
            side=side,
            entry=entry,
            qty=qty,
            net_profit_usdt=target,
            entry_fee_rate=FEES[0],
            exit_fee_rate=FEES[1],
        )
    except ValueError:
        assert side is Side.SELL  # a short's target can be below zero price: refused
        return
    assert BTC.is_on_tick(tp)
    assert net_profit(side, entry, tp, qty) >= target


def test_first_entry_fill_places_stop_then_take_profit_sized_to_the_fill() -> None:
    b = brackets()
    cmds = b.on_entry_fill(D("0.002"), D(130), 1000, BTC, fee_rates=FEES)
    assert [(p.leg, p.type, p.qty, p.client_order_id) for p in places(cmds)] == [
        (Leg.SL, OrderType.STOP_MARKET, D("0.002"), f"{P}-E2"),
        (Leg.TP, OrderType.TAKE_PROFIT_MARKET, D("0.002"), f"{P}-E3"),
    ]
    sl, tp = places(cmds)
    assert sl.side is Side.SELL and sl.reduce_only and sl.working_type == "MARK_PRICE"
    assert sl.stop_price == D(64800) and tp.stop_price == D(66053)
    assert b.naked_ms is None
    b.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1180)
    assert b.naked_ms == 180


def test_more_entry_fills_replace_before_cancel() -> None:
    b = brackets()
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    b.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1)
    b.on_report(f"{P}-E3", S.ACCEPTED, D(0), 2)
    cmds = b.on_entry_fill(D("0.006"), D(390), 10, BTC, fee_rates=FEES)
    assert [(p.leg, p.qty) for p in places(cmds)] == [(Leg.SL, D("0.006")), (Leg.TP, D("0.006"))]
    assert cancels(cmds) == []  # nothing cancelled before the replacement is live
    assert len(b.working(Leg.SL)) == 2  # old and new stop overlap (both reduce-only)
    cmds = b.on_report(f"{P}-E4", S.ACCEPTED, D(0), 11)
    assert cancels(cmds) == [f"{P}-E2"]
    cmds = b.on_report(f"{P}-E5", S.ACCEPTED, D(0), 12)
    assert cancels(cmds) == [f"{P}-E3"]
    b.on_report(f"{P}-E2", S.CANCELED, D(0), 13)
    assert [o.client_order_id for o in b.working(Leg.SL)] == [f"{P}-E4"]


def test_duplicate_entry_fill_report_changes_nothing() -> None:
    b = brackets()
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    assert b.on_entry_fill(D("0.002"), D(130), 1, BTC, fee_rates=FEES) == []
    assert b.on_entry_fill(D("0.001"), D(65), 2, BTC, fee_rates=FEES) == []


def test_stop_filled_closes_position_and_cancels_take_profit() -> None:
    b = brackets()
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    b.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1)
    b.on_report(f"{P}-E3", S.ACCEPTED, D(0), 1)
    cmds = b.on_report(f"{P}-E2", S.FILLED, D("0.002"), 50)
    assert cancels(cmds) == [f"{P}-E3"] and b.state is BracketState.CLOSING
    cmds = b.on_report(f"{P}-E3", S.CANCELED, D(0), 51)
    assert b.state is BracketState.CLOSED and cmds[-1] == Event("BRACKETS_CLOSED", b.summary())


def test_take_profit_filled_in_parts_closes_and_cancels_stop() -> None:
    b = brackets(tp_price=D(66000))
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    b.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1)
    b.on_report(f"{P}-E3", S.ACCEPTED, D(0), 1)
    assert b.on_report(f"{P}-E3", S.PARTIALLY_FILLED, D("0.001"), 5) == []
    cmds = b.on_report(f"{P}-E3", S.FILLED, D("0.002"), 6)
    assert cancels(cmds) == [f"{P}-E2"]
    b.on_report(f"{P}-E2", S.CANCELED, D(0), 7)
    assert b.state is BracketState.CLOSED


def test_manual_close_reported_by_venue_cancels_every_bracket_order() -> None:
    b = brackets()
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    b.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1)
    cmds = b.on_position(D(0), 9)
    assert sorted(cancels(cmds)) == [f"{P}-E2", f"{P}-E3"]
    b.on_report(f"{P}-E2", S.CANCELED, D(0), 10)
    assert b.state is BracketState.CLOSING
    b.on_report(f"{P}-E3", S.CANCELED, D(0), 11)
    assert b.state is BracketState.CLOSED


def test_entry_without_fill_ends_with_no_bracket() -> None:
    b = brackets()
    cmds = b.on_entry_done(5)
    assert b.state is BracketState.CLOSED and cmds[0] == Event("BRACKETS_CLOSED", b.summary())
    assert b.orders == []


def test_rejected_first_stop_alerts_that_the_position_is_naked() -> None:
    b = brackets()
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    cmds = b.on_report(f"{P}-E2", S.REJECTED, D(0), 1)
    (alert,) = [c for c in cmds if isinstance(c, Alert)]
    assert alert.kind == "BRACKET_REJECTED" and "naked" in alert.message
    assert b.naked_ms is None


def test_short_position_places_buy_side_reduce_only_orders() -> None:
    b = brackets(Side.SELL)
    cmds = b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    sl, tp = places(cmds)
    assert sl.side is Side.BUY and tp.side is Side.BUY
    assert sl.stop_price == D(65200) and tp.stop_price is not None and tp.stop_price < D(65000)


def test_restart_with_persisted_state_continues_identically() -> None:
    b = brackets()
    b.on_entry_fill(D("0.002"), D(130), 0, BTC, fee_rates=FEES)
    b.on_report(f"{P}-E2", S.ACCEPTED, D(0), 1)
    again = Brackets.model_validate(b.model_dump(mode="json"))
    assert again.model_dump(mode="json") == b.model_dump(mode="json")
    c1 = b.on_entry_fill(D("0.004"), D(260), 5, BTC, fee_rates=FEES)
    c2 = again.on_entry_fill(D("0.004"), D(260), 5, BTC, fee_rates=FEES)
    assert c1 == c2


@pytest.mark.parametrize("qty", ["0.001", "0.003", "0.006"])
def test_overclose_beyond_position_fails_with_alert(qty: str) -> None:
    b = brackets()
    b.on_entry_fill(D("0.001"), D(65), 0, BTC, fee_rates=FEES)
    cmds = b.on_report(f"{P}-E2", S.FILLED, D(qty) + D("0.001"), 1)
    assert b.state is BracketState.FAILED and isinstance(cmds[0], Alert)
