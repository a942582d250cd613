"""Issue 11, S3 pure pipeline: the loss cap includes fees and is never exceeded by a rounding
floor, SPOT never spends more than its budget. Each test failed on the code before."""

from __future__ import annotations

import json
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3_strategy.config import Settings
from s3_strategy.domain import sl_tp
from s3_strategy.domain.reasons import Reason
from s3_strategy.domain.rules import RuleLintError, factors_from_docs, lint_rules
from s3_strategy.domain.sizing import size_spot
from svckit.store.seed import FixtureError, load_fixtures
from tests.conftest import FIXTURES
from tests.unit.s3.helpers import decide, engine, features, fixture, params, rule
from tradekit.enums import Market, Side
from tradekit.errors import InvalidIntent
from tradekit.instrument import Instrument

D = Decimal
FEE = D("0.0004")
BTC = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    tickSize=D(1),
    stepSize=D("0.001"),
    minNotional=D(5),
    maker_fee=D("0.0002"),
    taker_fee=FEE,
)
# One rule that scales up by 1.5 (the clamp's top): the largest position the bundle allows.
BIG = [
    rule(
        "R-BIG",
        {"f": "rv_1h", "op": "<", "v": 1},
        {"type": "size_mult", "value": 1.5},
        symbols=["BTCUSDT", "QRLUSDT"],
    )
]


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
    with pytest.raises(sl_tp.LossCapUnreachable, match=r"within 1\.2 USDT"):
        sl_tp.solve(
            BTC,
            Side.BUY,
            D(65000),
            D(2),
            d_base=D("0.2"),
            max_loss=D("1.2"),
            target_net=D(1),
            f_in=FEE,
            f_out=FEE,
        )


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
        b = sl_tp.solve(
            inst,
            side,
            entry,
            qty,
            d_base=D("1.5") * atr,
            max_loss=max_loss,
            target_net=D("0.5"),
            f_in=FEE,
            f_out=FEE,
        )
    except sl_tp.BracketError:
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


# ---- point 7: the linter -----------------------------------------------------------------------
FACTORS = factors_from_docs(fixture("factor_registry.json"))
SYMBOLS = {"BTCUSDT", "ETHUSDT", "QRLUSDT"}
LEAF = {"f": "rv_1h", "op": "<", "v": 0.5}


def lint_errors(*docs: Any) -> list[str]:
    with pytest.raises(RuleLintError) as info:
        lint_rules(list(docs), factors=FACTORS, symbols=SYMBOLS, max_depth=6)
    return info.value.errors


@pytest.mark.parametrize("v", [10**400, -(10**400), 1e300, 10**16])
def test_lint_with_huge_threshold_reports_it_with_its_path_never_raises_other_errors(
    v: float,
) -> None:
    [err] = lint_errors(rule("R-BIG", {"allOf": [LEAF, {"f": "rv_1h", "op": ">", "v": v}]}))
    assert err.startswith("R-BIG: when.allOf[1]: v must be") and "±1e+15" in err


def test_lint_with_huge_size_mult_or_factor_bound_reports_it() -> None:
    [err] = lint_errors(rule("R-M", LEAF, {"type": "size_mult", "value": 10**400}))
    assert "R-M: action.value" in err
    with pytest.raises(RuleLintError, match="factor_registry: rv_1h: max"):
        factors_from_docs([{"name": "rv_1h", "min": 0, "max": 10**400}])


@pytest.mark.parametrize("rid", ["R-1\n", "R-1\r\n", "\nR-1", "R 1", "R-1" + "x" * 64])
def test_lint_with_rule_id_not_exactly_the_pattern_is_an_error(rid: str) -> None:
    [err] = lint_errors(rule(rid, LEAF))
    assert err.startswith("rules[0].rule_id: ")


def test_lint_with_misspelled_service_is_an_error_not_a_silent_no_op() -> None:
    doc = rule("R-S", LEAF)
    doc["applies"]["services"] = ["s3-stratgy"]
    [err] = lint_errors(doc)
    assert err == "R-S: applies.services: unknown ['s3-stratgy'] (allowed: ['s3-strategy'])"


def test_lint_with_oversized_rule_stops_early_and_reports_the_limit() -> None:
    # 64 children per node, 4 levels: 16.7 M leaves if walked; the node budget stops it at once.
    node: dict[str, Any] = LEAF
    for _ in range(4):
        node = {"anyOf": [node] * 64}
    t0 = time.perf_counter()
    errs = lint_errors(rule("R-HUGE", node))
    assert time.perf_counter() - t0 < 1.0
    assert any(
        e.startswith("R-HUGE: when") and "more than 256 condition nodes" in e for e in errs
    ), errs
    [err] = lint_errors(rule("R-DESC", LEAF, description="x" * 5000))
    assert err == "R-DESC: description: longer than 1000 characters"
    doc = rule("R-SYMS", LEAF)
    doc["applies"]["symbols"] = ["BTCUSDT"] * 1000
    assert any("R-SYMS: applies.symbols: more than 64" in e for e in lint_errors(doc))


def test_lint_with_oversized_bundle_reports_the_limit() -> None:
    docs = [rule(f"R-{i}", LEAF) for i in range(501)]
    errs = lint_errors(*docs)
    assert errs == ["rules: more than 500 rules in one bundle (501)"]


def test_seed_with_400_digit_threshold_in_fixtures_is_a_fixture_error_not_a_crash(
    tmp_path: Path,
) -> None:
    for f in FIXTURES.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    rules = json.loads((FIXTURES / "strategy_rules.json").read_text())
    rules[0]["when"] = {"f": "rv_1h", "op": "<", "v": 10**400}
    (tmp_path / "strategy_rules.json").write_text(json.dumps(rules))
    with pytest.raises(FixtureError, match=r"strategy_rules\.json: invalid JSON: integer"):
        load_fixtures(tmp_path)


def test_lint_with_bundle_over_the_node_budget_reports_the_limit() -> None:
    node = {"anyOf": [{"allOf": [LEAF] * 62}] * 4}  # 253 nodes: within one rule's budget
    errs = lint_errors(*[rule(f"R-{i}", node) for i in range(25)])
    assert errs == ["rules: more than 5000 condition nodes in one bundle (reached at rules[19])"]
