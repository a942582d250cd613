"""The pure pipeline end to end: feature checks, side, L2 table and fallback, SPOT/OCO,
brackets on/off, exec policy from the route-table band, deterministic intent ids, and bodies
that tradekit's OrderIntent (what S4 accepts) validates unchanged."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from s3_strategy.config import Settings
from s3_strategy.domain.engine import ContextError
from s3_strategy.domain.ml import MlInput, table_mult
from s3_strategy.domain.params import BundleParams, MlRow
from s3_strategy.domain.reasons import Reason
from tests.unit.s3.helpers import BTC, NOW, decide, engine, features, params, pre, rule
from tradekit.enums import Market, Side
from tradekit.intents import OrderIntent

ONE_RULE = [rule("R-1", {"f": "rv_1h", "op": "<", "v": 1}, symbols=["BTCUSDT", "QRLUSDT"])]


def s4_accepts(intent: dict[str, Any]) -> None:
    model = OrderIntent.model_validate(intent)
    assert model.model_dump(mode="json", exclude_none=True) == intent


# ---- features ---------------------------------------------------------------------------------
def test_decide_with_fresh_complete_features_opens_a_valid_fut_intent() -> None:
    out = decide(engine())
    assert (out.decision, out.reason, out.side) == ("open", Reason.OK, "BUY")
    assert out.intent is not None
    s4_accepts(out.intent)
    assert out.intent["qty"] == "0.006" and out.intent["leverage"] == 20
    # ATR·1.5 = 180 is beyond the cap once fees count: SL ≥ 64852.44… ⇒ 64853 (see brackets)
    assert out.intent["sl"] == {"type": "STOP_MARKET", "price": "64853"}
    assert out.intent["tp"] == {"type": "TAKE_PROFIT_MARKET", "price": "65378"}
    assert out.intent["created_ts"] == NOW and out.intent["intent_id"] == "sig-1"


def test_decide_with_no_feature_ts_skips_feature_missing() -> None:
    assert decide(engine(), ts=None).reason is Reason.FEATURE_MISSING


@pytest.mark.parametrize(
    "name", ["mid", "spread_bps", "depth_top1_usdt", "funding_next_abs", "atr_14", "ma7_5m"]
)
def test_decide_with_a_needed_feature_absent_skips_feature_missing(name: str) -> None:
    f = features()
    del f[name]
    out = decide(engine(), f)
    assert out.reason is Reason.FEATURE_MISSING and name in (out.message or "")


def test_decide_with_side_hint_does_not_need_the_ma_features() -> None:
    f = features()
    del f["ma7_5m"], f["ma25_5m"]
    assert decide(engine(), f, side=Side.SELL).side == "SELL"


def test_decide_with_features_older_than_max_age_skips_stale() -> None:
    out = decide(engine(), ts=NOW - 5001)
    assert out.reason is Reason.FEATURE_STALE and "5001 ms old" in (out.message or "")
    assert decide(engine(), ts=NOW - 5000).reason is Reason.OK


def test_decide_with_features_from_the_future_skips_stale_as_clock_skew() -> None:
    out = decide(engine(), ts=NOW + 6000)
    assert out.reason is Reason.FEATURE_STALE and "clock skew" in (out.message or "")


def test_decide_with_bundle_max_age_overrides_env_value() -> None:
    eng = engine(bundle_params=params(feature_max_age_ms=100), settings=Settings())
    assert decide(eng, ts=NOW - 101).reason is Reason.FEATURE_STALE


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_decide_with_non_finite_feature_skips_feature_invalid(bad: float) -> None:
    out = decide(engine(), features(spread_bps=bad))
    assert out.reason is Reason.FEATURE_INVALID and "spread_bps" in (out.message or "")


@pytest.mark.parametrize(("name", "value"), [("mid", 0.0), ("mid", -1.0), ("atr_14", 0.0)])
def test_decide_with_non_positive_price_or_atr_skips_feature_invalid(
    name: str, value: float
) -> None:
    assert decide(engine(), features(**{name: value})).reason is Reason.FEATURE_INVALID


def test_decide_with_unknown_symbol_or_market_skips_market_not_traded() -> None:
    eng = engine()
    assert decide(eng, symbol="DOGEUSDT").reason is Reason.MARKET_NOT_TRADED
    assert decide(eng, symbol="QRLUSDT").reason is Reason.MARKET_NOT_TRADED  # SPOT only


# ---- side -------------------------------------------------------------------------------------
def test_decide_with_ma7_below_ma25_and_no_hint_goes_short() -> None:
    out = decide(engine(), features(ma7_5m=64000.0))
    assert out.side == "SELL" and out.intent is not None
    assert Decimal(out.intent["sl"]["price"]) > Decimal("65000.5")
    s4_accepts(out.intent)


def test_decide_with_spot_sell_hint_or_downtrend_skips_side_not_allowed() -> None:
    eng = engine()
    assert decide(eng, market=Market.SPOT, side=Side.SELL).reason is Reason.SIDE_NOT_ALLOWED
    out = decide(eng, features(ma7_5m=1.0), market=Market.SPOT)
    assert out.reason is Reason.SIDE_NOT_ALLOWED


# ---- L2 ---------------------------------------------------------------------------------------
def test_table_mult_with_p_picks_highest_row_at_or_below() -> None:
    rows = BundleParams.model_validate(params()).ml_table
    assert [table_mult(rows, p) for p in (0.59, 0.6, 0.65, 0.75, 0.95)] == [
        None,
        Decimal(1),
        Decimal(1),
        Decimal("1.2"),
        Decimal("1.5"),
    ]


def test_decide_with_mock_score_maps_to_size_mult_one() -> None:
    out = decide(engine())
    assert out.ml == {
        "p": 0.65,
        "model_version": "mock-const-0.65",
        "fallback": False,
        "size_mult": 1.0,
    }


def test_decide_with_score_below_table_skips_ml_low_score() -> None:
    out = decide(engine(), ml=MlInput(0.3, "m"))
    assert out.reason is Reason.ML_LOW_SCORE


def test_decide_with_scorer_fallback_applies_configured_multiplier() -> None:
    eng = engine(bundle_params=params(ml={"fallback": "size_mult", "fallback_size_mult": 0.5}))
    out = decide(eng, ml=MlInput(None, "m", True, "timeout after 2 ms"))
    assert out.decision == "open"
    assert out.ml == {
        "p": None,
        "model_version": "m",
        "fallback": True,
        "error": "timeout after 2 ms",
        "size_mult": 0.5,
    }
    assert out.intent is not None and out.intent["qty"] == "0.003"


def test_decide_with_scorer_fallback_in_skip_mode_skips_ml_unavailable() -> None:
    eng = engine(bundle_params=params(ml={"fallback": "skip"}))
    out = decide(eng, ml=MlInput(None, "m", True, "boom"))
    assert out.reason is Reason.ML_UNAVAILABLE and out.ml is not None and out.ml["fallback"]


def test_decide_with_ml_and_rules_multiplies_then_clamps_total() -> None:
    t = {"f": "rv_1h", "op": "<", "v": 1}
    eng = engine(rules=[rule("A", t, {"type": "size_mult", "value": 1.4})])
    out = decide(eng, ml=MlInput(0.95, "m"))  # 1.4 × 1.5 = 2.1 → clamp 1.5
    assert out.sizing is not None
    assert (out.sizing["rules_mult"], out.sizing["ml_mult"], out.sizing["size_mult"]) == (
        1.4,
        1.5,
        1.5,
    )


# ---- sizing, brackets, policies ---------------------------------------------------------------
def test_decide_with_tiny_margin_skips_min_notional_never_bumps() -> None:
    eng = engine(settings=Settings(margin_base_usdt=Decimal("0.1"), leverage_default=1))
    out = decide(eng)
    assert out.reason is Reason.MIN_NOTIONAL and out.intent is None


def test_decide_with_brackets_disabled_emits_plain_entry() -> None:
    eng = engine(bundle_params=params(brackets={"enabled": False}))
    f = features()
    del f["atr_14"]  # not needed without a stop
    out = decide(eng, f)
    assert out.intent is not None and out.brackets is None
    assert "sl" not in out.intent and "tp" not in out.intent
    s4_accepts(out.intent)
    assert not OrderIntent.model_validate(out.intent).needs_protection


@pytest.mark.parametrize(
    ("margin", "wait", "twap"),
    [
        (Decimal(5), 1500, None),  # notional 100 → band ≤ 200
        (Decimal(20), 2000, {"slices": 2, "gap_ms": 600, "jitter_pct": "0.1"}),  # 390 → ≤ 500
        (Decimal(50), 3000, {"slices": 4, "gap_ms": 800, "jitter_pct": "0.1"}),  # 1000 → unbounded
    ],
)
def test_decide_with_notional_picks_maker_wait_and_twap_from_route_band(
    margin: Decimal, wait: int, twap: dict[str, Any] | None
) -> None:
    out = decide(engine(settings=Settings(margin_base_usdt=margin)))
    assert out.intent is not None
    policy = out.intent["exec_policy"]
    assert policy["type"] == "MAKER_TAKER" and policy["maker_wait_ms"] == wait
    assert policy.get("twap") == twap


def test_decide_with_twap_off_or_market_policy_emits_unsliced_policy() -> None:
    fut = {"type": "MAKER_TAKER", "twap": False, "taker_fallback": "chase_one_tick"}
    out = decide(engine(bundle_params=params(exec_policy={"FUT": fut})))
    assert out.intent is not None
    assert out.intent["exec_policy"] == {
        "type": "MAKER_TAKER",
        "maker_wait_ms": 2000,
        "chase_one_tick": True,
    }
    out = decide(engine(bundle_params=params(exec_policy={"FUT": {"type": "MARKET"}})))
    assert out.intent is not None and out.intent["exec_policy"] == {"type": "MARKET"}


def test_decide_with_twap_policy_takes_slices_from_band() -> None:
    out = decide(engine(bundle_params=params(exec_policy={"FUT": {"type": "TWAP"}})))
    assert out.intent is not None
    assert out.intent["exec_policy"] == {
        "type": "TWAP",
        "slices": 2,
        "gap_ms": 600,
        "jitter_pct": "0.1",
        "maker_wait_ms": 2000,
    }
    s4_accepts(out.intent)


def test_decide_spot_with_brackets_emits_oco_within_loss_budget() -> None:
    out = decide(engine(), market=Market.SPOT)
    assert out.intent is not None and out.brackets is not None
    s4_accepts(out.intent)
    assert out.intent["qty"] == "0.003" and "leverage" not in out.intent
    policy = out.intent["exec_policy"]
    assert policy["type"] == "OCO"
    tp, sl = Decimal(policy["tp_price"]), Decimal(policy["sl_price"])
    assert sl < Decimal("65000.5") < tp
    assert (Decimal("65000.5") - sl) * Decimal("0.003") <= Decimal("1.2")  # S3_MAX_LOSS_USDT
    # tp_pct 0.02 is a net target: 2 % of the quote spent, after both taker fees.
    assert Decimal(out.brackets["target_net_usdt"]) == Decimal("0.02") * Decimal("195.0015")


def test_decide_spot_with_brackets_disabled_uses_entry_policy() -> None:
    eng = engine(bundle_params=params(brackets={"enabled": False}), rules=ONE_RULE)
    out = decide(eng, market=Market.SPOT)
    assert out.intent is not None
    assert out.intent["exec_policy"] == {
        "type": "MAKER_TAKER",
        "maker_wait_ms": 1500,
        "chase_one_tick": False,
    }


def test_decide_with_same_inputs_gives_same_client_order_id_and_other_inputs_differ() -> None:
    eng = engine()

    def coid(**kw: Any) -> str:
        out = decide(eng, **kw)
        assert out.intent is not None
        return str(out.intent["client_order_id"])

    first = coid()
    assert coid() == first and first.startswith("s3-btc-")
    assert len(first) <= 32
    assert coid(ts=NOW - 99) != first
    assert coid(side=Side.SELL) != first
    assert coid(market=Market.SPOT) != first
    other = engine(bundle_params=params(tp_net_profit_pct=0.2))
    assert other.config_rev == eng.config_rev  # same label: the id follows config_rev only
    out = decide(other)
    assert out.intent is not None and out.intent["client_order_id"] == first


def test_decide_with_mid_on_half_tick_keeps_entry_as_reference_price() -> None:
    out = decide(engine())
    assert out.intent is not None and out.intent["ref_price"] == "65000.5"


def test_pre_with_gate_failure_is_not_ready_for_scoring() -> None:
    assert not pre(engine(), features(spread_bps=50.0)).ready
    assert pre(engine()).ready


# ---- building the engine ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"size_mult_clamp": [1.5, 0.5]}, "min > max"),
        ({"ml_table": []}, "at least one row"),
        (
            {"ml_table": [{"p_min": 0.5, "size_mult": 1}, {"p_min": 0.5, "size_mult": 2}]},
            "duplicate p_min",
        ),
        ({"size_mult_clamps": [0.5, 1.5]}, "Extra inputs are not permitted"),
        ({"brackets": {"enabled": "maybe"}}, "brackets.enabled"),
        ({"exec_policy": {"FUT": {"type": "ICEBERG"}}}, "exec_policy.FUT.type"),
        ({"exec_policy": {"FUT": {"route_table": "nope"}}}, "route table 'nope' is missing"),
    ],
)
def test_engine_with_invalid_params_refuses_to_build(over: dict[str, Any], needle: str) -> None:
    with pytest.raises(ContextError, match=needle):
        engine(bundle_params=params(**over))


def test_engine_with_bad_rule_refuses_to_build() -> None:
    with pytest.raises(ContextError, match="unknown feature"):
        engine(rules=[rule("R-1", {"f": "nope", "op": "<", "v": 1})])


def test_engine_with_fixture_bundle_counts_enabled_rules() -> None:
    eng = engine()
    assert eng.rules_enabled == 6 and len(eng.rule_ids) == 7
    assert eng.config_rev == "rev-test" and len(eng.ctx_rev) == 16


def test_ml_row_with_out_of_range_probability_is_rejected() -> None:
    with pytest.raises(ValueError, match="p_min"):
        MlRow(p_min=1.5, size_mult=Decimal(1))


def test_engine_with_same_content_has_same_ctx_rev_and_other_limits_differ() -> None:
    assert engine().ctx_rev == engine().ctx_rev
    assert engine(settings=Settings(max_loss_usdt=Decimal(2))).ctx_rev != engine().ctx_rev


def test_btc_helper_features_satisfy_every_fixture_rule() -> None:
    assert decide(engine(), dict(BTC)).decision == "open"
