"""Instruments and the only place where prices and quantities are rounded to exchange filters.

Rounding is side-aware, because the safe direction depends on what the price is for:

* a resting limit price rounds *passively* (BUY down, SELL up): never pay more than asked;
* a stop-loss rounds *protectively*, towards the entry (long SL up, short SL down), so the loss
  at the stop never exceeds the budget it was computed from;
* a take-profit rounds *away* from the entry (long TP up, short TP down), so the profit target
  it was solved for still holds after rounding;
* quantities round down unless a caller explicitly asks for nearest (S3's FUT sizing, spec C3).

A non-zero quantity that rounds to zero, or a notional below minNotional, raises; callers turn
that into an explicit skip/deny, never a silent bump.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tradekit.enums import Market, Side
from tradekit.errors import BelowMinNotional, RoundsToZero
from tradekit.money import ZERO

RoundMode = Literal["down", "up", "nearest"]
_MODES = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_EVEN}

PositiveDecimal = Annotated[Decimal, Field(gt=0)]


def round_to_increment(value: Decimal, increment: Decimal, mode: RoundMode) -> Decimal:
    """Round `value` to a multiple of `increment` (exact Decimal arithmetic)."""
    units = (value / increment).to_integral_value(rounding=_MODES[mode])
    return (units * increment).quantize(increment) if increment < 1 else units * increment


class Instrument(BaseModel):
    """One tradable symbol: exchange filters plus S3's per-instrument gate limits (spec §G)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(pattern=r"^[A-Z0-9]{2,20}$")
    base_asset: str
    quote_asset: str = "USDT"
    markets: tuple[Market, ...] = (Market.FUT, Market.SPOT)
    tickSize: PositiveDecimal
    stepSize: PositiveDecimal
    minNotional: Decimal = Field(ge=0)
    minQty: Decimal = Field(default=ZERO, ge=0)
    maxQty: Decimal | None = None
    # Risk limits of one order (S4 pre-trade), beside the exchange filters: a fat finger is
    # refused by us, not discovered at the venue's margin limit.
    max_order_qty: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_order_notional_usdt: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    spread_bp_limit: Decimal | None = None
    depth_top1_usdt_min: Decimal | None = None
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0004")
    price_precision: int | None = None
    qty_precision: int | None = None

    # ---- quantities -------------------------------------------------------------------------
    def round_qty(self, qty: Decimal, mode: RoundMode = "down") -> Decimal:
        """Round to stepSize; raises RoundsToZero when a positive qty becomes zero."""
        rounded = round_to_increment(qty, self.stepSize, mode)
        if qty > 0 and rounded <= 0:
            raise RoundsToZero(
                f"{self.symbol}: qty {qty} rounds to zero on stepSize {self.stepSize}",
                field="qty",
            )
        return rounded

    def is_on_step(self, qty: Decimal) -> bool:
        return qty % self.stepSize == 0

    def is_on_tick(self, price: Decimal) -> bool:
        return price % self.tickSize == 0

    def check_notional(self, qty: Decimal, price: Decimal) -> Decimal:
        """Return qty*price, raising BelowMinNotional when it is below the filter."""
        notional = qty * price
        if notional < self.minNotional:
            raise BelowMinNotional(
                f"{self.symbol}: notional {notional.normalize()} below minNotional "
                f"{self.minNotional}",
                field="qty",
            )
        if qty < self.minQty:
            raise BelowMinNotional(f"{self.symbol}: qty {qty} below minQty {self.minQty}")
        return notional

    # ---- prices -----------------------------------------------------------------------------
    def round_price(self, price: Decimal, mode: RoundMode) -> Decimal:
        return round_to_increment(price, self.tickSize, mode)

    def limit_price(self, side: Side, price: Decimal) -> Decimal:
        """Passive rounding for a resting order: BUY rounds down, SELL rounds up."""
        return self.round_price(price, "down" if side is Side.BUY else "up")

    def exit_price(self, position_side: Side, price: Decimal) -> Decimal:
        """Rounding for a stop-loss or take-profit of a ``position_side`` position: long up,
        short down. A stop moves towards the entry (protective); a target moves away from it, so
        a solved profit target still holds."""
        return self.round_price(price, "up" if position_side is Side.BUY else "down")
