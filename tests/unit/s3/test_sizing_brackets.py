"""Sizing (FUT/SPOT) and SL/TP: hand-computed examples for long and short, and properties over
random prices, steps, ticks, ATRs and budgets (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3_strategy.domain import sl_tp
from s3_strategy.domain.sizing import QtyAboveMax, size_fut, size_spot
from tradekit.enums import Side
from tradekit.errors import BelowMinNotional, InvalidIntent, RoundsToZero
from tradekit.instrument import Instrument, round_to_increment

BTC = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    tickSize=Decimal(1),
    stepSize=Decimal("0.001"),
    minNotional=Decimal(5),
)
FEE = Decimal("0.0004")
D = Decimal


def test_size_fut_with_spec_defaults_rounds_notional_over_price_to_nearest_step() -> None:
    s = size_fut(BTC, D("65000.5"), D(20), D(1), 20)  # 400 / 65000.5 = 0.006153…
    assert (s.qty, s.notional, s.margin) == (D("0.006"), D("390.0030"), D("19.500150"))


def test_size_fut_with_multiplier_scales_margin_before_rounding() -> None:
    assert size_fut(BTC, D("65000.5"), D(20), D("1.5"), 20).qty == D("0.009")


def test_size_fut_with_nearest_rounding_may_round_up_as_spec_says() -> None:
    assert size_fut(BTC, D(60000), D(20), D(1), 20).qty == D("0.007")  # 0.00667 → 0.007


def test_size_fut_with_tiny_margin_rounds_to_zero_and_raises() -> None:
    with pytest.raises(RoundsToZero):
        size_fut(BTC, D(65000), D("0.01"), D(1), 1)


def test_size_fut_with_notional_below_min_raises_not_bumps() -> None:
    with pytest.raises(BelowMinNotional):
        size_fut(BTC, D(4000), D("0.2"), D(1), 20)  # qty 0.001 → 4 USDT < 5


def test_size_spot_with_budget_floors_to_step() -> None:
    s = size_spot(BTC, D("65000.5"), D(200), D(1))  # 0.003076… → 0.003
    assert (s.qty, s.margin) == (D("0.003"), D("195.0015"))


def test_size_spot_with_max_qty_exceeded_raises() -> None:
    inst = BTC.model_copy(update={"maxQty": D("0.002")})
    with pytest.raises(QtyAboveMax):
        size_spot(inst, D(65000), D(200), D(1))


def test_solve_long_with_atr_below_loss_cap_uses_atr_distance() -> None:
    b = sl_tp.solve(
        BTC,
        Side.BUY,
        D("65000.5"),
        D("0.006"),
        d_base=D(100),
        max_loss=D("1.2"),
        target_net=D("1.95"),
        f_in=FEE,
        f_out=FEE,
    )
    # cap with fees: SL ≥ (65000.5·1.0004 − 1.2/0.006) / 0.9996 = 64852.44… ⇒ d_cap 148.06…
    assert b.d == D(100) and D("148.05") < b.d_cap < D("148.07")
    assert b.sl == D(64901)  # 64900.5 rounded up (towards the entry)
    # 0.006·99.5 + fees 0.006·65000.5·0.0004 + 0.006·64901·0.0004
    assert b.loss_at_sl == D("0.9087636") and not b.sl_one_tick_floor
    # TP ≥ (1.95/0.006 + 65000.5·1.0004) / 0.9996 = 65377.1… → 65378 (away from the entry)
    assert b.tp == D(65378)
    assert sl_tp.net_profit(Side.BUY, D("65000.5"), b.tp, D("0.006"), FEE, FEE) >= D("1.95")


def test_solve_short_with_loss_cap_below_atr_uses_cap_and_mirrors() -> None:
    b = sl_tp.solve(
        BTC,
        Side.SELL,
        D(65000),
        D("0.006"),
        d_base=D(300),
        max_loss=D("1.2"),
        target_net=D("1.95"),
        f_in=FEE,
        f_out=FEE,
    )
    # SL ≤ (1.2/0.006 + 65000·0.9996) / 1.0004 = 65147.94… ⇒ rounded down (towards the entry)
    assert D("147.94") < b.d < D("147.95") and b.sl == D(65147)
    assert b.loss_at_sl == D("1.1943528")  # 0.882 + fees 0.156 + 0.1563528
    # TP ≤ (65000·0.9996 − 325) / 1.0004 = 64623.1… → 64623 (down, away from the entry)
    assert b.tp == D(64623)
    assert b.net_at_tp >= D("1.95")


def test_solve_with_distance_under_one_tick_places_stop_one_tick_away() -> None:
    b = sl_tp.solve(
        BTC,
        Side.BUY,
        D(65000),
        D("0.006"),
        d_base=D("0.2"),
        max_loss=D("1.2"),
        target_net=D("1"),
        f_in=FEE,
        f_out=FEE,
    )
    assert b.sl == D(64999) and b.sl_one_tick_floor


def test_solve_short_with_target_beyond_zero_raises_bracket_error() -> None:
    with pytest.raises(sl_tp.BracketError):
        sl_tp.solve(
            BTC,
            Side.SELL,
            D(100),
            D("0.1"),
            d_base=D(1),
            max_loss=D(1),
            target_net=D(50),
            f_in=FEE,
            f_out=FEE,
        )


def test_solve_long_with_loss_budget_above_position_value_stops_at_one_tick() -> None:
    b = sl_tp.solve(
        BTC,
        Side.BUY,
        D(50),
        D("0.2"),
        d_base=D(80),
        max_loss=D(100),
        target_net=D(1),
        f_in=FEE,
        f_out=FEE,
    )
    assert b.sl == D(1)


# ---- properties -------------------------------------------------------------------------------
ticks = st.sampled_from([D("0.0001"), D("0.01"), D("0.1"), D(1), D(5)])
steps = st.sampled_from([D("0.00001"), D("0.001"), D("0.1"), D(1)])
prices = st.decimals(min_value=D("0.05"), max_value=D(200_000), places=4, allow_nan=False)
mults = st.decimals(min_value=D("0.5"), max_value=D("1.5"), places=2)
sides = st.sampled_from([Side.BUY, Side.SELL])


def inst_of(tick: Decimal, step: Decimal, min_notional: Decimal = D(5)) -> Instrument:
    return Instrument(
        symbol="XUSDT", base_asset="X", tickSize=tick, stepSize=step, minNotional=min_notional
    )


@settings(max_examples=400, deadline=None)
@given(
    price=prices,
    step=steps,
    mult=mults,
    lev=st.integers(1, 125),
    margin=st.decimals(min_value=D(1), max_value=D(500), places=2),
)
def test_size_fut_with_random_inputs_gives_step_multiple_above_min_or_raises(
    price: Decimal, step: Decimal, mult: Decimal, lev: int, margin: Decimal
) -> None:
    inst = inst_of(D("0.0001"), step)
    try:
        s = size_fut(inst, price, margin, mult, lev)
    except InvalidIntent:
        rounded = round_to_increment(margin * mult * lev / price, step, "nearest")
        assert rounded == 0 or rounded * price < inst.minNotional  # the skip was warranted
        return
    assert s.qty > 0 and s.qty % step == 0
    assert s.notional == s.qty * price >= inst.minNotional
    assert abs(s.qty - margin * mult * lev / price) <= step / 2


@settings(max_examples=400, deadline=None)
@given(
    price=prices,
    step=steps,
    mult=mults,
    budget=st.decimals(min_value=D(1), max_value=D(5000), places=2),
)
def test_size_spot_with_random_inputs_never_spends_over_budget(
    price: Decimal, step: Decimal, mult: Decimal, budget: Decimal
) -> None:
    inst = inst_of(D("0.0001"), step)
    try:
        s = size_spot(inst, price, budget, mult)
    except InvalidIntent:
        return  # an explicit skip (MIN_NOTIONAL), never a bumped quantity
    assert s.qty % step == 0 and s.notional >= inst.minNotional
    assert s.notional <= budget * mult


@settings(max_examples=500, deadline=None)
@given(
    tick=ticks,
    side=sides,
    price=prices,
    qty=st.decimals(min_value=D("0.001"), max_value=D(1000), places=3),
    atr=st.decimals(min_value=D(0), max_value=D(5000), places=3),
    max_loss=st.decimals(min_value=D("0.1"), max_value=D(50), places=2),
    target=st.decimals(min_value=D("0.01"), max_value=D(20), places=2),
)
def test_solve_with_random_inputs_bounds_loss_and_meets_profit_target(
    tick: Decimal,
    side: Side,
    price: Decimal,
    qty: Decimal,
    atr: Decimal,
    max_loss: Decimal,
    target: Decimal,
) -> None:
    inst = inst_of(tick, D("0.001"))
    entry = price
    assume(entry > 2 * tick)
    try:
        b = sl_tp.solve(
            inst,
            side,
            entry,
            qty,
            d_base=D("1.5") * atr,
            max_loss=max_loss,
            target_net=target,
            f_in=FEE,
            f_out=FEE,
        )
    except sl_tp.LossCapUnreachable:
        return  # no stop on the tick meets the cap with fees: a skip, never an open
    except sl_tp.BracketError:
        assert side is Side.SELL  # otherwise only a short TP can be unreachable (≤ zero)
        return
    assert b.sl % tick == 0 and b.tp % tick == 0 and b.sl > 0 and b.tp > 0
    loss = sl_tp.loss_at_stop(side, entry, b.sl, qty, FEE, FEE)
    assert 0 < loss <= max_loss and loss == b.loss_at_sl  # fees included, no floor above it
    assert (b.sl < entry < b.tp) if side is Side.BUY else (b.tp < entry < b.sl)
    assert sl_tp.net_profit(side, entry, b.tp, qty, FEE, FEE) >= target
