"""Intelligent rebalance (spec 003): the symmetric target, traded only with the trend and the cost.

    MA_short = mean of the last 7 five-minute closes, MA_long = mean of the last 25
    signal  GOLDEN_CROSS when MA_short > MA_long, DEATH_CROSS when below, NEUTRAL otherwise
            (or when |strength| < min_signal_strength_pct); strength = (MA_s − MA_l)/MA_l · 100
    tiers   core 70 % of the base holding (never traded), swing 20 %, active 10 %;
            tradeable = swing + active (30 %)
    BUY     golden cross AND base value below target AND price ≤ average cost AND USDT free
    SELL    death cross AND base value above target AND price ≥ 1.03 · average cost;
            quantity at most the tradeable part of the holding
    HOLD    otherwise, with the reason: fewer than 25 closes, no/contrary signal, within
            threshold, price not favourable, nothing tradeable, min notional, fees.
Quantities move toward the target (|delta| / price) within those caps, rounded down to the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, model_validator

from s3_strategy.domain.rebalance.plan import (
    Action,
    HoldReason,
    Plan,
    Quote,
    RebalanceConfig,
    drift,
    hold,
    trade,
)
from tradekit.instrument import Instrument
from tradekit.money import ZERO


class Signal(StrEnum):
    GOLDEN_CROSS = "GOLDEN_CROSS"
    DEATH_CROSS = "DEATH_CROSS"
    NEUTRAL = "NEUTRAL"


class IntelligentConfig(RebalanceConfig):
    type: str = "intelligent"
    ma_short: int = Field(default=7, ge=1)
    ma_long: int = Field(default=25, ge=2)
    min_signal_strength_pct: Decimal = Field(default=ZERO, ge=0)
    core_pct: Decimal = Field(default=Decimal("0.7"), ge=0, le=1)
    swing_pct: Decimal = Field(default=Decimal("0.2"), ge=0, le=1)
    active_pct: Decimal = Field(default=Decimal("0.1"), ge=0, le=1)
    sell_profit_mult: Decimal = Field(default=Decimal("1.03"), gt=0)

    @model_validator(mode="after")
    def _check(self) -> IntelligentConfig:
        if self.ma_short >= self.ma_long:
            raise ValueError("ma_short must be shorter than ma_long")
        if self.core_pct + self.swing_pct + self.active_pct != 1:
            raise ValueError("core_pct + swing_pct + active_pct must be 1")
        return self


def moving_average(closes: Sequence[Decimal], n: int) -> Decimal:
    window = closes[-n:]
    return sum(window, ZERO) / len(window)


def ma_signal(
    closes: Sequence[Decimal], config: IntelligentConfig
) -> tuple[Decimal, Decimal, Signal, Decimal]:
    ma_s = moving_average(closes, config.ma_short)
    ma_l = moving_average(closes, config.ma_long)
    strength = (ma_s - ma_l) / ma_l * 100 if ma_l > 0 else ZERO
    if abs(strength) <= config.min_signal_strength_pct or ma_s == ma_l:
        sig = Signal.NEUTRAL
    else:
        sig = Signal.GOLDEN_CROSS if ma_s > ma_l else Signal.DEATH_CROSS
    return ma_s, ma_l, sig, strength


def plan_intelligent(
    *,
    base_free: Decimal,
    quote_free: Decimal,
    quote: Quote,
    base_locked: Decimal = ZERO,
    quote_locked: Decimal = ZERO,
    closes: Sequence[Decimal],
    cost_avg: Decimal,
    instrument: Instrument,
    config: IntelligentConfig,
) -> Plan:
    price = quote.price
    holding = base_free + base_locked
    core = holding * config.core_pct
    tiers = {
        "core": core,
        "swing": holding * config.swing_pct,
        "active": holding * config.active_pct,
        "tradeable": holding - core,
    }
    details: dict[str, object] = {
        "strategy": config.type,
        "symbol": instrument.symbol,
        "base_balance": base_free,
        "quote_balance": quote_free,
        "base_locked": base_locked,
        "quote_locked": quote_locked,
        "cost_avg": cost_avg,
        "target_ratio": config.target_ratio,
        "threshold_pct": config.threshold_pct,
        "position_tiers": tiers,
        "bars": len(closes),
    }
    if not price.is_finite() or price <= 0:
        return hold(HoldReason.PRICE_INVALID, f"invalid price {price}", price, details)
    if len(closes) < config.ma_long or any(c <= 0 for c in closes[-config.ma_long :]):
        return hold(
            HoldReason.INSUFFICIENT_DATA,
            f"{len(closes)} closes, {config.ma_long} valid ones needed",
            price,
            details,
        )
    ma_s, ma_l, sig, strength = ma_signal(closes, config)
    price_vs_cost = (price - cost_avg) / cost_avg * 100 if cost_avg > 0 else None
    details["ma_indicators"] = {
        "ma_short": ma_s,
        "ma_long": ma_l,
        "signal": sig.value,
        "signal_strength": strength,
    }
    details["signal_validation"] = {
        "ma_short": ma_s,
        "ma_long": ma_l,
        "price_vs_cost": price_vs_cost,
    }
    move = drift(
        base_free=base_free,
        base_locked=base_locked,
        quote_free=quote_free,
        quote_locked=quote_locked,
        price=price,
        config=config,
        details=details,
    )
    if isinstance(move, Plan):
        return move
    below_target = move.delta < 0
    if sig is Signal.NEUTRAL:
        return hold(HoldReason.NO_SIGNAL, "no clear MA signal", price, details)
    if sig is Signal.GOLDEN_CROSS and not below_target:
        return hold(
            HoldReason.NO_SIGNAL, "golden cross but base already at/above target", price, details
        )
    if sig is Signal.DEATH_CROSS and below_target:
        return hold(
            HoldReason.NO_SIGNAL, "death cross but base already at/below target", price, details
        )
    if sig is Signal.GOLDEN_CROSS:
        if cost_avg <= 0 or price > cost_avg:
            return hold(
                HoldReason.PRICE_NOT_FAVOURABLE,
                f"price {price} above average cost {cost_avg}",
                price,
                details,
            )
        if quote_free <= 0:
            return hold(HoldReason.INSUFFICIENT_BALANCE, "no USDT available", price, details)
        action, cap = Action.BUY, None
        reason = "Golden cross + base below target + price favourable"
    else:
        floor = cost_avg * config.sell_profit_mult
        if cost_avg <= 0 or price < floor:
            return hold(
                HoldReason.PRICE_NOT_FAVOURABLE,
                f"price {price} below {config.sell_profit_mult}× average cost ({floor})",
                price,
                details,
            )
        if tiers["tradeable"] <= 0:
            return hold(
                HoldReason.NO_TRADEABLE_POSITION, "nothing outside the core tier", price, details
            )
        action, cap = Action.SELL, tiers["tradeable"]
        reason = "Death cross + base above target + price ≥ 1.03× cost"
    return trade(
        action,
        move=move,
        quote=quote,
        instrument=instrument,
        base_free=base_free,
        quote_free=quote_free,
        config=config,
        details=details,
        reason=reason,
        cap_qty=cap,
    )
