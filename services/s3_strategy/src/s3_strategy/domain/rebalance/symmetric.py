"""Symmetric rebalance (spec 000): keep base:quote *value* at `target_ratio` (0.5 ⇒ 50:50).

    total = base·price + quote ; target = total·target_ratio ; delta = base·price − target
    deviation = |base·price / total − target_ratio|  (fraction of the portfolio)
    HOLD  price ≤ 0, empty portfolio, deviation < threshold_pct, trade < min notional (valued
          at the lower of price and bid: S4's maker BUY rests at the bid, the venue checks there),
          no balance for a trade of min size, or (fee-aware) the drift is not worth the cost
    SELL  delta > 0: qty = delta / price          BUY  delta < 0: qty = |delta| / price
    qty rounds down to the instrument's step, is capped by free balances (a BUY keeps room for
    its fee) and by `max_notional_usdt`: a capped trade is a reduced trade, named in `reduced`.

Documented case: 100 QRL @ 1 + 100 USDT, price → 2 ⇒ value 200:100, target 150 ⇒ SELL 25 QRL.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from s3_strategy.domain.rebalance.plan import (
    Action,
    FeeModel,
    HoldReason,
    Plan,
    Quote,
    drift,
    hold,
    size_trade,
    vetted,
)
from tradekit.instrument import Instrument
from tradekit.money import ZERO


class SymmetricConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = "symmetric"
    target_ratio: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    threshold_pct: Decimal = Field(default=Decimal("0.01"), ge=0, lt=1)
    min_notional_usdt: Decimal = Field(default=Decimal(5), ge=0)
    max_notional_usdt: Decimal | None = Field(default=None, gt=0)
    fee: FeeModel = Field(default_factory=FeeModel)


def plan_symmetric(
    *,
    base_free: Decimal,
    quote_free: Decimal,
    quote: Quote,
    base_locked: Decimal = ZERO,
    quote_locked: Decimal = ZERO,
    instrument: Instrument,
    config: SymmetricConfig,
) -> Plan:
    price = quote.price
    details: dict[str, object] = {
        "strategy": "symmetric",
        "symbol": instrument.symbol,
        "base_balance": base_free,
        "quote_balance": quote_free,
        "base_locked": base_locked,
        "quote_locked": quote_locked,
        "target_ratio": config.target_ratio,
        "threshold_pct": config.threshold_pct,
        "min_notional_usdt": config.min_notional_usdt,
    }
    if not price.is_finite() or price <= 0:
        return hold(HoldReason.PRICE_INVALID, f"invalid price {price}", price, details)
    delta_or_hold = drift(
        base_free=base_free,
        base_locked=base_locked,
        quote_free=quote_free,
        quote_locked=quote_locked,
        price=price,
        target_ratio=config.target_ratio,
        threshold_pct=config.threshold_pct,
        details=details,
    )
    if isinstance(delta_or_hold, Plan):
        return delta_or_hold
    delta, deviation = delta_or_hold.delta, delta_or_hold.deviation
    action = Action.SELL if delta > 0 else Action.BUY
    sized = size_trade(
        action=action,
        wanted_qty=abs(delta) / price,
        price=price,
        instrument=instrument,
        base_free=base_free,
        quote_free=quote_free,
        fee_rate=config.fee.fee_rate,
        min_notional_usdt=config.min_notional_usdt,
        max_notional_usdt=config.max_notional_usdt,
        floor_price=quote.lowest,
    )
    refused = vetted(
        sized, deviation=deviation, quote=quote, fee=config.fee, price=price, details=details
    )
    if refused is not None:
        return refused
    side = "above" if action is Action.SELL else "below"
    reason = f"{instrument.base_asset} value {side} target by {deviation:.2%}"
    if sized.reduced_by:
        reason += f" (reduced: {sized.reduced_by})"
    return Plan(action, sized.qty, price, reason, "REBALANCE", details)


__all__ = ["ZERO", "SymmetricConfig", "plan_symmetric"]
