"""Symmetric rebalance (spec 000): keep base:quote *value* at `target_ratio` (0.5 ⇒ 50:50).

    total = base·price + quote ; target = total·target_ratio ; delta = base·price − target
    deviation = |base·price / total − target_ratio|  (fraction of the portfolio)
    HOLD  price ≤ 0, empty portfolio, deviation < threshold_pct, trade < min notional (valued
          at the lower of price and bid: S4's maker BUY rests at the bid, the venue checks there),
          no balance for a trade of min size, or (fee-aware) the drift is not worth the cost
    SELL  delta > 0: qty = delta / price          BUY  delta < 0: qty = |delta| / price
    (rounded and capped by `plan.trade`).

Documented case: 100 QRL @ 1 + 100 USDT, price → 2 ⇒ value 200:100, target 150 ⇒ SELL 25 QRL.
"""

from __future__ import annotations

from decimal import Decimal

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


class SymmetricConfig(RebalanceConfig):
    type: str = "symmetric"


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
        "strategy": config.type,
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
    action = Action.SELL if move.delta > 0 else Action.BUY
    side = "above" if action is Action.SELL else "below"
    return trade(
        action,
        move=move,
        quote=quote,
        instrument=instrument,
        base_free=base_free,
        quote_free=quote_free,
        config=config,
        details=details,
        reason=f"{instrument.base_asset} value {side} target by {move.deviation:.2%}",
    )


__all__ = ["ZERO", "SymmetricConfig", "plan_symmetric"]
