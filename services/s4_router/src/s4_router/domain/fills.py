"""Fill bookkeeping of one order: deduplicated by `(venue, order_id, trade_id)`, capped at the
order's quantity.

A fill can be reported several times (query after a dropped ack, websocket replay, the trades
endpoint after the order endpoint); it counts once. A fill that takes the order past its
quantity is told apart (`overfills`) before it is booked: the caller stores it all the same (the
venue holds that position) and raises the overfill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tradekit.money import ZERO

FillKey = tuple[str, str, str]  # (venue, venue order id, trade id)


@dataclass
class FillLedger:
    qty: Decimal
    filled: Decimal = ZERO
    seen: set[FillKey] = field(default_factory=set)

    def overfills(self, key: FillKey, qty: Decimal) -> bool:
        """Would this new (not yet booked) fill take the order past its quantity? No change:
        the fill is booked once it is stored; a duplicate counts once, so it never overfills."""
        return key not in self.seen and (qty <= 0 or self.filled + qty > self.qty)

    def book(self, key: FillKey, qty: Decimal) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.filled += qty
