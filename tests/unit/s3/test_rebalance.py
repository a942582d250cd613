"""Rebalance planners (spec 000 symmetric, 003 intelligent) and cost/PnL: pure functions."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from s3_strategy.domain.rebalance.costs import CostFill, position_cost
from s3_strategy.domain.rebalance.intelligent import (
    IntelligentConfig,
    Signal,
    ma_signal,
    plan_intelligent,
)
from s3_strategy.domain.rebalance.plan import Action, FeeModel, Quote
from s3_strategy.domain.rebalance.symmetric import SymmetricConfig, plan_symmetric
from tradekit.instrument import Instrument

D = Decimal
QRL = Instrument(
    symbol="QRLUSDT",
    base_asset="QRL",
    markets=("SPOT",),
    tickSize=D("0.0001"),
    stepSize=D("0.1"),
    minNotional=D(5),
)
SYM = SymmetricConfig()
INT = IntelligentConfig()


def sym(
    base: str,
    quote: str,
    price: str,
    cfg: SymmetricConfig = SYM,
    quote_locked: str = "0",
    **q: str,
):
    extra = {k: D(v) for k, v in q.items()}
    return plan_symmetric(
        base_free=D(base),
        quote_free=D(quote),
        quote=Quote(D(price), **extra),
        instrument=QRL,
        config=cfg,
        quote_locked=D(quote_locked),
    )


# ---- symmetric ---------------------------------------------------------------------------------
def test_documented_case_100_qrl_at_1_plus_100_usdt_price_to_2_sells_25() -> None:
    plan = sym("100", "100", "2")
    assert plan.action is Action.SELL
    assert plan.quantity == D(25)
    assert plan.notional_usdt == D(50)
    assert plan.details["target_value"] == D(150)
    # and after the trade the portfolio is 75 QRL @ 2 + 150 USDT: 50:50
    assert sym("75", "150", "2").action is Action.HOLD


def test_symmetric_buys_when_base_below_target() -> None:
    plan = sym("100", "100", "0.5")  # 50 vs 100 ⇒ target 75 ⇒ buy 25 USDT = 50 QRL
    assert plan.action is Action.BUY and plan.quantity == D(50)


def test_symmetric_holds_on_invalid_price_and_within_threshold() -> None:
    assert sym("100", "100", "0").reason_code == "PRICE_INVALID"
    assert sym("100", "100", "-1").reason_code == "PRICE_INVALID"
    held = sym("100", "98.5", "1")  # ratio 0.5038 ⇒ deviation 0.38 % < 1 %
    assert held.action is Action.HOLD and held.reason_code == "WITHIN_THRESHOLD"


def test_symmetric_holds_below_min_notional() -> None:
    # deviation 2 % but |delta| = 4 USDT < 5
    plan = sym("104", "96", "1")
    assert plan.action is Action.HOLD and plan.reason_code == "BELOW_MIN_NOTIONAL"


def test_symmetric_rounds_down_to_the_instruments_step() -> None:
    plan = sym("100", "100", "3")  # delta = (300 - 200)/2 = 100 ⇒ 33.33 QRL ⇒ 33.3
    assert plan.quantity == D("33.3")
    assert QRL.is_on_step(plan.quantity)


def test_symmetric_reduces_a_buy_to_what_usdt_pays_for_fees_included() -> None:
    # 0 QRL, 10 USDT at price 1: target 5 ⇒ BUY 5 QRL needs 5.005 with fee: affordable.
    # max_notional caps it: the trade is reduced, named, and still ≥ min notional.
    cfg = SymmetricConfig(max_notional_usdt=D(6))
    plan = sym("0", "100", "1", cfg)
    assert plan.action is Action.BUY and plan.quantity == D(6)
    assert plan.details["reduced"] == "max_notional"


def test_symmetric_insufficient_balance_is_a_hold_with_its_reason() -> None:
    # 100 USDT, 96 of them locked in an open order: the portfolio is valued on 100, but only
    # 4 USDT are free: less than a min-size BUY.
    plan = sym("0", "4", "1", quote_locked="96")
    assert plan.action is Action.HOLD and plan.reason_code == "INSUFFICIENT_BALANCE"
    # with 20 free the BUY is reduced to what they pay for, fee included
    reduced = sym("0", "20", "1", quote_locked="80")
    assert reduced.action is Action.BUY and reduced.details["reduced"] == "balance"
    assert reduced.quantity == D("19.9") and reduced.reason.endswith("(reduced: balance)")


def test_fee_aware_skips_a_trade_whose_drift_is_not_worth_fee_plus_half_spread() -> None:
    # deviation 1.5 % on a 300 bps wide book: half spread 1.5 % + fee 0.1 % > 1.5 %.
    wide = {"bid": "0.985", "ask": "1.015"}
    plan = sym("1030", "970", "1", **wide)
    assert plan.action is Action.HOLD and plan.reason_code == "NOT_WORTH_FEES"
    assert plan.details["fee_estimate_usdt"] > 0 and plan.details["spread_cost_usdt"] > 0
    # the same drift on a tight book trades; with the check off (the seeds) it trades too
    assert sym("1030", "970", "1", bid="0.9999", ask="1.0001").action is Action.SELL
    off = SymmetricConfig(fee=FeeModel(enabled=False))
    assert sym("1030", "970", "1", off, **wide).action is Action.SELL


def test_min_notional_holds_at_the_bid_a_maker_buy_is_posted_at() -> None:
    # 95 QRL @ 1 + 105 USDT: BUY 5 QRL = 5 USDT at the last price, but S4's maker BUY rests at
    # the best bid (0.999): 4.995 USDT, which the venue refuses (Filter failure: NOTIONAL).
    plan = sym("95", "105", "1", bid="0.999", ask="1.001")
    assert plan.action is Action.HOLD and plan.reason_code == "BELOW_MIN_NOTIONAL", plan
    # a book at or above the last price leaves the trade as it was
    assert sym("95", "105", "1", bid="1", ask="1.002").quantity == D(5)
    # a trade a step larger clears the floor at the bid too
    big = sym("94", "106", "1", bid="0.999", ask="1.001")
    assert big.action is Action.BUY and big.quantity * D("0.999") >= QRL.minNotional


money = st.decimals(min_value=D("0"), max_value=D("1000000"), places=2)
prices = st.decimals(min_value=D("0.001"), max_value=D("1000"), places=4)


@settings(max_examples=300, deadline=None)
@given(base=money, quote=money, price=prices)
def test_symmetric_plan_never_breaks_balances_steps_or_min_notional(
    base: Decimal, quote: Decimal, price: Decimal
) -> None:
    plan = plan_symmetric(
        base_free=base, quote_free=quote, quote=Quote(price), instrument=QRL, config=SYM
    )
    if plan.action is Action.HOLD:
        assert plan.quantity == 0
        return
    assert QRL.is_on_step(plan.quantity) and plan.quantity > 0
    assert plan.notional_usdt >= D(5)
    if plan.action is Action.SELL:
        assert plan.quantity <= base
    else:
        assert plan.notional_usdt * (1 + SYM.fee.fee_rate) <= quote
    # never overshoots the target: the deviation does not change sign past a step
    after_base = base + (plan.quantity if plan.action is Action.BUY else -plan.quantity)
    after_quote = quote - plan.notional_usdt * (1 if plan.action is Action.BUY else -1)
    before = base * price - (base * price + quote) / 2
    after = after_base * price - (after_base * price + after_quote) / 2
    assert abs(after) <= abs(before)


spreads = st.decimals(min_value=D("0"), max_value=D("0.05"), places=4)
# small portfolios: trades near the 5 USDT floor, where the price the order rests at matters
small = st.decimals(min_value=D("0"), max_value=D("60"), places=1)


@settings(max_examples=300, deadline=None)
@given(
    base=st.one_of(small, money),
    quote=st.one_of(small, money),
    price=st.one_of(st.sampled_from([D("0.5"), D(1)]), prices),
    below=spreads,
    above=spreads,
)
def test_no_planned_order_is_below_min_notional_at_any_price_s4_may_post_it_at(
    base: Decimal, quote: Decimal, price: Decimal, below: Decimal, above: Decimal
) -> None:
    bid, ask = price * (1 - below), price * (1 + above)
    plan = plan_symmetric(
        base_free=base, quote_free=quote, quote=Quote(price, bid, ask), instrument=QRL, config=SYM
    )
    if plan.action is not Action.HOLD:
        # S4 posts a maker BUY at the bid, a maker SELL at the ask; a taker trades at the mid
        assert plan.quantity * min(bid, price) >= QRL.minNotional


# ---- intelligent -------------------------------------------------------------------------------
def closes(trend: str, n: int = 30) -> list[Decimal]:
    """Closes rising (golden cross at the end) or falling (death cross)."""
    step = D("0.001") if trend == "up" else D("-0.001")
    return [D("0.05") + step * i for i in range(n)]


def intel(base: str, quote: str, price: str, cs: list[Decimal], cost: str, **kw: object):
    cfg = IntelligentConfig(**kw) if kw else INT
    return plan_intelligent(
        base_free=D(base),
        quote_free=D(quote),
        quote=Quote(D(price)),
        closes=cs,
        cost_avg=D(cost),
        instrument=QRL,
        config=cfg,
    )


def test_ma_signal_golden_and_death_cross_with_strength() -> None:
    ma_s, ma_l, sig, strength = ma_signal(closes("up"), INT)
    assert sig is Signal.GOLDEN_CROSS and ma_s > ma_l and strength > 0
    assert ma_signal(closes("down"), INT)[2] is Signal.DEATH_CROSS
    assert ma_signal([D(1)] * 25, INT)[2] is Signal.NEUTRAL


def test_intelligent_buys_only_with_usdt_available() -> None:
    # golden cross, base far below target, price under cost, but every USDT is locked in an
    # open order: nothing to pay with
    plan = plan_intelligent(
        base_free=D(100),
        quote_free=D(0),
        quote_locked=D(1000),
        quote=Quote(D(1)),
        closes=closes("up"),
        cost_avg=D("1.2"),
        instrument=QRL,
        config=INT,
    )
    assert plan.action is Action.HOLD and plan.reason_code == "INSUFFICIENT_BALANCE"


def test_intelligent_holds_with_fewer_than_25_bars() -> None:
    plan = intel("1000", "1000", "1", closes("up", 24), "1")
    assert plan.action is Action.HOLD and plan.reason_code == "INSUFFICIENT_DATA"


def test_intelligent_buys_on_golden_cross_below_target_at_or_under_cost() -> None:
    plan = intel("100", "1000", "1", closes("up"), "1.2")
    assert plan.action is Action.BUY and plan.quantity == D(450)
    assert plan.details["ma_indicators"]["signal"] == "GOLDEN_CROSS"


def test_intelligent_cost_guards_block_buy_above_cost_and_sell_below_3pct_profit() -> None:
    buy = intel("100", "1000", "1", closes("up"), "0.9")
    assert buy.action is Action.HOLD and buy.reason_code == "PRICE_NOT_FAVOURABLE"
    sell = intel("1000", "100", "1", closes("down"), "0.98")  # 1 < 1.03 × 0.98
    assert sell.action is Action.HOLD and sell.reason_code == "PRICE_NOT_FAVOURABLE"
    ok = intel("1000", "100", "1", closes("down"), "0.97")  # 1 ≥ 0.9991
    assert ok.action is Action.SELL


def test_intelligent_sell_never_touches_the_core_tier() -> None:
    # Far above target: delta wants 450 QRL but only 30 % of 1000 is tradeable.
    plan = intel("1000", "100", "1", closes("down"), "0.5")
    assert plan.action is Action.SELL and plan.quantity == D(300)
    assert plan.details["reduced"] == "tier"
    assert plan.details["position_tiers"] == {
        "core": D(700),
        "swing": D(200),
        "active": D(100),
        "tradeable": D(300),
    }


def test_intelligent_holds_without_signal_or_against_the_target() -> None:
    flat = intel("1000", "100", "1", [D(1)] * 30, "0.5")
    assert flat.reason_code == "NO_SIGNAL"
    contrary = intel("1000", "100", "1", closes("up"), "0.5")  # golden cross, base above target
    assert contrary.action is Action.HOLD and contrary.reason_code == "NO_SIGNAL"
    within = intel("100", "99", "1", closes("up"), "2")
    assert within.reason_code == "WITHIN_THRESHOLD"


@settings(max_examples=300, deadline=None)
@given(base=money, quote=money, price=prices, cost=prices, up=st.booleans())
def test_intelligent_core_tier_is_never_sold(
    base: Decimal, quote: Decimal, price: Decimal, cost: Decimal, up: bool
) -> None:
    plan = plan_intelligent(
        base_free=base,
        quote_free=quote,
        quote=Quote(price),
        closes=closes("up" if up else "dn"),
        cost_avg=cost,
        instrument=QRL,
        config=INT,
    )
    if plan.action is Action.SELL:
        assert plan.quantity <= base * D("0.3")
        assert price >= cost * D("1.03")
        # only on a death cross, with base above target
        assert plan.details["ma_indicators"]["signal"] == "DEATH_CROSS" and not up
        assert plan.details["ratio"] > INT.target_ratio
    if plan.action is Action.BUY:
        assert price <= cost and plan.notional_usdt <= quote
        assert plan.details["ma_indicators"]["signal"] == "GOLDEN_CROSS" and up
        assert plan.details["ratio"] < INT.target_ratio
    if plan.action is not Action.HOLD:
        # the trade moves toward the target, never past it
        delta = abs(plan.details["delta_usdt"])
        assert plan.notional_usdt <= delta


# ---- cost / PnL --------------------------------------------------------------------------------
def test_average_cost_and_fifo_realised_pnl_from_fills() -> None:
    fills = [
        CostFill("BUY", D(100), D(1), D("0.1"), "USDT", ts=1, trade_id="a"),
        CostFill("BUY", D(100), D(2), D("0.2"), "USDT", ts=2, trade_id="b"),
        CostFill("SELL", D(150), D(3), D("0.45"), "USDT", ts=3, trade_id="c"),
    ]
    pos = position_cost(fills, asset="QRL", quote_asset="USDT", opening_cost=D("0.05"), price=D(4))
    assert pos.qty == D(50)
    assert pos.avg_cost == D("1.5015")  # (100.1 + 200.2) / 200, unchanged by the sell
    # FIFO: 100 @ 1.001 + 50 @ 2.002 = 200.2 out; proceeds 450 - 0.45
    assert pos.realised_pnl == D("449.55") - D("200.2")
    assert pos.lots == [(D(50), D("2.002"))]
    assert pos.unrealised_pnl == D(50) * (D(4) - D("1.5015"))
    assert pos.source == "fills"


def test_cost_falls_back_to_the_estimate_without_history_and_blends_unexplained_holding() -> None:
    none = position_cost([], asset="QRL", quote_asset="USDT", opening_cost=D("0.05"))
    assert none.avg_cost == D("0.05") and none.source == "estimate"
    fills = [CostFill("BUY", D(100), D("0.07"), D("0.1"), "QRL", ts=1, trade_id="a")]
    pos = position_cost(
        fills, asset="QRL", quote_asset="USDT", opening_cost=D("0.05"), holding=D("199.9")
    )
    # 99.9 QRL received for 7 USDT, 100 more held at the 0.05 estimate
    assert pos.qty == D("199.9")
    assert pos.avg_cost == (D(7) + D(5)) / D("199.9")
    assert pos.source == "fills+estimate"


def test_a_sell_beyond_known_lots_is_matched_at_the_opening_estimate() -> None:
    fills = [CostFill("SELL", D(10), D(1), ts=1, trade_id="x")]
    pos = position_cost(fills, asset="QRL", quote_asset="USDT", opening_cost=D("0.5"))
    assert pos.unmatched_qty == D(10) and pos.realised_pnl == D(5)
