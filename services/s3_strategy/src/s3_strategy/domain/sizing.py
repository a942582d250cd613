"""Step 5, sizing (spec §C3). Decimal throughout; every rounding goes through tradekit.Instrument.

* FUT: `margin = S3_MARGIN_BASE_USDT · size_mult`, `notional = margin · leverage`,
  `qty = round(notional / entry, stepSize)` (nearest, as the spec says).
* SPOT: `qty = floor(spot_quote_budget_usdt · min(size_mult, 1) / (entry · (1 + fee)),
  stepSize)`: the budget is a ceiling on the quote spent, entry fee included, so a multiplier
  above 1 never raises it; below 1 it scales the buy down.

A quantity that rounds to zero, a notional below `minNotional` or a qty below `minQty` raises
`InvalidIntent` (the engine turns it into `MIN_NOTIONAL`); above `maxQty` raises `QtyAboveMax`.
Nothing is ever bumped up or cut down silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradekit.instrument import Instrument


class QtyAboveMax(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Sized:
    qty: Decimal
    notional: Decimal  # qty · entry
    margin: Decimal  # FUT: notional / leverage; SPOT: notional (the quote spent)


def _check_max(inst: Instrument, qty: Decimal) -> None:
    if inst.maxQty is not None and qty > inst.maxQty:
        raise QtyAboveMax(f"{inst.symbol}: qty {qty} above maxQty {inst.maxQty}")


def size_fut(
    inst: Instrument, entry: Decimal, margin_base: Decimal, size_mult: Decimal, leverage: int
) -> Sized:
    target = margin_base * size_mult * leverage
    qty = inst.round_qty(target / entry, "nearest")
    notional = inst.check_notional(qty, entry)
    _check_max(inst, qty)
    return Sized(qty, notional, notional / leverage)


def size_spot(
    inst: Instrument,
    entry: Decimal,
    budget: Decimal,
    size_mult: Decimal,
    fee: Decimal = Decimal(0),
) -> Sized:
    quote = budget * size_mult if size_mult < 1 else budget
    qty = inst.round_qty(quote / (entry * (1 + fee)), "down")
    notional = inst.check_notional(qty, entry)
    _check_max(inst, qty)
    return Sized(qty, notional, notional)
