"""Cost basis and PnL of one spot asset from our own fills (spec 001's open item).

Two methods, each for what it is good at:

* **average cost** (what the intelligent strategy's guards compare the price with): a BUY moves
  the average to (held·avg + cost) / (held + received); a SELL leaves it unchanged; a holding
  sold to zero resets it. Unrealised PnL = held · (price − avg).
* **FIFO lots** (what realised PnL is booked from): a BUY appends a lot at its unit cost; a
  SELL consumes the oldest lots first; realised PnL = proceeds − cost of the consumed lots.

Fees: a fee in the quote asset is part of a BUY's cost and comes off a SELL's proceeds; a fee
in the base asset reduces the base received (BUY) or adds to the base delivered (SELL); a fee
in any other asset is reported in `other_fees` and not converted (no price for it here).
A SELL larger than the lots we know (a holding that predates our fills) is matched at
`opening_cost`, the configured estimate, and counted in `unmatched_qty`. With no fills at all the
average cost *is* that estimate (`source: "estimate"`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from tradekit.money import ZERO


@dataclass(frozen=True, slots=True)
class CostFill:
    side: str  # BUY | SELL
    qty: Decimal
    price: Decimal
    fee: Decimal = ZERO
    fee_asset: str = ""
    ts: int = 0
    trade_id: str = ""


@dataclass(slots=True)
class PositionCost:
    asset: str
    quote_asset: str
    qty: Decimal
    avg_cost: Decimal
    realised_pnl: Decimal
    unrealised_pnl: Decimal | None
    price: Decimal | None
    fees_quote: Decimal
    other_fees: dict[str, Decimal]
    lots: list[tuple[Decimal, Decimal]]
    unmatched_qty: Decimal
    fills: int
    source: str  # "fills" | "estimate" | "fills+estimate"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lots"] = [{"qty": q, "unit_cost": c} for q, c in self.lots]
        out["method"] = {"avg_cost": "average cost", "realised_pnl": "FIFO lots"}
        return {**out, **out.pop("extra")}


def position_cost(
    fills: Iterable[CostFill],
    *,
    asset: str,
    quote_asset: str,
    opening_cost: Decimal,
    price: Decimal | None = None,
    holding: Decimal | None = None,
) -> PositionCost:
    """`holding`: the balance on the venue, when known. The part of it our fills do not
    explain (a deposit, trades made elsewhere) is valued at `opening_cost` in the average."""
    ordered = sorted(fills, key=lambda f: (f.ts, f.trade_id))
    held = ZERO
    avg = ZERO
    realised = ZERO
    fees_quote = ZERO
    other: dict[str, Decimal] = {}
    unmatched = ZERO
    lots: deque[list[Decimal]] = deque()  # [qty, unit_cost]
    for f in ordered:
        if f.qty <= 0 or f.price <= 0:
            continue
        fee_q = f.fee if f.fee_asset == quote_asset else ZERO
        fee_b = f.fee if f.fee_asset == asset else ZERO
        if f.fee and f.fee_asset not in (asset, quote_asset):
            other[f.fee_asset] = other.get(f.fee_asset, ZERO) + f.fee
        fees_quote += fee_q + fee_b * f.price
        if f.side == "BUY":
            received = f.qty - fee_b
            if received <= 0:
                continue
            cost = f.qty * f.price + fee_q
            avg = (held * avg + cost) / (held + received)
            held += received
            lots.append([received, cost / received])
        else:
            delivered = f.qty + fee_b
            proceeds = f.qty * f.price - fee_q
            remaining = delivered
            cost_out = ZERO
            while remaining > 0 and lots:
                lot = lots[0]
                take = min(lot[0], remaining)
                cost_out += take * lot[1]
                lot[0] -= take
                remaining -= take
                if lot[0] <= 0:
                    lots.popleft()
            if remaining > 0:
                unmatched += remaining
                cost_out += remaining * opening_cost
            realised += proceeds - cost_out
            held = max(ZERO, held - delivered)
            if held == 0:
                avg = ZERO
    source = "fills" if held > 0 else "estimate"
    avg_cost = avg if held > 0 else opening_cost
    extra: dict[str, Any] = {}
    if holding is not None and holding > held:
        outside = holding - held
        avg_cost = (held * avg_cost + outside * opening_cost) / holding
        extra = {"qty_from_fills": held, "qty_at_estimate": outside}
        source = "fills+estimate" if held > 0 else "estimate"
        held = holding
    unrealised = held * (price - avg_cost) if price is not None and held > 0 else None
    return PositionCost(
        asset=asset,
        quote_asset=quote_asset,
        qty=held,
        avg_cost=avg_cost,
        realised_pnl=realised,
        unrealised_pnl=unrealised,
        price=price,
        fees_quote=fees_quote,
        other_fees=other,
        lots=[(q, c) for q, c in lots],
        unmatched_qty=unmatched,
        fills=len(ordered),
        source=source,
        extra=extra,
    )
