"""L0 gates: each gate passes and fails with its observed value and threshold, in a fixed
order, and the first failure short-circuits with its reason code."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import get_args

import pytest

from s3_strategy.config import Settings
from s3_strategy.domain.gates import GateLimits, GateName, run_gates
from s3_strategy.domain.reasons import Reason
from tests.unit.s3.helpers import BTC, decide, engine, features, params, pre, rule
from tradekit.enums import Market

GATE_NAMES: tuple[GateName, ...] = get_args(GateName)

LIM = GateLimits(
    max_funding_abs=0.0005,
    spread_bp_limit=3.0,
    depth_top1_usdt_min=200.0,
    risk_budget_usdt=100.0,
    max_entry_margin_usdt=30.0,
    concurrent_entries=1,
    check_funding=True,
)


def test_run_gates_with_healthy_market_passes_all_five_in_order() -> None:
    gates, reason = run_gates(BTC, LIM, 0, 0.0)
    assert reason is Reason.OK
    assert [g["gate"] for g in gates] == list(GATE_NAMES)
    assert all(g["passed"] for g in gates)


@pytest.mark.parametrize(
    ("over", "entries", "in_flight", "gate", "observed", "threshold", "reason"),
    [
        (
            {"funding_next_abs": 0.0006},
            0,
            0.0,
            "funding_abs",
            0.0006,
            0.0005,
            Reason.FUNDING_TOO_HIGH,
        ),
        ({"spread_bps": 3.01}, 0, 0.0, "spread_bps", 3.01, 3.0, Reason.SPREAD_TOO_WIDE),
        (
            {"depth_top1_usdt": 199.99},
            0,
            0.0,
            "depth_top1_usdt",
            199.99,
            200.0,
            Reason.DEPTH_TOO_THIN,
        ),
        ({}, 0, 70.01, "risk_budget", 100.01, 100.0, Reason.RISK_BUDGET),
        ({}, 1, 0.0, "concurrent_entries", 1.0, 1.0, Reason.CONCURRENT_ENTRIES),
    ],
)
def test_run_gates_with_one_breach_fails_that_gate_and_stops(
    over: dict[str, float],
    entries: int,
    in_flight: float,
    gate: str,
    observed: float,
    threshold: float,
    reason: Reason,
) -> None:
    gates, got = run_gates({**BTC, **over}, LIM, entries, in_flight)
    assert got is reason
    assert gates[-1] == {
        "gate": gate,
        "passed": False,
        "observed": pytest.approx(observed),
        "threshold": threshold,
    }
    assert all(g["passed"] for g in gates[:-1])
    assert len(gates) == GATE_NAMES.index(gate) + 1  # short-circuit: later gates not run


@pytest.mark.parametrize(
    ("over", "entries", "in_flight"),
    [
        ({"funding_next_abs": 0.0005}, 0, 0.0),
        ({"spread_bps": 3.0}, 0, 0.0),
        ({"depth_top1_usdt": 200.0}, 0, 0.0),
        ({}, 0, 70.0),
        ({}, 0, 0.0),
    ],
)
def test_run_gates_with_values_on_the_limit_passes(
    over: dict[str, float], entries: int, in_flight: float
) -> None:
    _, reason = run_gates({**BTC, **over}, LIM, entries, in_flight)
    assert reason is Reason.OK


def test_run_gates_with_two_breaches_reports_the_first_in_gate_order() -> None:
    gates, reason = run_gates({**BTC, "spread_bps": 9.0, "depth_top1_usdt": 1.0}, LIM, 5, 1e9)
    assert reason is Reason.SPREAD_TOO_WIDE and len(gates) == 2


def test_run_gates_with_spot_market_skips_funding_as_not_applicable() -> None:
    spot = dataclasses.replace(LIM, check_funding=False)
    gates, reason = run_gates({"spread_bps": 1.0, "depth_top1_usdt": 1e6}, spot, 0, 0.0)
    assert reason is Reason.OK
    assert gates[0] == {
        "gate": "funding_abs",
        "passed": True,
        "observed": None,
        "threshold": 0.0005,
    }


def test_engine_with_instrument_limits_uses_them_over_env_defaults() -> None:
    eng = engine(settings=Settings(spread_bp_limit_default=Decimal(50)))
    out = decide(eng, features(spread_bps=3.5))  # BTCUSDT's own spread_bp_limit is 3
    assert out.reason is Reason.SPREAD_TOO_WIDE
    assert out.gates is not None and out.gates[1]["threshold"] == 3.0


def test_engine_with_instrument_without_limits_uses_env_defaults() -> None:
    insts = [
        {
            "symbol": "BTCUSDT",
            "base_asset": "BTC",
            "tickSize": 1,
            "stepSize": 0.001,
            "minNotional": 5,
        },
    ]
    eng = engine(
        settings=Settings(
            spread_bp_limit_default=Decimal(7), depth_top1_usdt_min_default=Decimal(999)
        ),
        instruments=insts,
        rules=[rule("R-1", {"f": "rv_1h", "op": "<", "v": 1})],
    )
    out = decide(eng, features(depth_top1_usdt=998.0))
    assert out.reason is Reason.DEPTH_TOO_THIN
    assert out.gates is not None
    assert [g["threshold"] for g in out.gates[1:3]] == [7.0, 999.0]


def test_engine_with_risk_budget_counts_in_flight_margin_plus_largest_entry() -> None:
    eng = engine(bundle_params=params(risk__budget__max_margin_in_flight_usdt=100))
    # Largest FUT entry margin = S3_MARGIN_BASE_USDT 20 × clamp max 1.5 = 30.
    assert decide(eng, margin=70.0).reason is Reason.OK
    out = decide(eng, margin=70.5)
    assert out.reason is Reason.RISK_BUDGET
    assert out.gates is not None and out.gates[-1]["observed"] == 100.5


def test_engine_with_concurrency_limit_reached_skips_concurrent_entries() -> None:
    eng = engine(settings=Settings(concurrent_entries_per_market=2))
    assert decide(eng, entries=1).reason is Reason.OK
    assert decide(eng, entries=2).reason is Reason.CONCURRENT_ENTRIES


def test_engine_with_gate_failure_runs_no_rules_and_no_ml() -> None:
    out = pre(engine(), features(funding_next_abs=0.01)).outcome
    assert out.reason is Reason.FUNDING_TOO_HIGH
    assert out.rules_fired is None and out.ml is None and out.intent is None
    assert out.message == "gate funding_abs failed"


def test_engine_with_spot_market_passes_funding_gate_without_funding_feature() -> None:
    f = {k: v for k, v in BTC.items() if not k.startswith("funding")}
    eng = engine(rules=[rule("R-1", {"f": "rv_1h", "op": "<", "v": 1})])
    out = decide(eng, f, market=Market.SPOT)
    assert out.decision == "open", out.message
