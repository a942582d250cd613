"""The decision pipeline as pure functions: features → L0 gates → sizing → intent fields.

No I/O here (DESIGN.md §5.1). Gates deny with a reason from a closed list and never raise.
Issue "S3 strategy engine" deepens this (rule DSL, ML score, SL/TP); the walking skeleton keeps
the same shape so that each step slots in without changing the service layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from tradekit.enums import Market, Side
from tradekit.errors import InvalidIntent
from tradekit.instrument import Instrument


class Reason(StrEnum):
    """Closed list of decision reasons (every skip has one)."""

    OK = "OK"
    FEATURE_MISSING = "FEATURE_MISSING"
    FEATURE_STALE = "FEATURE_STALE"
    FUNDING_TOO_HIGH = "FUNDING_TOO_HIGH"
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    DEPTH_TOO_THIN = "DEPTH_TOO_THIN"
    CONCURRENT_ENTRIES = "CONCURRENT_ENTRIES"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    DUPLICATE_DECISION = "DUPLICATE_DECISION"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str
    passed: bool
    observed: float | None
    threshold: float

    def as_dict(self) -> dict[str, object]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "observed": self.observed,
            "threshold": self.threshold,
        }


@dataclass(frozen=True, slots=True)
class Limits:
    max_funding_abs: Decimal
    spread_bp_limit: Decimal
    depth_top1_usdt_min: Decimal
    concurrent_entries_per_market: int
    feature_max_age_ms: int


@dataclass(frozen=True, slots=True)
class SizingParams:
    margin_base_usdt: Decimal
    leverage: int
    spot_quote_budget_usdt: Decimal


@dataclass(slots=True)
class Decision:
    open: bool
    reason: Reason
    gates: list[GateResult] = field(default_factory=list)
    side: Side | None = None
    qty: Decimal | None = None
    price: Decimal | None = None
    notional: Decimal | None = None
    message: str | None = None


REQUIRED = ("mid", "spread_bps", "depth_top1_usdt")


def check_features(
    features: dict[str, float], ts: int | None, now_ms: int, limits: Limits
) -> Decision | None:
    missing = [f for f in REQUIRED if f not in features]
    if missing or ts is None:
        return Decision(False, Reason.FEATURE_MISSING, message=f"missing: {missing or ['ts']}")
    age = now_ms - ts
    if age > limits.feature_max_age_ms:
        return Decision(
            False,
            Reason.FEATURE_STALE,
            message=f"features are {age} ms old (max {limits.feature_max_age_ms})",
        )
    return None


def run_gates(
    features: dict[str, float], limits: Limits, open_entries: int
) -> tuple[list[GateResult], Reason]:
    """L0 gates in a fixed order; the first failure short-circuits."""
    funding = features.get("funding_next_abs", abs(features.get("funding_rate", 0.0)))
    checks: list[tuple[str, float | None, float, bool, Reason]] = [
        ("funding_abs", funding, float(limits.max_funding_abs),
         funding <= float(limits.max_funding_abs), Reason.FUNDING_TOO_HIGH),
        ("spread_bps", features["spread_bps"], float(limits.spread_bp_limit),
         features["spread_bps"] <= float(limits.spread_bp_limit), Reason.SPREAD_TOO_WIDE),
        ("depth_top1_usdt", features["depth_top1_usdt"], float(limits.depth_top1_usdt_min),
         features["depth_top1_usdt"] >= float(limits.depth_top1_usdt_min), Reason.DEPTH_TOO_THIN),
        ("concurrent_entries", float(open_entries), float(limits.concurrent_entries_per_market),
         open_entries < limits.concurrent_entries_per_market, Reason.CONCURRENT_ENTRIES),
    ]  # fmt: skip
    results: list[GateResult] = []
    for name, observed, threshold, passed, reason in checks:
        results.append(GateResult(name, passed, observed, threshold))
        if not passed:
            return results, reason
    return results, Reason.OK


def choose_side(features: dict[str, float], hint: Side | None) -> Side:
    if hint is not None:
        return hint
    ma7, ma25 = features.get("ma7_5m"), features.get("ma25_5m")
    if ma7 is not None and ma25 is not None and ma7 < ma25:
        return Side.SELL
    return Side.BUY


def size(
    market: Market, inst: Instrument, price: Decimal, params: SizingParams, size_mult: Decimal
) -> tuple[Decimal, Decimal]:
    """FUT: margin·mult·leverage/price rounded to step (nearest); SPOT: floor(budget/price).
    Raises InvalidIntent (→ MIN_NOTIONAL) rather than bumping a too-small order."""
    if market is Market.FUT:
        notional = params.margin_base_usdt * size_mult * params.leverage
        qty = inst.round_qty(notional / price, "nearest")
    else:
        qty = inst.round_qty(params.spot_quote_budget_usdt * size_mult / price, "down")
    return qty, inst.check_notional(qty, price)


def decide(
    *,
    market: Market,
    inst: Instrument,
    features: dict[str, float],
    feature_ts: int | None,
    now_ms: int,
    limits: Limits,
    sizing: SizingParams,
    open_entries: int,
    side_hint: Side | None,
) -> Decision:
    early = check_features(features, feature_ts, now_ms, limits)
    if early is not None:
        return early
    gates, reason = run_gates(features, limits, open_entries)
    if reason is not Reason.OK:
        return Decision(False, reason, gates, message=f"gate {gates[-1].gate} failed")
    side = choose_side(features, side_hint)
    price = Decimal(repr(features["mid"]))
    try:
        qty, notional = size(market, inst, price, sizing, Decimal(1))
    except InvalidIntent as exc:
        return Decision(False, Reason.MIN_NOTIONAL, gates, side=side, message=str(exc))
    return Decision(True, Reason.OK, gates, side=side, qty=qty, price=price, notional=notional)
