"""tradekit: side-aware rounding, intent contracts (spec §D1 bodies), deterministic ids."""

from __future__ import annotations

import re
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tradekit.enums import Side
from tradekit.errors import BelowMinNotional, RoundsToZero
from tradekit.ids import (
    CLIENT_ORDER_ID_PATTERN,
    child_order_id,
    decision_client_order_id,
    parent_of,
)
from tradekit.instrument import Instrument
from tradekit.intents import MakerTakerPolicy, OcoPolicy, OrderIntent

BTC = Instrument(
    symbol="BTCUSDT", base_asset="BTC", tickSize=D(1), stepSize=D("0.001"), minNotional=D(5)
)
FUT_BODY: dict[str, Any] = {
    "intent_id": "uuid",
    "market": "FUT",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": 0.002,
    "exec_policy": {"maker_wait_ms": 2000, "twap": {"slices": 2, "gap_ms": 600}},
    "sl": {"type": "STOP_MARKET", "price": 64800},
    "tp": {"type": "TAKE_PROFIT_MARKET", "target": "net_profit_usdt", "value": 2.0},
    "client_order_id": "s3-btc-1",
    "reduce_only": False,
}
SPOT_BODY: dict[str, Any] = {
    "intent_id": "uuid",
    "market": "SPOT",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": 0.003,
    "exec_policy": {"type": "OCO", "tp_price": 67000, "sl_price": 64500},
    "client_order_id": "s3-btc-2",
}


def test_round_qty_with_default_mode_floors_to_step() -> None:
    assert BTC.round_qty(D("0.0029")) == D("0.002")
    assert BTC.round_qty(D("0.0025"), "nearest") == D("0.002")  # banker's on exact half
    assert BTC.round_qty(D("0.00251"), "nearest") == D("0.003")


def test_round_qty_with_positive_qty_below_step_raises() -> None:
    with pytest.raises(RoundsToZero, match="rounds to zero"):
        BTC.round_qty(D("0.0009"))


def test_check_notional_with_too_small_order_raises() -> None:
    with pytest.raises(BelowMinNotional):
        BTC.check_notional(D("0.001"), D(4000))
    assert BTC.check_notional(D("0.001"), D(65000)) == D(65)


def test_price_rounding_with_side_is_passive_or_protective() -> None:
    p = D("64800.4")
    assert BTC.limit_price(Side.BUY, p) == D(64800)
    assert BTC.limit_price(Side.SELL, p) == D(64801)
    assert BTC.exit_price(Side.BUY, p) == D(64801)  # long stop moves towards entry
    assert BTC.exit_price(Side.SELL, p) == D(64800)


@given(
    qty=st.decimals(min_value=D("0.001"), max_value=D(100), places=6),
    step=st.sampled_from([D("0.001"), D("0.01"), D(1), D("0.5")]),
)
def test_round_qty_with_any_input_is_a_multiple_of_step_not_above_input(qty: D, step: D) -> None:
    inst = BTC.model_copy(update={"stepSize": step})
    try:
        r = inst.round_qty(qty)
    except RoundsToZero:
        assert qty < step
        return
    assert r % step == 0 and r <= qty and qty - r < step


def test_intent_with_spec_fut_body_parses_with_maker_taker_policy() -> None:
    intent = OrderIntent.model_validate(FUT_BODY)
    assert isinstance(intent.exec_policy, MakerTakerPolicy)
    assert intent.qty == D("0.002")  # float 0.002 becomes the exact decimal
    assert intent.exec_policy.twap is not None and intent.exec_policy.twap.slices == 2
    assert intent.needs_protection


def test_intent_with_spec_spot_oco_body_parses_with_oco_policy() -> None:
    intent = OrderIntent.model_validate(SPOT_BODY)
    assert isinstance(intent.exec_policy, OcoPolicy)
    assert intent.exec_policy.tp_price == D(67000)


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"qty": 0}, "qty"),
        ({"qty": -1}, "qty"),
        ({"qty": "abc"}, "qty"),
        ({"side": "HOLD"}, "side"),
        ({"market": "OPTIONS"}, "market"),
        ({"client_order_id": "s3/btc/{x}"}, "client_order_id"),
        ({"client_order_id": "x" * 33}, "client_order_id"),
        ({"exec_policy": {"type": "ICEBERG"}}, "exec_policy"),
        ({"surprise": 1}, "surprise"),
        (
            {
                "sl": {"type": "STOP_MARKET", "price": 70000},
                "tp": {"type": "TAKE_PROFIT_MARKET", "price": 60000},
            },
            "tp.price > sl.price",
        ),
    ],
)
def test_intent_with_bad_field_is_rejected_naming_it(patch: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle.replace("{", r"\{").replace("(", r"\(")):
        OrderIntent.model_validate({**FUT_BODY, **patch})


def test_intent_with_missing_field_is_rejected_naming_it() -> None:
    body = {k: v for k, v in FUT_BODY.items() if k != "client_order_id"}
    with pytest.raises(ValidationError, match="client_order_id"):
        OrderIntent.model_validate(body)


def test_spot_oco_with_inverted_prices_is_rejected() -> None:
    bad = {**SPOT_BODY, "exec_policy": {"type": "OCO", "tp_price": 64000, "sl_price": 66000}}
    with pytest.raises(ValidationError, match="tp_price > sl_price"):
        OrderIntent.model_validate(bad)


def test_decision_client_order_id_with_same_inputs_is_stable_and_valid() -> None:
    a = decision_client_order_id(
        svc="s3", symbol="BTCUSDT", side="BUY", feature_ts_ms=1_700_000_000_123, config_rev="r1"
    )
    b = decision_client_order_id(
        svc="s3", symbol="BTCUSDT", side="BUY", feature_ts_ms=1_700_000_000_123, config_rev="r1"
    )
    c = decision_client_order_id(
        svc="s3", symbol="BTCUSDT", side="BUY", feature_ts_ms=1_700_000_000_123, config_rev="r2"
    )
    assert a == b != c
    assert a.startswith("s3-btc-") and re.fullmatch(CLIENT_ORDER_ID_PATTERN, a)
    child = child_order_id(a, 12)
    assert len(child) <= 36 and parent_of(child) == (a, 12)
