"""Fill bookkeeping of one order: deduplicated by `(venue, order_id, trade_id)`, capped at the
order's quantity.

A fill can be reported several times (query after a dropped ack, websocket replay, the trades
endpoint after the order endpoint); it counts once. A report that would take the order past its
quantity is refused and flagged: booking it would claim a position we do not hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from tradekit.money import ZERO

FillKey = tuple[str, str, str]  # (venue, venue order id, trade id)


@dataclass(frozen=True, slots=True)
class FillDecision:
    accepted: bool
    duplicate: bool = False
    overfill: bool = False


@dataclass
class FillLedger:
    qty: Decimal
    filled: Decimal = ZERO
    seen: set[FillKey] = field(default_factory=set)

    @classmethod
    def of(cls, qty: Decimal, booked: Iterable[tuple[FillKey, Decimal]]) -> FillLedger:
        ledger = cls(qty)
        for key, q in booked:
            ledger.book(key, q)
        return ledger

    def check(self, key: FillKey, qty: Decimal) -> FillDecision:
        """Would this reported fill be booked? (No change: book it once it is stored.)"""
        if key in self.seen:
            return FillDecision(accepted=False, duplicate=True)
        if qty <= 0 or self.filled + qty > self.qty:
            return FillDecision(accepted=False, overfill=True)
        return FillDecision(accepted=True)

    def book(self, key: FillKey, qty: Decimal) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.filled += qty
