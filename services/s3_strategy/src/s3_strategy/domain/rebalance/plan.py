"""What a rebalance planner returns, and the checks both planners share (fees, min notional,
balances). Money is Decimal throughout; quantities are rounded by the Instrument only."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tradekit.errors import RoundsToZero
from tradekit.instrument import Instrument
from tradekit.money import ZERO


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class HoldReason(StrEnum):
    """Closed list of HOLD reason codes (part of the API: `plan.reason_code`, metrics)."""

    PRICE_INVALID = "PRICE_INVALID"
    EMPTY_PORTFOLIO = "EMPTY_PORTFOLIO"
    WITHIN_THRESHOLD = "WITHIN_THRESHOLD"
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    NOT_WORTH_FEES = "NOT_WORTH_FEES"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    NO_SIGNAL = "NO_SIGNAL"
    PRICE_NOT_FAVOURABLE = "PRICE_NOT_FAVOURABLE"
    NO_TRADEABLE_POSITION = "NO_TRADEABLE_POSITION"
    # set by the service layer: an earlier rebalance order of the pair is still working, or
    # another run holds the pair (its balances are about to change)
    ORDER_IN_FLIGHT = "ORDER_IN_FLIGHT"
    RUN_IN_PROGRESS = "RUN_IN_PROGRESS"


class FeeModel(BaseModel):
    """How a planner prices a trade before planning it.

    `fee_rate` is the rate of the order type the executor will most likely end with (Maker→Taker
    falls back to taker, so the taker rate is the safe estimate). `enabled=False` turns the
    fee-aware skip off (the seeds' behaviour); min-notional is checked either way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)


class RebalanceConfig(BaseModel):
    """What both planners are configured with; `type` names the strategy in the plan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    target_ratio: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    threshold_pct: Decimal = Field(default=Decimal("0.01"), ge=0, lt=1)
    min_notional_usdt: Decimal = Field(default=Decimal(5), ge=0)
    max_notional_usdt: Decimal | None = Field(default=None, gt=0)
    fee: FeeModel = Field(default_factory=FeeModel)


@dataclass(frozen=True, slots=True)
class Quote:
    """Price inputs: `price` is what the portfolio is valued at (last or mid); bid/ask (optional)
    give the spread a taker pays."""

    price: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None

    @property
    def lowest(self) -> Decimal:
        """The lowest price an order of this plan may rest or trade at: S4's maker BUY rests at
        the bid (below `price` on a normal book), and the venue checks min notional at the
        order's own price. A valid bid below `price`, else `price`."""
        if self.bid is not None and self.bid.is_finite() and 0 < self.bid < self.price:
            return self.bid
        return self.price

    @property
    def half_spread(self) -> Decimal:
        if self.bid is None or self.ask is None or self.bid <= 0 or self.ask < self.bid:
            return ZERO
        return (self.ask - self.bid) / 2


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    quantity: Decimal
    price: Decimal
    reason: str
    reason_code: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def notional_usdt(self) -> Decimal:
        return self.quantity * self.price

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "quantity": self.quantity,
            "notional_usdt": self.notional_usdt,
            "price": self.price,
            "reason": self.reason,
            "reason_code": self.reason_code,
            **self.details,
        }


def hold(code: HoldReason, reason: str, price: Decimal, details: dict[str, Any]) -> Plan:
    return Plan(Action.HOLD, ZERO, price, reason, code.value, details)


@dataclass(frozen=True, slots=True)
class Drift:
    delta: Decimal  # base value minus its target (USDT; > 0: too much base)
    deviation: Decimal  # |base share - target ratio|


def drift(
    *,
    base_free: Decimal,
    base_locked: Decimal,
    quote_free: Decimal,
    quote_locked: Decimal,
    price: Decimal,
    config: RebalanceConfig,
    details: dict[str, Any],
) -> Drift | Plan:
    """How far the portfolio's base value is from its target, or the
    HOLD plan when there is nothing to rebalance or the deviation is within the threshold. Valued
    on totals (an open order's locked funds are still ours); traded from free balances only.
    Records its figures in `details`."""
    base_value = (base_free + base_locked) * price
    total = base_value + quote_free + quote_locked
    if total <= 0:
        return hold(HoldReason.EMPTY_PORTFOLIO, "no base nor quote to rebalance", price, details)
    target_ratio, threshold_pct = config.target_ratio, config.threshold_pct
    target_value = total * target_ratio
    delta = base_value - target_value
    ratio = base_value / total
    deviation = abs(ratio - target_ratio)
    details.update(
        base_value=base_value,
        total_value=total,
        target_value=target_value,
        ratio=ratio,
        deviation_pct=deviation,
        delta_usdt=delta,
    )
    if deviation < threshold_pct:
        return hold(
            HoldReason.WITHIN_THRESHOLD,
            f"deviation {deviation:.4%} below threshold {threshold_pct:.2%}",
            price,
            details,
        )
    return Drift(delta, deviation)


def trade(
    action: Action,
    *,
    move: Drift,
    quote: Quote,
    instrument: Instrument,
    base_free: Decimal,
    quote_free: Decimal,
    config: RebalanceConfig,
    details: dict[str, Any],
    reason: str,
    cap_qty: Decimal | None = None,
) -> Plan:
    """The plan moving `move.delta` of value, or the HOLD that stops it. The quantity rounds
    down to the step and is capped by `cap_qty` (the tradeable tier), by max notional and by the
    free balances (fees included on a BUY); it must then meet min notional (ours and the
    venue's) at `quote.lowest`, the lowest price the order may be sent at, so that the venue
    never refuses it for size; and the drift it removes must be worth the fee plus half the
    spread (`worth_it`). A capped trade is a reduced one, named in `reduced` and the reason.
    The caller has checked the price (finite, > 0)."""
    price = quote.price
    qty = abs(move.delta) / price
    reduced: str | None = None
    if cap_qty is not None and qty > cap_qty:
        qty, reduced = cap_qty, "tier"
    if config.max_notional_usdt is not None and qty * price > config.max_notional_usdt:
        qty, reduced = config.max_notional_usdt / price, "max_notional"
    if action is Action.SELL and qty > base_free:
        qty, reduced = base_free, "balance"
    if action is Action.BUY:
        # A BUY pays the fee on top (quote-fee venues) and may fill a little above `price`.
        affordable = quote_free / (price * (1 + config.fee.fee_rate))
        if qty > affordable:
            qty, reduced = affordable, "balance"
    try:
        qty = instrument.round_qty(qty, "down") if qty > 0 else ZERO
    except RoundsToZero:
        qty = ZERO
    details["reduced"] = reduced
    floor, at = max(config.min_notional_usdt, instrument.minNotional), quote.lowest
    if qty <= 0 or qty * at < floor or qty < instrument.minQty:
        if reduced == "balance":
            return hold(
                HoldReason.INSUFFICIENT_BALANCE,
                "insufficient balance for a trade of min size",
                price,
                details,
            )
        return hold(
            HoldReason.BELOW_MIN_NOTIONAL,
            f"trade of {(qty * at).normalize()} USDT is below min notional {floor}",
            price,
            details,
        )
    ok, costs = worth_it(qty=qty, deviation=move.deviation, quote=quote, fee=config.fee)
    details.update(costs)
    if not ok:
        return hold(
            HoldReason.NOT_WORTH_FEES,
            "drift removed is worth less than the estimated fee plus half the spread",
            price,
            details,
        )
    if reduced:
        reason += f" (reduced: {reduced})"
    return Plan(action, qty, price, reason, "REBALANCE", details)


def worth_it(
    *, qty: Decimal, deviation: Decimal, quote: Quote, fee: FeeModel
) -> tuple[bool, dict[str, Any]]:
    """Fee-aware check. Moving `qty` removes a drift of `deviation` (fraction of the portfolio
    off target) on `qty * price` of value: the value at stake is `qty * price * deviation`
    (what the drift costs if the price reverts by the deviation). The trade is planned only
    when that exceeds the estimated fee plus half the spread, i.e. when the deviation is larger
    than the round cost rate; otherwise it would pay fees to churn."""
    fee_est, spread_cost = qty * quote.price * fee.fee_rate, qty * quote.half_spread
    benefit = qty * quote.price * deviation
    info = {
        "fee_estimate_usdt": fee_est,
        "spread_cost_usdt": spread_cost,
        "drift_value_usdt": benefit,
    }
    if not fee.enabled:
        return True, info
    return benefit > fee_est + spread_cost, info
