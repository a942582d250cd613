"""Vocabulary of the execution policies: what they are told (book snapshots, child reports,
time) and what they ask for (place, cancel, note). Pure: no I/O, no infrastructure imports.

Policies are state machines. The service layer feeds them events, carries out the commands
they return against the venue, and persists their state after every step; a restart rebuilds
them from that state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tradekit.enums import OrderRole, OrderStatus, Side
from tradekit.money import BPS, ZERO

Level = tuple[Decimal, Decimal]  # (price, qty)


class TopOfBook:
    """Prices derived from `bids` / `asks` (best first, (price, qty) levels): shared by the
    policies' `Book` and the exchange port's `BookTop`."""

    __slots__ = ()
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    @property
    def two_sided(self) -> bool:
        return bool(self.bids) and bool(self.asks)

    @property
    def best_bid(self) -> Decimal:
        return self.bids[0][0]

    @property
    def best_ask(self) -> Decimal:
        return self.asks[0][0]

    @property
    def mid(self) -> Decimal:
        return (self.best_bid + self.best_ask) / 2

    @property
    def spread_bps(self) -> Decimal:
        return (self.best_ask - self.best_bid) / self.mid * BPS


@dataclass(frozen=True, slots=True)
class Book(TopOfBook):
    """Top of the order book as the policy sees it (best first)."""

    ts: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class RejectKind(StrEnum):
    POST_ONLY = "POST_ONLY"  # would have crossed: re-price
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"  # downsize once
    NOT_FOUND = "NOT_FOUND"  # venue evidence: the order never existed
    OTHER = "OTHER"  # definitive: stop


@dataclass(frozen=True, slots=True)
class ChildReport:
    """What the venue says about one child order. `filled_qty` is cumulative (the venue's
    executedQty), so a duplicated or reordered report can never count a fill twice."""

    child_id: str
    status: OrderStatus
    filled_qty: Decimal = ZERO
    reject: RejectKind | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    child_id: str
    n: int
    role: OrderRole
    side: Side
    qty: Decimal
    price: Decimal | None  # None: MARKET
    post_only: bool
    slice_index: int


@dataclass(frozen=True, slots=True)
class Cancel:
    child_id: str


@dataclass(frozen=True, slots=True)
class Note:
    """A policy step worth a `router:events` entry."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)


Command = Place | Cancel | Note
