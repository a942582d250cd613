"""Issue 11, S3 pure pipeline: the loss cap includes fees and is never exceeded by a rounding
floor, SPOT never spends more than its budget. Each test failed on the code before."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3_strategy.config import Settings
from s3_strategy.domain import brackets as br
from s3_strategy.domain.reasons import Reason
from s3_strategy.domain.sizing import size_spot
from tests.unit.s3.helpers import decide, engine, features, params, rule
from tradekit.enums import Market, Side
from tradekit.errors import InvalidIntent
from tradekit.instrument import Instrument

D = Decimal
FEE = D("0.0004")
BTC = Instrument(
    symbol="BTCUSDT", base_asset="BTC", tickSize=D(1), stepSize=D("0.001"), minNotional=D(5),
    maker_fee=D("0.0002"), taker_fee=FEE,
)  # fmt: skip
# One rule that scales up by 1.5 (the clamp's top): the largest position the bundle allows.
BIG = [rule("R-BIG", {"f": "rv_1h", "op": "<", "v": 1}, {"type": "size_mult", "value": 1.5},
            symbols=["BTCUSDT", "QRLUSDT"])]  # fmt: skip


def loss_with_fees(side: Side, entry: Decimal, sl: Decimal, qty: Decimal) -> Decimal:
    gross = (entry - sl) * qty if side is Side.BUY else (sl - entry) * qty
    return gross + qty * entry * FEE + qty * sl * FEE


# ---- point 4: the loss at the stop, fees included, is within S3_MAX_LOSS_USDT ---------------
def test_decide_with_largest_fut_position_keeps_loss_at_stop_with_fees_within_cap() -> None:
    out = decide(engine(rules=BIG), features(atr_14=400.0))  # ATR·1.5 far above the cap
    assert out.decision == "open", out
    assert out.sizing is not None and out.brackets is not None
    entry, qty, sl = D(out.sizing["entry"]), D(out.sizing["qty"]), D(out.brackets["sl"])
    assert loss_with_fees(Side.BUY, entry, sl, qty) <= D("1.2")  # was 1.62 at qty 0.009
    assert D(out.brackets["loss_at_sl_usdt"]) == loss_with_fees(Side.BUY, entry, sl, qty)


def test_decide_with_cap_below_the_fees_skips_max_loss_unreachable_never_opens() -> None:
    out = decide(engine(settings=Settings(max_loss_usdt=D("0.2"))))  # fees alone ≈ 0.31
    assert (out.decision, out.reason) == ("skip", Reason.MAX_LOSS_UNREACHABLE), out
    assert out.intent is None and "0.2" in str(out.message)


def test_solve_with_cap_under_one_tick_times_qty_raises_instead_of_a_one_tick_floor() -> None:
    # 2 BTC on a 1 USDT tick: one tick already loses 2 USDT (+ 104 of fees) against a 1.2 cap.
    with pytest.raises(br.LossCapUnreachable, match=r"within 1\.2 USDT"):
        br.solve(BTC, Side.BUY, D(65000), D(2), d_base=D("0.2"), max_loss=D("1.2"),
                 target_net=D(1), f_in=FEE, f_out=FEE)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    side=st.sampled_from([Side.BUY, Side.SELL]),
    tick=st.sampled_from([D("0.0001"), D("0.01"), D(1), D(5)]),
    price=st.decimals(min_value=D("0.05"), max_value=D(100_000), places=4),
    qty=st.decimals(min_value=D("0.001"), max_value=D(1000), places=3),
    atr=st.decimals(min_value=D(0), max_value=D(5000), places=3),
    max_loss=st.decimals(min_value=D("0.1"), max_value=D(50), places=2),
)
def test_solve_with_random_inputs_never_exceeds_the_cap_with_fees(
    side: Side, tick: Decimal, price: Decimal, qty: Decimal, atr: Decimal, max_loss: Decimal
) -> None:
    inst = BTC.model_copy(update={"tickSize": tick})
    entry = inst.round_price(price, "down")
    assume(entry > 2 * tick)
    try:
        b = br.solve(inst, side, entry, qty, d_base=D("1.5") * atr, max_loss=max_loss,
                     target_net=D("0.5"), f_in=FEE, f_out=FEE)  # fmt: skip
    except br.BracketError:
        return  # a skip with a reason, never an open
    assert loss_with_fees(side, entry, b.sl, qty) <= max_loss
    assert (b.sl < entry) if side is Side.BUY else (b.sl > entry)


# ---- point 8: SPOT never spends more than its quote budget ------------------------------------
def test_decide_spot_with_size_mult_above_one_spends_at_most_the_budget_with_fee() -> None:
    eng = engine(rules=BIG)
    out = decide(eng, market=Market.SPOT)
    assert out.decision == "open", out
    assert out.sizing is not None and out.sizing["size_mult"] == 1.5
    spent = D(out.sizing["notional_usdt"]) * (1 + FEE)
    assert spent <= D(params()["spot_quote_budget_usdt"])  # was 292.5 against 200


@settings(max_examples=300, deadline=None)
@given(
    price=st.decimals(min_value=D("0.01"), max_value=D(100_000), places=2),
    mult=st.decimals(min_value=D("0.5"), max_value=D("1.5"), places=2),
    budget=st.decimals(min_value=D(10), max_value=D(5000), places=2),
)
def test_size_spot_with_any_multiplier_never_spends_over_budget_with_fee(
    price: Decimal, mult: Decimal, budget: Decimal
) -> None:
    inst = BTC.model_copy(update={"tickSize": D("0.01"), "minNotional": D(0)})
    try:
        s = size_spot(inst, price, budget, mult, FEE)
    except InvalidIntent:
        return  # an explicit skip (MIN_NOTIONAL)
    assert s.notional * (1 + FEE) <= budget
